"""Quality metrics of a teacher-to-student alignment, computed on held-out anchors.

Every function takes tensors and returns a 0-d tensor on the inputs' device and dtype, except
:func:`evaluate_alignment`, which runs them all and returns plain floats (JSON-able). Rows are
paired: row ``i`` of the mapped teacher states and row ``i`` of the student states describe the
same anchor.

- :func:`mean_cosine`: mean row-wise cosine similarity.
- :func:`retrieval_top1`: fraction of mapped rows whose best-scoring student row is their own
  partner, scored by plain cosine (``"nn"``) or by CSLS (``"csls"``, cross-domain similarity
  local scaling, Lample et al. 2018, "Word translation without parallel data", eq. 6):
  ``CSLS(x, y) = 2 cos(x, y) - r_T(x) - r_S(y)``, where ``r_T(x)`` is the mean cosine of ``x``
  to its ``k`` nearest student rows and ``r_S(y)`` the mean cosine of ``y`` to its ``k`` nearest
  mapped rows. CSLS discounts "hubs", rows that are near everything.
- :func:`linear_cka`: linear centred kernel alignment (Kornblith et al. 2019, "Similarity of
  neural network representations revisited", eq. 5), ``||Y^T X||_F^2 / (||X^T X||_F
  ||Y^T Y||_F)`` on column-centred ``X`` and ``Y``; invariant to orthogonal transforms and
  isotropic scaling of either side, 1 for identical inputs. Widths may differ.
- :func:`relative_residual`: ``||Y - Y_hat||_F / ||Y - mean(Y)||_F``; 0 is perfect, 1 is no
  better than predicting the student's mean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from m2kt_ref.errors import UsageError

__all__ = [
    "DEFAULT_CHUNK",
    "RETRIEVAL_SCORES",
    "csls_scores",
    "evaluate_alignment",
    "linear_cka",
    "mean_cosine",
    "relative_residual",
    "retrieval_top1",
]

#: Rows of the similarity matrix computed at once by the retrieval metrics (memory bound:
#: ``chunk * n`` floats).
DEFAULT_CHUNK = 4096
#: Elements of one block of scores at most (128 MiB of float64), whatever the chunk.
BLOCK = 1 << 24
#: Queries the retrieval metrics of :func:`evaluate_alignment` score at most.
MAX_QUERIES = 4096

RETRIEVAL_SCORES = ("nn", "csls")


def _check_rows(a: torch.Tensor, b: torch.Tensor, *, same_width: bool, what: str) -> None:
    for name, t in (("first", a), ("second", b)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            raise UsageError(f"{what}: the {name} argument must be a 2-D tensor")
        if not t.is_floating_point():
            raise UsageError(f"{what}: the {name} argument must be a float tensor")
    if a.shape[0] != b.shape[0]:
        raise UsageError(
            f"{what}: row counts differ ({a.shape[0]} vs {b.shape[0]}); rows are paired"
        )
    if a.shape[0] < 1:
        raise UsageError(f"{what}: needs at least one row")
    if same_width and a.shape[1] != b.shape[1]:
        raise UsageError(f"{what}: widths differ ({a.shape[1]} vs {b.shape[1]})")
    if a.device != b.device or a.dtype != b.dtype:
        raise UsageError(
            f"{what}: inputs must share device and dtype "
            f"({a.device}/{a.dtype} vs {b.device}/{b.dtype})",
        )


def mean_cosine(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity between paired rows.

    Args:
        y_hat: mapped teacher states ``[n, d]``.
        y: student states ``[n, d]``.

    Returns:
        0-d tensor in ``[-1, 1]``. A zero row has cosine 0 with everything.

    Raises:
        UsageError: ``USAGE`` on shapes, dtypes or devices that do not pair up.
    """
    _check_rows(y_hat, y, same_width=True, what="mean_cosine")
    return F.cosine_similarity(y_hat, y, dim=1, eps=1e-12).mean()


def _topk_mean_rows(a: torch.Tensor, b: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """For each row of ``a`` (unit rows), mean of its ``k`` largest cosines to the rows of ``b``."""
    out = torch.empty(a.shape[0], device=a.device, dtype=a.dtype)
    for start in range(0, a.shape[0], chunk):
        sims = a[start : start + chunk] @ b.T
        out[start : start + chunk] = sims.topk(k, dim=1).values.mean(dim=1)
    return out


def retrieval_top1(
    queries: torch.Tensor,
    targets: torch.Tensor,
    *,
    score: str = "csls",
    k: int = 10,
    chunk: int = DEFAULT_CHUNK,
    max_queries: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Top-1 retrieval accuracy: how often query ``i``'s best target is target ``i``.

    With more than ``max_queries`` pairs, a seeded sample of ``max_queries`` queries is scored
    against every target (CSLS's target neighbourhoods taken over the sample), so the cost is
    ``O(max_queries * n)`` instead of ``O(n^2)``. Blocks of scores never exceed
    :data:`BLOCK` elements, whatever ``chunk`` says.

    Args:
        queries: mapped teacher states ``[n, d]``.
        targets: student states ``[n, d]``; ``targets[i]`` is the partner of ``queries[i]``.
        score: ``"nn"`` (plain cosine nearest neighbour) or ``"csls"``.
        k: neighbourhood size of CSLS (clipped to ``n``); ignored by ``"nn"``.
        chunk: query rows scored at once (memory ``chunk * n``).
        max_queries: queries scored at most (None: all).
        seed: the sample's seed.

    Returns:
        0-d tensor in ``[0, 1]``. Ties go to the lowest target index.

    Raises:
        UsageError: ``USAGE`` on a bad ``score``, ``k`` or ``chunk``, or unpaired inputs.
    """
    _check_rows(queries, targets, same_width=True, what="retrieval_top1")
    if score not in RETRIEVAL_SCORES:
        raise UsageError(f"unknown retrieval score {score!r}; known: nn, csls")
    if k < 1 or chunk < 1:
        raise UsageError("retrieval_top1: k and chunk must be >= 1")
    n = queries.shape[0]
    chunk = max(1, min(chunk, BLOCK // max(n, 1)))
    q = F.normalize(queries, dim=1, eps=1e-12)
    t = F.normalize(targets, dim=1, eps=1e-12)
    picked = torch.arange(n, device=queries.device)
    if max_queries is not None and n > max_queries:
        gen = torch.Generator().manual_seed(seed)
        picked = torch.randperm(n, generator=gen)[:max_queries].sort().values.to(queries.device)
        q = q[picked]
    penalty = None
    if score == "csls":
        # r_T(x) is the same for every target of a query, so it cannot change the argmax; only
        # the target-side hubness r_S(y) enters the ranking.
        penalty = _topk_mean_rows(t, q, min(k, q.shape[0]), max(1, BLOCK // max(q.shape[0], 1)))
    hits = torch.zeros((), device=queries.device, dtype=torch.long)
    for start in range(0, q.shape[0], chunk):
        sims = q[start : start + chunk] @ t.T
        if penalty is not None:
            sims = 2.0 * sims - penalty
        best = sims.argmax(dim=1)
        hits += (best == picked[start : start + chunk]).sum()
    return hits.to(queries.dtype) / q.shape[0]


def csls_scores(
    queries: torch.Tensor, targets: torch.Tensor, *, k: int = 10, chunk: int = DEFAULT_CHUNK
) -> torch.Tensor:
    """The full CSLS matrix ``[n_q, n_t]``, ``2 cos(x, y) - r_T(x) - r_S(y)`` (for inspection).

    Unlike the metrics, queries and targets need not be paired (row counts may differ).

    Raises:
        UsageError: ``USAGE`` on non-2-D inputs, mismatched widths, or ``k < 1``.
    """
    for t_ in (queries, targets):
        if not isinstance(t_, torch.Tensor) or t_.dim() != 2 or not t_.is_floating_point():
            raise UsageError("csls_scores: inputs must be 2-D float tensors")
    if queries.shape[1] != targets.shape[1] or k < 1:
        raise UsageError("csls_scores: widths must match and k must be >= 1")
    q = F.normalize(queries, dim=1, eps=1e-12)
    t = F.normalize(targets, dim=1, eps=1e-12)
    r_t = _topk_mean_rows(q, t, min(k, t.shape[0]), chunk)
    r_s = _topk_mean_rows(t, q, min(k, q.shape[0]), chunk)
    return 2.0 * (q @ t.T) - r_t[:, None] - r_s[None, :]


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear CKA between paired representations ``x [n, d1]`` and ``y [n, d2]``.

    Computed in feature space (``d1 x d2`` cross-covariance) or sample space (``n x n`` Gram
    matrices), whichever needs fewer multiply-adds; both give the same value.

    Returns:
        0-d tensor in ``[0, 1]``; 0 when either side is constant (no variance).

    Raises:
        UsageError: ``USAGE`` on unpaired inputs.
    """
    _check_rows(x, y, same_width=False, what="linear_cka")
    xc = x - x.mean(dim=0, keepdim=True)
    yc = y - y.mean(dim=0, keepdim=True)
    nx, ny = torch.linalg.matrix_norm(xc), torch.linalg.matrix_norm(yc)
    if nx == 0 or ny == 0:
        return torch.zeros((), device=x.device, dtype=x.dtype)
    # CKA is scale invariant: normalising first keeps float32 sums far from overflow.
    xc, yc = xc / nx, yc / ny
    n, d1, d2 = x.shape[0], x.shape[1], y.shape[1]
    if n * n * (d1 + d2) < n * (d1 * d2 + d1 * d1 + d2 * d2):
        k, lg = xc @ xc.T, yc @ yc.T
        return (k * lg).sum() / (torch.linalg.matrix_norm(k) * torch.linalg.matrix_norm(lg))
    cross = torch.linalg.matrix_norm(yc.T @ xc) ** 2
    return cross / (torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc))


def relative_residual(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||y - y_hat||_F / ||y - mean(y)||_F`` (the mean over rows of ``y``).

    Returns:
        0-d tensor, ``inf`` when ``y`` has no variance and the prediction is not exact.

    Raises:
        UsageError: ``USAGE`` on unpaired inputs.
    """
    _check_rows(y_hat, y, same_width=True, what="relative_residual")
    spread = torch.linalg.matrix_norm(y - y.mean(dim=0, keepdim=True))
    return torch.linalg.matrix_norm(y - y_hat) / spread


def evaluate_alignment(
    mapping: Callable[[torch.Tensor], torch.Tensor],
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    k: int = 10,
    chunk: int = DEFAULT_CHUNK,
    max_queries: int | None = MAX_QUERIES,
) -> dict[str, Any]:
    """Every metric of a fitted map on held-out anchors, as plain numbers.

    The retrieval rates score at most ``max_queries`` queries (a fixed sample beyond, each
    against every row; see :func:`retrieval_top1`), so every metric is linear in ``n``.

    Args:
        mapping: a fitted map (any callable ``[n, d_T] -> [n, d_S]``).
        x_test: teacher states of the held-out anchors ``[n, d_T]``.
        y_test: the matching student states ``[n, d_S]``.
        k: CSLS neighbourhood size.
        chunk: query rows scored at once by the retrieval metrics.

    Returns:
        ``{"n", "cosine", "cosine_centred", "top1_nn", "top1_csls", "cka", "residual"}``:
        ``cosine_centred`` is the mean cosine after subtracting the student test mean from both
        sides, which removes the credit a map gets for merely reproducing a large common offset
        (hidden states are often anisotropic). ``cka`` is between mapped teacher and student.

    Raises:
        UsageError: ``USAGE`` on fewer than 2 rows or shapes that do not pair up.
    """
    if not isinstance(x_test, torch.Tensor) or x_test.dim() != 2 or x_test.shape[0] < 2:
        raise UsageError("evaluate_alignment needs at least 2 held-out rows [n, d_T]")
    with torch.no_grad():
        y_hat = mapping(x_test)
        _check_rows(y_hat, y_test, same_width=True, what="evaluate_alignment")
        mu = y_test.mean(dim=0, keepdim=True)
        return {
            "n": int(x_test.shape[0]),
            "cosine": float(mean_cosine(y_hat, y_test)),
            "cosine_centred": float(mean_cosine(y_hat - mu, y_test - mu)),
            "top1_nn": float(
                retrieval_top1(y_hat, y_test, score="nn", chunk=chunk, max_queries=max_queries)
            ),
            "top1_csls": float(
                retrieval_top1(
                    y_hat, y_test, score="csls", k=k, chunk=chunk, max_queries=max_queries
                )
            ),
            "cka": float(linear_cka(y_hat, y_test)),
            "residual": float(relative_residual(y_hat, y_test)),
        }
