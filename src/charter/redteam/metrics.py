"""The numbers of a red-team run: attack success rates with intervals, and attack diversity.

An attack success rate is k successes out of n attacks with a Wilson 95% interval. Diversity is
the mean pairwise cosine distance (1 − cosine similarity) between the attacks' unit-length
sentence embeddings: 0 when every attack says the same, about 1 for unrelated texts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from charter.evaluate.stats import wilson_interval

T = TypeVar("T")


def rate(k: int, n: int) -> dict[str, Any]:
    """`k` of `n` as a rate with its Wilson 95% interval (rate None when n is 0).

    >>> rate(5, 10)
    {'k': 5, 'n': 10, 'rate': 0.5, 'ci95': [0.2366, 0.7634]}
    """
    lo, hi = wilson_interval(k, n)
    return {
        "k": k,
        "n": n,
        "rate": round(k / n, 4) if n else None,
        "ci95": [round(lo, 4), round(hi, 4)],
    }


def grouped_rates(
    items: Iterable[T], key: Callable[[T], str], hit: Callable[[T], bool]
) -> dict[str, dict[str, Any]]:
    """`rate` per group, groups in first-seen order.

    >>> grouped_rates([1, 2, 3, 4], key=lambda x: "odd" if x % 2 else "even", hit=lambda x: x > 2)
    {'odd': {'k': 1, 'n': 2, 'rate': 0.5, 'ci95': [0.0945, 0.9055]}, 'even': {'k': 1, 'n': 2, \
'rate': 0.5, 'ci95': [0.0945, 0.9055]}}
    """
    counts: dict[str, list[int]] = {}
    for item in items:
        c = counts.setdefault(key(item), [0, 0])
        c[0] += int(hit(item))
        c[1] += 1
    return {g: rate(k, n) for g, (k, n) in counts.items()}


def mean_pairwise_distance(vectors: NDArray[np.float32]) -> float | None:
    """Mean cosine distance over all pairs of unit-length rows (None for fewer than two rows).

    >>> v = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    >>> round(mean_pairwise_distance(v), 6)  # pairs: 1, 0, 1
    0.666667
    """
    n = len(vectors)
    if n < 2:
        return None
    sims = vectors @ vectors.T
    upper = sims[np.triu_indices(n, k=1)]
    return float(np.mean(1.0 - upper))


def diversity(
    texts: Sequence[str], groups: Sequence[str], embed: Callable[[Sequence[str]], NDArray[Any]]
) -> dict[str, Any]:
    """Mean pairwise embedding distance of all texts and within each group (e.g. round)."""
    vectors = np.asarray(embed(list(texts)), dtype=np.float32)
    out: dict[str, Any] = {"all": _rounded(mean_pairwise_distance(vectors)), "n": len(texts)}
    by: dict[str, Any] = {}
    for g in dict.fromkeys(groups):
        rows = [i for i, x in enumerate(groups) if x == g]
        by[g] = _rounded(mean_pairwise_distance(vectors[rows]))
    out["by_group"] = by
    return out


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
