"""Modular arithmetic: ``a op b = ?`` modulo ``p`` (the classic grokking task)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from m2kt_ref.errors import TaskOptionError
from m2kt_ref.transfer.tasks.base import (
    PAD,
    PAD_ID,
    ConceptSpec,
    Probe,
    ProblemSet,
    Relation,
    Task,
    TaskOptions,
    opt,
)

__all__ = ["ModularOptions", "ModularTask"]

_OP_TOKENS = {"+": "+", "-": "-", "*": "*"}


@dataclass(frozen=True)
class ModularOptions(TaskOptions):
    """Options of :class:`ModularTask`."""

    p: int = opt(97, "modulus (numbers 0..p-1 are tokens and answer classes), >= 3")
    ops: str = opt("+-*", "operators, a non-empty subset of '+-*' (× is written '*')")


class ModularTask(Task):
    """``a op b = c (mod p)`` for ``op`` in ``ops``; every (a, op, b) is one problem.

    Row layout: ``[a, op, b, =]`` (seq_len 4). Concepts: ``num:n`` (kind ``symbol``) for each
    number, ``op:+``/``op:-``/``op:*`` (kind ``operator``). Relations: ``precedes``
    ``num:n -> num:n+1 (mod p)``; ``inverse_of`` ``num:n <-> num:p-n`` under ``op:+`` (additive
    inverses); ``inverse_of`` ``op:+ <-> op:-`` when both are present; and when ``p`` is prime
    and ``*`` is present, ``inverse_of`` ``num:n <-> num:n^-1`` under ``op:*``.
    """

    name = "modular"
    description = "a op b = ? (mod p), op in + - * ; answers are the numbers 0..p-1"
    Options = ModularOptions
    default_train_fraction = 0.4
    default_test_fraction = 0.3

    options: ModularOptions

    def _validate(self) -> None:
        o = self.options
        if not 3 <= o.p <= 1000:
            raise TaskOptionError(f"modular.p must be in 3..1000, got {o.p}")
        if not o.ops or set(o.ops) - set(_OP_TOKENS) or len(set(o.ops)) != len(o.ops):
            raise TaskOptionError(
                f"modular.ops must be distinct characters from '+-*', got {o.ops!r}"
            )

    @property
    def _ops(self) -> list[str]:
        return [c for c in "+-*" if c in self.options.ops]

    @property
    def vocab(self) -> list[str]:
        return [PAD, *(str(n) for n in range(self.options.p)), *self._ops, "="]

    @property
    def seq_len(self) -> int:
        return 4

    @property
    def answer_labels(self) -> list[str]:
        return [str(n) for n in range(self.options.p)]

    def _num(self, n: int) -> int:
        return 1 + n  # token id of number n

    def _apply(self, op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        p = self.options.p
        if op == "+":
            return (a + b) % p
        if op == "-":
            return (a - b) % p
        return (a * b) % p

    def _enumerate(self) -> ProblemSet:
        p = self.options.p
        grid_a, grid_b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
        a, b = grid_a.ravel(), grid_b.ravel()
        eq = self.token_id("=")
        rows, targets = [], []
        for op in self._ops:
            oid = self.token_id(op)
            rows.append(np.stack([a + 1, np.full_like(a, oid), b + 1, np.full_like(a, eq)], 1))
            targets.append(self._apply(op, a, b))
        return ProblemSet(
            np.concatenate(rows).astype(np.int64), np.concatenate(targets).astype(np.int64)
        )

    def concepts(self) -> list[ConceptSpec]:
        p, L = self.options.p, self.seq_len
        out = []
        for n in range(p):
            t = self._num(n)
            probes = (
                Probe((t,) + (PAD_ID,) * (L - 1), 0),
                Probe((PAD_ID, PAD_ID, t) + (PAD_ID,) * (L - 3), 2),
            )
            out.append(ConceptSpec(f"num:{n}", str(n), "symbol", probes))
        for op in self._ops:
            probe = Probe((PAD_ID, self.token_id(op)) + (PAD_ID,) * (L - 2), 1)
            out.append(ConceptSpec(f"op:{op}", op, "operator", (probe,)))
        return out

    def relations(self) -> list[Relation]:
        p = self.options.p
        ops = self._ops
        rels = [Relation(f"num:{n}", f"num:{(n + 1) % p}", "precedes") for n in range(p)]
        if "+" in ops:
            rels += [
                Relation(f"num:{n}", f"num:{p - n}", "inverse_of", context="op:+")
                for n in range(1, p)
                if n < p - n
            ]
        if "+" in ops and "-" in ops:
            rels.append(Relation("op:+", "op:-", "inverse_of"))
        if "*" in ops and _is_prime(p):
            for n in range(1, p):
                inv = pow(n, -1, p)
                if n < inv:
                    rels.append(Relation(f"num:{n}", f"num:{inv}", "inverse_of", context="op:*"))
        return rels


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))
