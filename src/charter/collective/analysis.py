"""The analysis pipeline: one pure function from a `Conversation` to an `Analysis` that keeps
every intermediate value (matrix, filter, PCA, clustering, counts, statistics, selections).

vote matrix → participant filter → PCA + sparsity-aware scaling → groups (k-means by silhouette,
or the Polis export's own group ids) → per-group statistics → GIC → consensus and representative
statements. `write_analysis` turns the result into `analysis.json`, `statements.csv`,
`participants.csv`, `opinion_map.png` and `report.html`; `draft` reads `analysis.json` only.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from charter.collective.clustering import Clustering, ClusterMethod, cluster_direct, cluster_polis
from charter.collective.conversation import Conversation, IngestReport, Moderation
from charter.collective.matrix import VoteMatrix, participant_filter, vote_matrix
from charter.collective.projection import Projection, project
from charter.collective.stats import (
    Z_90,
    ConsensusPick,
    Direction,
    GroupStats,
    RepPick,
    VoteCounts,
    count_votes,
    group_informed_consensus,
    group_stats,
    select_consensus,
    select_representative,
)
from charter.errors import InputError
from charter.records import Strict
from charter.runs import atomic_write_text

ANALYSIS_FILE = "analysis.json"
GroupsFrom = Literal["clustering", "export"]


class AnalysisConfig(Strict):
    """Every knob of the analysis; the defaults reproduce Polis."""

    groups: GroupsFrom = Field(
        "clustering", description="`export`: use the Polis export's group ids, do not cluster."
    )
    clustering: ClusterMethod = Field("polis", description="`polis` (base clusters) or `direct`.")
    min_votes: int | None = Field(
        None, ge=1, description="Votes needed to be clustered; default min(7, #statements)."
    )
    greedy_n: int = Field(15, ge=0, description="Admit the most active until this many are in.")
    k_min: int = Field(2, ge=2)
    k_max: int = Field(5, ge=2)
    base_k: int = Field(100, ge=2, description="Polis's base clusters (method `polis`).")
    silhouette_sample: int = Field(
        5000, ge=10, description="Method `direct`: silhouette over a seeded subsample this big."
    )
    seed: int = 0
    pick_max: int = Field(5, ge=1, description="Consensus / representative statements to pick.")
    z: float = Field(Z_90, description="Significance threshold for the z tests (one-sided 90%).")

    @model_validator(mode="after")
    def _k_range(self) -> AnalysisConfig:
        if self.k_min > self.k_max:
            raise ValueError("k_min must not exceed k_max")
        return self


@dataclass(frozen=True)
class Analysis:
    """The result of `analyze`: inputs, every intermediate value, and the selections."""

    config: AnalysisConfig
    conversation: Conversation
    matrix: VoteMatrix
    mod_out: NDArray[np.bool_]  # (S,) moderated out
    in_conv: NDArray[np.bool_]  # (P,) passed the participant filter (or has an export group)
    projection: Projection
    clustering: Clustering | None  # None when the groups came from the export
    labels: NDArray[np.int64]  # (P,) row of `group_ids`, or -1
    group_ids: tuple[int, ...]
    group_stats: GroupStats
    overall: VoteCounts  # every participant pooled into one row
    gic: NDArray[np.float64]  # (S,)
    consensus: dict[Direction, list[ConsensusPick]]
    representative: list[list[RepPick]]  # per group
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def groups_from(self) -> GroupsFrom:
        return "export" if self.clustering is None else "clustering"


def _export_labels(
    matrix: VoteMatrix, export_groups: dict[str, int] | None, source: object
) -> tuple[NDArray[np.int64], tuple[int, ...]]:
    if not export_groups:
        raise InputError(
            source, None, "no group ids to use: --groups-from-export needs a participants-votes.csv"
        )
    index = {pid: i for i, pid in enumerate(matrix.participant_ids)}
    ids = tuple(sorted(set(export_groups.values())))
    row_of = {g: r for r, g in enumerate(ids)}
    labels = np.full(matrix.shape[0], -1, dtype=np.int64)
    for pid, g in export_groups.items():
        if pid in index:
            labels[index[pid]] = row_of[g]
    return labels, ids


def analyze(
    conv: Conversation,
    config: AnalysisConfig | None = None,
    *,
    export_groups: dict[str, int] | None = None,
) -> Analysis:
    """Run the whole analysis. With `config.groups == "export"`, the groups are
    `export_groups` (participant id → group id), by default the conversation's own."""
    # long: the analysis pipeline (matrix, PCA, groups, statistics, consensus) in the order Polis
    # runs it
    config = config or AnalysisConfig()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 4)
        clock = now

    matrix = vote_matrix(conv)
    mod_out = np.array([s.moderated == -1 for s in conv.statements], dtype=bool)
    lap("matrix")
    projection = project(matrix, mod_out, seed=config.seed)
    lap("pca")

    clustering: Clustering | None = None
    if config.groups == "export":
        groups = dict(export_groups or conv.export_groups or {})
        labels, group_ids = _export_labels(matrix, groups, conv.report.source)
        in_conv = labels >= 0
    else:
        in_conv = participant_filter(matrix, config.min_votes, config.greedy_n)
        points = projection.participants[in_conv]
        if config.clustering == "polis":
            clustering = cluster_polis(
                points,
                k_min=config.k_min,
                k_max=config.k_max,
                base_k=config.base_k,
                seed=config.seed,
            )
        else:
            clustering = cluster_direct(
                points,
                k_min=config.k_min,
                k_max=config.k_max,
                seed=config.seed,
                silhouette_sample=config.silhouette_sample,
            )
        labels = np.full(matrix.shape[0], -1, dtype=np.int64)
        labels[in_conv] = clustering.labels
        group_ids = tuple(range(clustering.k))
    lap("groups")

    counts = count_votes(matrix, labels, len(group_ids))
    stats = group_stats(counts)
    gic = group_informed_consensus(counts)
    overall = count_votes(matrix, np.zeros(matrix.shape[0], dtype=np.int64), 1)
    lap("statistics")
    sids = matrix.statement_ids
    consensus = select_consensus(overall, sids, mod_out, pick_max=config.pick_max, z=config.z)
    representative = select_representative(
        stats, sids, mod_out, pick_max=config.pick_max, z=config.z
    )
    lap("selection")
    return Analysis(
        config=config,
        conversation=conv,
        matrix=matrix,
        mod_out=mod_out,
        in_conv=in_conv,
        projection=projection,
        clustering=clustering,
        labels=labels,
        group_ids=group_ids,
        group_stats=stats,
        overall=overall,
        gic=gic,
        consensus=consensus,
        representative=representative,
        timings=timings,
    )


# --- the summary written as analysis.json (and read back, validated, by `draft`) -----------------


class GroupStatementStats(Strict):
    na: int
    nd: int
    ns: int
    pa: float
    pd: float
    pat: float
    pdt: float
    ra: float
    rd: float
    rat: float
    rdt: float


class StatementSummary(Strict):
    statement_id: str
    text: str
    moderated: Moderation
    n_votes: int
    n_agree: int
    n_disagree: int
    gic: float
    divisiveness: float = Field(description="max − min of the groups' agree rates `pa`.")
    x: float
    y: float
    groups: dict[str, GroupStatementStats]


class ConsensusSummary(Strict):
    statement_id: str
    direction: Direction
    n_success: int
    n_trials: int
    p_success: float
    p_test: float


class RepSummary(ConsensusSummary):
    repness: float
    repness_test: float
    best_agree: bool = False


class GroupSummary(Strict):
    id: int
    size: int
    center: list[float]
    representative: list[RepSummary]


class PcaSummary(Strict):
    n_columns: int
    explained_variance: list[float]
    explained_variance_ratio: list[float]


class ClusteringSummary(Strict):
    method: ClusterMethod
    k: int
    silhouettes: dict[str, float]
    silhouette_points: int
    n_base_clusters: int | None = None


class AnalysisSummary(Strict):
    schema_version: int = 1
    source: IngestReport
    config: AnalysisConfig
    groups_from: GroupsFrom
    n_participants: int
    n_in_conv: int
    n_statements: int
    n_votes: int
    n_moderated_out: int
    pca: PcaSummary
    clustering: ClusteringSummary | None
    groups: list[GroupSummary]
    consensus: dict[Direction, list[ConsensusSummary]]
    top_gic: list[str] = Field(description="Statement ids by GIC, highest first (10).")
    divisive: list[str] = Field(description="Statement ids by divisiveness, highest first (10).")
    statements: list[StatementSummary]
    timings: dict[str, float]


def divisiveness(result: Analysis) -> NDArray[np.float64]:
    pa = result.group_stats.pa
    if pa.shape[0] == 0:
        return np.zeros(pa.shape[1])
    return np.asarray(pa.max(axis=0) - pa.min(axis=0))


def summarize(result: Analysis, *, top: int = 10) -> AnalysisSummary:
    """The JSON-able summary of an analysis (everything `draft` and the report need)."""
    # long: one JSON document, field by field, in the order draft and the report read it
    stats, counts = result.group_stats, result.group_stats.counts
    overall = result.overall
    proj = result.projection
    div = divisiveness(result)
    active = ~result.mod_out
    statements: list[StatementSummary] = []
    for j, st in enumerate(result.conversation.statements):
        per_group = {
            str(gid): GroupStatementStats(
                na=int(counts.na[g, j]),
                nd=int(counts.nd[g, j]),
                ns=int(counts.ns[g, j]),
                pa=float(stats.pa[g, j]),
                pd=float(stats.pd[g, j]),
                pat=float(stats.pat[g, j]),
                pdt=float(stats.pdt[g, j]),
                ra=float(stats.ra[g, j]),
                rd=float(stats.rd[g, j]),
                rat=float(stats.rat[g, j]),
                rdt=float(stats.rdt[g, j]),
            )
            for g, gid in enumerate(result.group_ids)
        }
        statements.append(
            StatementSummary(
                statement_id=st.statement_id,
                text=st.text,
                moderated=st.moderated,
                n_votes=int(overall.ns[0, j]),
                n_agree=int(overall.na[0, j]),
                n_disagree=int(overall.nd[0, j]),
                gic=float(result.gic[j]),
                divisiveness=float(div[j]),
                x=float(proj.statements[j, 0]),
                y=float(proj.statements[j, 1]),
                groups=per_group,
            )
        )
    sids = result.matrix.statement_ids
    candidates = np.flatnonzero(active)
    by_gic = candidates[np.argsort(-result.gic[candidates], kind="stable")][:top]
    by_div = candidates[np.argsort(-div[candidates], kind="stable")][:top]
    groups = []
    for g, gid in enumerate(result.group_ids):
        members = result.labels == g
        center = proj.participants[members].mean(axis=0) if members.any() else np.zeros(2)
        groups.append(
            GroupSummary(
                id=gid,
                size=int(members.sum()),
                center=[float(c) for c in center],
                representative=[
                    RepSummary(
                        statement_id=r.statement_id,
                        direction=r.direction,
                        n_success=r.n_success,
                        n_trials=r.n_trials,
                        p_success=r.p_success,
                        p_test=r.p_test,
                        repness=r.repness,
                        repness_test=r.repness_test,
                        best_agree=r.best_agree,
                    )
                    for r in result.representative[g]
                ],
            )
        )
    clus = result.clustering
    clustering = None
    if clus is not None:
        clustering = ClusteringSummary(
            method=clus.method,
            k=clus.k,
            silhouettes={str(k): v for k, v in clus.silhouettes.items()},
            silhouette_points=clus.silhouette_points,
            n_base_clusters=None if clus.base_centers is None else int(clus.base_centers.shape[0]),
        )
    return AnalysisSummary(
        source=result.conversation.report,
        config=result.config,
        groups_from=result.groups_from,
        n_participants=result.matrix.shape[0],
        n_in_conv=int(result.in_conv.sum()),
        n_statements=result.matrix.shape[1],
        n_votes=int(result.matrix.values.shape[0]),
        n_moderated_out=int(result.mod_out.sum()),
        pca=PcaSummary(
            n_columns=proj.n_columns,
            explained_variance=[float(v) for v in proj.explained_variance],
            explained_variance_ratio=[float(v) for v in proj.explained_variance_ratio],
        ),
        clustering=clustering,
        groups=groups,
        consensus={
            d: [
                ConsensusSummary(
                    statement_id=c.statement_id,
                    direction=c.direction,
                    n_success=c.n_success,
                    n_trials=c.n_trials,
                    p_success=c.p_success,
                    p_test=c.p_test,
                )
                for c in picks
            ]
            for d, picks in result.consensus.items()
        },
        top_gic=[sids[i] for i in by_gic],
        divisive=[sids[i] for i in by_div],
        statements=statements,
        timings=result.timings,
    )


def _csv(rows: list[list[object]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def statements_csv(summary: AnalysisSummary) -> str:
    """One row per statement: id, GIC, moderation, counts, then per group g `na_g`, `nd_g`,
    `ns_g`, `pa_g`, `ra_g`, `rat_g`, and the text last (it may hold commas and newlines)."""
    gids = [str(g.id) for g in summary.groups]
    per = ("na", "nd", "ns", "pa", "pd", "ra", "rd", "rat", "rdt")
    header: list[object] = [
        "statement_id", "gic", "moderated", "n_votes", "n_agree", "n_disagree", "divisiveness",
    ]  # fmt: skip
    header += [f"{k}_{g}" for g in gids for k in per] + ["text"]
    rows: list[list[object]] = [header]
    for s in summary.statements:
        row: list[object] = [
            s.statement_id, repr(s.gic), s.moderated, s.n_votes, s.n_agree, s.n_disagree,
            repr(s.divisiveness),
        ]  # fmt: skip
        for g in gids:
            st = s.groups[g]
            row += [st.na, st.nd, st.ns, repr(st.pa), repr(st.pd)]
            row += [repr(st.ra), repr(st.rd), repr(st.rat), repr(st.rdt)]
        rows.append([*row, s.text])
    return _csv(rows)


def participants_csv(result: Analysis) -> str:
    """One row per participant: id, group (blank when not grouped), votes, map position."""
    rows: list[list[object]] = [["participant_id", "group", "in_conv", "n_votes", "x", "y"]]
    xy = result.projection.participants
    counts = result.matrix.votes_per_participant
    for i, pid in enumerate(result.matrix.participant_ids):
        g = int(result.labels[i])
        rows.append(
            [
                pid,
                "" if g < 0 else result.group_ids[g],
                int(result.in_conv[i]),
                int(counts[i]),
                repr(float(xy[i, 0])),
                repr(float(xy[i, 1])),
            ]
        )
    return _csv(rows)


def write_analysis(result: Analysis, out: str | Path, *, figures: bool = True) -> AnalysisSummary:
    """Write `analysis.json`, `statements.csv`, `participants.csv` and (with `figures`)
    `opinion_map.png` and `report.html` into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(result)
    atomic_write_text(out / ANALYSIS_FILE, summary.model_dump_json(indent=1) + "\n")
    atomic_write_text(out / "statements.csv", statements_csv(summary))
    atomic_write_text(out / "participants.csv", participants_csv(result))
    if figures:
        from charter.collective.report import render_report, write_opinion_map

        write_opinion_map(result, out / "opinion_map.png")
        atomic_write_text(out / "report.html", render_report(summary, "opinion_map.png"))
    return summary


def read_summary(folder: str | Path) -> AnalysisSummary:
    """`analysis.json` from an analysis folder, validated (it is an input to `draft`)."""
    from pydantic import ValidationError

    from charter.jsonl import describe_validation_error

    path = Path(folder) / ANALYSIS_FILE
    if not path.is_file():
        raise InputError(path, None, "not found: run `charter collective analyze` first")
    try:
        return AnalysisSummary.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as e:
        raise InputError(path, None, describe_validation_error(e)) from None
