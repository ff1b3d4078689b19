"""The answer-key gate: how much of the test a reader with no learning answers from the packet.

The reader looks facts up and composes them symbolically: the answer of a trace whose row is
the question; operator composition along a row, with transitions read off the traces' decoded
steps and the operator entries (``chain``-like rows); ancestry by closure over the graph's
``is_a`` edges (``hierarchy``). Whatever it cannot answer gets the fallback answer (the
experiments pass the best constant answer, so a packet that says nothing scores chance). When a
student is no better than this reader, the packet carried the answers and the student only had
to look them up: the headline says so (spec/algorithms.md §5.3).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from m2kt_ref.packet.codec import Packet
from m2kt_ref.packet.extensions import read_operators
from m2kt_ref.transfer.tasks import PAD_ID, Task
from m2kt_ref.transfer.tasks.hierarchy import ANCESTOR_Q

__all__ = ["AnswerKeyReader"]


class AnswerKeyReader:
    """Answers task rows from a packet's facts alone (see the module docstring).

    Args:
        packet: the decoded packet.
        task: names which class a concept is and how rows read.
        fallback: the answer where the packet says nothing (default: the most common answer
            among its traces, else class 0).
    """

    def __init__(self, packet: Packet, task: Task, fallback: int | None = None) -> None:
        self.task = task
        by_label = {lab: i for i, lab in enumerate(task.answer_labels)}
        self.class_of = {c.id: by_label[c.label] for c in task.concepts() if c.label in by_label}
        body = packet.body
        self.lookup = {tuple(int(v) for v in t.input): int(t.answer) for t in body.traces}
        answers = Counter(int(t.answer) for t in body.traces)
        common = answers.most_common(1)[0][0] if answers else 0
        self.fallback = common if fallback is None else int(fallback)
        self.transitions: dict[tuple[int, int], int] = {}
        operand = {tok: by_label[text] for tok, text in enumerate(task.vocab) if text in by_label}
        self.operand = operand
        for t in body.traces:
            state = operand.get(int(t.input[0]))
            decoded = {
                s.position: self.class_of[s.concept]
                for s in t.steps
                if s.position is not None and s.concept in self.class_of
            }
            for p in range(1, len(t.input)):
                tok = int(t.input[p])
                if tok == PAD_ID:
                    break
                nxt = decoded.get(p)
                if state is not None and nxt is not None:
                    self.transitions.setdefault((state, tok), nxt)
                state = nxt
        for e in read_operators(body):
            src, tgt = self.class_of.get(e.source), self.class_of.get(e.target)
            row = [int(v) for v in e.input]
            if src is not None and tgt is not None and len(row) > 1:
                self.transitions.setdefault((src, row[1]), tgt)
        self.parent = {e.source: e.target for e in body.graph.edges if e.relation == "is_a"}

    def answer(self, row: np.ndarray) -> int:
        """The reader's answer to one row (the fallback where the packet says nothing)."""
        key = tuple(int(v) for v in row)
        if key in self.lookup:
            return self.lookup[key]
        if self.task.name == "hierarchy":
            return self._taxonomy(key)
        state = self.operand.get(key[0])
        for tok in key[1:]:
            if tok == PAD_ID:
                break
            state = self.transitions.get((state, tok)) if state is not None else None
        return self.fallback if state is None else state

    def _taxonomy(self, row: tuple[int, ...]) -> int:
        task = self.task
        x = task.node_id(row[0] - 1)
        chain = []
        seen = {x}
        node = x
        while node in self.parent and self.parent[node] not in seen:
            node = self.parent[node]
            seen.add(node)
            chain.append(node)
        if not chain or chain[-1] != task.node_id(0):
            return self.fallback  # the walk does not reach the root: depths are unknown
        if row[1] == task.token_id(ANCESTOR_Q):
            path = [x, *chain]  # depth of path[i] is len(chain) - i
            k = row[2] - task.token_id("L0")
            i = len(chain) - k
            return (
                self.class_of.get(path[i], self.fallback) if 0 <= i < len(path) else self.fallback
            )
        y = task.node_id(row[2] - 1)
        return 1 if y in chain else 0

    def accuracy(self, inputs: np.ndarray, targets: np.ndarray) -> float:
        """Fraction of rows answered right."""
        got = np.array([self.answer(r) for r in inputs], dtype=np.int64)
        return float((got == np.asarray(targets)).mean()) if len(got) else 0.0
