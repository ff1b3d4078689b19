"""Terms of the composite ingestion loss (spec/algorithms.md §3.6) as pure tensor functions.

Every function takes tensors and returns a 0-d tensor (differentiable in its student-side
arguments); nothing here knows about packets, models or files. The ingestion
(:mod:`~m2kt_ref.transfer.student.train_loop`) chooses the rows, samples the pairs and weighs
the terms. The tests compare each function with a slow, loop-based float64 reference.

Notation: ``z`` are the student's concept states ``[n, d_S]``, ``e`` the teacher's concept
embeddings ``[n, d_T]`` (same row order), ``y_hat`` the teacher embeddings mapped into student
space by the alignment map, ``[n, d_S]``. Pairs are index tensors into the rows of ``z``.

- geometry (L_geo): :func:`cosine_geometry_loss`, :func:`distance_geometry_loss`,
  :func:`anchoring_loss`;
- structure (L_struct): :func:`edge_pull_loss`, :func:`hierarchy_triplet_loss`,
  :func:`unrelated_margin_loss`;
- reasoning (L_reason): :func:`trace_state_loss`, :func:`answer_loss`;
- safety (L_safe): :func:`relative_drift_sq`, :func:`output_kl`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

__all__ = [
    "anchoring_loss",
    "answer_loss",
    "centred",
    "cosine_geometry_loss",
    "cosine_matrix",
    "distance_geometry_loss",
    "edge_pull_loss",
    "edge_target",
    "hierarchy_triplet_loss",
    "output_kl",
    "pairwise_distances",
    "relative_drift_sq",
    "trace_state_loss",
    "unrelated_margin_loss",
]

#: Added under square roots and to norms, so that gradients stay finite at zero.
EPS = 1e-12


def _zero(like: torch.Tensor) -> torch.Tensor:
    # a zero that still belongs to the graph of ``like`` (so backward() works on it)
    return like.sum() * 0.0


def centred(x: torch.Tensor) -> torch.Tensor:
    """Rows minus their mean row: ``x - mean(x, 0)``."""
    return x - x.mean(dim=0, keepdim=True)


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarities ``[n, n]`` of the rows of ``x`` (a zero row has cosine 0)."""
    u = F.normalize(x, dim=1, eps=EPS)
    return u @ u.T


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances ``[n, n]``, exactly 0 on the diagonal, finite gradients."""
    sq = (x * x).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)
    off = ~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    return torch.where(off, torch.sqrt(d2 + EPS), torch.zeros_like(d2))


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    return m[~torch.eye(n, dtype=torch.bool, device=m.device)]


def cosine_geometry_loss(z: torch.Tensor, e: torch.Tensor, *, center: bool = True) -> torch.Tensor:
    """Angles among concepts: mean over ordered pairs ``i != j`` of
    ``(cos(z_i, z_j) - cos(e_i, e_j))^2``.

    Args:
        z: student concept states ``[n, d_S]``.
        e: teacher concept embeddings ``[n, d_T]`` (constants).
        center: subtract each side's mean row first (hidden states share a large common
            offset that makes every raw cosine close to 1).

    Returns:
        0-d tensor; 0 when ``n < 2``.
    """
    if z.shape[0] < 2:
        return _zero(z)
    e = e.detach().to(z.dtype)
    if center:
        z, e = centred(z), centred(e)
    diff = _off_diagonal(cosine_matrix(z)) - _off_diagonal(cosine_matrix(e))
    return (diff * diff).mean()


def distance_geometry_loss(z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Distances among concepts, scale-free: mean over ``i != j`` of
    ``(D^z_ij / mean(D^z) - D^e_ij / mean(D^e))^2`` with ``D`` the Euclidean distances and each
    mean taken over the off-diagonal pairs (so the two spaces' units cancel).

    Returns:
        0-d tensor; 0 when ``n < 2`` or when either side's points all coincide.
    """
    if z.shape[0] < 2:
        return _zero(z)
    dz = _off_diagonal(pairwise_distances(z))
    de = _off_diagonal(pairwise_distances(e.detach().to(z.dtype)))
    mz, me = dz.mean(), de.mean()
    if float(me) <= 0.0:
        return _zero(z)
    diff = dz / mz.clamp_min(EPS) - de / me
    return (diff * diff).mean()


def anchoring_loss(z: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
    """Each concept at its mapped teacher embedding, relative to the targets' spread:
    ``mean_i ||z_i - y_hat_i||^2 / mean_i ||y_hat_i - mean(y_hat)||^2``.

    The denominator is the targets' own variance, so the value is unit-free (1 = as far off as
    predicting the mean target). With a single row the denominator is ``||y_hat||^2``.
    """
    if z.shape[0] == 0:
        return _zero(z)
    t = y_hat.detach().to(z.dtype)
    err = ((z - t) ** 2).sum(dim=1).mean()
    spread = (centred(t) ** 2).sum(dim=1).mean() if t.shape[0] > 1 else (t * t).sum()
    return err / spread.clamp_min(EPS)


def edge_target(weight: torch.Tensor, cos_min: float, cos_max: float) -> torch.Tensor:
    """Target cosine of an edge of weight ``w``: ``cos_min + w * (cos_max - cos_min)``."""
    return cos_min + weight * (cos_max - cos_min)


def _pair_cosines(z: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(z[a], z[b], dim=1, eps=EPS)


def edge_pull_loss(
    z: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    *,
    cos_min: float = 0.0,
    cos_max: float = 0.6,
) -> torch.Tensor:
    """Linked concepts near by their weight: mean over edges of
    ``w * relu(t(w) - cos(z_s, z_t))^2`` with ``t`` from :func:`edge_target`.

    One-sided on purpose: an edge asks its ends to be *at least* that similar; pushing apart a
    pair the teacher placed closer than the target would fight the geometric term.

    Args:
        z: concept states ``[n, d]`` (centre them first if the caller works with centred
            geometry).
        source, target: ``int64 [m]`` row indices of each edge's ends.
        weight: ``[m]`` edge weights in ``[0, 1]``.

    Returns:
        0-d tensor; 0 when there are no edges.
    """
    if source.numel() == 0:
        return _zero(z)
    w = weight.to(z.dtype)
    gap = F.relu(edge_target(w, cos_min, cos_max) - _pair_cosines(z, source, target))
    return (w * gap * gap).mean()


def hierarchy_triplet_loss(
    z: torch.Tensor,
    child: torch.Tensor,
    parent: torch.Tensor,
    negative: torch.Tensor,
    *,
    margin: float = 0.1,
) -> torch.Tensor:
    """Hierarchy order: a child is closer (by cosine) to its parent than to a non-ancestor,
    by ``margin``: mean of ``relu(margin - cos(z_c, z_p) + cos(z_c, z_n))``.

    Args:
        child, parent, negative: ``int64 [m]`` row indices; ``negative[i]`` is a concept that
            is not an ancestor of ``child[i]`` (the caller samples it).

    Returns:
        0-d tensor; 0 when there are no triplets.
    """
    if child.numel() == 0:
        return _zero(z)
    pos = _pair_cosines(z, child, parent)
    neg = _pair_cosines(z, child, negative)
    return F.relu(margin - pos + neg).mean()


def unrelated_margin_loss(
    z: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, margin: float = 0.3
) -> torch.Tensor:
    """Unrelated pairs kept apart: mean of ``relu(cos(z_a, z_b) - margin)^2`` over pairs the
    graph does not link (the caller samples them)."""
    if a.numel() == 0:
        return _zero(z)
    excess = F.relu(_pair_cosines(z, a, b) - margin)
    return (excess * excess).mean()


def trace_state_loss(
    states: torch.Tensor,
    targets: torch.Tensor,
    scale: torch.Tensor | float,
    *,
    mse_weight: float = 1.0,
    cosine_weight: float = 0.0,
) -> torch.Tensor:
    """The student's states at trace steps follow the mapped teacher states:
    ``mse_weight * mean_j ||s_j - t_j||^2 / scale + cosine_weight * mean_j (1 - cos(s_j, t_j))``.

    Args:
        states: student states at the step positions ``[m, d_S]``.
        targets: mapped teacher step states ``[m, d_S]`` (constants).
        scale: a positive normaliser (the ingestion uses the mapped concepts' spread, the same
            denominator as :func:`anchoring_loss`, so both terms speak the same units).

    Returns:
        0-d tensor; 0 when there are no steps.
    """
    if states.shape[0] == 0:
        return _zero(states)
    t = targets.detach().to(states.dtype)
    out = _zero(states)
    if mse_weight:
        s = torch.as_tensor(scale, dtype=states.dtype, device=states.device).clamp_min(EPS)
        out = out + mse_weight * ((states - t) ** 2).sum(dim=1).mean() / s
    if cosine_weight:
        out = out + cosine_weight * (1.0 - F.cosine_similarity(states, t, dim=1, eps=EPS)).mean()
    return out


def answer_loss(logits: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student's logits ``[m, C]`` against the teacher's answers ``[m]``."""
    if logits.shape[0] == 0:
        return _zero(logits)
    return F.cross_entropy(logits.float(), answers)


def relative_drift_sq(
    params: Iterable[torch.Tensor], reference: Iterable[torch.Tensor], ref_norm_sq: torch.Tensor
) -> torch.Tensor:
    """Trust region: ``||theta - theta_0||^2 / ||theta_0||^2`` over paired parameter tensors.

    Args:
        params: the current parameters (differentiable).
        reference: the pre-ingestion values, same order and shapes (constants).
        ref_norm_sq: ``||theta_0||^2`` (precomputed once, 0-d).
    """
    total = None
    for p, p0 in zip(params, reference, strict=True):
        d = ((p - p0.detach()) ** 2).sum()
        total = d if total is None else total + d
    if total is None:
        return torch.zeros(())
    return total / ref_norm_sq.clamp_min(EPS)


def output_kl(logits_ref: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``KL(p_ref || p)`` (nats), ``p = softmax(logits)``: how far the
    student's new outputs moved from its prior outputs ``logits_ref`` (constants).

    Returns:
        0-d tensor, ``>= 0``; 0 for no rows.
    """
    if logits.shape[0] == 0:
        return _zero(logits)
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_ref = F.log_softmax(logits_ref.detach().float(), dim=-1)
    return (log_ref.exp() * (log_ref - log_p)).sum(dim=-1).mean()
