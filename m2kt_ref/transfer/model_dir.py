"""Model directories: a net, its task and its history, saved without pickle.

A *model directory* holds three files, each written atomically (temp file + ``os.replace``):

- ``model.safetensors``: the weights (safetensors; never pickle, never ``torch.load``);
- ``config.json``: the net config, the task name and options, and the split that was used;
- ``record.json``: what happened (sizes, accuracies, steps, wall time, seed, versions, device).

Digests of weights live here too, so teacher and student sides name a model the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save
from torch import nn

from m2kt_ref.errors import FileAccessError, ModelDirError
from m2kt_ref.packet.files import write_atomic
from m2kt_ref.transfer.device import resolve_device
from m2kt_ref.transfer.nets import NetConfig, build_model
from m2kt_ref.transfer.tasks import Split, Task, make_task
from m2kt_ref.transfer.training import TrainConfig

__all__ = [
    "CONFIG_FILE",
    "MODEL_DIR_FORMAT",
    "MODEL_DIR_VERSION",
    "RECORD_FILE",
    "WEIGHTS_FILE",
    "ModelDir",
    "load_model_dir",
    "save_model_dir",
    "state_dict_digest",
    "weights_digest",
]

WEIGHTS_FILE = "model.safetensors"


CONFIG_FILE = "config.json"


RECORD_FILE = "record.json"


MODEL_DIR_FORMAT = "m2kt.model-dir"


MODEL_DIR_VERSION = 1


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


@dataclass
class ModelDir:
    """A loaded model directory (see :func:`load_model_dir`).

    Args:
        path: the directory.
        model: the net, weights loaded, in eval mode on the requested device.
        net_config: the net's config (``config.json``).
        task_name: the task's registered name.
        task_options: the task's options (rebuild the task with :meth:`task`).
        split_config: ``seed``, ``train_fraction`` and ``test_fraction`` of the teacher's
            split, or None when the directory records no split (an untrained student).
        train_config: the optimiser settings used, or None.
        record: ``record.json``: what happened (sizes, accuracies, steps, versions...).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> model, net_config, record = mt.init_student(task, family="mlp", width=16, depth=1)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = mt.save_model_dir(Path(tmp) / "student", model, net_config, task, record)
        ...     md = mt.load_model_dir(path)
        ...     print(md.weights_digest == mt.weights_digest(md.path))
        True
        >>> md.task().name, md.net_config == net_config, md.record["trained"]
        ('chain', True, False)
    """

    path: Path
    model: nn.Module
    net_config: NetConfig
    task_name: str
    task_options: dict[str, Any]
    split_config: dict[str, Any] | None
    train_config: TrainConfig | None
    record: dict[str, Any]

    def task(self) -> Task:
        """Rebuild the task the model was trained (or initialised) for."""
        return make_task(self.task_name, **self.task_options)

    def split(self) -> Split:
        """Rebuild the exact train/test/reserve split of the teacher (same seed, fractions).

        Raises:
            ModelDirError: the directory records no split.
        """
        if not self.split_config:
            raise ModelDirError(f"{self.path} records no split")
        sc = self.split_config
        return self.task().split(
            sc["seed"], train_fraction=sc["train_fraction"], test_fraction=sc["test_fraction"]
        )

    @property
    def weights_digest(self) -> str:
        """SHA-256 (hex) of ``model.safetensors``."""
        return weights_digest(self.path)


def save_model_dir(
    path: str | os.PathLike[str],
    model: nn.Module,
    net_config: NetConfig,
    task: Task,
    record: Mapping[str, Any],
    *,
    split: Split | None = None,
    train_config: TrainConfig | None = None,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``record.json`` atomically.

    The directory is created if needed; ``record.json`` is written last, so a directory with a
    record is complete. The weights are safetensors (no pickle).

    Args:
        path: the directory (created with its parents when missing; files in it are replaced).
        model: the net; its state dict is saved.
        net_config: the config that builds the net (:func:`build_model`).
        task: the task the model is for (its name and options are recorded).
        record: JSON-able facts to keep in ``record.json``.
        split: the train/test split used, so :meth:`ModelDir.split` can rebuild it.
        train_config: the optimiser settings used.

    Returns:
        The directory path.

    Raises:
        ModelDirError: ``IO_ERROR`` when the directory cannot be created or written.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> model, net_config, record = mt.init_student(task, family="gru", width=16, depth=1)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = mt.save_model_dir(Path(tmp) / "student", model, net_config, task, record)
        ...     print(sorted(p.name for p in out.iterdir()))
        ...     print(mt.state_dict_digest(model) == "sha256:" + mt.weights_digest(out))
        ['config.json', 'model.safetensors', 'record.json']
        True
    """
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        write_atomic(out / WEIGHTS_FILE, [save(tensors, metadata={"format": "pt"})])
        config = {
            "format": MODEL_DIR_FORMAT,
            "version": MODEL_DIR_VERSION,
            "net": net_config.to_dict(),
            "task": {"name": task.name, "options": task.option_dict()},
            "split": None
            if split is None
            else {
                "seed": split.seed,
                "train_fraction": split.train_fraction,
                "test_fraction": split.test_fraction,
            },
            "train": None if train_config is None else train_config.to_dict(),
        }
        write_atomic(out / CONFIG_FILE, [_json_bytes(config)])
        write_atomic(out / RECORD_FILE, [_json_bytes(dict(record))])
    except OSError as exc:
        detail = exc.message if isinstance(exc, FileAccessError) else exc.strerror or exc
        raise ModelDirError(f"cannot write model directory {out}: {detail}") from None
    return out


def load_model_dir(path: str | os.PathLike[str], *, device: Any = "cpu") -> ModelDir:
    """Load a model directory written by :func:`save_model_dir` (no pickle anywhere).

    Args:
        path: the directory.
        device: where to put the model (``cpu``, ``cuda``, ``cuda:N``, ``auto``).

    Returns:
        A :class:`ModelDir`; its model is in eval mode on ``device``.

    Raises:
        ModelDirError: ``IO_ERROR`` for a missing directory or file, bad JSON, an unknown
            format or version, or weights that do not fit the config.
        DeviceUnavailableError: ``USAGE`` when the device does not exist here.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> model, net_config, record = mt.init_student(task, family="mlp", width=16, depth=1)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = mt.save_model_dir(Path(tmp) / "student", model, net_config, task, record)
        ...     md = mt.load_model_dir(path)
        ...     try:
        ...         mt.load_model_dir(Path(tmp) / "missing")
        ...     except m2kt_ref.FileAccessError as exc:     # ModelDirError is one
        ...         print(type(exc).__name__, exc.code)
        ModelDirError IO_ERROR
        >>> problems = task.problems()
        >>> mt.evaluate(md.model, problems.inputs, problems.targets) == mt.evaluate(
        ...     model, problems.inputs, problems.targets)
        True
    """
    src = Path(path)
    dev = resolve_device(device)
    if not src.is_dir():
        raise ModelDirError(f"model directory {src} does not exist")
    for name in (WEIGHTS_FILE, CONFIG_FILE, RECORD_FILE):
        if not (src / name).is_file():
            raise ModelDirError(f"model directory {src} lacks {name}")
    try:
        config = json.loads((src / CONFIG_FILE).read_text())
        record = json.loads((src / RECORD_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"cannot read {src}: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != MODEL_DIR_FORMAT:
        raise ModelDirError(f"{src / CONFIG_FILE} is not an m2kt model config")
    if config.get("version") != MODEL_DIR_VERSION:
        raise ModelDirError(f"{src / CONFIG_FILE} has unsupported version {config.get('version')}")
    try:
        net_config = NetConfig.from_dict(config["net"])
        task_name = config["task"]["name"]
        task_options = dict(config["task"]["options"])
        train_cfg = config.get("train")
        train_config = TrainConfig.from_dict(train_cfg) if train_cfg else None
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelDirError(f"{src / CONFIG_FILE} is malformed: {exc}") from None
    model = build_model(net_config)
    try:
        state = load_file(str(src / WEIGHTS_FILE), device="cpu")
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelDirError(f"{src / WEIGHTS_FILE} does not fit the config: {first}") from None
    model.to(dev).eval()
    return ModelDir(
        path=src,
        model=model,
        net_config=net_config,
        task_name=task_name,
        task_options=task_options,
        split_config=config.get("split"),
        train_config=train_config,
        record=record,
    )


def weights_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 (lowercase hex) of the weights file bytes; ``path`` is the dir or the file.

    Packets name their teacher by this digest (``teacher.model_digest`` is ``sha256:`` plus it).

    Args:
        path: a model directory or its ``model.safetensors`` file.

    Returns:
        64 lowercase hex digits.

    Raises:
        ModelDirError: ``IO_ERROR`` when the file is missing or unreadable.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> model, net_config, record = mt.init_student(task, family="mlp", width=16, depth=1)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = mt.save_model_dir(Path(tmp) / "m", model, net_config, task, record)
        ...     digest = mt.weights_digest(out)
        ...     print(digest == mt.weights_digest(out / "model.safetensors"), len(digest))
        True 64
    """
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_FILE
    h = hashlib.sha256()
    try:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise ModelDirError(f"cannot read {p}: {exc.strerror or exc}") from None
    return h.hexdigest()


def state_dict_digest(model: nn.Module) -> str:
    """``sha256:`` + SHA-256 of the model's state dict serialised as safetensors.

    For a model saved by :func:`save_model_dir` this equals the digest of its
    ``model.safetensors`` file (same serialiser, same metadata).

    Args:
        model: any module (its state dict is copied to CPU to be hashed; tied weights, which
            share storage, are written once per name).

    Returns:
        ``sha256:`` followed by 64 lowercase hex digits.

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> model, net_config, _ = mt.init_student(task, family="mlp", width=16, depth=1)
        >>> digest = mt.state_dict_digest(model)
        >>> digest.startswith("sha256:"), len(digest)
        (True, 71)
        >>> mt.state_dict_digest(mt.build_model(net_config)) == digest   # same seed, same net
        True
    """
    from safetensors.torch import save

    tensors: dict[str, Any] = {}
    seen: set[int] = set()
    for k, v in model.state_dict().items():
        t = v.detach().to("cpu").contiguous()
        # tied weights (a language model's input and output embeddings) share storage, which
        # safetensors refuses to write; each name is serialised with its own copy
        where = t.untyped_storage().data_ptr()
        tensors[k] = t.clone() if where in seen and t.numel() else t
        seen.add(where)
    return "sha256:" + hashlib.sha256(save(tensors, metadata={"format": "pt"})).hexdigest()
