"""Baselines the experiments compare M2KT with: logit distillation and training from scratch.

Both share one optimisation loop, :func:`fit_loop`, with the M2KT ingestion recipe of the
experiments, so every method is measured the same way: the same optimiser (AdamW), the same step
budget, and a periodic evaluation on the held-out test set that records the first step (and the
wall time) at which the student reaches a target accuracy (90 % of the teacher's).

Primitives see tensors and modules, never files or packets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FitConfig",
    "FitResult",
    "fit_loop",
    "logit_distill",
    "teacher_logits",
    "train_on_labels",
]


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings shared by every transfer method.

    Attributes:
        steps: optimiser steps.
        lr: AdamW learning rate (linear warm-up over ``warmup_steps``, then cosine to 10 %).
        weight_decay: AdamW decoupled weight decay (matrices only).
        batch_size: rows per mini-batch (capped at the number of rows).
        eval_every: steps between evaluations on the held-out test set.
        warmup_steps: linear warm-up.
        seed: batch order.
    """

    steps: int = 1000
    lr: float = 3e-3
    weight_decay: float = 0.1
    batch_size: int = 128
    eval_every: int = 50
    warmup_steps: int = 20
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


@dataclass
class FitResult:
    """What :func:`fit_loop` measured.

    Attributes:
        steps: optimiser steps taken.
        wall_seconds: training wall time (evaluations excluded).
        accuracy: held-out accuracy of the final model.
        steps_to_target: first evaluated step with accuracy >= target (None: never).
        wall_to_target: training wall time at that step (None: never).
        history: ``{"step", "wall_s", "accuracy", "loss"}`` per evaluation.
    """

    steps: int
    wall_seconds: float
    accuracy: float
    steps_to_target: int | None
    wall_to_target: float | None
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def _optimizer(model: nn.Module, extra: list[torch.Tensor], cfg: FitConfig):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or name.endswith(".bias") else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay + list(extra), "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    warm = max(int(cfg.warmup_steps), 1)

    def factor(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        t = (s - warm) / max(cfg.steps - warm, 1)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def fit_loop(
    model: nn.Module,
    loss_fn: Callable[[int, torch.Generator], torch.Tensor],
    cfg: FitConfig,
    *,
    evaluate: Callable[[], float],
    target: float | None = None,
    extra_params: list[torch.Tensor] | None = None,
) -> FitResult:
    """Minimise ``loss_fn(step, generator)`` with AdamW; evaluate every ``cfg.eval_every`` steps.

    Args:
        model: the student (trained in place).
        loss_fn: returns the scalar loss of one step (draws its batch with the generator).
        cfg: optimisation settings.
        evaluate: held-out accuracy of ``model`` now (the caller pauses input counting).
        target: accuracy whose first crossing is recorded (steps and wall time).
        extra_params: more trainable tensors (e.g. relation vectors of a structural loss).

    Returns:
        a :class:`FitResult`; the model is left in eval mode.
    """
    opt, sched = _optimizer(model, extra_params or [], cfg)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    history: list[dict[str, float]] = []
    steps_to = wall_to = None
    train_wall = 0.0
    model.train()
    loss_value = float("nan")
    for step in range(1, cfg.steps + 1):
        t0 = time.perf_counter()
        loss = loss_fn(step, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        train_wall += time.perf_counter() - t0
        if step % cfg.eval_every == 0 or step == cfg.steps:
            loss_value = float(loss.detach())
            model.eval()
            acc = float(evaluate())
            model.train()
            history.append(
                {"step": step, "wall_s": round(train_wall, 4), "accuracy": acc, "loss": loss_value}
            )
            if steps_to is None and target is not None and acc >= target:
                steps_to, wall_to = step, round(train_wall, 4)
    model.eval()
    final = history[-1]["accuracy"] if history else float(evaluate())
    return FitResult(cfg.steps, round(train_wall, 4), final, steps_to, wall_to, history)


def _batch(n: int, bs: int, gen: torch.Generator) -> torch.Tensor:
    if bs >= n:
        return torch.arange(n)
    return torch.randint(0, n, (bs,), generator=gen)


def teacher_logits(teacher: nn.Module, inputs: np.ndarray, batch_size: int = 4096) -> torch.Tensor:
    """The teacher's logits on ``inputs`` (one pass, no grad; the rows reach its forward)."""
    x = torch.as_tensor(np.array(inputs, dtype=np.int64))
    dev = next(teacher.parameters()).device
    out = []
    was = teacher.training
    teacher.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(teacher(x[i : i + batch_size].to(dev)).float())
    teacher.train(was)
    return torch.cat(out)


def logit_distill(
    student: nn.Module,
    teacher: nn.Module,
    inputs: np.ndarray,
    cfg: FitConfig,
    *,
    temperature: float = 2.0,
    evaluate: Callable[[], float],
    target: float | None = None,
) -> FitResult:
    """Logit KD (Hinton et al. 2015): minimise ``T² · KL(softmax(t/T) ‖ softmax(s/T))``.

    The teacher sees ``inputs`` once (its logits are cached); the student sees them in
    mini-batches. No ground-truth label is used.
    """
    dev = next(student.parameters()).device
    x = torch.as_tensor(np.array(inputs, dtype=np.int64)).to(dev)
    soft = F.softmax(teacher_logits(teacher, inputs).to(dev) / temperature, dim=-1)
    n, bs = len(x), cfg.batch_size

    def loss_fn(_step: int, gen: torch.Generator) -> torch.Tensor:
        idx = _batch(n, bs, gen).to(dev)
        logp = F.log_softmax(student(x[idx]) / temperature, dim=-1)
        return F.kl_div(logp, soft[idx], reduction="batchmean") * temperature**2

    return fit_loop(student, loss_fn, cfg, evaluate=evaluate, target=target)


def train_on_labels(
    student: nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    cfg: FitConfig,
    *,
    evaluate: Callable[[], float],
    target: float | None = None,
) -> FitResult:
    """Cross-entropy on ground-truth labels (the *scratch* baseline)."""
    dev = next(student.parameters()).device
    x = torch.as_tensor(np.array(inputs, dtype=np.int64)).to(dev)
    y = torch.as_tensor(np.array(targets, dtype=np.int64)).to(dev)
    n, bs = len(x), cfg.batch_size

    def loss_fn(_step: int, gen: torch.Generator) -> torch.Tensor:
        idx = _batch(n, bs, gen).to(dev)
        return F.cross_entropy(student(x[idx]), y[idx])

    return fit_loop(student, loss_fn, cfg, evaluate=evaluate, target=target)
