"""PCA of the vote matrix with column-mean imputation and Polis's sparsity-aware scaling.

Third stage of the pipeline. Imputing every unseen cell with its column's mean makes the centred
matrix exactly as sparse as the votes (an imputed cell centres to 0), so the principal components
come from a truncated SVD of a sparse matrix, never from a dense participants × statements array.

As in Polis (`math/pca.clj`, `conversation.clj`): moderated-out statements are zeroed for every
participant (a column of zeros, which adds no variance but counts as a vote in the scaling), the
PCA runs over every participant who voted, and a participant's projection is multiplied by
`sqrt(n_statements / n_seen)` so that people who saw few statements are not all bunched at the
centre. A statement's position is that of a virtual participant who agreed with it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from charter.collective.matrix import VoteMatrix

DENSE_LIMIT = 20_000  # cells; below this a dense SVD is as fast as ARPACK and needs no start


@dataclass(frozen=True)
class Projection:
    """Every intermediate value of the PCA step; arrays follow the matrix's row/column order."""

    center: NDArray[np.float64]  # (S,) mean vote per statement (0 when zeroed or unvoted)
    components: NDArray[np.float64]  # (2, S) unit principal axes, largest variance first
    explained_variance: NDArray[np.float64]  # (2,)
    explained_variance_ratio: NDArray[np.float64]  # (2,)
    n_columns: int  # statements with at least one vote: Polis's `n-cmnts`
    n_seen: NDArray[np.int64]  # (P,) votes counted for scaling (zeroed columns count)
    scale: NDArray[np.float64]  # (P,) sqrt(n_columns / max(1, n_seen))
    unscaled: NDArray[np.float64]  # (P, 2) centred votes · components
    participants: NDArray[np.float64]  # (P, 2) unscaled * scale
    statements: NDArray[np.float64]  # (S, 2)


def _sign_fixed(vt: NDArray[np.float64]) -> NDArray[np.float64]:
    """Make each axis's largest-magnitude loading positive, so the map is deterministic."""
    out = vt.copy()
    for row in out:
        if row.size and row[np.argmax(np.abs(row))] < 0:
            row *= -1
    return out


def _top_axes(
    centred: sp.csr_matrix, n_components: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(singular values, right singular vectors) of the centred matrix, largest first."""
    n_rows, n_cols = centred.shape
    k = min(n_components, n_rows, n_cols)
    if k == 0:
        return np.zeros(0), np.zeros((0, n_cols))
    if n_rows * n_cols <= DENSE_LIMIT or k >= min(n_rows, n_cols) - 1:
        _, s, vt = np.linalg.svd(centred.toarray(), full_matrices=False)
        return s[:k], vt[:k]
    from scipy.sparse.linalg import svds  # type: ignore[import-untyped]

    # ARPACK with a seeded start vector: deterministic, and exact to its tolerance.
    v0 = np.random.default_rng(seed).standard_normal(min(n_rows, n_cols))
    _, s, vt = svds(centred, k=k, v0=v0, solver="arpack")
    order = np.argsort(-s)
    return s[order], vt[order]


def project(
    matrix: VoteMatrix,
    mod_out: NDArray[np.bool_],
    *,
    n_components: int = 2,
    seed: int = 0,
) -> Projection:
    """Participants' and statements' coordinates in the plane of the first two components."""
    n_rows, n_cols_all = matrix.shape
    voted = matrix.votes_per_statement > 0
    zeroed = mod_out & voted
    active = ~mod_out[matrix.cols]
    rows, cols = matrix.rows[active], matrix.cols[active]
    values = matrix.values[active].astype(np.float64)

    sums = np.bincount(cols, weights=values, minlength=n_cols_all)
    counts = np.bincount(cols, minlength=n_cols_all)
    center = np.divide(sums, counts, out=np.zeros(n_cols_all), where=counts > 0)
    centred = sp.csr_matrix((values - center[cols], (rows, cols)), shape=matrix.shape)

    s, vt = _top_axes(centred, n_components, seed)
    vt = _sign_fixed(vt)
    components = np.zeros((n_components, n_cols_all))
    components[: vt.shape[0]] = vt
    dof = max(n_rows - 1, 1)
    explained = np.zeros(n_components)
    explained[: s.shape[0]] = s**2 / dof
    total = float(np.sum(centred.data**2)) / dof
    ratio = explained / total if total > 0 else np.zeros(n_components)

    n_columns = int(voted.sum())
    n_seen = np.bincount(rows, minlength=n_rows).astype(np.int64) + int(zeroed.sum())
    scale = np.sqrt(n_columns / np.maximum(n_seen, 1))
    unscaled = np.asarray(centred @ components.T)
    statements = ((1.0 - center)[:, None] * components.T) * np.sqrt(max(n_columns, 1))
    statements[~voted | mod_out] = 0.0
    return Projection(
        center=center,
        components=components,
        explained_variance=explained,
        explained_variance_ratio=ratio,
        n_columns=n_columns,
        n_seen=n_seen,
        scale=scale,
        unscaled=unscaled,
        participants=unscaled * scale[:, None],
        statements=statements,
    )
