"""What a Hugging Face model directory must hold, checked before anything is loaded.

A teacher or student is a ``save_pretrained`` directory: ``config.json``, safetensors weights
(``model.safetensors``, or shards listed by ``model.safetensors.index.json``) and a fast
tokenizer (``tokenizer.json``). Checking the files first turns a user's mistake (a wrong path, a
directory of pickle weights, a slow tokenizer only) into one coded line instead of a traceback
from deep inside ``transformers``; and pickle is never loaded, whatever else the directory holds.

The digests a packet records come from here too (spec/algorithms.md §6.5): the SHA-256 of
``config.json`` and of the weights, computed from the bytes on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m2kt_ref.errors import ModelDirError

__all__ = [
    "CONFIG_FILE",
    "PICKLE_SUFFIXES",
    "SHARD_INDEX",
    "TOKENIZER_FILE",
    "WEIGHTS_FILE",
    "HFFiles",
    "file_sha256",
    "inspect_hf_dir",
    "is_weight_file",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"
TOKENIZER_FILE = "tokenizer.json"
#: Weight files that would need pickle to read; m2kt never loads them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


_SHARD = re.compile(r"model-[0-9]{5}-of-[0-9]{5}\.safetensors")


def is_weight_file(name: str) -> bool:
    """Whether ``name`` is one of the safetensors weight files ``save_pretrained`` writes: the
    single file, a shard, or the shard index."""
    return name in (WEIGHTS_FILE, SHARD_INDEX) or _SHARD.fullmatch(name) is not None


@dataclass(frozen=True)
class HFFiles:
    """The files of a checked model directory and their digests.

    Args:
        path: the directory.
        config: ``config.json`` as a dict (``model_type`` is always present).
        weights: the safetensors files, in name order (one, or the shards of the index).
        config_digest: SHA-256 (hex) of ``config.json``'s bytes.
        weights_digest: SHA-256 (hex) of ``model.safetensors``; for a sharded model, of the
            text ``"<sha256>  <name>\\n"`` per shard in name order (``sha256sum``'s format).

    Example:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> from m2kt_ref.transfer.hf import inspect_hf_dir
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     d = Path(tmp)
        ...     _ = (d / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
        ...     _ = (d / "model.safetensors").write_bytes(b"weights")
        ...     _ = (d / "tokenizer.json").write_text("{}")
        ...     files = inspect_hf_dir(d)
        >>> files.model_type, [p.name for p in files.weights], files.weights_digest[:12]
        ('gpt2', ['model.safetensors'], '9a129038d9a0')
    """

    path: Path
    config: dict[str, Any]
    weights: tuple[Path, ...]
    config_digest: str
    weights_digest: str

    @property
    def model_type(self) -> str:
        """``config.json``'s ``model_type`` (``gpt2``, ``llama``, ``bert``...)."""
        return str(self.config["model_type"])


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (lowercase hex) of a file's bytes, read in 1 MiB chunks.

    Raises:
        ModelDirError: ``IO_ERROR`` when the file cannot be read.
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise ModelDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def _shards(src: Path) -> list[Path]:
    try:
        index = json.loads((src / SHARD_INDEX).read_text(encoding="utf-8"))
        names = sorted(set(index["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelDirError(f"{src / SHARD_INDEX} is not a shard index: {exc}") from None
    for name in names:
        if (
            not isinstance(name, str)
            or Path(name).name != name
            or not name.endswith(".safetensors")
        ):
            raise ModelDirError(f"{src / SHARD_INDEX} names a shard {name!r} outside the directory")
    missing = [n for n in names if not (src / n).is_file()]
    if missing:
        raise ModelDirError(f"model directory {src} lacks the shard(s) {', '.join(missing)}")
    return [src / n for n in names]


def inspect_hf_dir(path: str | os.PathLike[str]) -> HFFiles:
    """Check that ``path`` is a complete ``save_pretrained`` directory m2kt can load safely.

    Args:
        path: the directory (the part after ``hf:`` on the command line).

    Returns:
        an :class:`HFFiles` with the weight files and the digests.

    Raises:
        ModelDirError: ``IO_ERROR`` when the directory does not exist, lacks ``config.json``,
            safetensors weights or ``tokenizer.json`` (the message names what is missing, and
            says so when only pickle weights are there), or its config is not a JSON object
            with a ``model_type``.
    """
    src = Path(path)
    if not src.is_dir():
        raise ModelDirError(f"Hugging Face model directory {src} does not exist")
    missing = [n for n in (CONFIG_FILE, TOKENIZER_FILE) if not (src / n).is_file()]
    if (src / SHARD_INDEX).is_file() and (src / WEIGHTS_FILE).is_file():
        # transformers would load one and a digest could describe the other: refuse to guess
        raise ModelDirError(
            f"model directory {src} holds both {WEIGHTS_FILE} and {SHARD_INDEX}: two sets of "
            "weights; remove the stale one"
        )
    if (src / SHARD_INDEX).is_file():
        weights = _shards(src)
    elif (src / WEIGHTS_FILE).is_file():
        weights = [src / WEIGHTS_FILE]
    else:
        weights = []
        pickled = sorted(p.name for p in src.iterdir() if p.suffix in PICKLE_SUFFIXES)
        missing.append(
            f"{WEIGHTS_FILE} (it holds only {', '.join(pickled)}, which would need pickle: "
            "save the model with save_pretrained, which writes safetensors)"
            if pickled
            else WEIGHTS_FILE
        )
    if missing:
        hint = (
            " (a fast tokenizer: save it with tokenizer.save_pretrained)"
            if any(m == TOKENIZER_FILE for m in missing)
            else ""
        )
        raise ModelDirError(f"model directory {src} lacks {', '.join(missing)}{hint}")
    try:
        raw = (src / CONFIG_FILE).read_bytes()
        config = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"cannot read {src / CONFIG_FILE}: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ModelDirError(f"{src / CONFIG_FILE} is not a transformers config (no model_type)")
    if len(weights) == 1:
        digest = file_sha256(weights[0])
    else:
        listing = "".join(f"{file_sha256(p)}  {p.name}\n" for p in weights)
        digest = hashlib.sha256(listing.encode()).hexdigest()
    return HFFiles(
        path=src,
        config=config,
        weights=tuple(weights),
        config_digest=hashlib.sha256(raw).hexdigest(),
        weights_digest=digest,
    )
