"""Common interface of the symbolic task families.

A task is a small, fully enumerable world (modular arithmetic, a taxonomy, a function table) that
a teacher learns and whose structure a knowledge packet describes. Everything here is numpy: the
format half and the conformance tools can list tasks, concepts and relations without torch.
Determinism is part of the contract: the same options and the same seed give the same arrays,
bit for bit, on every platform (numpy ``Generator(PCG64)``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from m2kt_ref.errors import TaskOptionError

__all__ = [
    "CONCEPT_KINDS",
    "PAD",
    "PAD_ID",
    "RELATIONS",
    "SYMMETRIC_RELATIONS",
    "ConceptSpec",
    "DerivedEdge",
    "OperatorEntry",
    "OperatorFacts",
    "OperatorProbe",
    "Probe",
    "ProblemSet",
    "Relation",
    "Split",
    "Task",
    "TaskOptions",
    "default_step_positions",
    "parse_option_pairs",
]
# ``opt`` and ``seeded_rng`` are for the families' own modules, not re-exported by the package

#: Padding token. It is always vocabulary index 0, so a row of zeros is "nothing".
PAD = "<pad>"
PAD_ID = 0

#: Relation names a task may declare (the abstraction graph's edge vocabulary).
RELATIONS = (
    "is_a",
    "part_of",
    "implies",
    "similar_to",
    "precedes",
    "inverse_of",
    "composes_to",
)

#: Relations that are symmetric; tasks list each unordered pair once.
SYMMETRIC_RELATIONS = frozenset({"similar_to", "inverse_of"})

#: Concept kinds used by the built-in families.
CONCEPT_KINDS = ("symbol", "operator", "category", "leaf", "composite")


@dataclass(frozen=True)
class ProblemSet:
    """Task problems as parallel arrays.

    Attributes:
        inputs: token ids, ``int64`` of shape ``(N, seq_len)``.
        targets: answer class ids, ``int64`` of shape ``(N,)``.
    """

    inputs: np.ndarray
    targets: np.ndarray

    def __post_init__(self) -> None:
        if self.inputs.ndim != 2 or self.targets.ndim != 1:
            raise ValueError("ProblemSet wants inputs (N, L) and targets (N,)")
        if len(self.inputs) != len(self.targets):
            raise ValueError("ProblemSet inputs and targets differ in length")

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, index: np.ndarray | slice | Sequence[int]) -> ProblemSet:
        """Return the sub-set at ``index`` (copies, so views never alias task caches)."""
        return ProblemSet(
            np.ascontiguousarray(self.inputs[index]), np.ascontiguousarray(self.targets[index])
        )

    def head(self, n: int) -> ProblemSet:
        """The first ``n`` problems (the order is already a seeded shuffle for split parts)."""
        return self.take(slice(0, n))

    def row_keys(self) -> set[bytes]:
        """Bytes of every input row, for leak checks and "inputs used" accounting."""
        rows = np.ascontiguousarray(self.inputs, dtype=np.int64)
        return {row.tobytes() for row in rows}

    @staticmethod
    def concat(parts: Sequence[ProblemSet]) -> ProblemSet:
        """Concatenate problem sets in order."""
        return ProblemSet(
            np.concatenate([p.inputs for p in parts]), np.concatenate([p.targets for p in parts])
        )


@dataclass(frozen=True)
class Split:
    """A seeded partition of a task's problems.

    ``train``, ``test`` and ``reserve`` are disjoint and together hold every problem.
    ``reserve`` is what the teacher never trained on and the test never asks (use it as the
    validation set for early stopping). ``pool`` is every non-test problem (``train`` plus
    ``reserve``) in a seeded order: experiments draw transfer data (anchors, distillation sets)
    from its head, so the test set stays untouched whatever they draw.
    """

    train: ProblemSet
    test: ProblemSet
    reserve: ProblemSet
    pool: ProblemSet
    seed: int
    train_fraction: float
    test_fraction: float


@dataclass(frozen=True)
class Probe:
    """A canonical input that evokes a concept, and where its hidden state is read.

    Probes are not task problems: they are mostly padding around the concept's token.
    """

    tokens: tuple[int, ...]
    position: int


@dataclass(frozen=True)
class ConceptSpec:
    """A concept the task defines (one symbol, operator or taxonomy node).

    Attributes:
        id: stable string id, unique in the task (``num:5``, ``op:+``, ``node:kavo.mire``).
        label: short human name (the token string).
        kind: one of :data:`CONCEPT_KINDS`.
        level: depth in a hierarchy (root 0), ``None`` for flat tasks.
        probes: canonical inputs evoking the concept.
    """

    id: str
    label: str
    kind: str
    probes: tuple[Probe, ...]
    level: int | None = None

    def probe_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Probes as ``(tokens int64 (n, seq_len), positions int64 (n,))``."""
        tokens = np.array([p.tokens for p in self.probes], dtype=np.int64)
        positions = np.array([p.position for p in self.probes], dtype=np.int64)
        return tokens, positions

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "id": self.id,
            "label": self.label,
            "kind": self.kind,
            "level": self.level,
            "probes": [{"tokens": list(p.tokens), "position": p.position} for p in self.probes],
        }


@dataclass(frozen=True)
class Relation:
    """A declared fact about the task's structure: ``source --relation--> target``.

    ``context`` optionally names the concept under which the relation holds (``inverse_of``
    under ``op:+``; ``implies`` through ``fn:2``). Symmetric relations are listed once.
    """

    source: str
    target: str
    relation: str
    weight: float = 1.0
    context: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class OperatorProbe:
    """An input asking the teacher to apply ``operator`` to ``source`` (both concept ids)."""

    operator: str
    source: str
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class OperatorEntry:
    """The teacher's answer to one operator probe: ``operator(source) = target``."""

    operator: str
    source: str
    target: str
    probability: float
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class DerivedEdge:
    """A graph edge a family derives from several probe answers, with the answer's probability."""

    source: str
    target: str
    relation: str
    weight: float


@dataclass(frozen=True)
class OperatorFacts:
    """What operator probes yield: operator entries and graph edges (each one labelled fact)."""

    entries: tuple[OperatorEntry, ...]
    edges: tuple[DerivedEdge, ...]


@dataclass(frozen=True)
class TaskOptions:
    """Base of every task's options dataclass (fields: int, float, str or bool, with defaults)."""


def _option_type(options_cls: type, name: str) -> type:
    hints = typing.get_type_hints(options_cls)
    tp = hints[name]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        raise TypeError(f"task option {name} must have a plain type")
    return tp


def _coerce(task: str, name: str, tp: type, value: Any) -> Any:
    where = f"{task}.{name}"
    if isinstance(value, str) and tp is not str:
        text = value.strip()
        try:
            if tp is bool:
                low = text.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            return tp(text)
        except ValueError:
            raise TaskOptionError(
                f"option {where}: {value!r} is not a valid {tp.__name__}"
            ) from None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, (np.integer,)):
        return int(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise TaskOptionError(f"option {where}: expected {tp.__name__}, got {type(value).__name__}")
    return value


class Task(ABC):
    """A symbolic task family instance (options fixed at construction).

    Subclasses set ``name``, ``description``, ``Options`` (a frozen dataclass deriving from
    :class:`TaskOptions`), and implement the abstract methods. Construction validates options
    and raises :class:`TaskOptionError` on unknown names, wrong types or out-of-range values.
    Build the registered families with :func:`~m2kt_ref.transfer.make_task`.

    Args:
        **options: the family's options (see ``m2kt tasks`` or :meth:`describe`); text values
            are coerced to the option's type.

    Raises:
        TaskOptionError: ``USAGE`` for an unknown, mistyped or out-of-range option.

    Example:
        >>> import m2kt_ref.transfer as mt
        >>> task = mt.make_task("chain", n=8, functions=2, k=3)
        >>> task.vocab_size, task.seq_len, task.n_classes, len(task.problems())
        (11, 4, 8, 112)
        >>> row = task.problems().inputs[0]
        >>> task.decode(row), task.encode(task.decode(row)) == tuple(row)
        (['s0', 'f0', '<pad>', '<pad>'], True)
        >>> split = task.split(seed=0)
        >>> len(split.train) + len(split.test) + len(split.reserve) == len(task.problems())
        True
        >>> [c.id for c in task.concepts()][:3], task.relations()[0].relation
        (['sym:0', 'sym:1', 'sym:2'], 'implies')
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Options: ClassVar[type[TaskOptions]]
    #: Default split fractions (of all problems); train may grow to hold the base facts.
    default_train_fraction: ClassVar[float] = 0.5
    default_test_fraction: ClassVar[float] = 0.25

    def __init__(self, **options: Any) -> None:
        valid = {f.name for f in dataclasses.fields(self.Options)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise TaskOptionError(
                f"unknown option(s) for task {self.name}: {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(valid))}"
            )
        coerced = {
            k: _coerce(self.name, k, _option_type(self.Options, k), v) for k, v in options.items()
        }
        self.options = self.Options(**coerced)
        self._validate()
        self._problems: ProblemSet | None = None

    # -- to implement -------------------------------------------------------------------------

    def _validate(self) -> None:  # noqa: B027
        """Check option ranges; raise :class:`TaskOptionError`."""

    @property
    @abstractmethod
    def vocab(self) -> list[str]:
        """Token strings; index 0 is :data:`PAD`."""

    @property
    @abstractmethod
    def seq_len(self) -> int:
        """Length of every input row (problems and probes)."""

    @property
    @abstractmethod
    def answer_labels(self) -> list[str]:
        """Label of each answer class (class id = index)."""

    @abstractmethod
    def _enumerate(self) -> ProblemSet:
        """All problems, each input row unique, in a fixed order."""

    @abstractmethod
    def concepts(self) -> list[ConceptSpec]:
        """The task's concepts, with probes."""

    @abstractmethod
    def relations(self) -> list[Relation]:
        """Declared relations between concept ids."""

    def _base_fact_mask(self, problems: ProblemSet) -> np.ndarray:
        """Problems that must be in every train split (primitive facts); default none."""
        return np.zeros(len(problems), dtype=bool)

    # -- provided -----------------------------------------------------------------------------

    @property
    def n_classes(self) -> int:
        """Number of answer classes."""
        return len(self.answer_labels)

    @property
    def vocab_size(self) -> int:
        """Number of tokens."""
        return len(self.vocab)

    @property
    def pad_id(self) -> int:
        """Token id of :data:`PAD` (always 0)."""
        return PAD_ID

    def step_positions(self, row: Sequence[int], n_states: int) -> list[int]:
        """Positions of ``row`` read as trace steps (spec/algorithms.md §1.4).

        The default is :func:`default_step_positions` with this task's padding token; a task
        whose rows say where the answer starts (a prompt and its continuation) reads its steps
        there instead.

        Args:
            row: the input tokens.
            n_states: the read layer's positions per row (1 for a layer without a sequence
                axis, which has the single step position 0).
        """
        return default_step_positions(row, n_states, self.pad_id)

    def option_dict(self) -> dict[str, Any]:
        """The options as a JSON-able dict (what ``config.json`` records)."""
        return dataclasses.asdict(self.options)

    def token_id(self, token: str) -> int:
        """Id of a token string; ``KeyError`` if absent."""
        return self._token_index()[token]

    def _token_index(self) -> dict[str, int]:
        cached = getattr(self, "_tok_cache", None)
        if cached is None:
            cached = {t: i for i, t in enumerate(self.vocab)}
            self._tok_cache = cached
        return cached

    def encode(self, tokens: Sequence[str]) -> tuple[int, ...]:
        """Token strings to a padded row of ids (length :attr:`seq_len`)."""
        if len(tokens) > self.seq_len:
            raise ValueError(f"{len(tokens)} tokens exceed seq_len {self.seq_len}")
        index = self._token_index()
        ids = [index[t] for t in tokens]
        return tuple(ids + [PAD_ID] * (self.seq_len - len(ids)))

    def decode(self, row: Iterable[int]) -> list[str]:
        """Ids to token strings (padding included)."""
        vocab = self.vocab
        return [vocab[int(i)] for i in row]

    def problems(self) -> ProblemSet:
        """Every problem of the task (cached; returned arrays are read-only)."""
        if self._problems is None:
            ps = self._enumerate()
            if ps.inputs.shape[1] != self.seq_len:
                raise AssertionError("problem rows do not match seq_len")
            if len(ps.row_keys()) != len(ps):
                raise AssertionError(f"task {self.name} enumerated duplicate input rows")
            ps.inputs.setflags(write=False)
            ps.targets.setflags(write=False)
            self._problems = ps
        return self._problems

    def split(
        self,
        seed: int,
        train_fraction: float | None = None,
        test_fraction: float | None = None,
    ) -> Split:
        """Partition the problems into train / test / reserve (and the non-test pool).

        Args:
            seed: split seed (independent of any structure seed among the options).
            train_fraction: fraction of all problems to train on (default per task). The base
                facts (:meth:`_base_fact_mask`) are always in train, so train may be larger.
            test_fraction: fraction held out for testing, never drawn from base facts.

        Returns:
            a :class:`Split` whose train and test share no input row.

        Raises:
            TaskOptionError: fractions out of range or not leaving room for both parts.
        """
        tf = self.default_train_fraction if train_fraction is None else float(train_fraction)
        xf = self.default_test_fraction if test_fraction is None else float(test_fraction)
        if not (0.0 < tf < 1.0 and 0.0 < xf < 1.0 and tf + xf <= 1.0 + 1e-9):
            raise TaskOptionError(
                f"split fractions train={tf} test={xf} must be in (0, 1) with sum <= 1"
            )
        ps = self.problems()
        n = len(ps)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0x5917])))
        base = self._base_fact_mask(ps)
        base_idx = np.flatnonzero(base)
        rest = rng.permutation(np.flatnonzero(~base))
        n_test = min(round(xf * n), len(rest) - 1)
        n_train = max(round(tf * n) - len(base_idx), 0)
        n_train = min(n_train, len(rest) - n_test)
        if n_test < 1 or n_train + len(base_idx) < 1:
            raise TaskOptionError(
                f"task {self.name} has {n} problems: too few for train={tf} test={xf}"
            )
        test_idx = rest[:n_test]
        train_idx = rng.permutation(np.concatenate([base_idx, rest[n_test : n_test + n_train]]))
        reserve_idx = rest[n_test + n_train :]
        pool_idx = rng.permutation(np.concatenate([train_idx, reserve_idx]))
        split = Split(
            train=ps.take(train_idx),
            test=ps.take(test_idx),
            reserve=ps.take(reserve_idx),
            pool=ps.take(pool_idx),
            seed=int(seed),
            train_fraction=tf,
            test_fraction=xf,
        )
        if split.train.row_keys() & split.test.row_keys():
            raise AssertionError("train/test leak")  # unreachable: rows are unique
        return split

    def concept_index(self) -> dict[str, ConceptSpec]:
        """Concepts by id."""
        return {c.id: c for c in self.concepts()}

    def operator_probes(self) -> list[OperatorProbe]:
        """Inputs that ask the teacher one operator of one concept (spec/algorithms.md §1.6).

        The default is none; a family whose operators apply to single concepts lists one probe
        per (operator, concept). Some probes are task problems, some are not: the accounting
        classifies each row it runs.
        """
        return []

    def operator_facts(
        self,
        probes: Sequence[OperatorProbe],
        answers: Sequence[int],
        probabilities: Sequence[float],
    ) -> OperatorFacts:
        """What the teacher's answers on :meth:`operator_probes` say, as packet facts.

        The default makes one operator entry per probe whose answer class names a concept:
        ``operator`` applied to ``source`` gives that concept. A family may derive graph edges
        instead (the taxonomy derives each node's parent from its ancestors at every level).
        """
        by_label = {c.label: c.id for c in self.concepts()}
        entries = []
        for probe, answer, prob in zip(probes, answers, probabilities, strict=True):
            target = by_label.get(self.answer_labels[int(answer)])
            if target is not None:
                entries.append(
                    OperatorEntry(probe.operator, probe.source, target, float(prob), probe.tokens)
                )
        return OperatorFacts(entries=tuple(entries), edges=())

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, description and options (name, type, default, help) as a JSON-able dict."""
        opts = []
        for f in dataclasses.fields(cls.Options):
            opts.append(
                {
                    "name": f.name,
                    "type": _option_type(cls.Options, f.name).__name__,
                    "default": f.default,
                    "help": f.metadata.get("help", ""),
                }
            )
        return {
            "name": cls.name,
            "description": cls.description,
            "options": opts,
            "split": {
                "train_fraction": cls.default_train_fraction,
                "test_fraction": cls.default_test_fraction,
            },
        }


def default_step_positions(row: Sequence[int], n_states: int, pad: int = PAD_ID) -> list[int]:
    """Trace step positions: after every token past the first, up to the last real one.

    The first token is the operand the student reads itself; padding (token ``pad``) after the
    last real token adds nothing. A layer with one state per row has the single position 0.
    """
    if n_states == 1:
        return [0]
    last = max((i for i, t in enumerate(row) if int(t) != pad), default=0)
    return list(range(1, last + 1)) or [0]


def opt(default: Any, help: str) -> Any:
    """A task option field with its help text (shown by ``m2kt tasks``)."""
    return field(default=default, metadata={"help": help})


def seeded_rng(*words: int) -> np.random.Generator:
    """A PCG64 generator from a tuple of integers (stable across numpy versions)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(words))))


def parse_option_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``["p=31", "ops=+-"]`` -> ``{"p": "31", "ops": "+-"}`` (values coerced by the task).

    Raises:
        TaskOptionError: a pair without ``=`` or a repeated key.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TaskOptionError(f"task option {pair!r} is not KEY=VALUE")
        if key in out:
            raise TaskOptionError(f"task option {key} given twice")
        out[key] = value
    return out
