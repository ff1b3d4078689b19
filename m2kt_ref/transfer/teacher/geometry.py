"""Geometry of a teacher's concept states: numpy in, numpy out, no model and no packet.

Per-concept statistics (mean, principal directions, spread), cosine and k-nearest-neighbour
similarity, agglomerative clusters at several cuts, nearest-concept decoding, and the relative
error of reduced-precision storage. Generation (:mod:`~m2kt_ref.transfer.teacher.generate`)
assembles these into a packet; they are separate so they can be tested against slow references.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "VARIANCE_FLOOR",
    "Cluster",
    "ConceptStatistics",
    "abstraction_clusters",
    "cluster_cut_sizes",
    "concept_statistics",
    "cosine_matrix",
    "knn_similarity",
    "nearest_concepts",
    "relative_rms_error",
]


#: A principal direction whose variance is at most this fraction of the total is dropped.
VARIANCE_FLOOR = 1e-12


@dataclass(frozen=True)
class ConceptStatistics:
    """Centroid and local manifold of one concept's probe states.

    Attributes:
        embedding: centroid ``[d]`` (float64).
        directions: ``[k, d]`` orthonormal principal directions, or ``None`` (fewer than 2
            samples, or no direction with non-zero variance).
        variances: ``[k]`` population variances along ``directions`` (non-increasing), or None.
        spread: RMS distance of the samples to the centroid.
        support: number of samples.
    """

    embedding: np.ndarray
    directions: np.ndarray | None
    variances: np.ndarray | None
    spread: float
    support: int


def concept_statistics(states: np.ndarray, components: int) -> ConceptStatistics:
    """Centroid, leading principal directions, their variances, spread and support.

    Args:
        states: ``[n, d]`` samples (n >= 1).
        components: most principal directions to keep (``R``); ``k = min(R, n - 1, d)`` before
            directions with (near) zero variance are dropped.

    Returns:
        a :class:`ConceptStatistics`. Variances use the population divisor ``n``, so with all
        ``n - 1`` directions kept their sum equals ``spread ** 2``. Each direction's sign makes
        its largest-magnitude coordinate positive (first one on ties).
    """
    x = np.asarray(states, dtype=np.float64)
    n = x.shape[0]
    if x.ndim != 2 or n < 1:
        raise ValueError("concept_statistics wants states [n >= 1, d]")
    centroid = x.mean(axis=0)
    centred = x - centroid
    spread = math.sqrt(float(np.mean(np.sum(centred * centred, axis=1))))
    k = min(int(components), n - 1, x.shape[1])
    if k < 1:
        return ConceptStatistics(centroid, None, None, spread, n)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    variances = (s * s) / n
    total = float(variances.sum())
    keep = [i for i in range(k) if total > 0 and variances[i] > VARIANCE_FLOOR * total]
    if not keep:
        return ConceptStatistics(centroid, None, None, spread, n)
    directions = vt[keep].copy()
    for row in directions:
        if row[int(np.argmax(np.abs(row)))] < 0:
            row *= -1.0
    return ConceptStatistics(centroid, directions, variances[keep].copy(), spread, n)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities ``[len(a), len(b)]`` in float64; a zero vector has cosine 0 with all."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)

    def unit(m: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)

    return np.clip(unit(a) @ unit(b).T, -1.0, 1.0)


def knn_similarity(embeddings: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    """Each concept's ``k`` nearest other concepts by cosine: ``(i, j, max(cos, 0))`` triples.

    Neighbours are ranked by decreasing cosine, ties broken by the lower index; ``k`` is capped at
    ``n - 1``. Triples come out grouped by ``i`` (ascending), nearest first.
    """
    n = len(embeddings)
    k = min(int(k), n - 1)
    if k < 1:
        return []
    cos = cosine_matrix(embeddings, embeddings)
    ranked = cos.copy()
    np.fill_diagonal(ranked, -np.inf)  # never one's own neighbour
    # a stable sort of -cos keeps equal cosines in index order: ties go to the lower index
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    return [(i, int(j), max(float(cos[i, j]), 0.0)) for i in range(n) for j in order[i]]


def cluster_cut_sizes(n: int, levels: int) -> list[int]:
    """Requested cluster counts of the cuts, coarsest first: ``round(n ** (j / (L + 1)))``.

    ``j`` runs 1..L; counts are clamped to ``[2, n - 1]`` and repeats dropped, so a small concept
    set gets fewer cuts. Empty when ``n < 3`` or ``levels < 1``.
    """
    if n < 3 or levels < 1:
        return []
    sizes: list[int] = []
    for j in range(1, levels + 1):
        c = min(max(round(n ** (j / (levels + 1))), 2), n - 1)
        if c not in sizes:
            sizes.append(c)
    return sizes


@dataclass(frozen=True)
class Cluster:
    """A non-singleton cluster of concepts (indices into the embeddings), at a cut level."""

    level: int
    members: tuple[int, ...]


def abstraction_clusters(embeddings: np.ndarray, levels: int) -> tuple[list[Cluster], list[int]]:
    """Average-linkage hierarchical clustering under cosine distance, cut at a few levels.

    Args:
        embeddings: ``[n, d]`` concept centroids.
        levels: number of cuts ``L`` (see :func:`cluster_cut_sizes`).

    Returns:
        ``(clusters, cut_sizes)``: the distinct non-singleton member sets over all cuts, each at
        the coarsest cut where it appears (level 0 = coarsest), ordered by level then by smallest
        member index; and the requested cluster count of each cut. The cuts are nested, so any
        two clusters are disjoint or one contains the other.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(embeddings)
    sizes = cluster_cut_sizes(n, levels)
    if not sizes:
        return [], sizes
    dist = 1.0 - cosine_matrix(embeddings, embeddings)
    dist = np.clip((dist + dist.T) / 2.0, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    seen: set[tuple[int, ...]] = set()
    clusters: list[Cluster] = []
    for level, size in enumerate(sizes):
        labels = fcluster(tree, t=size, criterion="maxclust")
        groups: dict[int, list[int]] = {}
        for i, lab in enumerate(labels):
            groups.setdefault(int(lab), []).append(i)
        for members in sorted((tuple(g) for g in groups.values()), key=lambda g: g[0]):
            if len(members) >= 2 and members not in seen:
                seen.add(members)
                clusters.append(Cluster(level, members))
    return clusters, sizes


def nearest_concepts(states: np.ndarray, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the concept with the highest cosine to each state (lowest index on ties).

    Returns:
        ``(indices int64 [m], similarities float64 [m])``.
    """
    cos = cosine_matrix(states, embeddings)
    idx = np.argmax(cos, axis=1)  # first maximum: the lowest index wins ties
    return idx.astype(np.int64), cos[np.arange(len(idx)), idx]


def relative_rms_error(originals: Iterable[np.ndarray], restored: Iterable[np.ndarray]) -> float:
    """``sqrt(sum((restored - original)^2) / sum(original^2))`` over a group of tensors (float64).

    0.0 when the originals are all zero and restored equals them.
    """
    num = den = 0.0
    for a, b in zip(originals, restored, strict=True):
        a64 = np.asarray(a, dtype=np.float64)
        diff = np.asarray(b, dtype=np.float64) - a64
        num += float(np.sum(diff * diff))
        den += float(np.sum(a64 * a64))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return math.sqrt(num / den)
