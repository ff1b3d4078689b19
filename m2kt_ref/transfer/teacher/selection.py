"""Which problems become traces: the few that together exercise the whole operation.

A trace teaches what its decoded steps exercise. A *unit* is one transition the teacher makes
on its way through a problem: the state before a token and the token (the state after is what
the trace teaches about it), where a state is the concept the teacher's decoded step names and
the first token stands for the concept it names. Random
traces exercise the common transitions again and again; a minimum set cover over the units the
teacher's own decoded steps exercise (never the task's tables) picks the fewest problems that
exercise every unit seen, which is what lets a handful of traces teach a whole operation
(spec/algorithms.md §1.4). The cover is solved exactly as a small integer program (HiGHS through
SciPy, within a time limit); the greedy cover, within a logarithmic factor of it, is the fallback.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from m2kt_ref.errors import UsageError

__all__ = [
    "SELECTIONS",
    "TraceChoice",
    "greedy_cover",
    "minimum_cover",
    "select_traces",
    "transition_units",
]

#: Trace selection methods. ``declared``: the packet's author chose the problems (every
#: candidate, in the order given; for teachers whose problems are a prompt file).
SELECTIONS = ("cover", "random", "declared")

Unit = Hashable


def transition_units(
    row: Sequence[int],
    classes: Sequence[int],
    positions: Sequence[int],
    token_class: dict[int, int],
    *,
    confident: Sequence[bool] | None = None,
) -> frozenset[Unit]:
    """The transitions one decoded row exercises: ``(state before, token)`` pairs.

    Args:
        row: the input tokens.
        classes: the concept row decoded at each position of the row (-1: none).
        positions: the step positions (:func:`~m2kt_ref.transfer.teacher.readout.step_positions`).
        token_class: concept row named by a token; the first token is the state before the
            first step when it names a concept.
        confident: per position, whether the decoding is trusted; a transition out of or into
            an untrusted state is not counted as exercised.

    Returns:
        the units, each ``(before, token)`` with concept rows and tokens as ints.
    """
    first = int(row[0])
    before: int | None = token_class.get(first)
    units = set()
    for p in positions:
        if p == 0:
            continue
        after = int(classes[p])
        ok = after >= 0 and (confident is None or bool(confident[p]))
        if before is not None and ok:
            units.add((before, int(row[p])))
        before = after if ok else None
    return frozenset(units)


def greedy_cover(unit_sets: Sequence[frozenset[Unit]], order: np.ndarray) -> list[int]:
    """Indices of a small family of sets that together hold every unit of ``unit_sets``.

    Greedy: take the set that adds the most uncovered units, ties broken by ``order`` (a
    seeded permutation), until nothing is left to add. Within a factor ``ln(max set size)`` of
    the smallest cover, which is as good as a polynomial algorithm can promise in general.
    """
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    remaining = set().union(*unit_sets) if unit_sets else set()
    alive = [i for i in order.tolist() if unit_sets[i]]
    chosen: list[int] = []
    while remaining:
        best, gain = -1, 0
        for i in alive:
            g = len(unit_sets[i] & remaining)
            if g > gain or (g == gain and g and rank[i] < rank[best]):
                best, gain = i, g
        if gain == 0:
            break
        chosen.append(best)
        remaining -= unit_sets[best]
        alive = [i for i in alive if i != best and unit_sets[i] & remaining]
    return chosen


def minimum_cover(
    unit_sets: Sequence[frozenset[Unit]], order: np.ndarray, *, time_limit: float = 10.0
) -> list[int]:
    """Indices of a smallest family of sets holding every unit (exact, else greedy).

    Solved as ``min Σ x_i`` subject to every unit being in a chosen set, ``x`` binary, by HiGHS
    (``scipy.optimize.milp``); candidates are numbered in ``order``, so another seed may find
    another optimal cover. When the solver proves no optimum within ``time_limit`` seconds the
    greedy cover is returned.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix

    columns = [i for i in order.tolist() if unit_sets[i]]
    units = sorted(set().union(*(unit_sets[i] for i in columns)) if columns else set(), key=repr)
    if not units:
        return []
    row = {u: r for r, u in enumerate(units)}
    entries = [(row[u], c) for c, i in enumerate(columns) for u in unit_sets[i]]
    rows, cols = zip(*entries, strict=True)
    matrix = csr_matrix((np.ones(len(entries)), (rows, cols)), shape=(len(units), len(columns)))
    result = milp(
        c=np.ones(len(columns)),
        constraints=LinearConstraint(matrix, lb=1.0, ub=np.inf),
        integrality=np.ones(len(columns)),
        bounds=Bounds(0.0, 1.0),
        options={"time_limit": time_limit, "disp": False},
    )
    if result.status != 0 or result.x is None:
        return greedy_cover(unit_sets, order)
    return [columns[c] for c in np.flatnonzero(result.x > 0.5)]


@dataclass(frozen=True)
class TraceChoice:
    """The chosen candidates and what they cover (recorded in the packet's derivation block)."""

    indices: list[int]
    method: str
    candidates: int
    exercised: int
    covered: int


def select_traces(
    method: str, unit_sets: Sequence[frozenset[Unit]], k: int | None, seed: int
) -> TraceChoice:
    """Choose trace problems among candidates.

    Args:
        method: ``cover`` (a minimum set cover, then seeded fill up to ``k``), ``random``, or
            ``declared`` (the candidates as given, in their order: the author chose them).
        unit_sets: the units each candidate exercises.
        k: how many traces; None with ``cover`` means exactly the cover (the fewest found),
            with ``declared`` every candidate.
        seed: seeds the order that breaks ties and the random choice.

    Returns:
        a :class:`TraceChoice`.

    Raises:
        UsageError: ``USAGE`` for an unknown method, or ``random`` without ``k``.
    """
    if method not in SELECTIONS:
        raise UsageError(f"trace selection {method!r} is not one of {', '.join(SELECTIONS)}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0xC0E5])))
    order = rng.permutation(len(unit_sets))
    if method == "random":
        if k is None:
            raise UsageError("random trace selection needs a number of traces")
        chosen = order[:k].tolist()
    elif method == "declared":
        chosen = list(range(len(unit_sets)))[:k]
    else:
        chosen = minimum_cover(unit_sets, order)
        if k is not None:
            taken = set(chosen)
            chosen = (
                chosen[:k]
                + [i for i in order.tolist() if i not in taken][: max(k - len(chosen), 0)]
            )
    exercised = set().union(*unit_sets) if unit_sets else set()
    covered = set().union(*(unit_sets[i] for i in chosen)) if chosen else set()
    return TraceChoice(chosen, method, len(unit_sets), len(exercised), len(covered))
