"""Polis's per-group statement statistics, group-informed consensus, and statement selection.

Fifth stage of the pipeline. Ported from Polis's `math/repness.clj`, `stats.clj` and
`conversation.clj`, with agree = +1 (Polis counts its internal -1 as agree; the numbers are the
same). For a statement and a group g:

- `na`, `nd`: agrees and disagrees in g; `ns`: votes seen in g, passes included;
- `pa = (na + 1) / (ns + 2)`, `pd = (nd + 1) / (ns + 2)` (a +1 prior);
- `pat`, `pdt`: Polis's one-proportion test of `pa`, `pd` against 1/2;
- `ra = pa / pa_rest`, `rd` likewise, where "rest" pools every other group (representativeness);
- `rat`, `rdt`: the two-proportion test of g against the rest.

Group-informed consensus is `GIC = Π_g (na_g + 1) / (ns_g + 2)`: high only when every group
agrees. A z value is significant when above 1.2816 (Polis's `z-sig-90?`, one-sided 90 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import ArrayLike, NDArray

from charter.collective.matrix import VoteMatrix

Z_90 = 1.2816
Direction = Literal["agree", "disagree"]


def prop_test(succ: ArrayLike, n: ArrayLike) -> NDArray[np.float64]:
    """Polis's one-proportion z statistic, with one pseudo-count: 2·√(n+1)·((s+1)/(n+1) − ½).

    >>> float(prop_test(0, 0))
    1.0
    >>> round(float(prop_test(8, 10)), 6)
    2.110579
    """
    s = np.asarray(succ, dtype=np.float64) + 1
    m = np.asarray(n, dtype=np.float64) + 1
    return np.asarray(2.0 * np.sqrt(m) * (s / m - 0.5))


def two_prop_test(
    succ_in: ArrayLike, succ_out: ArrayLike, n_in: ArrayLike, n_out: ArrayLike
) -> NDArray[np.float64]:
    """Polis's two-proportion z statistic (each count +1); 0 where the pooled rate is 1.

    >>> round(float(two_prop_test(9, 1, 10, 10)), 6)
    3.425395
    >>> float(two_prop_test(5, 5, 5, 5))
    0.0
    """
    s1 = np.asarray(succ_in, dtype=np.float64) + 1
    s2 = np.asarray(succ_out, dtype=np.float64) + 1
    n1 = np.asarray(n_in, dtype=np.float64) + 1
    n2 = np.asarray(n_out, dtype=np.float64) + 1
    pi1, pi2 = s1 / n1, s2 / n2
    pi_hat = (s1 + s2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (pi1 - pi2) / np.sqrt(pi_hat * (1 - pi_hat) * (1 / n1 + 1 / n2))
    return np.asarray(np.where(pi_hat == 1, 0.0, z))


@dataclass(frozen=True)
class VoteCounts:
    """Per group (rows) and statement (columns): agrees, disagrees, and votes seen."""

    na: NDArray[np.int64]
    nd: NDArray[np.int64]
    ns: NDArray[np.int64]

    @property
    def n_groups(self) -> int:
        return int(self.na.shape[0])


def count_votes(matrix: VoteMatrix, labels: NDArray[np.int64], n_groups: int) -> VoteCounts:
    """Count votes by group; `labels[i]` is participant i's group, or -1 for "in no group"."""
    members = np.flatnonzero(labels >= 0)
    membership = sp.csr_matrix(
        (np.ones(members.shape[0]), (labels[members], members)),
        shape=(n_groups, matrix.shape[0]),
    )

    def total(pattern: sp.csr_matrix) -> NDArray[np.int64]:
        dense: NDArray[np.float64] = (membership @ pattern).toarray()
        return np.rint(dense).astype(np.int64)

    return VoteCounts(na=total(matrix.agree), nd=total(matrix.disagree), ns=total(matrix.seen))


@dataclass(frozen=True)
class GroupStats:
    """Polis's comment statistics for every (group, statement); each array is (G, S)."""

    counts: VoteCounts
    pa: NDArray[np.float64]
    pd: NDArray[np.float64]
    pat: NDArray[np.float64]
    pdt: NDArray[np.float64]
    ra: NDArray[np.float64]
    rd: NDArray[np.float64]
    rat: NDArray[np.float64]
    rdt: NDArray[np.float64]


def group_stats(counts: VoteCounts) -> GroupStats:
    na, nd, ns = counts.na, counts.nd, counts.ns
    rest_na = na.sum(axis=0, keepdims=True) - na
    rest_nd = nd.sum(axis=0, keepdims=True) - nd
    rest_ns = ns.sum(axis=0, keepdims=True) - ns
    pa = (na + 1) / (ns + 2)
    pd = (nd + 1) / (ns + 2)
    return GroupStats(
        counts=counts,
        pa=pa,
        pd=pd,
        pat=prop_test(na, ns),
        pdt=prop_test(nd, ns),
        ra=pa / ((rest_na + 1) / (rest_ns + 2)),
        rd=pd / ((rest_nd + 1) / (rest_ns + 2)),
        rat=two_prop_test(na, rest_na, ns, rest_ns),
        rdt=two_prop_test(nd, rest_nd, ns, rest_ns),
    )


def group_informed_consensus(counts: VoteCounts) -> NDArray[np.float64]:
    """`GIC(s) = Π_g (na_g + 1) / (ns_g + 2)` for every statement.

    >>> c = VoteCounts(np.array([[3], [1]]), np.array([[0], [1]]), np.array([[4], [2]]))
    >>> float(group_informed_consensus(c)[0])  # (4/6) * (2/4)
    0.3333333333333333
    """
    return np.asarray(np.prod((counts.na + 1) / (counts.ns + 2), axis=0))


@dataclass(frozen=True)
class ConsensusPick:
    """A statement most participants (all groups pooled) agree, or disagree, with."""

    statement_id: str
    direction: Direction
    n_success: int
    n_trials: int
    p_success: float
    p_test: float


def select_consensus(
    counts: VoteCounts,
    statement_ids: Sequence[str],
    excluded: NDArray[np.bool_],
    *,
    pick_max: int = 5,
    z: float = Z_90,
) -> dict[Direction, list[ConsensusPick]]:
    """Polis's `select-consensus-comments`: p > 1/2 and a significant one-proportion test,
    ranked by p·z, at most `pick_max` per direction. `counts` has a single (pooled) row."""
    na, nd, ns = counts.na[0], counts.nd[0], counts.ns[0]
    out: dict[Direction, list[ConsensusPick]] = {}
    sides: tuple[tuple[Direction, NDArray[np.int64]], ...] = (("agree", na), ("disagree", nd))
    for direction, n in sides:
        p = (n + 1) / (ns + 2)
        t = prop_test(n, ns)
        ok = np.flatnonzero((p > 0.5) & (t > z) & ~excluded)
        ranked = ok[np.argsort(-(p[ok] * t[ok]), kind="stable")][:pick_max]
        out[direction] = [
            ConsensusPick(
                statement_id=statement_ids[i],
                direction=direction,
                n_success=int(n[i]),
                n_trials=int(ns[i]),
                p_success=float(p[i]),
                p_test=float(t[i]),
            )
            for i in ranked
        ]
    return out


@dataclass(frozen=True)
class RepPick:
    """One of a group's most representative statements (Polis's finalized repness entry)."""

    statement_id: str
    direction: Direction
    n_success: int
    n_trials: int
    p_success: float
    p_test: float
    repness: float
    repness_test: float
    best_agree: bool = False

    @property
    def metric(self) -> float:
        return self.repness * self.repness_test * self.p_success * self.p_test


def _finalize(stats: GroupStats, g: int, j: int, sid: str, best_agree: bool = False) -> RepPick:
    c = stats.counts
    if stats.rat[g, j] > stats.rdt[g, j]:
        return RepPick(
            sid, "agree", int(c.na[g, j]), int(c.ns[g, j]), float(stats.pa[g, j]),
            float(stats.pat[g, j]), float(stats.ra[g, j]), float(stats.rat[g, j]), best_agree,
        )  # fmt: skip
    return RepPick(
        sid, "disagree", int(c.nd[g, j]), int(c.ns[g, j]), float(stats.pd[g, j]),
        float(stats.pdt[g, j]), float(stats.rd[g, j]), float(stats.rdt[g, j]), best_agree,
    )  # fmt: skip


def select_representative(
    stats: GroupStats,
    statement_ids: Sequence[str],
    excluded: NDArray[np.bool_],
    *,
    pick_max: int = 5,
    z: float = Z_90,
) -> list[list[RepPick]]:
    """Polis's `select-rep-comments`, per group: statements whose agree (or disagree) rate is
    significant both within the group and against the rest, sorted by ra·rat·pa·pat, with the
    group's best-agreed statement first, at most `pick_max`, agrees before disagrees. A group
    with no significant statement still gets its single best one."""
    c = stats.counts
    result: list[list[RepPick]] = []
    for g in range(c.n_groups):
        sufficient: list[RepPick] = []
        best: RepPick | None = None
        best_agree: int | None = None  # statement index
        for j in np.flatnonzero(~excluded).tolist():
            sid = statement_ids[j]
            passes = (stats.rat[g, j] > z and stats.pat[g, j] > z) or (
                stats.rdt[g, j] > z and stats.pdt[g, j] > z
            )
            if passes:
                sufficient.append(_finalize(stats, g, j, sid))
            if not sufficient and (
                best is None or max(stats.rat[g, j], stats.rdt[g, j]) > best.repness_test
            ):
                best = _finalize(stats, g, j, sid)
            if _beats_best_agree(stats, g, j, best_agree, z):
                best_agree = j
        head: list[RepPick] = []
        if best_agree is not None:
            head = [_finalize(stats, g, best_agree, statement_ids[best_agree], best_agree=True)]
        elif best is not None:
            head = [best]
        if not sufficient:
            result.append(head)
            continue
        lead = head[0].statement_id if best_agree is not None else None
        rest = [r for r in sufficient if r.statement_id != lead]
        rest.sort(key=lambda r: -r.metric)
        picked = ([head[0]] if best_agree is not None else []) + rest
        picked = picked[:pick_max]
        result.append(
            [r for r in picked if r.direction == "agree"]
            + [r for r in picked if r.direction == "disagree"]
        )
    return result


def _beats_best_agree(stats: GroupStats, g: int, j: int, best: int | None, z: float) -> bool:
    na, nd = stats.counts.na[g, j], stats.counts.nd[g, j]
    if na == 0 and nd == 0:
        return False
    ra, rat, pa, pat = stats.ra[g], stats.rat[g], stats.pa[g], stats.pat[g]
    if best is not None and ra[best] > 1.0:
        return bool(ra[j] * rat[j] * pa[j] * pat[j] > ra[best] * rat[best] * pa[best] * pat[best])
    if best is not None:
        return bool(pa[j] * pat[j] > pa[best] * pat[best])
    return bool(pat[j] > z or (ra[j] > 1.0 and pa[j] > 0.5))
