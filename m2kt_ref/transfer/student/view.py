"""A decoded packet as arrays indexed for ingestion: concepts, anchors, graph, traces.

The student side never walks pydantic models in its loops; it reads this view, built once, and
the graph helpers that turn edge lists into the sparse structures the loss and the metrics use.

Nothing here is dense in the number of concepts or anchors (issue 13.3): the concept-anchor
membership is a sparse row matrix (:class:`SparseRows`, one entry per anchor of a concept or of
its anchored descendants), the hierarchy closure and the adjacency are sets of pairs
(:class:`PairSet`, sorted ``int64`` keys, 8 bytes per pair) built per strongly connected
component. Their size, the number of entries ingestion builds from the packet's graph, is
counted against a :class:`WorkBudget` (``IngestConfig.work_budget``) as they are built, and
ingestion is refused with ``INGEST_BUDGET`` past it, before anything bigger is allocated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from m2kt_ref.errors import IngestError
from m2kt_ref.packet.codec import Packet
from m2kt_ref.transfer.student.config import HIERARCHY_RELATIONS

__all__ = [
    "PacketView",
    "PairSet",
    "SparseRows",
    "WorkBudget",
    "check_compatible",
    "hierarchy_closure",
    "linked_pairs",
    "packet_view",
]


class WorkBudget:
    """The number of index entries ingestion may build from a packet's graph.

    Each structure adds its size with :meth:`spend` before (or while) it is built; past
    ``limit`` the ingestion is refused with ``IngestError`` ``INGEST_BUDGET`` (None: no limit).
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, n: int, what: str) -> None:
        self.used += int(n)
        if self.limit is not None and self.used > self.limit:
            raise IngestError(
                "INGEST_BUDGET",
                f"{what}: ingesting this packet needs more than {self.limit:,} index entries "
                f"(IngestConfig.work_budget); {self.used:,} counted so far",
            )


@dataclass(frozen=True)
class SparseRows:
    """A sparse ``[n_rows, n_cols]`` matrix by rows (CSR): row ``r`` holds the columns
    ``cols[indptr[r]:indptr[r + 1]]`` (sorted) with ``weights`` at the same places."""

    indptr: np.ndarray  # int64 [n_rows + 1]
    cols: np.ndarray  # int64 [nnz]
    weights: np.ndarray  # float32 [nnz]
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def row(self, r: int) -> np.ndarray:
        """The columns of row ``r``."""
        return self.cols[self.indptr[r] : self.indptr[r + 1]]

    def row_ids(self) -> np.ndarray:
        """The row of every entry (``int64 [nnz]``)."""
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(self.indptr))

    def row_sums(self) -> np.ndarray:
        return np.bincount(self.row_ids(), weights=self.weights, minlength=self.n_rows)

    def take(self, rows: np.ndarray) -> SparseRows:
        """The rows ``rows``, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = np.diff(self.indptr)[rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        gather = np.repeat(self.indptr[rows] - indptr[:-1], lengths) + np.arange(
            indptr[-1], dtype=np.int64
        )
        return SparseRows(indptr, self.cols[gather], self.weights[gather], self.n_cols)

    def matmul(self, dense: torch.Tensor) -> torch.Tensor:
        """``self @ dense`` for ``dense`` ``[n_cols, d]`` (differentiable in ``dense``)."""
        dev = dense.device
        rows = torch.from_numpy(self.row_ids()).to(dev)
        w = torch.from_numpy(self.weights).to(device=dev, dtype=dense.dtype)
        picked = dense[torch.from_numpy(self.cols).to(dev)] * w[:, None]
        out = torch.zeros((self.n_rows, dense.shape[1]), dtype=dense.dtype, device=dev)
        return out.index_add(0, rows, picked)

    def toarray(self) -> np.ndarray:
        """The dense matrix (for tests and small packets only)."""
        out = np.zeros((self.n_rows, self.n_cols), dtype=np.float32)
        out[self.row_ids(), self.cols] = self.weights
        return out


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values (by sorting: ``np.unique`` hashes, ten times slower here)."""
    x = np.sort(np.asarray(x, dtype=np.int64), kind="stable")
    if len(x) < 2:
        return x
    keep = np.empty(len(x), dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    return x[keep]


class PairSet:
    """A set of ordered pairs ``(a, b)`` of integers below ``n``: sorted ``int64`` keys
    ``a * n + b`` (8 bytes a pair), looked up with :meth:`contains`."""

    def __init__(self, n: int, keys: np.ndarray) -> None:
        self.n = int(n)
        self.keys = _sorted_unique(keys)
        self._by_device: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def contains(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``bool`` tensor: ``(a[i], b[i])`` is in the set (on ``a``'s device)."""
        dev = a.device
        keys = self._by_device.get(str(dev))
        if keys is None:
            keys = self._by_device[str(dev)] = torch.from_numpy(self.keys).to(dev)
        query = a.long() * self.n + b.long().to(dev)
        if not len(keys):
            return torch.zeros(query.shape, dtype=torch.bool, device=dev)
        at = torch.searchsorted(keys, query).clamp_max(len(keys) - 1)
        return keys[at] == query

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR of the set: ``(indptr [n + 1], a of each key, b of each key)``."""
        a, b = self.keys // max(self.n, 1), self.keys % max(self.n, 1)
        return np.searchsorted(a, np.arange(self.n + 1)), a, b


def _reachable(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    seed: np.ndarray,
    budget: WorkBudget,
    what: str,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per strongly connected component of the graph ``src -> dst`` over ``n`` nodes, the sorted
    ``seed`` nodes reachable from it (its own included).

    Components are processed successors first (Kahn's algorithm on the condensed graph), each
    set the sorted union of its own seeds and its successors' sets: time and memory
    ``O(n + m + total size)``, the total counted against ``budget`` as it grows.

    Returns:
        ``(labels [n], reach)``: each node's component, and each component's set.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    if len(src):
        graph = csr_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
        k, labels = connected_components(graph, directed=True, connection="strong")
        labels = labels.astype(np.int64)
    else:
        k, labels = n, np.arange(n, dtype=np.int64)
    cs, cd = labels[src], labels[dst]
    across = cs != cd
    pairs = _sorted_unique(cs[across] * k + cd[across])
    cs, cd = pairs // max(k, 1), pairs % max(k, 1)  # sorted by cs
    succ_ptr = np.searchsorted(cs, np.arange(k + 1))
    by_dst = np.argsort(cd, kind="stable")
    pred, pred_ptr = cs[by_dst], np.searchsorted(cd[by_dst], np.arange(k + 1))
    seeds = np.flatnonzero(seed)
    seeds = seeds[np.argsort(labels[seeds], kind="stable")]
    seed_ptr = np.searchsorted(labels[seeds], np.arange(k + 1))
    remaining = np.diff(succ_ptr)
    reach: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * k
    ready = list(np.flatnonzero(remaining == 0))
    while ready:
        c = ready.pop()
        own = seeds[seed_ptr[c] : seed_ptr[c + 1]]
        succ = cd[succ_ptr[c] : succ_ptr[c + 1]]
        if len(succ):
            found = _sorted_unique(np.concatenate([own, *(reach[t] for t in succ)]))
        else:
            found = np.sort(own)
        budget.spend(len(found), what)
        reach[c] = found
        for p in pred[pred_ptr[c] : pred_ptr[c + 1]]:
            remaining[p] -= 1
            if remaining[p] == 0:
                ready.append(p)
    return labels, reach


def hierarchy_closure(
    n: int, child: np.ndarray, parent: np.ndarray, budget: WorkBudget | None = None
) -> PairSet:
    """The pairs ``(c, a)`` where ``a`` is ``c`` or an ancestor of ``c`` along the edges
    ``child -> parent`` (cycles allowed): one key per pair, counted against ``budget``."""
    budget = budget or WorkBudget(None)
    if not len(child):
        budget.spend(n, "hierarchy closure")
        return PairSet(n, np.arange(n, dtype=np.int64) * (n + 1))
    labels, reach = _reachable(
        n, child, parent, np.ones(n, dtype=bool), budget, "hierarchy closure"
    )
    sizes = np.array([len(r) for r in reach], dtype=np.int64)
    budget.spend(int(sizes[labels].sum()), "hierarchy closure")
    lengths = sizes[labels]
    keys = np.repeat(np.arange(n, dtype=np.int64) * n, lengths) + np.concatenate(
        [reach[c] for c in labels] or [np.zeros(0, dtype=np.int64)]
    )
    return PairSet(n, keys)


def linked_pairs(
    n: int, src: np.ndarray, dst: np.ndarray, budget: WorkBudget | None = None
) -> PairSet:
    """The pairs of concepts linked by an edge, in both directions, and every ``(c, c)``."""
    src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    (budget or WorkBudget(None)).spend(n + 2 * len(src), "adjacency")
    diagonal = np.arange(n, dtype=np.int64) * (n + 1)
    return PairSet(n, np.concatenate([diagonal, src * n + dst, dst * n + src]))


@dataclass
class PacketView:
    """The packet's content as arrays, indexed for ingestion (built by :func:`packet_view`).

    Concept rows follow the packet's concept order; ``membership`` row ``c`` (sparse) averages
    anchor states into concept ``c``'s state: a concept with anchors of its own averages them
    (``direct[c]``); one without (a cluster) is the flat mean of its anchored ``part_of``/``is_a``
    descendants; an empty row means the student cannot represent that concept
    (``represented[c]`` False).
    """

    concept_ids: list[str]
    concept_kinds: list[str]
    embeddings: np.ndarray  # [n_c, d_T] float32
    anchor_ids: list[str]
    anchor_inputs: np.ndarray  # [n_a, L] int64
    anchor_positions: np.ndarray  # [n_a]
    anchor_states: np.ndarray  # [n_a, d_T]
    anchor_concept: np.ndarray  # [n_a], -1 when the anchor names no concept
    membership: SparseRows  # [n_c, n_a]
    direct: np.ndarray  # [n_c] bool
    edge_source: np.ndarray  # [m] int64
    edge_target: np.ndarray
    edge_relation: list[str]
    edge_weight: np.ndarray  # [m] float32
    trace_ids: list[str]
    trace_inputs: np.ndarray  # [n_t, L]
    trace_answers: np.ndarray  # [n_t]
    step_trace: np.ndarray  # [s] trace row of each step
    step_position: np.ndarray  # [s]
    step_concept: np.ndarray  # [s] concept row
    step_states: np.ndarray  # [s, d_T] (zeros where a trace has no states)
    step_has_state: np.ndarray  # [s] bool
    seq_len: int

    @property
    def represented(self) -> np.ndarray:
        return self.membership.row_sums() > 0


def _rows(inputs: Sequence[Sequence[int]], what: str) -> np.ndarray:
    lengths = {len(r) for r in inputs}
    if len(lengths) > 1:
        raise IngestError(
            "INGEST_INCOMPATIBLE", f"{what} input rows have different lengths {sorted(lengths)}"
        )
    if not inputs:
        return np.zeros((0, 0), dtype=np.int64)
    return np.asarray([list(r) for r in inputs], dtype=np.int64)


def packet_view(packet: Packet, budget: WorkBudget | None = None) -> PacketView:
    """Index a decoded packet's concepts, anchors, graph and traces as arrays.

    Raises:
        IngestError: ``INGEST_INCOMPATIBLE`` when input rows differ in length, or no anchor;
            ``INGEST_BUDGET`` when the membership needs more entries than ``budget`` allows.
    """
    budget = budget or WorkBudget(None)
    body = packet.body
    ids = [c.id for c in body.concepts]
    index = {cid: i for i, cid in enumerate(ids)}
    d_t = body.teacher.latent_dim
    emb = (
        np.stack([packet.tensor_f32(c.embedding).reshape(d_t) for c in body.concepts])
        if ids
        else np.zeros((0, d_t), np.float32)
    )
    anchors = body.anchors
    if len(anchors) < 2:
        raise IngestError(
            "INGEST_INCOMPATIBLE", f"the packet has {len(anchors)} anchor(s); alignment needs 2"
        )
    a_inputs = _rows([a.input for a in anchors], "anchor")
    t_inputs = _rows([t.input for t in body.traces], "trace")
    lengths = {a_inputs.shape[1]} | ({t_inputs.shape[1]} if len(body.traces) else set())
    if len(lengths) > 1:
        raise IngestError("INGEST_INCOMPATIBLE", "anchor and trace rows differ in length")
    a_states = np.stack([packet.tensor_f32(a.state).reshape(d_t) for a in anchors])
    a_concept = np.array(
        [index[a.concept] if a.concept is not None else -1 for a in anchors], dtype=np.int64
    )
    n_c, n_a = len(ids), len(anchors)
    edges = body.graph.edges
    membership, direct = _membership(n_c, n_a, a_concept, edges, index, budget)
    steps_trace, steps_pos, steps_concept, steps_state, steps_has = [], [], [], [], []
    for t, tr in enumerate(body.traces):
        states = packet.tensor_f32(tr.states).reshape(len(tr.steps), d_t) if tr.states else None
        for j, st in enumerate(tr.steps):
            steps_trace.append(t)
            steps_pos.append(st.position if st.position is not None else a_inputs.shape[1] - 1)
            steps_concept.append(index[st.concept])
            steps_has.append(states is not None)
            steps_state.append(states[j] if states is not None else np.zeros(d_t, np.float32))
    return PacketView(
        concept_ids=ids,
        concept_kinds=[c.kind for c in body.concepts],
        embeddings=emb.astype(np.float32),
        anchor_ids=[a.id for a in anchors],
        anchor_inputs=a_inputs,
        anchor_positions=np.array([a.position for a in anchors], dtype=np.int64),
        anchor_states=a_states.astype(np.float32),
        anchor_concept=a_concept,
        membership=membership,
        direct=direct,
        edge_source=np.array([index[e.source] for e in edges], dtype=np.int64),
        edge_target=np.array([index[e.target] for e in edges], dtype=np.int64),
        edge_relation=[e.relation for e in edges],
        edge_weight=np.array([e.weight for e in edges], dtype=np.float32),
        trace_ids=[t.id for t in body.traces],
        # a packet without traces still has rows of the anchors' length
        trace_inputs=t_inputs.reshape(len(body.traces), -1)
        if len(body.traces)
        else np.zeros((0, a_inputs.shape[1]), dtype=np.int64),
        trace_answers=np.array([t.answer for t in body.traces], dtype=np.int64),
        step_trace=np.array(steps_trace, dtype=np.int64),
        step_position=np.array(steps_pos, dtype=np.int64),
        step_concept=np.array(steps_concept, dtype=np.int64),
        step_states=np.array(steps_state, dtype=np.float32).reshape(-1, d_t),
        step_has_state=np.array(steps_has, dtype=bool),
        seq_len=int(a_inputs.shape[1]),
    )


def _membership(
    n_c: int,
    n_a: int,
    a_concept: np.ndarray,
    edges: Sequence[Any],
    index: Mapping[str, int],
    budget: WorkBudget,
) -> tuple[SparseRows, np.ndarray]:
    """The sparse concept-anchor membership, and which concepts have anchors of their own.

    A concept with anchors averages them; a cluster (no anchors) is the flat mean of its
    anchored descendants along the hierarchy edges (each once, cycles tolerated), as the
    generator's cluster embedding is the mean of its members' (spec/algorithms.md §1.3).
    Entries: one per anchor of a concept, plus one per anchor of each anchored descendant of a
    cluster, counted against ``budget`` before they are gathered.
    """
    named = np.flatnonzero(a_concept >= 0)
    by_concept = named[np.argsort(a_concept[named], kind="stable")]
    count = np.bincount(a_concept[named], minlength=n_c).astype(np.int64)
    ptr = np.zeros(n_c + 1, dtype=np.int64)
    np.cumsum(count, out=ptr[1:])
    direct = count > 0
    own = SparseRows(
        ptr,
        by_concept.astype(np.int64),
        np.repeat(1.0 / np.maximum(count, 1), count),
        n_a,
    )
    budget.spend(own.nnz, "concept membership")
    parent_child = [
        (index[e.target], index[e.source]) for e in edges if e.relation in HIERARCHY_RELATIONS
    ]
    clusters = np.flatnonzero(~direct)
    if not parent_child or not len(clusters):
        return SparseRows(own.indptr, own.cols, own.weights.astype(np.float32), n_a), direct
    pc = np.array(parent_child, dtype=np.int64)
    labels, reach = _reachable(n_c, pc[:, 0], pc[:, 1], direct, budget, "concept membership")
    rows_cols: list[np.ndarray] = []
    rows_w: list[np.ndarray] = []
    lengths = np.diff(own.indptr).copy()
    for c in clusters:
        found = reach[labels[c]]
        if not len(found):
            continue
        part = own.take(found)
        budget.spend(part.nnz, "concept membership")
        rows_cols.append(part.cols)
        rows_w.append(part.weights / len(found))
        lengths[c] = part.nnz
    indptr = np.zeros(n_c + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    cols = np.zeros(indptr[-1], dtype=np.int64)
    weights = np.zeros(indptr[-1], dtype=np.float64)
    cols_it, w_it = iter(rows_cols), iter(rows_w)
    for c in range(n_c):
        lo, hi = indptr[c], indptr[c + 1]
        if hi == lo:
            continue
        if direct[c]:
            cols[lo:hi], weights[lo:hi] = own.row(c), own.weights[own.indptr[c] : own.indptr[c + 1]]
        else:
            cc, ww = next(cols_it), next(w_it)
            order = np.argsort(cc, kind="stable")
            cols[lo:hi], weights[lo:hi] = cc[order], ww[order]
    return SparseRows(indptr, cols, weights.astype(np.float32), n_a), direct


def check_compatible(view: PacketView, packet: Packet, task: Any, model: nn.Module) -> None:
    prov = packet.body.provenance.task
    vocab = None
    if task is not None:
        if prov.name != task.name or dict(prov.options) != dict(task.option_dict()):
            raise IngestError(
                "INGEST_INCOMPATIBLE",
                f"the packet is about task {prov.name} {dict(prov.options)}, the student's task "
                f"is {task.name} {task.option_dict()}",
            )
        vocab = task.vocab_size
        if view.seq_len != task.seq_len:
            raise IngestError(
                "INGEST_INCOMPATIBLE",
                f"packet rows have length {view.seq_len}, the task's {task.seq_len}",
            )
        if len(view.trace_answers) and int(view.trace_answers.max()) >= task.n_classes:
            raise IngestError("INGEST_INCOMPATIBLE", "a trace answer is not a class of the task")
    cfg = getattr(model, "config", None)
    vocab = vocab or getattr(cfg, "vocab_size", None)
    if vocab is not None:
        top = max(
            int(view.anchor_inputs.max()),
            int(view.trace_inputs.max()) if view.trace_inputs.size else 0,
        )
        if top >= vocab:
            raise IngestError(
                "INGEST_INCOMPATIBLE", f"token {top} is outside the student's vocabulary ({vocab})"
            )
    seq = getattr(cfg, "seq_len", None)
    if seq is not None and seq != view.seq_len:
        raise IngestError(
            "INGEST_INCOMPATIBLE", f"packet rows have length {view.seq_len}, the student's {seq}"
        )
