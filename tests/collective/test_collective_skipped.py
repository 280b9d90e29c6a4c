"""Statements left out by rule, never fatal (issue #25.2): a comment the moderator removed whose
body is empty, an empty comment that was not moderated out, and the votes on either. And every
real Polis export in ../shared/data ingests with default options."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from collective_helpers import EMPTY_OUT, N_PARTICIPANTS, TEXT_OUT, charter, moderated_export
from polis_data import POLIS, needs_polis_data

from charter.collective.analysis import AnalysisConfig, analyze
from charter.collective.ingestion import ingest

# The reasons as the ingest summary and ingest.json spell them.
EMPTY_MODERATED_OUT = "empty statement, moderated out"
EMPTY_NOT_MODERATED = "empty statement, not moderated out"
VOTE_ON_SKIPPED = "vote on a skipped statement"
VOTES_ON_EMPTY = N_PARTICIPANTS  # every participant of `moderated_export` voted on comment 10


@pytest.mark.parametrize("matrix_only", [False, True], ids=["votes.csv", "participants-votes"])
def test_moderated_out_empty_comment_is_skipped(tmp_path: Path, matrix_only: bool) -> None:
    folder = moderated_export(tmp_path / "export")
    if matrix_only:
        (folder / "votes.csv").unlink()
    conv = ingest(folder)  # default options: no --lenient
    ids = conv.statement_ids
    assert str(EMPTY_OUT) not in ids
    assert str(TEXT_OUT) in ids  # moderated out with its text: kept, as Polis keeps it
    assert conv.report.skipped == {EMPTY_MODERATED_OUT: 1, VOTE_ON_SKIPPED: VOTES_ON_EMPTY}
    assert conv.report.dropped == {} and conv.report.warnings == []
    assert conv.report.format == ("polis-wide" if matrix_only else "polis-export")

    out = tmp_path / "work"
    code, text = charter(["collective", "ingest", str(folder), "--out", str(out)])
    assert code == 0, text
    assert f"skipped 1: {EMPTY_MODERATED_OUT}" in text
    assert f"skipped {VOTES_ON_EMPTY}: {VOTE_ON_SKIPPED}" in text
    assert "warning" not in text
    assert ingest(out).report.skipped == conv.report.skipped  # kept in ingest.json


def test_empty_comment_not_moderated_out_is_skipped_with_a_warning(tmp_path: Path) -> None:
    folder = moderated_export(tmp_path / "export")
    comments = folder / "comments.csv"
    with comments.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    line = next(i for i, r in enumerate(rows, start=1) if r[2] == str(EMPTY_OUT))
    rows[line - 1][6] = "0"  # never moderated
    with comments.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    conv = ingest(folder)
    assert conv.report.skipped == {EMPTY_NOT_MODERATED: 1, VOTE_ON_SKIPPED: VOTES_ON_EMPTY}
    warning = (
        f"{comments}, line {line}: statement '{EMPTY_OUT}' has an empty text and was not "
        "moderated out; skipped, with the votes on it"
    )
    assert conv.report.warnings == [warning]
    code, text = charter(["collective", "ingest", str(folder), "--out", str(tmp_path / "w")])
    assert code == 0, text
    assert f"charter: warning: {warning}" in text


def test_an_export_of_only_empty_statements_is_still_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "comments.csv").write_text("comment-id,moderated,comment-body\n0,-1,\n")
    (folder / "votes.csv").write_text("comment-id,voter-id,vote\n0,1,1\n")
    code, text = charter(["collective", "ingest", str(folder), "--out", str(tmp_path / "w")])
    assert code == 2 and "no statements with text" in text


def gic_by_statement(folder: Path, groups: str) -> dict[str, float]:
    result = analyze(ingest(folder), AnalysisConfig.model_validate({"groups": groups, "seed": 0}))
    return dict(zip(result.matrix.statement_ids, result.gic.tolist(), strict=True))


@pytest.mark.parametrize("groups", ["clustering", "export"])
def test_other_statements_keep_the_gic_of_the_lenient_ingest(tmp_path: Path, groups: str) -> None:
    """Before the fix only `--lenient` read this export; it dropped comment 10 and the votes on
    it, which makes it the same conversation as the export with those rows deleted by hand.
    Skipping must give every other statement that GIC, with Polis's groups and with ours."""
    skipped = gic_by_statement(moderated_export(tmp_path / "export"), groups)
    by_hand = gic_by_statement(moderated_export(tmp_path / "pruned", drop_empty=True), groups)
    assert str(EMPTY_OUT) not in skipped
    assert skipped == by_hand
    assert sorted(skipped, key=int) == [str(j) for j in range(12) if j != EMPTY_OUT]
    assert (
        ingest(tmp_path / "export", lenient=True).report.skipped
        == ingest(tmp_path / "export").report.skipped
    )  # --lenient no longer changes anything here


def test_gic_with_export_groups_matches_plain_numpy(tmp_path: Path) -> None:
    folder = moderated_export(tmp_path / "export")
    with (folder / "participants-votes.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    sids = [s for s in rows[0] if s.isdigit() and s != str(EMPTY_OUT)]
    grouped = [r for r in rows if r["group-id"] != ""]
    labels = np.array([int(r["group-id"]) for r in grouped])
    votes = np.array([[float(r[s]) if r[s] != "" else np.nan for s in sids] for r in grouped])
    expected = np.ones(len(sids))
    for g in sorted(set(labels.tolist())):
        block = votes[labels == g]
        expected *= ((block == 1).sum(axis=0) + 1) / ((~np.isnan(block)).sum(axis=0) + 2)
    got = gic_by_statement(folder, "export")
    np.testing.assert_allclose([got[s] for s in sids], expected, rtol=0, atol=1e-12)


def polis_exports() -> list[Path]:
    """Every folder under ../shared/data/polis that holds a Polis export."""
    if not POLIS.is_dir():
        return []
    return sorted(p.parent for p in POLIS.rglob("comments.csv"))


@needs_polis_data
def test_every_real_polis_export_ingests_with_default_options(tmp_path: Path) -> None:
    exports = polis_exports()
    assert len(exports) >= 3, exports  # ccai and the two open-data conversations at least
    for folder in exports:
        out = tmp_path / folder.relative_to(POLIS)
        code, text = charter(["collective", "ingest", str(folder), "--out", str(out)])
        assert code == 0, f"{folder}: {text}"
        with (folder / "comments.csv").open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        with_text = sum(1 for r in rows if r["comment-body"].strip())
        conv = ingest(out)
        assert len(conv.statements) == with_text, folder
        assert conv.report.dropped == {}, folder
        print(f"{folder.relative_to(POLIS)}: {text.splitlines()[0]}")
