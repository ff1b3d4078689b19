"""A decoded packet as arrays indexed for ingestion: concepts, anchors, graph, traces.

The student side never walks pydantic models in its loops; it reads this view, built once, and
the graph helpers that turn edge lists into the matrices the loss and the metrics use.
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

__all__ = ["PacketView", "ancestor_matrix", "check_compatible", "linked_matrix", "packet_view"]


@dataclass
class PacketView:
    """The packet's content as arrays, indexed for ingestion (built by :func:`packet_view`).

    Concept rows follow the packet's concept order; ``membership[c]`` averages anchor states into
    concept ``c``'s state: a concept with anchors of its own averages them (``direct[c]``); one
    without (a cluster) averages its ``part_of``/``is_a`` children's states, recursively; a row
    of zeros means the student cannot represent that concept (``represented[c]`` False).
    """

    concept_ids: list[str]
    concept_kinds: list[str]
    embeddings: np.ndarray  # [n_c, d_T] float32
    anchor_ids: list[str]
    anchor_inputs: np.ndarray  # [n_a, L] int64
    anchor_positions: np.ndarray  # [n_a]
    anchor_states: np.ndarray  # [n_a, d_T]
    anchor_concept: np.ndarray  # [n_a], -1 when the anchor names no concept
    membership: np.ndarray  # [n_c, n_a] float32
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
        return self.membership.sum(axis=1) > 0


def _rows(inputs: Sequence[Sequence[int]], what: str) -> np.ndarray:
    lengths = {len(r) for r in inputs}
    if len(lengths) > 1:
        raise IngestError(
            "INGEST_INCOMPATIBLE", f"{what} input rows have different lengths {sorted(lengths)}"
        )
    if not inputs:
        return np.zeros((0, 0), dtype=np.int64)
    return np.asarray([list(r) for r in inputs], dtype=np.int64)


def packet_view(packet: Packet) -> PacketView:
    """Index a decoded packet's concepts, anchors, graph and traces as arrays.

    Raises:
        IngestError: ``INGEST_INCOMPATIBLE`` when input rows differ in length, or no anchor.
    """
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
    membership = np.zeros((n_c, n_a), dtype=np.float64)
    for j, c in enumerate(a_concept):
        if c >= 0:
            membership[c, j] = 1.0
    direct = membership.sum(axis=1) > 0
    membership[direct] /= membership[direct].sum(axis=1, keepdims=True)
    edges = body.graph.edges
    children: dict[int, list[int]] = {}
    for e in edges:
        if e.relation in HIERARCHY_RELATIONS:
            children.setdefault(index[e.target], []).append(index[e.source])
    # A concept without anchors (a cluster) is the flat mean of its anchored descendants, as
    # the generator's cluster embedding is the mean of its members' (spec/algorithms.md §1.3).
    for c in np.flatnonzero(~direct):
        found = [d for d in _descendants(int(c), children) if direct[d]]
        if found:
            membership[c] = membership[found].mean(axis=0)
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
        membership=membership.astype(np.float32),
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


def _descendants(c: int, children: Mapping[int, list[int]]) -> list[int]:
    """Every concept below ``c`` along the hierarchy edges (each once, cycles tolerated)."""
    seen: set[int] = set()
    stack = list(children.get(c, ()))
    while stack:
        k = stack.pop()
        if k in seen or k == c:
            continue
        seen.add(k)
        stack.extend(children.get(k, ()))
    return sorted(seen)


def linked_matrix(n: int, src: np.ndarray, dst: np.ndarray) -> torch.Tensor:
    linked = torch.zeros((n, n), dtype=torch.bool)
    if len(src):
        s, d = torch.from_numpy(src), torch.from_numpy(dst)
        linked[s, d] = True
        linked[d, s] = True
    return linked


def ancestor_matrix(n: int, child: np.ndarray, parent: np.ndarray) -> torch.Tensor:
    """``anc[c, a]``: ``a`` is ``c`` or an ancestor of ``c`` along the hierarchy edges."""
    anc = torch.eye(n, dtype=torch.bool)
    if len(child):
        step = torch.zeros((n, n), dtype=torch.bool)
        step[torch.from_numpy(child), torch.from_numpy(parent)] = True
        for _ in range(n):
            grown = anc | ((anc.float() @ step.float()) > 0)
            if torch.equal(grown, anc):
                break
            anc = grown
    return anc


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
