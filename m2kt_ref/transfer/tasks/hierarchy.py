"""A generated taxonomy: "is x a kind of y?" and "which ancestor of x sits at depth k?"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from m2kt_ref.errors import TaskOptionError
from m2kt_ref.transfer.tasks.base import (
    PAD,
    PAD_ID,
    ConceptSpec,
    DerivedEdge,
    OperatorFacts,
    OperatorProbe,
    Probe,
    ProblemSet,
    Relation,
    Task,
    TaskOptions,
    opt,
    seeded_rng,
)

__all__ = ["ANCESTOR_Q", "IS_A_Q", "KIND_OF_Q", "HierarchyOptions", "HierarchyTask"]

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_MAX_NODES = 5000
IS_A_Q = "is-a?"
KIND_OF_Q = "kind-of?"
ANCESTOR_Q = "ancestor@"


@dataclass(frozen=True)
class HierarchyOptions(TaskOptions):
    """Options of :class:`HierarchyTask`."""

    depth: int = opt(4, "levels below the root (leaves sit at this depth), 2..8")
    branching: int = opt(3, "mean children per inner node (each has branching-1..branching+1)")
    structure_seed: int = opt(0, "seed of the generated taxonomy (shape, names, negatives)")


@dataclass(frozen=True)
class _Node:
    index: int
    word: str
    parent: int  # -1 for the root
    level: int
    path: tuple[str, ...]  # words from level 1 down to this node


class HierarchyTask(Task):
    """Queries over a random tree of pseudo-word nodes.

    Rows (seq_len 3): ``[x, ancestor@, Lk]`` -> the node at depth ``k`` on the path from the
    root to ``x`` (``1 <= k <= depth(x)``; ``k = depth(x)`` answers ``x`` itself), and
    ``[x, is-a?, y]`` or, in other words, ``[x, kind-of?, y]`` -> ``yes``/``no`` (is ``y`` a
    strict ancestor of ``x``?). Questions about the root, everyone's ancestor, are left out as
    trivial. Each node ``x`` has as many negative is-a facts as positive ones, ``y`` drawn
    uniformly (without replacement) from the non-ancestors shallower than ``x``.

    What is held out: the ancestor queries and one phrasing of every is-a fact (a seeded coin
    picks which) are the base facts, always trained; the test asks is-a facts in the phrasing
    that was not trained. So the taxonomy is taught once, and the test checks that the model
    knows it independently of the wording. (Holding out is-a facts in *both* phrasings asks a
    small net to infer them from the ancestor queries, a relational comparison our CPU-scale
    teachers do not learn: 65-78% test accuracy in our measurements, see docs/teachers.md.)

    Concepts: ``node:<dotted path>`` for each node (kind ``category`` for inner nodes, ``leaf``
    for leaves; ``level`` = depth, root ``node:root`` at 0), ``query:is_a``, ``query:kind_of``,
    ``query:ancestor`` (``operator``) and ``level:k`` (``symbol``). Relations: ``is_a``
    child -> parent (a tree, hence a DAG); ``similar_to`` between siblings (weight 0.5, derived:
    they share the parent); ``precedes`` ``level:k -> level:k+1``; ``similar_to``
    ``query:is_a <-> query:kind_of`` (synonyms).
    """

    name = "hierarchy"
    description = (
        "generated taxonomy: 'is x a kind of y?' (yes/no) and 'ancestor of x at depth k' (a node)"
    )
    Options = HierarchyOptions
    default_train_fraction = 0.6
    default_test_fraction = 0.25

    options: HierarchyOptions

    def _validate(self) -> None:
        o = self.options
        if not 2 <= o.depth <= 8:
            raise TaskOptionError(f"hierarchy.depth must be 2..8, got {o.depth}")
        if not 2 <= o.branching <= 8:
            raise TaskOptionError(f"hierarchy.branching must be 2..8, got {o.branching}")
        _ = self.nodes  # generating the tree enforces the node cap

    @cached_property
    def nodes(self) -> list[_Node]:
        """Tree nodes in breadth-first order (root first)."""
        o = self.options
        rng = seeded_rng(o.structure_seed, 0x41E2)
        parents, levels = [-1], [0]
        frontier = [0]
        for level in range(1, o.depth + 1):
            nxt = []
            for par in frontier:
                for _ in range(int(rng.integers(o.branching - 1, o.branching + 2))):
                    parents.append(par)
                    levels.append(level)
                    nxt.append(len(parents) - 1)
                    if len(parents) > _MAX_NODES:
                        raise TaskOptionError(
                            f"hierarchy exceeds {_MAX_NODES} nodes; lower depth or branching"
                        )
            frontier = nxt
        words = _words(len(parents) - 1, rng)
        nodes: list[_Node] = [_Node(0, "root", -1, 0, ())]
        for i in range(1, len(parents)):
            up = nodes[parents[i]]
            nodes.append(_Node(i, words[i - 1], up.index, levels[i], (*up.path, words[i - 1])))
        return nodes

    def node_id(self, index: int) -> str:
        """Concept id of node ``index``."""
        n = self.nodes[index]
        return "node:" + (".".join(n.path) if n.path else "root")

    def ancestors(self, index: int) -> list[int]:
        """Strict ancestors of a node, nearest first."""
        out, i = [], self.nodes[index].parent
        while i >= 0:
            out.append(i)
            i = self.nodes[i].parent
        return out

    @cached_property
    def _children(self) -> dict[int, list[int]]:
        kids: dict[int, list[int]] = {n.index: [] for n in self.nodes}
        for n in self.nodes[1:]:
            kids[n.parent].append(n.index)
        return kids

    @property
    def vocab(self) -> list[str]:
        levels = [f"L{k}" for k in range(self.options.depth + 1)]
        return [PAD, *(n.word for n in self.nodes), IS_A_Q, KIND_OF_Q, ANCESTOR_Q, *levels]

    @property
    def seq_len(self) -> int:
        return 3

    @property
    def answer_labels(self) -> list[str]:
        return ["no", "yes", *(n.word for n in self.nodes)]

    def _tok(self, node: int) -> int:
        return 1 + node

    def _enumerate(self) -> ProblemSet:
        return self._built[0]

    def _base_fact_mask(self, problems: ProblemSet) -> np.ndarray:
        return self._built[1]

    @cached_property
    def _built(self) -> tuple[ProblemSet, np.ndarray]:
        """All problems and the base-fact mask (computed together: they share draws)."""
        rng = seeded_rng(self.options.structure_seed, 0x9E6)
        by_level: dict[int, list[int]] = {}
        for n in self.nodes:
            by_level.setdefault(n.level, []).append(n.index)
        phrasings = (self.token_id(IS_A_Q), self.token_id(KIND_OF_Q))
        anc = self.token_id(ANCESTOR_Q)
        rows: list[tuple[int, int, int]] = []
        targets: list[int] = []
        base: list[bool] = []

        def fact(x: int, y: int, answer: int) -> None:
            # The same is-a fact in both phrasings; a seeded coin picks the one always trained.
            taught = int(rng.integers(2))
            for i, q in enumerate(phrasings):
                rows.append((x, q, y))
                targets.append(answer)
                base.append(i == taught)

        for n in self.nodes[1:]:
            x = self._tok(n.index)
            # Reflexive query: the node at its own depth is itself. It ties each node's token to
            # its answer class.
            rows.append((x, anc, self.token_id(f"L{n.level}")))
            targets.append(2 + n.index)
            base.append(True)
            ancestors = self.ancestors(n.index)[:-1]  # the root is everyone's ancestor: trivial
            shallower = [m for lvl in range(1, n.level) for m in by_level[lvl]]
            non_ancestors = sorted(set(shallower) - set(ancestors))
            for a in ancestors:
                rows.append((x, anc, self.token_id(f"L{self.nodes[a].level}")))
                targets.append(2 + a)
                base.append(True)
                fact(x, self._tok(a), 1)
            # One negative per positive: a shallower node that is not an ancestor, drawn
            # uniformly without replacement.
            k = min(len(ancestors), len(non_ancestors))
            for m in rng.choice(non_ancestors, size=k, replace=False) if k else ():
                fact(x, self._tok(int(m)), 0)
        problems = ProblemSet(np.array(rows, dtype=np.int64), np.array(targets, dtype=np.int64))
        return problems, np.array(base, dtype=bool)

    def concepts(self) -> list[ConceptSpec]:
        out = []
        for n in self.nodes:
            t = self._tok(n.index)
            probes = (Probe((t, PAD_ID, PAD_ID), 0), Probe((PAD_ID, PAD_ID, t), 2))
            kind = "category" if self._children[n.index] else "leaf"
            out.append(ConceptSpec(self.node_id(n.index), n.word, kind, probes, level=n.level))
        queries = (
            ("query:is_a", IS_A_Q),
            ("query:kind_of", KIND_OF_Q),
            ("query:ancestor", ANCESTOR_Q),
        )
        for cid, tok in queries:
            probe = Probe((PAD_ID, self.token_id(tok), PAD_ID), 1)
            out.append(ConceptSpec(cid, tok, "operator", (probe,)))
        for k in range(self.options.depth + 1):
            probe = Probe((PAD_ID, PAD_ID, self.token_id(f"L{k}")), 2)
            out.append(ConceptSpec(f"level:{k}", f"L{k}", "symbol", (probe,)))
        return out

    def relations(self) -> list[Relation]:
        rels = [
            Relation(self.node_id(n.index), self.node_id(n.parent), "is_a") for n in self.nodes[1:]
        ]
        for kids in self._children.values():
            for i, a in enumerate(kids):
                for b in kids[i + 1 :]:
                    rels.append(Relation(self.node_id(a), self.node_id(b), "similar_to", 0.5))
        rels += [
            Relation(f"level:{k}", f"level:{k + 1}", "precedes") for k in range(self.options.depth)
        ]
        rels.append(Relation("query:is_a", "query:kind_of", "similar_to"))  # synonyms
        return rels

    def operator_probes(self) -> list[OperatorProbe]:
        """For every node but the root, its ancestor at every level ``[x, ancestor@, Lk]``.

        Rows with ``k`` up to the node's depth are task problems; deeper ones are not (their
        answers are whatever the teacher makes of them), which is why the generator needs the
        teacher's answers to learn each node's depth: the level whose answer is the node itself.
        """
        anc = self.token_id(ANCESTOR_Q)
        return [
            OperatorProbe(
                f"level:{k}",
                self.node_id(n.index),
                (self._tok(n.index), anc, self.token_id(f"L{k}")),
            )
            for n in self.nodes[1:]
            for k in range(1, self.options.depth + 1)
        ]

    def operator_facts(
        self,
        probes: Sequence[OperatorProbe],
        answers: Sequence[int],
        probabilities: Sequence[float],
    ) -> OperatorFacts:
        """Each node's parent, read off the teacher's answers: ``is_a`` edges, one per node.

        A node's depth is the level at which the teacher names the node itself; its parent is
        what the teacher names one level up (the root for a node at depth 1). A node whose depth
        the teacher never names gets no edge. The weight is the teacher's probability of the
        parent answer (1 for the root, which no row asks about).
        """
        by_word = {self.answer_labels[2 + n.index]: self.node_id(n.index) for n in self.nodes}
        named: dict[tuple[str, int], tuple[str | None, float]] = {}
        for probe, answer, prob in zip(probes, answers, probabilities, strict=True):
            level = int(probe.operator.removeprefix("level:"))
            label = self.answer_labels[int(answer)]
            named[(probe.source, level)] = (by_word.get(label), float(prob))
        edges = []
        root = self.node_id(0)
        for n in self.nodes[1:]:
            node = self.node_id(n.index)
            depths = [
                k
                for k in range(1, self.options.depth + 1)
                if named.get((node, k), (None,))[0] == node
            ]
            if not depths:
                continue
            depth = min(depths)
            parent, weight = (root, 1.0) if depth == 1 else named[(node, depth - 1)]
            if parent is not None and parent != node:
                edges.append(DerivedEdge(node, parent, "is_a", weight))
        return OperatorFacts(entries=(), edges=tuple(edges))


def _words(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct pseudo-words (CVCV, or CVCVCV when many are needed)."""
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    size = 2 if n <= len(syllables) ** 2 // 4 else 3
    picks = rng.choice(len(syllables) ** size, size=n, replace=False)
    out = []
    for p in picks:
        parts = []
        for _ in range(size):
            p, r = divmod(int(p), len(syllables))
            parts.append(syllables[r])
        out.append("".join(parts))
    return out
