"""The participant × statement vote matrix (sparse) and Polis's participant filter.

Second stage of the pipeline, after ingest. Cells hold +1 agree, -1 disagree, 0 pass; a cell that
is not stored was not seen. Passes are real votes, so "seen" is a separate pattern and never
inferred from non-zero values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from charter.collective.conversation import Conversation


@dataclass(frozen=True)
class VoteMatrix:
    """Votes as coordinates (`rows`, `cols`, `values`), with sparse views built on demand."""

    participant_ids: tuple[str, ...]
    statement_ids: tuple[str, ...]
    rows: NDArray[np.int32]
    cols: NDArray[np.int32]
    values: NDArray[np.int8]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.participant_ids), len(self.statement_ids)

    def _pattern(self, mask: NDArray[np.bool_]) -> sp.csr_matrix:
        ones = np.ones(int(mask.sum()), dtype=np.float64)
        return sp.csr_matrix((ones, (self.rows[mask], self.cols[mask])), shape=self.shape)

    @cached_property
    def seen(self) -> sp.csr_matrix:
        """1.0 where a participant voted (agree, disagree or pass)."""
        return self._pattern(np.ones(self.values.shape[0], dtype=bool))

    @cached_property
    def agree(self) -> sp.csr_matrix:
        return self._pattern(self.values == 1)

    @cached_property
    def disagree(self) -> sp.csr_matrix:
        return self._pattern(self.values == -1)

    @cached_property
    def votes_per_participant(self) -> NDArray[np.int64]:
        return np.bincount(self.rows, minlength=self.shape[0]).astype(np.int64)

    @cached_property
    def votes_per_statement(self) -> NDArray[np.int64]:
        return np.bincount(self.cols, minlength=self.shape[1]).astype(np.int64)

    def dense(self) -> NDArray[np.float64]:
        """The matrix with NaN for "not seen" (for small data and tests only)."""
        out = np.full(self.shape, np.nan)
        out[self.rows, self.cols] = self.values
        return out


def vote_matrix(conv: Conversation) -> VoteMatrix:
    return VoteMatrix(
        participant_ids=conv.participant_ids,
        statement_ids=tuple(conv.statement_ids),
        rows=conv.vote_participant,
        cols=conv.vote_statement,
        values=conv.vote_value,
    )


def participant_filter(
    matrix: VoteMatrix, min_votes: int | None = None, greedy_n: int = 15
) -> NDArray[np.bool_]:
    """Who is clustered: Polis's `in-conv` rule.

    A participant is in with at least `min_votes` votes (default `min(7, statements with a
    vote)`); when that admits fewer than `greedy_n` people, the most active others are added
    until there are `greedy_n` (as Polis does for young conversations). Ties keep id order.

    >>> m = VoteMatrix(("a", "b", "c"), ("1", "2"), np.array([0, 0, 1], np.int32),
    ...                np.array([0, 1, 0], np.int32), np.array([1, -1, 0], np.int8))
    >>> participant_filter(m, greedy_n=0).tolist()
    [True, False, False]
    >>> participant_filter(m, greedy_n=2).tolist()
    [True, True, False]
    """
    counts = matrix.votes_per_participant
    if min_votes is None:
        min_votes = min(7, int((matrix.votes_per_statement > 0).sum()))
    keep = counts >= min_votes
    missing = greedy_n - int(keep.sum())
    if missing > 0:
        candidates = np.flatnonzero(~keep & (counts > 0))
        order = candidates[np.argsort(-counts[candidates], kind="stable")]
        keep[order[:missing]] = True
    return keep
