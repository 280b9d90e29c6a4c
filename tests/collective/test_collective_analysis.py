"""The analysis pipeline on synthetic conversations: PCA against a dense computation, the
participant filter, clustering, determinism, the written outputs, and the 10,000 × 2,000 scale."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from charter.bench.collective import synthetic_conversation
from charter.collective.analysis import AnalysisConfig, analyze, read_summary, write_analysis
from charter.collective.clustering import cluster_direct, cluster_polis
from charter.collective.conversation import Conversation, Statement
from charter.collective.matrix import participant_filter, vote_matrix
from charter.collective.projection import project
from charter.collective.stats import VoteCounts, count_votes, group_informed_consensus
from charter.errors import InputError


def with_statements(conv: Conversation, replace: dict[str, Statement]) -> Conversation:
    statements = tuple(replace.get(s.statement_id, s) for s in conv.statements)
    return Conversation(
        statements=statements,
        participant_ids=conv.participant_ids,
        vote_participant=conv.vote_participant,
        vote_statement=conv.vote_statement,
        vote_value=conv.vote_value,
        vote_time=conv.vote_time,
        report=conv.report,
        export_groups=conv.export_groups,
    )


def dense_reference(
    dense: np.ndarray, mod_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polis's PCA written out densely: zero moderated-out columns, impute column means,
    centre, SVD, project, scale by sqrt(n_statements / n_seen)."""
    x = dense.copy()
    voted = ~np.isnan(dense).all(axis=0)
    x[:, mod_out & voted] = 0.0
    seen = ~np.isnan(x)
    means = np.array(
        [x[seen[:, j], j].mean() if seen[:, j].any() else 0.0 for j in range(x.shape[1])]
    )
    imputed = np.where(seen, x, means)
    centred = imputed - imputed.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[:2].T
    scale = np.sqrt(voted.sum() / np.maximum(seen[:, voted].sum(axis=1), 1))
    return proj * scale[:, None], vt[:2], means


@pytest.mark.parametrize(("n_p", "n_s", "density"), [(120, 30, 0.3), (500, 80, 0.2)])
def test_projection_matches_a_dense_computation(n_p: int, n_s: int, density: float) -> None:
    conv = synthetic_conversation(n_p, n_s, density, seed=3)
    out = {s.statement_id: s.model_copy(update={"moderated": -1}) for s in conv.statements[:3]}
    conv = with_statements(conv, out)
    matrix = vote_matrix(conv)
    mod_out = np.array([s.moderated == -1 for s in conv.statements])
    proj = project(matrix, mod_out)
    expected, axes, _ = dense_reference(matrix.dense(), mod_out)
    sign = np.sign((proj.participants * expected).sum(axis=0))
    np.testing.assert_allclose(proj.participants * sign, expected, atol=1e-8)
    np.testing.assert_allclose(proj.components * sign[:, None], axes, atol=1e-8)
    assert proj.explained_variance[0] >= proj.explained_variance[1] > 0


def test_participant_filter_is_polis_in_conv() -> None:
    conv = synthetic_conversation(200, 50, 0.15, seed=1)
    matrix = vote_matrix(conv)
    counts = matrix.votes_per_participant
    keep = participant_filter(matrix)
    assert 15 < keep.sum() < 200
    np.testing.assert_array_equal(keep, counts >= 7)
    assert participant_filter(matrix, min_votes=10, greedy_n=0).sum() == (counts >= 10).sum()
    few = participant_filter(matrix, min_votes=1000, greedy_n=15)
    assert few.sum() == 15 and counts[few].min() >= counts[~few].max()


def test_counts_ignore_participants_in_no_group() -> None:
    conv = synthetic_conversation(60, 10, 0.5, seed=2)
    matrix = vote_matrix(conv)
    labels = np.arange(matrix.shape[0]) % 3 - 1  # -1, 0, 1, -1, ...
    counts = count_votes(matrix, labels, 2)
    dense = matrix.dense()
    for g in (0, 1):
        rows = dense[labels == g]
        np.testing.assert_array_equal(counts.na[g], (rows == 1).sum(axis=0))
        np.testing.assert_array_equal(counts.ns[g], (~np.isnan(rows)).sum(axis=0))
    c = VoteCounts(na=np.array([[0], [0]]), nd=np.array([[0], [0]]), ns=np.array([[0], [0]]))
    assert group_informed_consensus(c)[0] == 0.25  # unseen: (1/2) per group


def test_clustering_finds_separated_groups() -> None:
    rng = np.random.default_rng(0)
    centers = np.array([[-5.0, 0.0], [5.0, 0.0], [0.0, 6.0]])
    points = np.concatenate(
        [c + rng.normal(size=(n, 2)) for c, n in zip(centers, (300, 200, 100), strict=True)]
    )
    truth = np.repeat([0, 1, 2], (300, 200, 100))
    for clustering in (
        cluster_polis(points, seed=0),
        cluster_direct(points, seed=0, silhouette_sample=200),
    ):
        assert clustering.k == 3
        np.testing.assert_array_equal(clustering.labels, truth)  # group 0 is the largest
        assert set(clustering.silhouettes) == {2, 3, 4, 5}
    assert cluster_direct(points, silhouette_sample=200).silhouette_points == 200
    one = cluster_polis(np.zeros((10, 2)))
    assert one.k == 1 and (one.labels == 0).all()


def test_analysis_is_deterministic_and_keeps_intermediates() -> None:
    conv = synthetic_conversation(800, 60, 0.2, seed=5)
    a = analyze(conv, AnalysisConfig(seed=1))
    b = analyze(conv, AnalysisConfig(seed=1))
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.gic, b.gic)
    assert a.clustering is not None and a.clustering.base_centers is not None
    assert a.projection.participants.shape == (800, 2)
    assert a.group_stats.pa.shape == (len(a.group_ids), 60)
    assert len(a.representative) == len(a.group_ids)
    assert set(a.timings) == {"matrix", "pca", "groups", "statistics", "selection"}


def test_outputs_are_written_and_text_is_escaped(tmp_path: Path) -> None:
    conv = synthetic_conversation(300, 20, 0.5, seed=4)
    hostile = {
        s.statement_id: s.model_copy(
            update={"text": f"<script>alert({s.statement_id})</script> & <b>bold</b> — يجب"}
        )
        for s in conv.statements
    }
    conv = with_statements(conv, hostile)
    summary = write_analysis(analyze(conv), tmp_path)
    for name in ("analysis.json", "statements.csv", "participants.csv", "report.html"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "opinion_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "<b>bold" not in html
    first = summary.top_gic[0]
    assert f"&lt;script&gt;alert({first})&lt;/script&gt; &amp; &lt;b&gt;bold" in html
    assert "— يجب" in html
    back = read_summary(tmp_path)
    assert back == summary
    data = json.loads((tmp_path / "analysis.json").read_text(encoding="utf-8"))
    assert data["statements"][0]["text"] == hostile["0"].text


def test_export_groups_needed_for_groups_from_export() -> None:
    conv = synthetic_conversation(50, 10, 0.5)
    with pytest.raises(InputError, match=r"participants-votes\.csv"):
        analyze(conv, AnalysisConfig(groups="export"))


def test_scale_10000_participants_2000_statements_under_30s() -> None:
    conv = synthetic_conversation(10_000, 2_000, 0.05, seed=0)
    assert abs(conv.n_votes - 1_000_000) < 10
    start = time.perf_counter()
    result = analyze(conv)
    seconds = time.perf_counter() - start
    print(f"10,000 × 2,000 at 5%: analyzed in {seconds:.2f} s ({result.timings})")
    assert seconds < 30
    assert len(result.group_ids) == 3  # the three latent groups
