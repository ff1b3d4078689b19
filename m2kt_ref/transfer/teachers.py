"""Teachers and fresh students for the built-in task families, in one call each.

``train_teacher`` (task + scale preset -> trained model + record) serves ``m2kt train-teacher``
and the experiments; ``init_student`` builds an untrained net for a task.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref.errors import UsageError
from m2kt_ref.transfer.device import resolve_device
from m2kt_ref.transfer.model_dir import save_model_dir
from m2kt_ref.transfer.nets import FAMILIES, NetConfig, build_model, count_parameters
from m2kt_ref.transfer.tasks import Split, Task
from m2kt_ref.transfer.training import TrainConfig, evaluate, train_model

__all__ = [
    "PRESETS",
    "SCALES",
    "TeacherPreset",
    "TeacherRun",
    "init_student",
    "teacher_preset",
    "train_teacher",
]

SCALES = ("quick", "default")


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
        raise UsageError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    try:
        return PRESETS[(task_name, scale)]
    except KeyError:
        raise UsageError(f"no {scale} preset for task {task_name!r}") from None


@dataclass
class TeacherRun:
    """A trained teacher with everything needed to save or use it (see :func:`train_teacher`).

    Args:
        model: the trained net, in eval mode.
        net_config: its config.
        task: the task it was trained on.
        split: the seeded train/test/reserve split used.
        train_config: the optimiser settings used.
        record: sizes, accuracies (train, validation, test, chance), steps, wall time,
            parameters and the environment.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> run = mt.train_teacher(task, scale="quick", train_config=mt.TrainConfig(steps=2))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = run.save(Path(tmp) / "teacher")
        ...     print(mt.load_model_dir(path).split().seed == run.split.seed)
        True
    """

    model: nn.Module
    net_config: NetConfig
    task: Task
    split: Split
    train_config: TrainConfig
    record: dict[str, Any]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model directory (:func:`save_model_dir`, split and settings included).

        Raises:
            ModelDirError: ``IO_ERROR`` when the directory cannot be written.
        """
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
        train_config: overrides the preset's optimiser settings (its own ``seed`` then orders
            the batches; ``seed`` still seeds the split and the init).

    Returns:
        a :class:`TeacherRun`; ``record["test_accuracy"]`` is measured on the held-out test
        split.

    Raises:
        UsageError: ``USAGE`` for an unknown scale or family, or no preset for the task.
        DeviceUnavailableError: ``USAGE`` when the device does not exist here.
        TaskOptionError: ``USAGE`` when the task has too few problems for the preset's split.

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> quick = mt.TrainConfig(steps=3)             # a real run: drop it, or scale="default"
        >>> run = mt.train_teacher(task, scale="quick", train_config=quick)
        >>> run.net_config.family, run.record["steps"], run.record["trained"]
        ('gru', 3, True)
        >>> 0.0 <= run.record["test_accuracy"] <= 1.0
        True
    """
    dev = resolve_device(device)
    preset = teacher_preset(task.name, scale)
    if family is not None and family not in FAMILIES:
        raise UsageError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
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

    The vocabulary, row length and classes come from ``task``; the shape is the caller's. A
    student need not match its teacher's family or width.

    Args:
        task: the task the net is for.
        family: ``transformer``, ``mlp`` or ``gru``.
        width: model dimension ``d``.
        depth: blocks (transformer) or layers (mlp, gru).
        heads: attention heads (transformer only; must divide ``width``).
        seed: initialisation seed.
        readout: ``last`` or ``mean`` pooling before the head.

    Returns:
        ``(model, net_config, record)``: the net, its config and a ``record.json`` that says
        ``"trained": false`` (pass all three to :func:`save_model_dir`).

    Raises:
        NetConfigError: ``USAGE`` when the shape is invalid (e.g. width not divisible by heads).

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> model, config, record = mt.init_student(task, family="mlp", width=16, depth=1)
        >>> config.vocab_size, config.n_classes, record["trained"], record["parameters"] > 0
        (11, 8, False, True)
        >>> again, _, _ = mt.init_student(task, family="mlp", width=16, depth=1)
        >>> mt.state_dict_digest(again) == mt.state_dict_digest(model)   # seeded
        True
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
