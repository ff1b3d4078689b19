"""Data accounting: count the distinct task inputs a transfer method really used.

One rule for every method (spec/algorithms.md §5): a forward pre-hook on every model that takes
part in a transfer (the teacher and the student) records each distinct input row that reaches
``forward``. After the transfer the rows are classified by membership: a row of the task's
problem set is a **task input**; a row of the task's concept-probe set is a **concept probe**;
anything else is **other** (reported, never silently dropped). Evaluation on the held-out test
set is measurement, not transfer: it runs inside :meth:`InputCounter.paused`, so it is not counted.

Nothing here computes a count from a formula: what is reported is what passed through the hooks.

:class:`TransferAccount` is the unit every transfer result is reported in
(spec/algorithms.md §5.2): **label-equivalents** = task rows whose label reached the student +
operator facts it read + declared facts it read. Per-step hints, concept probes and synthetic
rows are counted beside, never inside, so no class of information can pass as free.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref.transfer.tasks import Task

__all__ = [
    "InputCounter",
    "InputTally",
    "RowRecorder",
    "TransferAccount",
    "probe_row_keys",
    "row_keys",
]


def row_keys(rows: Any) -> set[bytes]:
    """Keys of int64 token rows, the same as :meth:`m2kt_ref.transfer.tasks.ProblemSet.row_keys`."""
    arr = np.ascontiguousarray(np.asarray(rows, dtype=np.int64))
    arr = arr.reshape(len(arr), -1)
    return {r.tobytes() for r in arr}


def probe_row_keys(task: Task) -> set[bytes]:
    """Keys of every concept-probe row the task defines."""
    rows = [p.tokens for c in task.concepts() for p in c.probes]
    return row_keys(np.array(rows, dtype=np.int64)) if rows else set()


@dataclass(frozen=True)
class InputTally:
    """What passed through the counted models, classified.

    Attributes:
        task_inputs: distinct rows that are problems of the task.
        concept_probes: distinct rows that are concept probes and not problems.
        other: distinct rows that are neither.
        rows_total: every row, repeats included.
    """

    task_inputs: int
    concept_probes: int
    other: int
    rows_total: int

    def to_dict(self) -> dict[str, int]:
        """JSON-able form."""
        return {
            "task_inputs": self.task_inputs,
            "concept_probes": self.concept_probes,
            "other": self.other,
            "rows_total": self.rows_total,
        }


class RowRecorder:
    """Record the distinct input rows reaching the forward of one or more models.

    The one instrument behind every "inputs used" figure: teacher-side generation, ingestion
    and the experiments all count with it. Rows are keyed by their int64 bytes (as
    :meth:`~m2kt_ref.transfer.tasks.ProblemSet.row_keys` does). Use as a context manager (hooks
    removed on exit) or call :meth:`close`; one recorder may watch a teacher and a student, so a
    row seen by both counts once.
    """

    def __init__(self, models: Iterable[nn.Module] = ()) -> None:
        self.rows: set[bytes] = set()
        self.rows_total = 0
        self._paused = 0
        self._handles: list[Any] = []
        for m in models:
            self.attach(m)

    def attach(self, model: nn.Module) -> RowRecorder:
        """Watch ``model`` too (a forward pre-hook on its top module)."""
        self._handles.append(model.register_forward_pre_hook(self._hook))
        return self

    def _hook(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._paused or not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0].detach().to("cpu").to(torch.int64).numpy()
        x = np.ascontiguousarray(x.reshape(len(x), -1))
        self.rows_total += len(x)
        self.rows.update(r.tobytes() for r in x)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Do not record inside the block (held-out evaluation is measurement, not transfer)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def close(self) -> None:
        """Remove every hook (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> RowRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InputCounter(RowRecorder):
    """A :class:`RowRecorder` that classifies rows as task problems or concept probes.

    Args:
        task: the task whose problem set and probe set classify the rows.
        models: models to watch from the start.
    """

    def __init__(self, task: Task, models: Iterable[nn.Module] = ()) -> None:
        self._task_keys = task.problems().row_keys()
        self._probe_keys = probe_row_keys(task)
        super().__init__(models)

    def __enter__(self) -> InputCounter:
        return self

    @property
    def task_rows(self) -> set[bytes]:
        """Keys of the distinct task problems seen."""
        return self.rows & self._task_keys

    def tally(self) -> InputTally:
        """Classify the rows seen so far."""
        task = self.rows & self._task_keys
        probes = (self.rows & self._probe_keys) - task
        return InputTally(
            task_inputs=len(task),
            concept_probes=len(probes),
            other=len(self.rows) - len(task) - len(probes),
            rows_total=self.rows_total,
        )


@dataclass(frozen=True)
class TransferAccount:
    """What a transfer gave the student, by class (spec/algorithms.md §5.2).

    Args:
        task_rows: distinct task problems whose label (the teacher's output or the ground
            truth) reached the student: trace rows, distillation inputs, labelled rows.
        trace_step_labels: per-step hints read from traces (a concept named at a step).
        operator_facts: operator entries and probe-derived edges the student read (one fact
            each, whatever probes the teacher answered to produce it).
        declared_facts: facts asserted by the packet's author (ground truth) that it read.
        concept_probes: concept-probe states it read (anchors, embeddings); no label.
        synthetic_rows: inputs the student formed itself and labelled from packet content.
        synthetic_in_test: how many of those coincide with test problems.

    Example:
        >>> from m2kt_ref.transfer.accounting import TransferAccount
        >>> TransferAccount(task_rows=13, trace_step_labels=52, operator_facts=0,
        ...                 declared_facts=0).label_equivalents
        13
    """

    task_rows: int
    trace_step_labels: int = 0
    operator_facts: int = 0
    declared_facts: int = 0
    concept_probes: int = 0
    synthetic_rows: int = 0
    synthetic_in_test: int = 0

    @property
    def label_equivalents(self) -> int:
        """The headline unit: task rows + operator facts + declared facts."""
        return self.task_rows + self.operator_facts + self.declared_facts

    def with_synthetic(self, rows: int, in_test: int) -> TransferAccount:
        """The same account plus ``rows`` synthetic rows (``in_test`` of them test problems)."""
        return TransferAccount(
            self.task_rows,
            self.trace_step_labels,
            self.operator_facts,
            self.declared_facts,
            self.concept_probes,
            self.synthetic_rows + rows,
            self.synthetic_in_test + in_test,
        )

    def to_dict(self) -> dict[str, int]:
        """JSON-able form, ``label_equivalents`` included."""
        return {
            "label_equivalents": self.label_equivalents,
            "task_rows": self.task_rows,
            "trace_step_labels": self.trace_step_labels,
            "operator_facts": self.operator_facts,
            "declared_facts": self.declared_facts,
            "concept_probes": self.concept_probes,
            "synthetic_rows": self.synthetic_rows,
            "synthetic_in_test": self.synthetic_in_test,
        }
