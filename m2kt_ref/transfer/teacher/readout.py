"""The teacher reading its own states: its output layer applied at every input position.

A recurrent teacher's state after token ``p`` is its answer *so far*; applying the teacher's own
readout (final norm and classifier) to it names that intermediate answer the way the teacher
would name a final one. That is how trace steps are decoded by default (derivation
``teacher-readout``, spec/algorithms.md §1.4): measured on the chain teacher, it names the true
intermediate symbol on 99 % of steps, where the nearest concept embedding named it on 66 %.

Class ids map to concepts through labels: answer class ``c`` is the concept whose label is
``task.answer_labels[c]``. A class with no such concept (``yes``/``no``) names no concept, and
its position is not a trace step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from m2kt_ref.errors import UsageError
from m2kt_ref.transfer.distributed import DistContext, gather_chunks, local_chunks
from m2kt_ref.transfer.hooks import HiddenStateReader
from m2kt_ref.transfer.nets import NetConfig, Readout, layer_names
from m2kt_ref.transfer.tasks import Task
from m2kt_ref.transfer.tasks.base import default_step_positions

__all__ = [
    "PositionReadout",
    "ReadoutFn",
    "class_concepts",
    "net_readout",
    "read_positions",
    "step_positions",
]

#: Maps states ``[..., d]`` of the read layer to class logits ``[..., C]``.
ReadoutFn = Callable[[torch.Tensor], torch.Tensor]


def net_readout(model: nn.Module, layer: str) -> ReadoutFn:
    """The readout of an m2kt net, for states of ``layer`` (which must feed the readout).

    Args:
        model: an m2kt net (``model.config`` is a :class:`NetConfig`).
        layer: the layer whose states are decoded; only the last block / hidden layer feeds the
            readout, so only it can be decoded by the teacher's own head.

    Returns:
        ``states -> head(norm(states))``, without the readout's pooling.

    Raises:
        UsageError: ``USAGE`` for a model that is not an m2kt net, or another layer.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, NetConfig):
        raise UsageError(
            "teacher-readout decoding needs a readout for a model that is not an m2kt net"
        )
    feeding = layer_names(config)[-2]
    if layer != feeding:
        raise UsageError(f"only layer {feeding!r} feeds the readout; {layer!r} cannot be decoded")
    final = model.get_submodule("final")
    norm = final.norm if isinstance(final, Readout) else final
    head = model.get_submodule("head")

    def readout(states: torch.Tensor) -> torch.Tensor:
        return head(norm(states))

    return readout


def class_concepts(task: Task) -> list[str | None]:
    """Concept id named by each answer class (by label), None where no concept has the label."""
    by_label = {}
    for spec in task.concepts():
        by_label.setdefault(spec.label, spec.id)
    return [by_label.get(label) for label in task.answer_labels]


@dataclass(frozen=True)
class PositionReadout:
    """What the teacher's readout names at every position of every row.

    Attributes:
        classes: ``int64 [N, L]`` the top class at each position (``[N, 1]`` for a layer with
            one state per row).
        probabilities: ``float32 [N, L]`` its softmax probability.
        answers: ``int64 [N]`` the teacher's final answer (its real output on the row).
    """

    classes: np.ndarray
    probabilities: np.ndarray
    answers: np.ndarray


def read_positions(
    model: nn.Module,
    layer: str,
    readout: ReadoutFn,
    rows: np.ndarray,
    *,
    batch_size: int = 1024,
    shard: DistContext | None = None,
) -> PositionReadout:
    """Run ``rows`` through the teacher and decode its state at every position.

    Args:
        model: the teacher (run in eval mode without gradients).
        layer: the read layer (``[N, L, d]`` or ``[N, d]`` output).
        readout: maps that layer's states to class logits (:func:`net_readout`).
        rows: ``int64 [N, L]`` token rows.
        batch_size: rows per forward pass; states are decoded batch by batch and not kept.
        shard: one rank of a distributed run: it decodes its share of the batches and every
            rank gets all results, in order (:func:`~m2kt_ref.transfer.distributed.\
            gather_chunks`).

    Returns:
        a :class:`PositionReadout`.
    """
    classes: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    answers: list[np.ndarray] = []
    with HiddenStateReader(model, [layer], batch_size=batch_size) as reader, torch.no_grad():
        for start, stop in local_chunks(len(rows), batch_size, shard):
            out = reader.read(rows[start:stop], return_logits=True)
            states = out[layer]
            if states.ndim == 2:
                states = states[:, None, :]
            p = torch.softmax(readout(states.float()), dim=-1)
            top = p.max(dim=-1)
            classes.append(top.indices.numpy())
            probs.append(top.values.numpy().astype(np.float32))
            answers.append(out["logits"].argmax(dim=-1).numpy())
    if shard is not None:
        n = len(rows)
        classes, probs, answers = (
            [gather_chunks(shard, n, batch_size, [torch.from_numpy(a) for a in arrays]).numpy()]
            for arrays in (classes, probs, answers)
        )
    return PositionReadout(
        np.concatenate(classes).astype(np.int64),
        np.concatenate(probs),
        np.concatenate(answers).astype(np.int64),
    )


def step_positions(row: Sequence[int], n_states: int, pad: int = 0) -> list[int]:
    """Positions read as trace steps: after every token past the first, up to the last real one.

    The first token is the operand the student reads itself; padding (token ``pad``) after the
    last real token adds nothing. A layer with one state per row has the single position 0.
    (:meth:`Task.step_positions <m2kt_ref.transfer.tasks.Task.step_positions>` applies this
    rule unless a task reads its steps elsewhere.)
    """
    return default_step_positions(row, n_states, pad)
