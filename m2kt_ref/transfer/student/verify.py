"""Verification metrics of an ingestion (spec/algorithms.md §4), as functions of tensors.

Everything here runs without gradients on states already read out of the models; the ingestion
layer (:mod:`~m2kt_ref.transfer.student.ingest`) reads the states, calls these functions before
and after training, and turns the results into the report. Returned values are plain Python
numbers (JSON-able).

- :func:`concept_retrieval`: top-1 retrieval of each query's concept among candidate concept
  states, scored by cosine and by CSLS;
- :func:`sample_non_edges` and :func:`relation_agreement`: per relation type, how often a linked
  pair is more similar than a random unlinked pair with the same source;
- :func:`trace_agreement`: fraction of trace steps whose state is nearest to the packet's step
  concept;
- :func:`answer_agreement`, :func:`accuracy`, :func:`mean_kl`, :func:`relative_drift`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from m2kt_ref.transfer.student.align_metrics import BLOCK, MAX_QUERIES, _topk_mean_rows
from m2kt_ref.transfer.student.config import IngestConfig
from m2kt_ref.transfer.student.losses import centred
from m2kt_ref.transfer.student.readout import Readout
from m2kt_ref.transfer.student.view import (
    PacketView,
    PairSet,
    SparseRows,
    WorkBudget,
    linked_pairs,
)

__all__ = [
    "accuracy",
    "answer_agreement",
    "concept_retrieval",
    "mean_kl",
    "relation_agreement",
    "relative_drift",
    "sample_non_edges",
    "trace_agreement",
]


def _rows_per_block(n: int) -> int:
    return max(1, BLOCK // max(n, 1))


def concept_retrieval(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    truth: torch.Tensor,
    *,
    k: int = 10,
    max_queries: int = MAX_QUERIES,
    seed: int = 0,
) -> dict[str, Any]:
    """How often query ``i``'s best candidate is candidate ``truth[i]``.

    Scores are computed in blocks of at most :data:`BLOCK` elements. With more than
    ``max_queries`` queries, a seeded sample of ``max_queries`` of them is scored (and CSLS's
    candidate neighbourhoods are taken over that sample): time ``O(max_queries * n)``.

    Args:
        queries: ``[q, d]`` (e.g. teacher states mapped by the alignment map).
        candidates: ``[n, d]`` (e.g. the student's concept states).
        truth: ``int64 [q]`` index of each query's own concept among the candidates.
        k: CSLS neighbourhood size (clipped to the set sizes).
        max_queries: queries scored at most.
        seed: the sample's seed.

    Returns:
        ``{"n": queries scored, "candidates": n, "top1_nn": float, "top1_csls": float}``; the
        two rates are ``None`` when there is no query or fewer than 2 candidates (retrieval is
        meaningless).
    """
    q, n = int(queries.shape[0]), int(candidates.shape[0])
    truth = truth.to(torch.long).cpu()
    if q > max_queries:
        pick = torch.randperm(q, generator=torch.Generator().manual_seed(seed))[:max_queries]
        pick = pick.sort().values
        queries, truth, q = queries[pick.to(queries.device)], truth[pick], max_queries
    out: dict[str, Any] = {"n": q, "candidates": n, "top1_nn": None, "top1_csls": None}
    if q == 0 or n < 2:
        return out
    qn = F.normalize(queries.double(), dim=1, eps=1e-12)
    cn = F.normalize(candidates.double(), dim=1, eps=1e-12)
    # csls_scores' own normalisation, kept so the scores are the same as before
    q2, c2 = F.normalize(qn, dim=1, eps=1e-12), F.normalize(cn, dim=1, eps=1e-12)
    r_t = _topk_mean_rows(q2, c2, min(k, n), _rows_per_block(n))
    r_s = _topk_mean_rows(c2, q2, min(k, q), _rows_per_block(q))
    nn_best = torch.empty(q, dtype=torch.long)
    csls_best = torch.empty(q, dtype=torch.long)
    step = _rows_per_block(n)
    for start in range(0, q, step):
        block = slice(start, start + step)
        nn_best[block] = (qn[block] @ cn.T).argmax(dim=1).cpu()
        scores = 2.0 * (q2[block] @ c2.T) - r_t[block, None] - r_s[None, :]
        csls_best[block] = scores.argmax(dim=1).cpu()
    out["top1_nn"] = float((nn_best == truth).double().mean())
    out["top1_csls"] = float((csls_best == truth).double().mean())
    return out


def sample_non_edges(
    source: torch.Tensor,
    target: torch.Tensor,
    linked: PairSet,
    per_edge: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """For each edge ``(u, v)``, ``per_edge`` concepts ``r`` with ``r != u`` and ``r`` not linked
    to ``u`` in any relation or direction; ``-1`` where none exists.

    Each draw is a rank, uniform among ``u``'s allowed concepts, mapped to the concept of that
    rank in index order through ``u``'s sorted excluded list (binary search): ``O(m k log n)``
    time, nothing of size ``m x n``.

    Args:
        source, target: ``int64 [m]`` edge ends.
        linked: the linked pairs (:func:`~m2kt_ref.transfer.student.view.linked_pairs`: both
            directions, every ``(c, c)``), over ``linked.n`` concepts.
        per_edge: samples per edge.
        generator: a CPU generator (the draws are the same on every device).

    Returns:
        ``int64 [m, per_edge]`` on the CPU.
    """
    n = linked.n
    m = int(source.numel())
    out = torch.full((m, per_edge), -1, dtype=torch.long)
    if m == 0 or per_edge < 1 or n < 2:
        return out
    indptr, a, b = linked.rows()
    # b - (its rank in its row): the number of allowed concepts before b; the k-th allowed
    # concept of row u (0-based) is k plus the number of excluded b whose value is <= k
    shifted = a * (n + 1) + (b - (np.arange(len(b)) - indptr[a]))
    src = source.cpu().numpy().astype(np.int64)
    counts = torch.from_numpy(n - (indptr[src + 1] - indptr[src]))
    ranks = torch.rand((m, per_edge), generator=generator, dtype=torch.float64)
    ranks = (ranks * counts[:, None].clamp_min(1)).floor().long()
    query = src[:, None] * (n + 1) + ranks.numpy()
    before = np.searchsorted(shifted, query, side="right") - indptr[src][:, None]
    picks = (ranks + torch.from_numpy(before)).clamp_max(n - 1)
    out = torch.where(counts[:, None] > 0, picks, out)
    del target  # the target is linked to the source, so the excluded list already holds it
    return out


def relation_agreement(
    states: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    relation: Sequence[str],
    negatives: torch.Tensor,
    *,
    center: bool = True,
) -> dict[str, Any]:
    """Per relation type, the fraction of (edge, negative) comparisons where the edge wins:
    ``cos(s_u, s_v) > cos(s_u, s_r)`` for edge ``(u, v)`` and a sampled unlinked ``r``.

    Args:
        states: concept states ``[n, d]`` (student or teacher).
        source, target: ``int64 [m]`` edge ends.
        relation: ``m`` relation names.
        negatives: ``int64 [m, k]`` from :func:`sample_non_edges` (``-1`` entries skipped).
        center: centre the states over the concepts first (as the loss does).

    Returns:
        ``{"overall": {"edges", "comparisons", "agreement"}, "by_relation": {name: {...}}}``;
        ``agreement`` is ``None`` with no comparison.
    """
    x = states.double().cpu()
    if center and x.shape[0] > 1:
        x = centred(x)
    u = F.normalize(x, dim=1, eps=1e-12)
    src, dst, neg = source.cpu(), target.cpu(), negatives.cpu()
    wins_by: dict[str, list[int]] = {}
    if src.numel():
        pos = (u[src] * u[dst]).sum(dim=1)  # [m]
        valid = neg >= 0
        safe = neg.clamp_min(0)
        win = torch.empty(neg.shape, dtype=torch.bool)
        step = _rows_per_block(max(1, neg.shape[1]) * u.shape[1])
        for start in range(0, len(src), step):  # blocks of edges: [block, k, d] at a time
            part = slice(start, start + step)
            negcos = (u[src[part]][:, None, :] * u[safe[part]]).sum(dim=2)  # [block, k]
            win[part] = (pos[part, None] > negcos) & valid[part]
        for i, rel in enumerate(relation):
            entry = wins_by.setdefault(rel, [0, 0, 0])
            entry[0] += 1
            entry[1] += int(valid[i].sum())
            entry[2] += int(win[i].sum())

    def summary(edges: int, comparisons: int, wins: int) -> dict[str, Any]:
        return {
            "edges": edges,
            "comparisons": comparisons,
            "agreement": wins / comparisons if comparisons else None,
        }

    totals = [sum(v[i] for v in wins_by.values()) for i in range(3)]
    return {
        "overall": summary(*totals),
        "by_relation": {rel: summary(*v) for rel, v in sorted(wins_by.items())},
    }


def trace_agreement(
    step_states: torch.Tensor,
    step_concepts: torch.Tensor,
    concept_states: torch.Tensor,
    candidates: torch.Tensor,
) -> dict[str, Any]:
    """Fraction of trace steps whose state's nearest candidate concept (by cosine, lowest index
    on ties, as spec/algorithms.md §1.4 defines a step's concept) is the packet's step concept.

    Args:
        step_states: ``[s, d]`` states at the step positions.
        step_concepts: ``int64 [s]`` the packet's concept of each step (concept row indices).
        concept_states: ``[n, d]`` the concepts to compare with (mapped teacher embeddings).
        candidates: ``int64 [c]`` rows of ``concept_states`` eligible as nearest concept.

    Returns:
        ``{"steps": s, "agreement": float | None}``.
    """
    s = int(step_states.shape[0])
    if s == 0 or candidates.numel() == 0:
        return {"steps": s, "agreement": None}
    cand = candidates.cpu()
    a = F.normalize(step_states.double().cpu(), dim=1, eps=1e-12)
    b = F.normalize(concept_states.double().cpu()[cand], dim=1, eps=1e-12)
    best = torch.empty(s, dtype=torch.long)
    step = _rows_per_block(len(cand))
    for start in range(0, s, step):
        best[start : start + step] = (a[start : start + step] @ b.T).argmax(dim=1)
    nearest = cand[best]
    return {"steps": s, "agreement": float((nearest == step_concepts.cpu()).double().mean())}


def answer_agreement(logits: torch.Tensor, answers: torch.Tensor) -> float | None:
    """Fraction of rows whose argmax equals the teacher's answer (``None`` for no rows)."""
    if logits.shape[0] == 0:
        return None
    return float((logits.argmax(dim=-1).cpu() == answers.cpu()).double().mean())


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float | None:
    """Same as :func:`answer_agreement`, against task targets."""
    return answer_agreement(logits, targets)


def mean_kl(logits_ref: torch.Tensor, logits: torch.Tensor) -> float | None:
    """Mean ``KL(softmax(logits_ref) || softmax(logits))`` in nats (``None`` for no rows)."""
    if logits.shape[0] == 0:
        return None
    log_p = F.log_softmax(logits.double().cpu(), dim=-1)
    log_ref = F.log_softmax(logits_ref.double().cpu(), dim=-1)
    return float((log_ref.exp() * (log_ref - log_p)).sum(dim=-1).mean())


def relative_drift(params: Iterable[torch.Tensor], reference: Iterable[torch.Tensor]) -> float:
    """``||theta - theta_0|| / ||theta_0||`` over paired parameter tensors (float64 sums)."""
    num = den = 0.0
    for p, p0 in zip(params, reference, strict=True):
        a, b = p.detach().double(), p0.detach().double()
        num += float(((a - b) ** 2).sum())
        den += float((b * b).sum())
    return (num**0.5) / (den**0.5) if den > 0 else (0.0 if num == 0 else float("inf"))


@dataclass
class Verifier:
    """What the before/after measurements share: index sets, sampled negatives, references."""

    rep: torch.Tensor  # represented concept rows
    direct: torch.Tensor  # concept rows with their own anchors
    membership: SparseRows  # [n_rep, n_a]
    edge_src: torch.Tensor  # local (rep) indices
    edge_dst: torch.Tensor
    edge_rel: list[str]
    negatives: torch.Tensor
    hold_rows: np.ndarray
    hold_truth: torch.Tensor  # index into direct of each held-out anchor's concept
    hold_queries: torch.Tensor  # CAL(teacher state) of held-out anchors with a concept
    teacher_reference: dict[str, Any]

    @classmethod
    def build(
        cls,
        view: PacketView,
        rep: np.ndarray,
        y_hat: torch.Tensor,
        hold_rows: np.ndarray,
        anchor_mapped: torch.Tensor,
        step_targets: torch.Tensor,
        cfg: IngestConfig,
        budget: WorkBudget | None = None,
    ) -> Verifier:
        local = -np.ones(len(view.concept_ids), dtype=np.int64)
        local[rep] = np.arange(len(rep))
        keep = (local[view.edge_source] >= 0) & (local[view.edge_target] >= 0)
        src = torch.from_numpy(local[view.edge_source[keep]])
        dst = torch.from_numpy(local[view.edge_target[keep]])
        rel = [r for r, k in zip(view.edge_relation, keep, strict=True) if k]
        linked = linked_pairs(len(rep), src.numpy(), dst.numpy(), budget)
        gen = torch.Generator().manual_seed(cfg.seed + 0x5EED)
        negatives = sample_non_edges(src, dst, linked, cfg.relation_negatives, gen)
        direct = np.flatnonzero(view.direct)
        direct_pos = -np.ones(len(view.concept_ids), dtype=np.int64)
        direct_pos[direct] = np.arange(len(direct))
        hold_with = [j for j in hold_rows if view.anchor_concept[j] >= 0]
        truth = torch.from_numpy(direct_pos[view.anchor_concept[hold_with]])
        emb_rep = torch.from_numpy(view.embeddings[rep])
        has = torch.from_numpy(view.step_has_state)
        steps = torch.from_numpy(view.step_concept)[has]
        cand = torch.from_numpy(direct)
        teacher = {
            # the teacher's own graph under the same metric: the ceiling for the student
            "relations": relation_agreement(emb_rep, src, dst, rel, negatives, center=cfg.center),
            # the packet's step concepts recomputed from its step states by nearest concept
            # (1.0 for steps named that way, --step-decoding nearest-concept; for steps named
            # by the teacher's readout, the default, how far its geometry agrees with it) and
            # after mapping both sides with the CAL: what a student reproducing the mapped
            # states exactly would score
            "trace_steps": trace_agreement(
                torch.from_numpy(view.step_states)[has],
                steps,
                torch.from_numpy(view.embeddings),
                cand,
            )["agreement"],
            "trace_steps_mapped": trace_agreement(step_targets[has], steps, y_hat, cand)[
                "agreement"
            ],
        }
        out = cls(
            rep=torch.from_numpy(rep),
            direct=torch.from_numpy(direct),
            membership=view.membership.take(rep),
            edge_src=src,
            edge_dst=dst,
            edge_rel=rel,
            negatives=negatives,
            hold_rows=hold_rows,
            hold_truth=truth,
            hold_queries=anchor_mapped[hold_with] if hold_with else anchor_mapped[:0],
            teacher_reference=teacher,
        )
        return out

    def measure(
        self,
        read: Readout,
        y_hat: torch.Tensor,
        step_targets: torch.Tensor,
        view: PacketView,
        cfg: IngestConfig,
    ) -> dict[str, Any]:
        z = self.membership.matmul(read.anchors)  # [n_rep, d_S]
        z_direct = view.membership.take(self.direct.numpy()).matmul(read.anchors)
        y_rep = y_hat[self.rep]
        concept = concept_retrieval(
            y_rep, z, torch.arange(len(self.rep)), k=cfg.csls_k, seed=cfg.seed
        )
        heldout = concept_retrieval(
            self.hold_queries, z_direct, self.hold_truth, k=cfg.csls_k, seed=cfg.seed
        )
        steps = torch.from_numpy(view.step_concept)
        trace = trace_agreement(read.steps, steps, y_hat, self.direct)
        answers = torch.from_numpy(view.trace_answers)
        return {
            "concept_retrieval": concept,
            "heldout_concept_retrieval": heldout,
            "relations": relation_agreement(
                z, self.edge_src, self.edge_dst, self.edge_rel, self.negatives, center=cfg.center
            ),
            "traces": {
                "steps": trace["steps"],
                "step_agreement": trace["agreement"],
                "answers": len(answers),
                "answer_agreement": answer_agreement(read.trace_logits, answers),
                "state_cosine": _mean_cos(read.steps, step_targets, view.step_has_state),
            },
        }


def _mean_cos(a: torch.Tensor, b: torch.Tensor, mask: np.ndarray) -> float | None:
    m = torch.from_numpy(mask)
    if not bool(m.any()):
        return None
    return float(torch.nn.functional.cosine_similarity(a[m].double(), b[m].double(), dim=1).mean())
