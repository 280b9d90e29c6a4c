"""Opinion groups: k-means in the PCA plane, k in 2..5 chosen by silhouette (seeded).

Fourth stage of the pipeline. Two methods:

- `polis` (default), Polis's own two levels (`conversation.clj`): up to 100 "base clusters" by
  k-means over the participants, then k-means over the base clusters' centres weighted by their
  sizes, for k = 2 .. min(k_max, 2 + n_base // 12); the silhouette is computed over the base
  centres. It is also what keeps a 10,000-participant silhouette cheap (≤ 100 points).
- `direct` (what red-dwarf 0.4 does): k-means over the participants themselves, the silhouette
  over a seeded random subsample of at most `silhouette_sample` participants when there are more.

Groups are renumbered by size (group 0 is the largest), so ids do not depend on k-means' order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

ClusterMethod = Literal["polis", "direct"]


@dataclass(frozen=True)
class Clustering:
    """Every intermediate value of the clustering step, for the clustered participants only."""

    method: ClusterMethod
    k: int
    labels: NDArray[np.int64]  # (n,) group of each clustered participant
    centers: NDArray[np.float64]  # (k, 2)
    silhouettes: dict[int, float] = field(default_factory=dict)  # k → silhouette
    base_labels: NDArray[np.int64] | None = None  # (n,) base cluster of each participant
    base_centers: NDArray[np.float64] | None = None  # (b, 2)
    base_weights: NDArray[np.int64] | None = None  # (b,) members per base cluster
    silhouette_points: int = 0  # how many points each silhouette was computed over


def _by_size(
    labels: NDArray[np.int64], weights: NDArray[np.int64] | None = None
) -> NDArray[np.int64]:
    """Renumber labels so that group 0 has the most members (ties: lower old label first)."""
    sizes = np.bincount(labels, weights=weights)
    order = np.lexsort((np.arange(sizes.shape[0]), -sizes))
    remap = np.empty_like(order)
    remap[order] = np.arange(order.shape[0])
    return remap[labels].astype(np.int64)


def _centers(points: NDArray[np.float64], labels: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    return np.stack([points[labels == g].mean(axis=0) for g in range(k)])


def _one_group(points: NDArray[np.float64], method: ClusterMethod) -> Clustering:
    labels = np.zeros(points.shape[0], dtype=np.int64)
    center = points.mean(axis=0, keepdims=True) if points.shape[0] else np.zeros((1, 2))
    return Clustering(method=method, k=1, labels=labels, centers=center)


def _kmeans(
    points: NDArray[np.float64],
    k: int,
    seed: int,
    n_init: int,
    weights: NDArray[np.float64] | None = None,
) -> NDArray[np.int64]:
    import warnings

    from sklearn.cluster import KMeans  # type: ignore[import-untyped]
    from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]

    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    with warnings.catch_warnings():
        # Fewer distinct clusters than asked for (near-identical points) is handled by callers.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(points, sample_weight=weights)
    return np.asarray(model.labels_, dtype=np.int64)


def _n_distinct(points: NDArray[np.float64]) -> int:
    """Distinct points, ignoring floating-point noise (1e-9) that k-means cannot separate."""
    if points.shape[0] == 0:
        return 0
    return int(np.unique(np.round(points, 9), axis=0).shape[0])


def cluster_polis(
    points: NDArray[np.float64],
    *,
    k_min: int = 2,
    k_max: int = 5,
    base_k: int = 100,
    seed: int = 0,
) -> Clustering:
    """Polis's base clusters, then weighted group k-means chosen by silhouette over bases."""
    from sklearn.metrics import silhouette_score  # type: ignore[import-untyped]

    n_unique = _n_distinct(points)
    if n_unique < 2:
        return _one_group(points, "polis")
    n_base = min(base_k, n_unique)
    base_labels = _kmeans(points, n_base, seed, n_init=1)
    used, base_labels = np.unique(base_labels, return_inverse=True)
    base_labels = base_labels.astype(np.int64)
    n_base = used.shape[0]
    base_weights = np.bincount(base_labels, minlength=n_base).astype(np.int64)
    base_centers = _centers(points, base_labels, n_base)
    if n_base == 2:
        # Two distinct opinions only: they are the groups (a silhouette needs three points).
        labels = _by_size(base_labels)
        return Clustering(
            method="polis",
            k=2,
            labels=labels,
            centers=_centers(points, labels, 2),
            base_labels=base_labels,
            base_centers=base_centers,
            base_weights=base_weights,
        )
    top = min(k_max, 2 + n_base // 12, n_base - 1)
    silhouettes: dict[int, float] = {}
    best: tuple[float, int, NDArray[np.int64]] | None = None
    for k in range(k_min, top + 1):
        group_of_base = _kmeans(
            base_centers, k, seed, n_init=10, weights=base_weights.astype(float)
        )
        if np.unique(group_of_base).shape[0] < 2:
            continue
        score = float(silhouette_score(base_centers, group_of_base))
        silhouettes[k] = score
        if best is None or score > best[0]:
            best = (score, k, group_of_base)
    if best is None:
        return _one_group(points, "polis")
    _, k, group_of_base = best
    group_of_base = _by_size(group_of_base, base_weights)
    labels = group_of_base[base_labels]
    return Clustering(
        method="polis",
        k=k,
        labels=labels,
        centers=_centers(points, labels, k),
        silhouettes=silhouettes,
        base_labels=base_labels,
        base_centers=base_centers,
        base_weights=base_weights,
        silhouette_points=n_base,
    )


def cluster_direct(
    points: NDArray[np.float64],
    *,
    k_min: int = 2,
    k_max: int = 5,
    seed: int = 0,
    silhouette_sample: int = 5000,
) -> Clustering:
    """k-means over the participants; silhouette over a seeded subsample when there are many."""
    from sklearn.metrics import silhouette_score

    n = points.shape[0]
    n_unique = _n_distinct(points)
    if n_unique < 2:
        return _one_group(points, "direct")
    sample = n if n <= silhouette_sample else silhouette_sample
    silhouettes: dict[int, float] = {}
    best: tuple[float, int, NDArray[np.int64]] | None = None
    for k in range(k_min, min(k_max, n_unique - 1) + 1):
        labels = _kmeans(points, k, seed, n_init=10)
        if np.unique(labels).shape[0] < 2:
            continue
        score = float(
            silhouette_score(
                points,
                labels,
                sample_size=sample if sample < n else None,
                random_state=seed,
            )
        )
        silhouettes[k] = score
        if best is None or score > best[0]:
            best = (score, k, labels)
    if best is None:
        return _one_group(points, "direct")
    _, k, labels = best
    labels = _by_size(labels)
    return Clustering(
        method="direct",
        k=k,
        labels=labels,
        centers=_centers(points, labels, k),
        silhouettes=silhouettes,
        silhouette_points=sample,
    )
