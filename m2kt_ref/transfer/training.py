"""Training and evaluation of any module mapping token rows to logits.

``train_model`` is the generic loop (teachers, KD students, scratch baselines); one-call
teachers are in :mod:`m2kt_ref.transfer.teachers`, model directories in
:mod:`m2kt_ref.transfer.model_dir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from m2kt_ref.errors import UsageError
from m2kt_ref.transfer.device import as_long_tensor, model_device, resolve_device

__all__ = [
    "Problems",
    "TrainConfig",
    "TrainResult",
    "eval_mode",
    "evaluate",
    "predict",
    "train_model",
]


class Problems(Protocol):
    """Anything with ``inputs`` (N, L) and ``targets`` (N,) arrays, e.g. a task ``ProblemSet``."""

    @property
    def inputs(self) -> Any: ...

    @property
    def targets(self) -> Any: ...


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
    dev = resolve_device(device) if device is not None else model_device(model)
    x = as_long_tensor(inputs)
    out = []
    with eval_mode(model), torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model(x[i : i + batch_size].to(dev)).argmax(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def evaluate(
    model: nn.Module, inputs: Any, targets: Any, *, batch_size: int = 8192, device: Any = None
) -> float:
    """Fraction of rows whose argmax equals the target (0.0 for an empty set).

    The model runs in eval mode under ``torch.no_grad``; its previous mode is restored.

    Args:
        model: any module mapping token rows to logits.
        inputs: token ids ``(N, L)`` (numpy, a sequence or a tensor).
        targets: class ids ``(N,)``.
        batch_size: rows per forward pass.
        device: where to run (``cpu``, ``cuda``, ``auto``); None uses the model's device.

    Returns:
        Accuracy in [0, 1].

    Raises:
        DeviceUnavailableError: ``USAGE`` when ``device`` does not exist here.

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> model, _, _ = mt.init_student(task, family="mlp", width=16, depth=1)
        >>> test = task.split(0).test
        >>> 0.0 <= mt.evaluate(model, test.inputs, test.targets) <= 1.0
        True
        >>> mt.evaluate(model, test.inputs[:0], test.targets[:0])
        0.0
    """
    y = as_long_tensor(targets)
    if len(y) == 0:
        return 0.0
    pred = predict(model, inputs, batch_size=batch_size, device=device)
    return float((pred == y).float().mean().item())


# -- the training loop ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (JSON-able).

    Args:
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

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> config = mt.TrainConfig(steps=200, lr=3e-3, batch_size=64, target_accuracy=0.99)
        >>> config.to_dict()["betas"]
        [0.9, 0.98]
        >>> mt.TrainConfig.from_dict(config.to_dict()) == config
        True
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
        a :class:`TrainResult`: steps run, wall time, training and monitored accuracy, whether
        it stopped early, the last loss and the history.

    Raises:
        DeviceUnavailableError: ``USAGE`` when the device does not exist here.
        UsageError: ``USAGE`` when ``train`` holds no problem.

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> split = task.split(0)
        >>> model, _, _ = mt.init_student(task, family="mlp", width=16, depth=1)
        >>> config = mt.TrainConfig(steps=4, lr=1e-2, eval_every=2)
        >>> result = mt.train_model(model, split.train, config, valid=split.reserve)
        >>> result.steps, [entry["step"] for entry in result.history], result.stopped_early
        (4, [2, 4], False)
        >>> 0.0 <= result.monitor_accuracy <= 1.0
        True
    """
    from tqdm.auto import tqdm

    dev = resolve_device(device) if device is not None else model_device(model)
    model.to(dev)
    x = as_long_tensor(train.inputs, dev)
    y = as_long_tensor(train.targets, dev)
    if len(x) == 0:
        raise UsageError("train_model needs at least one training problem")
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


# -- model directories ------------------------------------------------------------------------


# -- one-call teacher / student ---------------------------------------------------------------
