"""Live analysis: the collective pipeline run on the database, cached until new votes arrive.

The same functions as `charter collective analyze` (`analyze`, `summarize`) on the same
`Conversation` that ingesting the export gives, so the page's GIC equals the command's. The
statements' extremity (distance from the origin of the opinion map) feeds the statement priority.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from charter.assembly.db import Database, vote_history
from charter.assembly.export import load_conversation
from charter.collective.analysis import AnalysisConfig, AnalysisSummary, analyze, summarize

MAP_SIZE = 400  # the opinion map's SVG viewBox, in user units


@dataclass(frozen=True)
class MapPoint:
    x: float
    y: float
    group: int  # -1: not grouped


@dataclass(frozen=True)
class LiveAnalysis:
    n_votes: int
    summary: AnalysisSummary | None  # None while there are too few votes to analyze
    problem: str | None
    points: tuple[MapPoint, ...]
    extremity: dict[int, float]  # statement id → distance from the map's origin
    groups: dict[str, int]  # participant id → group id, for those grouped


def _svg_points(xy: np.ndarray, labels: np.ndarray) -> tuple[MapPoint, ...]:
    if xy.shape[0] == 0:
        return ()
    span = float(np.abs(xy).max()) or 1.0
    half = MAP_SIZE / 2
    scale = (half - 10) / span
    return tuple(
        MapPoint(x=round(half + float(x) * scale, 1), y=round(half - float(y) * scale, 1),
                 group=int(g))
        for (x, y), g in zip(xy.tolist(), labels.tolist(), strict=True)
    )  # fmt: skip


def run_analysis(db: Database, cid: int, config: AnalysisConfig | None = None) -> LiveAnalysis:
    """Analyze conversation `cid` now; too little data gives `summary=None` and the reason."""
    conv = load_conversation(db, cid)
    n = conv.n_votes
    if n == 0 or len(conv.participant_ids) < 2:
        return LiveAnalysis(n, None, "too few votes to analyze yet", (), {}, {})
    try:
        result = analyze(conv, config)
    except (ValueError, IndexError) as e:  # k-means needs a few distinct participants
        return LiveAnalysis(n, None, f"too few votes to analyze yet ({e})", (), {}, {})
    summary = summarize(result)
    norms = np.linalg.norm(result.projection.statements[:, :2], axis=1)
    extremity = {int(s.statement_id): float(v) for s, v in zip(conv.statements, norms, strict=True)}
    points = _svg_points(result.projection.participants[:, :2], result.labels)
    groups = {
        pid: result.group_ids[g]
        for pid, g in zip(result.matrix.participant_ids, result.labels.tolist(), strict=True)
        if g >= 0
    }
    return LiveAnalysis(n, summary, None, points, extremity, groups)


class AnalysisCache:
    """The latest analysis per conversation, recomputed only after new votes."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[int, tuple[int, LiveAnalysis]] = {}
        self._lock = threading.Lock()

    def version(self, cid: int) -> int:
        """Votes ever cast (history included): changes whenever any vote does."""
        with self.db.read() as conn:
            n = conn.execute(
                select(func.count())
                .select_from(vote_history)
                .where(vote_history.c.conversation_id == cid)
            ).scalar_one()
        return int(n)

    def get(self, cid: int) -> LiveAnalysis:
        with self._lock:
            version = self.version(cid)
            cached = self._cache.get(cid)
            if cached is not None and cached[0] == version:
                return cached[1]
            fresh = run_analysis(self.db, cid)
            self._cache[cid] = (version, fresh)
            return fresh

    def extremity(self, cid: int) -> dict[int, float]:
        """The last computed extremities (never computes: the participant page stays fast)."""
        cached = self._cache.get(cid)
        return {} if cached is None else cached[1].extremity
