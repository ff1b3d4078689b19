"""Verification metrics of an ingestion (spec/algorithms.md §4), as functions of tensors.

Everything here runs without gradients on states already read out of the models; the ingestion
layer (:mod:`m2kt_ref.ingest`) reads the states, calls these functions before and after training,
and turns the results into the report. Returned values are plain Python numbers (JSON-able).

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
from typing import Any

import torch
import torch.nn.functional as F

from m2kt_ref.align_metrics import csls_scores
from m2kt_ref.losses import centred

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


def concept_retrieval(
    queries: torch.Tensor, candidates: torch.Tensor, truth: torch.Tensor, *, k: int = 10
) -> dict[str, Any]:
    """How often query ``i``'s best candidate is candidate ``truth[i]``.

    Args:
        queries: ``[q, d]`` (e.g. teacher states mapped by the alignment map).
        candidates: ``[n, d]`` (e.g. the student's concept states).
        truth: ``int64 [q]`` index of each query's own concept among the candidates.
        k: CSLS neighbourhood size (clipped to the set sizes).

    Returns:
        ``{"n": q, "candidates": n, "top1_nn": float, "top1_csls": float}``; the two rates are
        ``None`` when there is no query or fewer than 2 candidates (retrieval is meaningless).
    """
    q, n = int(queries.shape[0]), int(candidates.shape[0])
    out: dict[str, Any] = {"n": q, "candidates": n, "top1_nn": None, "top1_csls": None}
    if q == 0 or n < 2:
        return out
    qn = F.normalize(queries.double(), dim=1, eps=1e-12)
    cn = F.normalize(candidates.double(), dim=1, eps=1e-12)
    truth = truth.to(torch.long).cpu()
    nn_best = (qn @ cn.T).argmax(dim=1).cpu()
    csls_best = csls_scores(qn, cn, k=k).argmax(dim=1).cpu()
    out["top1_nn"] = float((nn_best == truth).double().mean())
    out["top1_csls"] = float((csls_best == truth).double().mean())
    return out


def sample_non_edges(
    source: torch.Tensor,
    target: torch.Tensor,
    linked: torch.Tensor,
    per_edge: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """For each edge ``(u, v)``, ``per_edge`` concepts ``r`` with ``r != u`` and ``r`` not linked
    to ``u`` in any relation or direction; ``-1`` where none exists.

    Args:
        source, target: ``int64 [m]`` edge ends (rows of ``linked``).
        linked: ``bool [n, n]`` symmetric adjacency over all relations (diagonal ignored).
        per_edge: samples per edge.
        generator: a CPU generator (the draws are the same on every device).

    Returns:
        ``int64 [m, per_edge]`` on the CPU.
    """
    n = linked.shape[0]
    m = int(source.numel())
    out = torch.full((m, per_edge), -1, dtype=torch.long)
    if m == 0 or per_edge < 1 or n < 2:
        return out
    allowed = ~linked.cpu().clone()
    allowed.fill_diagonal_(False)
    allowed = allowed[source.cpu()]  # [m, n]
    counts = allowed.sum(dim=1)
    # Draw a rank uniformly among each edge's allowed concepts and map it to a concept index.
    ranks = torch.rand((m, per_edge), generator=generator, dtype=torch.float64)
    ranks = (ranks * counts[:, None].clamp_min(1)).floor().long()
    cumulative = allowed.long().cumsum(dim=1)  # [m, n]
    picks = torch.searchsorted(cumulative, ranks + 1)
    picks = picks.clamp_max(n - 1)
    out = torch.where(counts[:, None] > 0, picks, out)
    del target  # the target is linked to the source, so the adjacency already excludes it
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
        negcos = (u[src][:, None, :] * u[safe]).sum(dim=2)  # [m, k]
        win = (pos[:, None] > negcos) & valid
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
    nearest = cand[(a @ b.T).argmax(dim=1)]
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
