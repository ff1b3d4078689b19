"""The packet-ingestion recipe the experiments measure (student side, spec/algorithms.md §3).

It reads only the packet (concepts, anchors, graph, traces) and the student; the task is used
for nothing but mapping concept probes to token ids and for the input accounting done by the
caller. Terms of the composite loss, each switchable (λ = 0 or a section ignored):

- **embedding write** (``embed_init``): before training, the teacher's concept geometry is
  written into the student's token embeddings: the centred concept embeddings are projected on
  their ``d_S`` leading principal directions (zero-padded when ``d_T < d_S``) and scaled to the
  student's initial embedding norm; each concept's token row gets its concept's point. Costs no
  task input.
- **L_geo** (``lambda_geo``, concepts + anchors): the student's states at every anchor (a
  concept probe, not a task problem) match the teacher's anchor states mapped by the Concept
  Alignment Layer (CAL, an orthogonal Procrustes map with scale fitted between the teacher's
  anchor states and the student's anchor states at initialisation), in units of the target's
  variance; plus the cosine matrix of the student's concept centroids matches the teacher's.
- **L_struct** (``lambda_struct``, graph): for every edge between task concepts, a learned
  per-relation translation carries the source's centroid to the target's (TransE-style,
  weighted by the edge weight) in the student's normalised state space.
- **L_reason** (``lambda_reason``, traces): on the K trace problems (task inputs, counted),
  cross-entropy on the teacher's recorded answer, plus the student's states at each step's
  position matching the CAL-mapped trace states (``lambda_trace_states``).
- **L_safe** (``lambda_safe``): an L2 trust region around the student's initial weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from m2kt_ref.align import fit_alignment
from m2kt_ref.codec import Packet
from m2kt_ref.distill import FitConfig, FitResult, fit_loop
from m2kt_ref.generate import default_layer
from m2kt_ref.tasks import Task

__all__ = ["RecipeConfig", "ingest_packet", "write_packet_geometry"]


@dataclass(frozen=True)
class RecipeConfig:
    """Switches and weights of the ingestion recipe (see the module docstring)."""

    lambda_geo: float = 1.0
    lambda_struct: float = 0.5
    lambda_reason: float = 1.0
    lambda_trace_states: float = 1.0
    lambda_safe: float = 0.0
    embed_init: bool = True
    head_init: bool = True
    use_concepts: bool = True
    use_graph: bool = True
    use_traces: bool = True
    embed_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


class _Tap:
    """Keeps the (differentiable) output of one submodule from the last forward pass."""

    def __init__(self, module: nn.Module) -> None:
        self.out: torch.Tensor | None = None
        self._h = module.register_forward_hook(self._hook)

    def _hook(self, _m: nn.Module, _i: Any, output: Any) -> None:
        while isinstance(output, (tuple, list)):
            output = output[0]
        self.out = output

    def close(self) -> None:
        self._h.remove()


def _pick(states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Row ``i``'s state at ``positions[i]`` (``[N, L, d]``) or the row state (``[N, d]``)."""
    if states.ndim == 2:
        return states
    return states[torch.arange(len(states), device=states.device), positions]


def _packet_arrays(packet: Packet, task: Task) -> dict[str, Any]:
    body = packet.body
    task_ids = {c.id for c in task.concepts()}
    concepts = [c for c in body.concepts if c.id in task_ids]
    out: dict[str, Any] = {
        "concept_ids": [c.id for c in concepts],
        "concept_emb": np.stack([packet.tensor_f32(c.embedding) for c in concepts]),
    }
    anchors = [a for a in body.anchors if a.concept in task_ids]
    out["anchor_rows"] = np.array([a.input for a in anchors], dtype=np.int64)
    out["anchor_pos"] = np.array([a.position for a in anchors], dtype=np.int64)
    out["anchor_states"] = np.stack([packet.tensor_f32(a.state) for a in anchors])
    index = {cid: i for i, cid in enumerate(out["concept_ids"])}
    out["anchor_owner"] = np.array([index[a.concept] for a in anchors], dtype=np.int64)
    edges = [
        (index[e.source], index[e.target], e.relation, float(e.weight))
        for e in body.graph.edges
        if e.source in index and e.target in index
    ]
    out["edges"] = edges
    traces = body.traces or []
    out["trace_rows"] = np.array([t.input for t in traces], dtype=np.int64).reshape(len(traces), -1)
    out["trace_answers"] = np.array([t.answer for t in traces], dtype=np.int64)
    out["trace_steps"] = [
        (
            np.array([s.position if s.position is not None else 0 for s in t.steps]),
            packet.tensor_f32(t.states) if t.states else None,
        )
        for t in traces
    ]
    return out


def _concept_tokens(task: Task, concept_ids: list[str]) -> list[int]:
    specs = task.concept_index()
    toks = []
    for cid in concept_ids:
        p = specs[cid].probes[0]
        toks.append(int(p.tokens[p.position]))
    return toks


def _pca_coords(emb_t: np.ndarray, d_s: int) -> np.ndarray:
    """Centred concept embeddings on their ``d_S`` leading principal axes, unit RMS norm."""
    x = emb_t.astype(np.float64) - emb_t.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    k = min(d_s, vt.shape[0])
    coords = np.zeros((len(x), d_s))
    coords[:, :k] = x @ vt[:k].T
    rms = np.sqrt(np.mean(np.sum(coords**2, 1))) or 1.0
    return coords / rms


def _write_head(
    student: nn.Module, emb_t: np.ndarray, concept_labels: list[str], task: Task
) -> int:
    """Answer classes named like a concept get that concept's point as their head row."""
    head = student.get_submodule("head")
    weight = head.weight
    coords = _pca_coords(emb_t, weight.shape[1])
    by_label = {lab: i for i, lab in enumerate(concept_labels)}
    scale = float(weight.detach().norm(dim=1).mean())
    written = 0
    with torch.no_grad():
        for cls, lab in enumerate(task.answer_labels):
            i = by_label.get(lab)
            if i is None:
                continue
            weight[cls] = torch.as_tensor(coords[i] * scale, dtype=weight.dtype)
            written += 1
    return written


def _write_embeddings(
    student: nn.Module, emb_t: np.ndarray, tokens: list[int], scale: float
) -> None:
    """Write the concept geometry into the student's token embeddings (PCA to ``d_S``)."""
    weight = student.get_submodule("embed").weight
    d_s = weight.shape[1]
    x = emb_t.astype(np.float64) - emb_t.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    k = min(d_s, vt.shape[0])
    proj = x @ vt[:k].T
    coords = np.zeros((len(x), d_s))
    coords[:, :k] = proj
    rms = np.sqrt(np.mean(np.sum(coords**2, 1))) or 1.0
    target = float(weight.detach().norm(dim=1).mean()) * scale
    coords *= target / rms
    with torch.no_grad():
        for tok, row in zip(tokens, coords, strict=True):
            weight[tok] = torch.as_tensor(row, dtype=weight.dtype, device=weight.device)


def write_packet_geometry(
    packet: Packet, student: nn.Module, task: Task, recipe: RecipeConfig
) -> dict[str, Any]:
    """Apply the recipe's initialisation writes (embeddings, head) to ``student``; no training.

    Used before the reference ingestion (:func:`m2kt_ref.ingest.ingest`), which does not write
    weights directly. Runs no input through the student.
    """
    arr = _packet_arrays(packet, task)
    out: dict[str, Any] = {"embed_init": False, "head_init": 0}
    if recipe.use_concepts and recipe.embed_init:
        _write_embeddings(
            student,
            arr["concept_emb"],
            _concept_tokens(task, arr["concept_ids"]),
            recipe.embed_scale,
        )
        out["embed_init"] = True
    if recipe.use_concepts and recipe.head_init:
        labels = [c.label for c in packet.body.concepts if c.id in set(arr["concept_ids"])]
        out["head_init"] = _write_head(student, arr["concept_emb"], labels, task)
    return out


def ingest_packet(
    packet: Packet,
    student: nn.Module,
    task: Task,
    recipe: RecipeConfig,
    fit: FitConfig,
    *,
    evaluate: Callable[[], float],
    target: float | None = None,
) -> tuple[FitResult, dict[str, Any]]:
    """Ingest ``packet`` into ``student`` (in place) with the recipe's composite loss.

    Returns:
        the :class:`~m2kt_ref.distill.FitResult` of the training and a report (terms used,
        CAL fit, sizes, set-up wall time).
    """
    t_setup = time.perf_counter()
    dev = next(student.parameters()).device
    arr = _packet_arrays(packet, task)
    use_geo = recipe.use_concepts and recipe.lambda_geo > 0
    use_struct = recipe.use_concepts and recipe.use_graph and recipe.lambda_struct > 0
    use_traces = recipe.use_traces and recipe.lambda_reason > 0 and len(arr["trace_rows"]) > 0
    use_embed = recipe.use_concepts and recipe.embed_init
    if use_embed:
        _write_embeddings(
            student,
            arr["concept_emb"],
            _concept_tokens(task, arr["concept_ids"]),
            recipe.embed_scale,
        )
    use_head = recipe.use_concepts and recipe.head_init
    head_rows = 0
    if use_head:
        labels = [c.label for c in packet.body.concepts if c.id in set(arr["concept_ids"])]
        head_rows = _write_head(student, arr["concept_emb"], labels, task)
    layer = default_layer(student.config)
    tap = _Tap(student.get_submodule(layer))
    a_rows = torch.as_tensor(arr["anchor_rows"], device=dev)
    a_pos = torch.as_tensor(arr["anchor_pos"], device=dev)
    owner = torch.as_tensor(arr["anchor_owner"], device=dev)
    n_c = len(arr["concept_ids"])
    need_cal = use_geo or use_struct or (use_traces and recipe.lambda_trace_states > 0)
    report: dict[str, Any] = {
        "recipe": recipe.to_dict(),
        "student_layer": layer,
        "terms": {
            "embed_init": use_embed,
            "head_init": head_rows,
            "geo": use_geo,
            "struct": use_struct,
            "reason": use_traces,
        },
        "anchors": len(a_rows),
        "concepts": n_c,
        "edges": len(arr["edges"]),
        "traces": len(arr["trace_rows"]),
    }
    cal = None
    if need_cal and len(a_rows) >= 2 and recipe.use_concepts:
        with torch.no_grad():
            student.eval()
            student(a_rows)
            s0 = _pick(tap.out, a_pos).double().cpu()
        t_anchor = torch.as_tensor(arr["anchor_states"], dtype=torch.float64)
        cal = fit_alignment("procrustes", t_anchor, s0)
        report["cal"] = {"method": "procrustes"}
    elif need_cal:
        # without the concepts section there is no anchor to fit a CAL on: state terms are off
        report["cal"] = None

    def mapped(x: np.ndarray) -> torch.Tensor:
        assert cal is not None
        return cal(torch.as_tensor(x, dtype=torch.float64)).float().to(dev)

    if cal is not None:
        geo_target = mapped(arr["anchor_states"])
        geo_var = geo_target.var(0).sum().clamp_min(1e-8)
        ct = torch.as_tensor(arr["concept_emb"], dtype=torch.float64)
        ct = ct - ct.mean(0)
        cos_t = F.normalize(ct, dim=1) @ F.normalize(ct, dim=1).T
        cos_t = cos_t.float().to(dev)
    else:
        use_geo = use_struct = False
        report["terms"]["geo"] = report["terms"]["struct"] = False
    counts = torch.zeros(n_c, device=dev).index_add_(0, owner, torch.ones(len(owner), device=dev))

    extra: list[torch.Tensor] = []
    if use_struct:
        rel_names = sorted({e[2] for e in arr["edges"]})
        rel_index = {r: i for i, r in enumerate(rel_names)}
        d_s = geo_target.shape[1]
        rel_vec = torch.zeros(len(rel_names), d_s, device=dev, requires_grad=True)
        extra.append(rel_vec)
        e_src = torch.as_tensor([e[0] for e in arr["edges"]], device=dev)
        e_tgt = torch.as_tensor([e[1] for e in arr["edges"]], device=dev)
        e_rel = torch.as_tensor([rel_index[e[2]] for e in arr["edges"]], device=dev)
        e_w = torch.as_tensor([e[3] for e in arr["edges"]], device=dev, dtype=torch.float32)
        report["relations"] = rel_names
    if use_traces:
        t_rows = torch.as_tensor(arr["trace_rows"], device=dev)
        t_ans = torch.as_tensor(arr["trace_answers"], device=dev)
        use_states = cal is not None and recipe.lambda_trace_states > 0
        if use_states:
            rows_i, pos_i, tgt = [], [], []
            for i, (pos, st) in enumerate(arr["trace_steps"]):
                if st is None:
                    continue
                for p, s in zip(pos.tolist(), st, strict=True):
                    rows_i.append(i)
                    pos_i.append(p)
                    tgt.append(s)
            use_states = bool(rows_i)
        if use_states:
            ts_row = torch.as_tensor(rows_i, device=dev)
            ts_pos = torch.as_tensor(pos_i, device=dev)
            ts_tgt = mapped(np.stack(tgt))
            ts_var = ts_tgt.var(0).sum().clamp_min(1e-8) if len(ts_tgt) > 1 else 1.0
        report["trace_state_targets"] = len(rows_i) if use_states else 0
    init = [p.detach().clone() for p in student.parameters()] if recipe.lambda_safe > 0 else None
    report["setup_wall_s"] = round(time.perf_counter() - t_setup, 4)
    bs = fit.batch_size

    def loss_fn(_step: int, gen: torch.Generator) -> torch.Tensor:
        loss = torch.zeros((), device=dev)
        if use_geo or use_struct:
            student(a_rows)
            s = _pick(tap.out, a_pos)
            if use_geo:
                mse = ((s - geo_target) ** 2).sum(1).mean() / geo_var * len(geo_target[0]) ** 0
                cent = torch.zeros(n_c, s.shape[1], device=dev).index_add_(0, owner, s)
                cent = cent / counts[:, None]
                cc = cent - cent.mean(0)
                cos_s = F.normalize(cc, dim=1) @ F.normalize(cc, dim=1).T
                loss = loss + recipe.lambda_geo * (mse + ((cos_s - cos_t) ** 2).mean())
            if use_struct:
                cent = torch.zeros(n_c, s.shape[1], device=dev).index_add_(0, owner, s)
                cent = F.normalize(cent / counts[:, None], dim=1)
                diff = cent[e_src] + rel_vec[e_rel] - cent[e_tgt]
                loss = loss + recipe.lambda_struct * (e_w * (diff**2).sum(1)).mean()
        if use_traces:
            n = len(t_rows)
            idx = (
                torch.arange(n, device=dev)
                if bs >= n
                else torch.randint(0, n, (bs,), generator=gen).to(dev)
            )
            logits = student(t_rows[idx])
            loss = loss + recipe.lambda_reason * F.cross_entropy(logits, t_ans[idx])
            if use_states:
                student(t_rows)
                st = tap.out
                pred = _pick(st[ts_row], ts_pos) if st.ndim == 3 else st[ts_row]
                loss = loss + recipe.lambda_trace_states * (
                    ((pred - ts_tgt) ** 2).sum(1).mean() / ts_var
                )
        if init is not None:
            drift = sum(
                ((p - q) ** 2).sum() for p, q in zip(student.parameters(), init, strict=True)
            )
            loss = loss + recipe.lambda_safe * drift
        if not loss.requires_grad:  # nothing to learn from: keep the loop uniform
            loss = loss + 0.0 * sum(p.sum() for p in student.parameters())
        return loss

    try:
        result = fit_loop(
            student, loss_fn, fit, evaluate=evaluate, target=target, extra_params=extra
        )
    finally:
        tap.close()
    return result, report
