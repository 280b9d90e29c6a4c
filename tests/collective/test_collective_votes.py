"""Ingest: Polis exports and our long format, validated at the edge; text kept exactly."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from polis_data import ccai, needs_polis_data, open_data

from charter.collective.conversation import Conversation
from charter.collective.ingestion import ingest, read_conversation, write_conversation
from charter.errors import InputError

ARABIC = "يجب أن يكون الذكاء الاصطناعي صادقًا، حتى عندما تكون الحقيقة مزعجة."
CHINESE = "人工智能应该尊重用户的隐私，并且不能泄露个人信息。"


def write_csv(path: Path, rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def polis_folder(tmp_path: Path) -> Path:
    """A small Polis-style export: comments, long votes (with a changed vote), wide matrix."""
    folder = tmp_path / "export"
    folder.mkdir()
    write_csv(
        folder / "comments.csv",
        [
            ["timestamp", "datetime", "comment-id", "author-id", "agrees", "disagrees",
             "moderated", "comment-body"],
            [1, "d", 0, 5, 2, 0, 1, "The AI should be honest, even when it hurts."],
            [2, "d", 1, 5, 0, 1, -1, ARABIC],
            [3, "d", 2, 6, 1, 1, 0, CHINESE],
            [4, "d", 10, 6, 1, 0, 1, 'Quotes "inside", commas, and\na newline'],
        ],
    )  # fmt: skip
    write_csv(
        folder / "votes.csv",
        [
            ["timestamp", "datetime", "comment-id", "voter-id", "vote"],
            [100, "d", 0, 1, -1],
            [200, "d", 0, 1, 1],  # participant 1 changed their mind: the later vote counts
            [150, "d", 1, 1, 0],
            [110, "d", 0, 2, 1],
            [120, "d", 2, 2, -1],
            [130, "d", 10, 3, 1],
            [90, "d", 2, 3, 1],
        ],
    )
    write_csv(
        folder / "participants-votes.csv",
        [
            ["participant", "group-id", "n-comments", "n-votes", "n-agree", "n-disagree",
             "0", "1", "2", "10"],
            [1, 0, 0, 2, 1, 0, 1, 0, "", ""],
            [2, 1, 0, 2, 1, 1, 1, "", -1, ""],
            [3, "", 0, 2, 2, 0, "", "", 1, 1],
        ],
    )  # fmt: skip
    return folder


def votes_of(conv: Conversation) -> dict[tuple[str, str], int]:
    sids = conv.statement_ids
    return {
        (conv.participant_ids[p], sids[s]): v
        for p, s, v in zip(
            conv.vote_participant.tolist(),
            conv.vote_statement.tolist(),
            conv.vote_value.tolist(),
            strict=True,
        )
    }


def test_polis_export_latest_vote_moderation_text_and_groups(tmp_path: Path) -> None:
    conv = ingest(polis_folder(tmp_path))
    assert conv.report.format == "polis-export"
    assert conv.statement_ids == ["0", "1", "2", "10"]  # numeric order, not text order
    texts = {s.statement_id: s.text for s in conv.statements}
    assert texts["1"] == ARABIC and texts["2"] == CHINESE  # byte for byte
    assert texts["10"] == 'Quotes "inside", commas, and\na newline'
    assert {s.statement_id: s.moderated for s in conv.statements} == {
        "0": 1,
        "1": -1,
        "2": 0,
        "10": 1,
    }
    assert votes_of(conv) == {
        ("1", "0"): 1,
        ("1", "1"): 0,
        ("2", "0"): 1,
        ("2", "2"): -1,
        ("3", "10"): 1,
        ("3", "2"): 1,
    }
    assert conv.report.n_superseded == 1
    assert conv.export_groups == {"1": 0, "2": 1}


def test_wide_matrix_alone(tmp_path: Path) -> None:
    folder = polis_folder(tmp_path)
    (folder / "votes.csv").unlink()
    conv = ingest(folder)
    assert conv.report.format == "polis-wide"
    assert votes_of(conv) == {
        ("1", "0"): 1,
        ("1", "1"): 0,
        ("2", "0"): 1,
        ("2", "2"): -1,
        ("3", "2"): 1,
        ("3", "10"): 1,
    }
    assert conv.export_groups == {"1": 0, "2": 1}


def test_ids_to_toss_drops_participants(tmp_path: Path) -> None:
    folder = polis_folder(tmp_path)
    (folder / "ids-to-toss.csv").write_text("2\n", encoding="utf-8")
    conv = ingest(folder)
    assert "2" not in conv.participant_ids
    assert conv.report.n_tossed_participants == 1 and conv.report.n_tossed_votes == 2
    assert conv.export_groups == {"1": 0}


def test_own_long_csv_and_jsonl(tmp_path: Path) -> None:
    statements = tmp_path / "statements.jsonl"
    statements.write_text(
        "\n".join(
            json.dumps(s, ensure_ascii=False)
            for s in [
                {"statement_id": "s-a", "text": "Be kind.", "moderated": 1},
                {"statement_id": "s-b", "text": CHINESE},
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    votes_csv = write_csv(
        tmp_path / "votes.csv",
        [["participant_id", "statement_id", "vote"], ["u1", "s-a", "1"], ["u1", "s-a", "-1"],
         ["u2", "s-b", "0"]],
    )  # fmt: skip
    conv = ingest(votes_csv, statements_path=statements)
    assert conv.report.format == "long-csv"
    # Without timestamps the later row is the latest vote.
    assert votes_of(conv) == {("u1", "s-a"): -1, ("u2", "s-b"): 0}
    votes_jsonl = tmp_path / "votes.jsonl"
    votes_jsonl.write_text(
        '{"participant_id": "u1", "statement_id": "s-a", "vote": 1, "timestamp": 5}\n'
        '{"pid": "u1", "tid": "s-a", "vote": -1, "timestamp": 2}\n',
        encoding="utf-8",
    )
    conv = ingest(votes_jsonl, statements_path=statements)
    assert votes_of(conv) == {("u1", "s-a"): 1}  # timestamp 5 is the latest


def test_bad_rows_are_listed_with_line_and_column(tmp_path: Path) -> None:
    folder = polis_folder(tmp_path)
    write_csv(
        folder / "votes.csv",
        [
            ["timestamp", "datetime", "comment-id", "voter-id", "vote"],
            [100, "d", 0, 1, 1],
            [101, "d", 0, 2, 2],
            [102, "d", 99, 2, 1],
            [103, "d", 0, 3, "agree"],
        ],
    )
    with pytest.raises(InputError) as err:
        ingest(folder)
    message = str(err.value)
    assert f"{folder / 'votes.csv'}, line 3: column `vote`" in message
    assert "line 4: column `statement_id`: no statement '99'" in message
    assert "line 5: column `vote`" in message
    assert "3 bad in all" in message and "--lenient" in message

    conv = ingest(folder, lenient=True)
    assert conv.report.dropped == {"unknown vote value": 2, "vote on unknown statement": 1}
    assert conv.n_votes == 1


def test_duplicate_ids_and_empty_text(tmp_path: Path) -> None:
    folder = polis_folder(tmp_path)
    with (folder / "comments.csv").open(encoding="utf-8", newline="") as f:
        rows: list[list[object]] = [list(r) for r in csv.reader(f)]
    rows.append([9, "d", 0, 7, 0, 0, 1, "a second statement 0"])
    rows.append([9, "d", 11, 7, 0, 0, 1, "   "])
    write_csv(folder / "comments.csv", rows)
    with pytest.raises(InputError) as err:
        ingest(folder)
    message = str(err.value)
    assert "column `statement_id`: duplicate id '0'" in message
    assert "1 bad in all" in message  # an empty text is skipped with a warning, not an error (#25)
    conv = ingest(folder, lenient=True)
    assert conv.report.dropped == {"duplicate statement id": 1}
    assert conv.report.skipped == {"empty statement, not moderated out": 1}
    assert conv.report.warnings == [
        f"{folder / 'comments.csv'}, line 8: statement '11' has an empty text and was not "
        "moderated out; skipped, with the votes on it"
    ]
    assert len(conv.statements) == 4


def test_wide_matrix_problems(tmp_path: Path) -> None:
    folder = polis_folder(tmp_path)
    (folder / "votes.csv").unlink()
    write_csv(
        folder / "participants-votes.csv",
        [
            ["participant", "group-id", "0", "1", "77"],
            [1, 0, 1, "x", 1],
            [1, 0, 1, "", ""],
        ],
    )
    with pytest.raises(InputError) as err:
        ingest(folder)
    message = str(err.value)
    assert "line 1: column `77` (column 5): no statement '77'" in message
    assert "line 2: column `1` (column 4): expected -1, 0 or 1, got 'x'" in message
    assert "line 3: column `participant`: duplicate id '1'" in message
    conv = ingest(folder, lenient=True)
    assert votes_of(conv) == {("1", "0"): 1}


def test_unknown_and_missing_columns(tmp_path: Path) -> None:
    statements = write_csv(tmp_path / "s.csv", [["statement_id", "text"], ["a", "x"]])
    votes = write_csv(tmp_path / "v.csv", [["participant_id", "statement_id", "vote", "wieght"]])
    with pytest.raises(InputError, match=r"line 1: unknown column `wieght` \(column 4\)"):
        ingest(votes, statements_path=statements)
    votes = write_csv(tmp_path / "v2.csv", [["participant_id", "statement_id"], ["u", "a"]])
    with pytest.raises(InputError, match="missing column `vote`"):
        ingest(votes, statements_path=statements)
    with pytest.raises(InputError, match="--statements"):
        ingest(votes)


def test_round_trip_through_our_folder(tmp_path: Path) -> None:
    conv = ingest(polis_folder(tmp_path))
    out = write_conversation(conv, tmp_path / "ingested")
    back = read_conversation(out)
    assert back.statements == conv.statements
    assert back.participant_ids == conv.participant_ids
    assert votes_of(back) == votes_of(conv)
    assert back.export_groups == conv.export_groups
    assert back.report.n_superseded == conv.report.n_superseded
    # ingest() of an ingested folder reads it back the same way
    assert votes_of(ingest(out)) == votes_of(conv)


@needs_polis_data
def test_real_exports() -> None:
    seattle = ingest(open_data("15-per-hour-seattle"))
    assert (len(seattle.statements), len(seattle.participant_ids)) == (54, 339)
    assert seattle.n_votes == 2872 and seattle.report.n_superseded == 123
    # The latest vote per pair of votes.csv is exactly the export's wide matrix.
    wide = {}
    with (open_data("15-per-hour-seattle") / "participants-votes.csv").open() as f:
        for row in csv.DictReader(f):
            for sid in seattle.statement_ids:
                if row[sid] != "":
                    wide[(row["participant"], sid)] = int(row[sid])
    assert votes_of(seattle) == wide

    poll = ingest(ccai())
    assert poll.report.format == "polis-wide"
    assert len(poll.statements) == 1418
    assert poll.report.n_tossed_participants == 37
    assert poll.n_votes + poll.report.n_tossed_votes == 38252
    assert np.isin(poll.vote_value, [-1, 0, 1]).all()
