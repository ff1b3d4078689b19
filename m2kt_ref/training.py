"""Training, evaluation and model directories for teachers and students.

A *model directory* holds three files, each written atomically (temp file + ``os.replace``):

- ``model.safetensors``: the weights (safetensors; never pickle, never ``torch.load``);
- ``config.json``: the net config, the task name and options, and the split that was used;
- ``record.json``: what happened (sizes, accuracies, steps, wall time, seed, versions, device).

``train_teacher`` is the one-call path (task + scale preset -> trained model + record) used by
``m2kt train-teacher`` and by the experiments; ``train_model`` is the generic loop for any module
mapping token rows to logits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn

from m2kt_ref.codec import write_atomic
from m2kt_ref.errors import FileAccessError, UsageError
from m2kt_ref.nets import FAMILIES, NetConfig, build_model, count_parameters
from m2kt_ref.tasks import Split, Task, make_task

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
RECORD_FILE = "record.json"
MODEL_DIR_FORMAT = "m2kt.model-dir"
MODEL_DIR_VERSION = 1
SCALES = ("quick", "default")


class DeviceUnavailableError(UsageError):
    """The requested device does not exist here (e.g. ``cuda`` without CUDA); code ``USAGE``."""

    def __init__(self, message: str) -> None:
        super().__init__("USAGE", message)


class ModelDirError(FileAccessError):
    """A model directory is missing, incomplete or unreadable; code ``IO_ERROR``."""

    def __init__(self, message: str) -> None:
        super().__init__("IO_ERROR", message)


class Problems(Protocol):
    """Anything with ``inputs`` (N, L) and ``targets`` (N,) arrays, e.g. a task ``ProblemSet``."""

    @property
    def inputs(self) -> Any: ...

    @property
    def targets(self) -> Any: ...


# -- devices and tensors ---------------------------------------------------------------------


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when present) to a checked device.

    Raises:
        DeviceUnavailableError: CUDA requested but not available, or an unknown device string.
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceUnavailableError(f"unknown device {device!r}; use cpu, cuda or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError("cuda requested but torch.cuda.is_available() is False")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"{dev} requested but only {torch.cuda.device_count()}")
    elif dev.type != "cpu":
        raise DeviceUnavailableError(f"device {dev} is not supported; use cpu or cuda")
    return dev


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def as_long_tensor(x: Any, device: torch.device | None = None) -> torch.Tensor:
    """numpy array / sequence / tensor of token ids -> ``int64`` tensor on ``device``."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        arr = np.asarray(x, dtype=np.int64)
        # Task arrays are read-only (cached); torch wants writable memory, so copy those.
        t = torch.from_numpy(np.array(arr) if not arr.flags.writeable else arr)
    return t.to(device=device, dtype=torch.long)


# -- evaluation -------------------------------------------------------------------------------


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Put ``model`` in eval mode for the block and restore its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def predict(
    model: nn.Module, inputs: Any, *, batch_size: int = 8192, device: Any = None
) -> torch.Tensor:
    """Predicted classes (argmax of the logits), ``int64`` on CPU, shape ``(N,)``."""
    dev = resolve_device(device) if device is not None else _model_device(model)
    x = as_long_tensor(inputs)
    out = []
    with eval_mode(model), torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model(x[i : i + batch_size].to(dev)).argmax(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def evaluate(
    model: nn.Module, inputs: Any, targets: Any, *, batch_size: int = 8192, device: Any = None
) -> float:
    """Fraction of rows whose argmax equals the target (0.0 for an empty set)."""
    y = as_long_tensor(targets)
    if len(y) == 0:
        return 0.0
    pred = predict(model, inputs, batch_size=batch_size, device=device)
    return float((pred == y).float().mean().item())


# -- the training loop ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (JSON-able).

    Attributes:
        steps: maximum optimiser steps.
        lr: AdamW learning rate (after a linear warmup of ``warmup_steps``).
        weight_decay: AdamW decoupled weight decay (high values, ~1, drive grokking).
        betas: AdamW betas.
        batch_size: mini-batch size; ``None`` trains full batch.
        warmup_steps: linear learning-rate warmup.
        eval_every: steps between accuracy checks (early stopping, progress bar).
        target_accuracy: stop once the monitored accuracy (validation set if given, else the
            training set) reaches this; ``None`` always runs ``steps``.
        grad_clip: max gradient norm; ``None`` disables clipping.
        seed: seed of the mini-batch order.
    """

    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    batch_size: int | None = None
    warmup_steps: int = 10
    eval_every: int = 50
    target_accuracy: float | None = None
    grad_clip: float | None = 1.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


@dataclass
class TrainResult:
    """What :func:`train_model` did."""

    steps: int
    wall_seconds: float
    train_accuracy: float
    monitor_accuracy: float | None
    stopped_early: bool
    final_loss: float
    history: list[dict[str, float]] = field(default_factory=list)


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return sys.stderr.isatty()


def train_model(
    model: nn.Module,
    train: Problems,
    config: TrainConfig,
    *,
    valid: Problems | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    desc: str = "train",
    on_eval: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train any token-rows -> logits module with AdamW and cross-entropy.

    Args:
        model: the module; it is moved to ``device`` and left there, in eval mode.
        train: training problems (``inputs`` (N, L), ``targets`` (N,); numpy or torch).
        config: optimisation settings.
        valid: problems monitored for early stopping (never trained on); ``None`` monitors the
            training set.
        device: ``cpu``, ``cuda`` or ``auto``; ``None`` keeps the model's current device.
        progress: show a tqdm bar on stderr; ``None`` shows it only on a terminal.
        desc: progress bar label.
        on_eval: called with each history entry (``step``, ``seconds``, ``loss``,
            ``train_acc``, ``monitor_acc``) as it is recorded, e.g. to log a long run.

    Returns:
        a :class:`TrainResult`.

    Raises:
        DeviceUnavailableError: the device does not exist here.
    """
    from tqdm.auto import tqdm

    dev = resolve_device(device) if device is not None else _model_device(model)
    model.to(dev)
    x = as_long_tensor(train.inputs, dev)
    y = as_long_tensor(train.targets, dev)
    if len(x) == 0:
        raise UsageError("USAGE", "train_model needs at least one training problem")
    vx = vy = None
    if valid is not None and len(valid.targets):
        vx, vy = as_long_tensor(valid.inputs, dev), as_long_tensor(valid.targets, dev)
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Norm gains and biases are not decayed (standard practice; decaying them hurts).
        (no_decay if p.ndim < 2 or name.endswith(".bias") else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=config.betas,
    )
    warm = max(int(config.warmup_steps), 0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0
    )
    gen = torch.Generator().manual_seed(int(config.seed))
    n = len(x)
    bs = n if config.batch_size is None else min(int(config.batch_size), n)
    order = torch.randperm(n, generator=gen).to(dev)
    cursor = 0
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict[str, float]] = []
    monitor: float | None = None
    stopped = False
    loss_value = float("nan")
    step = 0
    start = time.perf_counter()
    bar = tqdm(total=config.steps, desc=desc, disable=not _show_progress(progress), leave=False)
    model.train()
    try:
        for step in range(1, config.steps + 1):
            if bs == n:
                bx, by = x, y
            else:
                if cursor + bs > n:
                    order = torch.randperm(n, generator=gen).to(dev)
                    cursor = 0
                idx = order[cursor : cursor + bs]
                cursor += bs
                bx, by = x[idx], y[idx]
            loss = loss_fn(model(bx), by)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            sched.step()
            bar.update(1)
            if step % config.eval_every == 0 or step == config.steps:
                loss_value = float(loss.item())
                tr = evaluate(model, x, y)
                monitor = evaluate(model, vx, vy) if vx is not None else tr
                model.train()
                entry = {
                    "step": step,
                    "seconds": time.perf_counter() - start,
                    "loss": loss_value,
                    "train_acc": tr,
                    "monitor_acc": monitor,
                }
                history.append(entry)
                if on_eval is not None:
                    on_eval(entry)
                bar.set_postfix(loss=f"{loss_value:.3g}", train=f"{tr:.3f}", val=f"{monitor:.3f}")
                if config.target_accuracy is not None and monitor >= config.target_accuracy:
                    stopped = step < config.steps
                    break
    finally:
        bar.close()
        model.eval()
    wall = time.perf_counter() - start
    return TrainResult(
        steps=step,
        wall_seconds=wall,
        train_accuracy=evaluate(model, x, y),
        monitor_accuracy=monitor,
        stopped_early=stopped,
        final_loss=loss_value,
        history=history,
    )


# -- scale presets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TeacherPreset:
    """Net shape, optimiser settings and split fractions for one (task, scale)."""

    family: str
    net: dict[str, Any]
    train: TrainConfig
    train_fraction: float | None = None
    test_fraction: float | None = None
    valid_size: int = 2000

    def net_config(self, task: Task, *, family: str | None = None, seed: int = 0) -> NetConfig:
        """The net config for ``task`` (``family`` overrides the preset's)."""
        return NetConfig(
            family=family or self.family,
            vocab_size=task.vocab_size,
            seq_len=task.seq_len,
            n_classes=task.n_classes,
            seed=seed,
            **self.net,
        )


_QUICK_TRAIN = TrainConfig(
    steps=300, lr=3e-3, weight_decay=0.1, warmup_steps=10, eval_every=25, target_accuracy=0.99
)

PRESETS: dict[tuple[str, str], TeacherPreset] = {
    # quick: seconds on one CPU thread, above chance on test; for tests and smoke runs.
    ("modular", "quick"): TeacherPreset(
        "transformer",
        {"width": 32, "depth": 1, "heads": 4},
        _QUICK_TRAIN,
        train_fraction=0.7,
        test_fraction=0.2,
    ),
    ("hierarchy", "quick"): TeacherPreset("transformer", {"width": 32, "depth": 1}, _QUICK_TRAIN),
    ("chain", "quick"): TeacherPreset("gru", {"width": 32, "depth": 1}, _QUICK_TRAIN),
    # default: CPU minutes, the accuracies measured in docs/teachers.md.
    # Modular arithmetic groks under strong weight decay; an MLP over the concatenated
    # embeddings groks in far fewer (and cheaper) full-batch steps than a transformer on CPU.
    # With all three operators it generalises within CPU minutes only from a large training
    # fraction (0.4 stalled near 0.46; 0.7 groks in about 600 steps), and it keeps training
    # until validation is nearly perfect, because test accuracy trails validation slightly.
    ("modular", "default"): TeacherPreset(
        "mlp",
        {"width": 256, "depth": 1},
        TrainConfig(
            steps=4000,
            lr=3e-3,
            weight_decay=1.0,
            betas=(0.9, 0.98),
            warmup_steps=10,
            eval_every=100,
            target_accuracy=0.999,
        ),
        train_fraction=0.7,
        test_fraction=0.2,
    ),
    ("hierarchy", "default"): TeacherPreset(
        "transformer",
        {"width": 64, "depth": 1, "heads": 4},
        TrainConfig(steps=2000, lr=3e-3, weight_decay=1.0, eval_every=50, target_accuracy=0.995),
    ),
    # A GRU applies the functions in reading order, the structure of the task.
    ("chain", "default"): TeacherPreset(
        "gru",
        {"width": 64, "depth": 1},
        TrainConfig(steps=3000, lr=3e-3, weight_decay=1.0, eval_every=100, target_accuracy=0.99),
    ),
}


def teacher_preset(task_name: str, scale: str) -> TeacherPreset:
    """The preset for a registered task at ``quick`` or ``default`` scale.

    Raises:
        UsageError: unknown scale or no preset for the task.
    """
    if scale not in SCALES:
        raise UsageError("USAGE", f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    try:
        return PRESETS[(task_name, scale)]
    except KeyError:
        raise UsageError("USAGE", f"no {scale} preset for task {task_name!r}") from None


# -- model directories ------------------------------------------------------------------------


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


@dataclass
class ModelDir:
    """A loaded model directory."""

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
    record is complete. Returns the directory path.

    Raises:
        ModelDirError: the directory cannot be created or written.
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

    Raises:
        ModelDirError: missing directory or file, bad JSON, or weights that do not fit the
            config.
        DeviceUnavailableError: the device does not exist here.
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

    Raises:
        ModelDirError: the file is missing or unreadable.
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


# -- one-call teacher / student ---------------------------------------------------------------


@dataclass
class TeacherRun:
    """A trained teacher with everything needed to save or use it."""

    model: nn.Module
    net_config: NetConfig
    task: Task
    split: Split
    train_config: TrainConfig
    record: dict[str, Any]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model directory."""
        return save_model_dir(
            path,
            self.model,
            self.net_config,
            self.task,
            self.record,
            split=self.split,
            train_config=self.train_config,
        )


def _environment(dev: torch.device) -> dict[str, Any]:
    return {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "device": str(dev),
        "threads": torch.get_num_threads(),
    }


def train_teacher(
    task: Task,
    *,
    scale: str = "default",
    family: str | None = None,
    seed: int = 0,
    device: Any = "cpu",
    progress: bool | None = None,
    train_config: TrainConfig | None = None,
) -> TeacherRun:
    """Split ``task`` with ``seed``, build the preset net, train it, and measure it on test.

    Early stopping watches a validation set drawn from the split's ``reserve`` (never from
    test), so the reported test accuracy is not selected on.

    Args:
        task: the task instance.
        scale: ``quick`` (seconds, for tests) or ``default`` (CPU minutes, the documented
            targets).
        family: net family overriding the preset's (``transformer``, ``mlp``, ``gru``).
        seed: seeds the split, the init and the batch order.
        device: ``cpu``, ``cuda`` or ``auto``.
        progress: tqdm bar on stderr (``None``: only on a terminal).
        train_config: overrides the preset's optimiser settings.

    Raises:
        UsageError: unknown scale or family; DeviceUnavailableError: no such device.
    """
    dev = resolve_device(device)
    preset = teacher_preset(task.name, scale)
    if family is not None and family not in FAMILIES:
        raise UsageError("USAGE", f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    cfg = train_config or dataclasses.replace(preset.train, seed=seed)
    split = task.split(seed, preset.train_fraction, preset.test_fraction)
    valid = split.reserve.head(preset.valid_size) if len(split.reserve) else None
    net_config = preset.net_config(task, family=family, seed=seed)
    model = build_model(net_config)
    result = train_model(
        model, split.train, cfg, valid=valid, device=dev, progress=progress, desc=task.name
    )
    test_acc = evaluate(model, split.test.inputs, split.test.targets)
    record = {
        "trained": True,
        "scale": scale,
        "task": task.name,
        "family": net_config.family,
        "seed": seed,
        "train_size": len(split.train),
        "test_size": len(split.test),
        "valid_size": 0 if valid is None else len(valid),
        "train_accuracy": result.train_accuracy,
        "valid_accuracy": result.monitor_accuracy if valid is not None else None,
        "test_accuracy": test_acc,
        "chance_accuracy": _chance(split),
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "final_loss": result.final_loss,
        "wall_seconds": round(result.wall_seconds, 3),
        "parameters": count_parameters(model),
        **_environment(dev),
    }
    return TeacherRun(model, net_config, task, split, cfg, record)


def _chance(split: Split) -> float:
    """Accuracy of always answering the most frequent training class, measured on test."""
    counts = np.bincount(split.train.targets)
    return float(np.mean(split.test.targets == int(np.argmax(counts))))


def init_student(
    task: Task,
    *,
    family: str,
    width: int,
    depth: int,
    heads: int = 4,
    seed: int = 0,
    readout: str = "last",
) -> tuple[nn.Module, NetConfig, dict[str, Any]]:
    """An untrained net for ``task`` of any shape, with the record that marks it untrained.

    Raises:
        NetConfigError: the shape is invalid (e.g. width not divisible by heads).
    """
    net_config = NetConfig(
        family=family,
        vocab_size=task.vocab_size,
        seq_len=task.seq_len,
        n_classes=task.n_classes,
        width=width,
        depth=depth,
        heads=heads,
        readout=readout,
        seed=seed,
    )
    model = build_model(net_config)
    record = {
        "trained": False,
        "task": task.name,
        "family": family,
        "seed": seed,
        "steps": 0,
        "parameters": count_parameters(model),
        **_environment(torch.device("cpu")),
    }
    return model, net_config, record
