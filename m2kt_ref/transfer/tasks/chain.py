"""Function composition: apply a sequence of up to ``k`` functions to a symbol."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from m2kt_ref.errors import TaskOptionError
from m2kt_ref.transfer.tasks.base import (
    PAD,
    PAD_ID,
    ConceptSpec,
    OperatorProbe,
    Probe,
    ProblemSet,
    Relation,
    Task,
    TaskOptions,
    opt,
    seeded_rng,
)

__all__ = ["ChainOptions", "ChainTask"]

_MAX_PROBLEMS = 200_000


@dataclass(frozen=True)
class ChainOptions(TaskOptions):
    """Options of :class:`ChainTask`."""

    n: int = opt(16, "number of symbols (also the answer classes), 2..256")
    functions: int = opt(3, "number of distinct functions (random permutations), 1..16")
    k: int = opt(4, "longest composition (1..k functions applied), >= 2")
    structure_seed: int = opt(0, "seed of the function tables")


class ChainTask(Task):
    """``[x, f_a, f_b, ...]`` -> ``... f_b(f_a(x))``: functions apply left to right.

    Each function is a random permutation of the ``n`` symbols. Rows have seq_len ``1 + k``
    and are right-padded; every composition of length 1..k over every start symbol is one
    problem. The length-1 rows (the function tables themselves) are the base facts, always in
    train: the test asks for compositions.

    Concepts: ``sym:i`` (``symbol``) and ``fn:j`` (``operator``). Relations: ``implies``
    ``sym:x -> sym:f_j(x)`` under context ``fn:j`` (fixed points omitted); ``inverse_of``
    ``fn:a <-> fn:b`` when two tables are inverse permutations; ``composes_to``
    ``fn:a -> fn:c`` under context ``fn:b`` when applying ``a`` then ``b`` equals ``c``
    (rare for random tables; listed when they occur).
    """

    name = "chain"
    description = "k-fold composition: [x, f_a, f_b, ...] -> f_b(f_a(x)) over n symbols"
    Options = ChainOptions
    default_train_fraction = 0.5
    default_test_fraction = 0.25

    options: ChainOptions

    def _validate(self) -> None:
        o = self.options
        if not 2 <= o.n <= 256:
            raise TaskOptionError(f"chain.n must be 2..256, got {o.n}")
        if not 1 <= o.functions <= 16:
            raise TaskOptionError(f"chain.functions must be 1..16, got {o.functions}")
        if not 2 <= o.k <= 12:
            raise TaskOptionError(f"chain.k must be 2..12, got {o.k}")
        total = o.n * sum(o.functions**j for j in range(1, o.k + 1))
        if total > _MAX_PROBLEMS:
            raise TaskOptionError(
                f"chain with n={o.n} functions={o.functions} k={o.k} has {total} problems "
                f"(max {_MAX_PROBLEMS})"
            )

    @cached_property
    def tables(self) -> np.ndarray:
        """``tables[j, x] = f_j(x)``, int64 ``(functions, n)``."""
        rng = seeded_rng(self.options.structure_seed, 0xC4A1)
        return np.stack([rng.permutation(self.options.n) for _ in range(self.options.functions)])

    @property
    def vocab(self) -> list[str]:
        o = self.options
        return [PAD, *(f"s{i}" for i in range(o.n)), *(f"f{j}" for j in range(o.functions))]

    @property
    def seq_len(self) -> int:
        return 1 + self.options.k

    @property
    def answer_labels(self) -> list[str]:
        return [f"s{i}" for i in range(self.options.n)]

    def _sym(self, i: int) -> int:
        return 1 + i

    def _fn(self, j: int) -> int:
        return 1 + self.options.n + j

    def _enumerate(self) -> ProblemSet:
        o = self.options
        rows, targets = [], []
        for length in range(1, o.k + 1):
            seqs = np.array(np.meshgrid(*[np.arange(o.functions)] * length, indexing="ij"))
            seqs = seqs.reshape(length, -1).T  # (functions**length, length)
            for x in range(o.n):
                y = np.full(len(seqs), x)
                for step in range(length):
                    y = self.tables[seqs[:, step], y]
                block = np.zeros((len(seqs), self.seq_len), dtype=np.int64)
                block[:, 0] = self._sym(x)
                block[:, 1 : 1 + length] = self._fn(0) + seqs
                rows.append(block)
                targets.append(y)
        return ProblemSet(
            np.concatenate(rows).astype(np.int64), np.concatenate(targets).astype(np.int64)
        )

    def _base_fact_mask(self, problems: ProblemSet) -> np.ndarray:
        return problems.inputs[:, 2] == PAD_ID

    def concepts(self) -> list[ConceptSpec]:
        o, L = self.options, self.seq_len
        out = [
            ConceptSpec(
                f"sym:{i}", f"s{i}", "symbol", (Probe((self._sym(i),) + (PAD_ID,) * (L - 1), 0),)
            )
            for i in range(o.n)
        ]
        out += [
            ConceptSpec(
                f"fn:{j}",
                f"f{j}",
                "operator",
                (Probe((PAD_ID, self._fn(j)) + (PAD_ID,) * (L - 2), 1),),
            )
            for j in range(o.functions)
        ]
        return out

    def relations(self) -> list[Relation]:
        o, t = self.options, self.tables
        rels = [
            Relation(f"sym:{x}", f"sym:{int(t[j, x])}", "implies", context=f"fn:{j}")
            for j in range(o.functions)
            for x in range(o.n)
            if int(t[j, x]) != x
        ]
        ident = np.arange(o.n)
        for a in range(o.functions):
            for b in range(a + 1, o.functions):
                if np.array_equal(t[b][t[a]], ident):
                    rels.append(Relation(f"fn:{a}", f"fn:{b}", "inverse_of"))
        for a in range(o.functions):
            for b in range(o.functions):
                composed = t[b][t[a]]
                for c in range(o.functions):
                    if np.array_equal(composed, t[c]):
                        rels.append(
                            Relation(f"fn:{a}", f"fn:{c}", "composes_to", context=f"fn:{b}")
                        )
        return rels

    def operator_probes(self) -> list[OperatorProbe]:
        """One probe per (function, symbol): the one-step row ``[x, f_j]`` (a task problem)."""
        o, L = self.options, self.seq_len
        return [
            OperatorProbe(f"fn:{j}", f"sym:{x}", (self._sym(x), self._fn(j)) + (PAD_ID,) * (L - 2))
            for j in range(o.functions)
            for x in range(o.n)
        ]
