"""Property tests of ingest's parsers of user input: `comments.csv`, the long-format votes CSV and
the wide `participants-votes.csv` matrix (issue #25, part C).

Each test writes a generated file beside fixed valid ones and runs the library as the CLI does
(`ingest`, then `write_conversation`). The properties: every failure is a typed `CharterError`
(exit 2 through the CLI), nothing is written to the output folder on a failure, and whatever is
accepted reads back from our own folder unchanged. Files are generated as cells joined by hand,
so that broken quoting, stray line endings, BOMs and bytes that are not UTF-8 occur, with rows
written by `csv.writer` mixed in so that the validation behind the CSV layer is reached too.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from unittest import mock

from collective_helpers import write_csv
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from charter.collective.conversation import Conversation
from charter.collective.ingestion import ingest, read_conversation, write_conversation
from charter.errors import CharterError

PROPERTY_SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same 1,000 cases on every run and machine
)

# Cells that have broken something, or could: numbers beyond int64, non-finite floats, quotes,
# separators, line endings, a BOM, NUL, non-ASCII text.
TRICKY = [
    "", " ", "0", "1", "-1", "+1", "2", "1.0", "-0", "0.0", "1.5", "1e3", "1e30", "1e999", "inf",
    "-inf", "nan", "NaN", "Infinity", str(2**63 - 1), str(2**63), str(-(2**63)), str(-(2**63) - 1),
    "9" * 40, "1_000", "١٢", "x", "agree", '"', '""', '"a"', ",", "\n", "\r", "\r\n", "\ufeff",
    "\x00", "\t", "é", "人", "  7 ",
]  # fmt: skip
tricky = st.sampled_from(TRICKY)
small_id = st.integers(-1, 6).map(str)
cell = st.one_of(
    tricky,
    small_id,
    st.text(max_size=8),
    st.lists(tricky, min_size=2, max_size=3).map("".join),
)


# An integer column (timestamps, group ids): in range about half the time, else at or past
# int64's edges, non-finite, fractional or not a number.
integer_cell = st.one_of(
    st.integers(0, 2**41).map(str),
    st.sampled_from(
        [str(2**63 - 1), str(-(2**63)), str(2**63), str(-(2**63) - 1), "1e30", "1e999", "2.0",
         "inf", "-inf", "nan", "1.5", "x", "0", "1700000000000", "-5"]
    ),
    st.integers(-(2**70), 2**70).map(str),
)  # fmt: skip
PLAUSIBLE: dict[str, st.SearchStrategy[str]] = {
    "comment-id": st.integers(0, 9).map(str),
    "tid": st.integers(0, 9).map(str),
    "moderated": st.sampled_from(["1", "0", "-1", ""]),
    "comment-body": st.one_of(st.text(min_size=1, max_size=12), st.just("")),
    "timestamp": integer_cell,
    "created": integer_cell,
    "voter-id": st.integers(0, 6).map(str),
    "participant": st.integers(0, 6).map(str),
    "vote": st.sampled_from(["1", "-1", "0", "", "2", "1.0", " 1", "agree"]),
    "group-id": st.one_of(st.integers(0, 3).map(str), st.just(""), integer_cell),
}


@functools.cache
def column_cell(name: str, clean: bool) -> st.SearchStrategy[str]:
    """A value for a column: plausible for a known one in a clean file, else plausible or anything.
    Built once per column: building strategies per cell cost more than the ingest under test."""
    plausible = st.sampled_from(["1", "-1", "0", ""]) if name.isdigit() else PLAUSIBLE.get(name)
    if plausible is None:
        return cell
    return plausible if clean else st.one_of(plausible, cell)


@st.composite
def csv_file(
    draw: st.DrawFn, valid_header: Sequence[str], names: Sequence[str], max_rows: int = 6
) -> bytes:
    """A CSV file, clean or dirty. Clean: the expected header (perhaps reordered), rows written by
    `csv.writer` with plausible values, so that the validation behind the CSV layer is reached and
    files are accepted. Dirty: any header, rows of the wrong width or joined by hand (no quoting,
    stray line ends), any cell values, and sometimes a BOM, a byte that is not UTF-8 or a cut."""
    clean = draw(st.booleans())
    header = list(valid_header)
    if draw(st.booleans()):
        header = list(draw(st.permutations(header)))
    if not clean and draw(st.booleans()):
        header = draw(st.lists(st.sampled_from([*names, *TRICKY[:8]]), min_size=1, max_size=7))
    rows: list[list[str]] = [header]
    for _ in range(draw(st.integers(1, max_rows))):
        width = len(header) + (0 if clean else draw(st.sampled_from([0, 0, -1, 1])))
        names = [header[i] if i < len(header) else "" for i in range(width)]
        rows.append(list(draw(st.tuples(*(column_cell(n, clean) for n in names)))))
    out = io.StringIO()
    for row in rows:
        if clean or draw(st.booleans()):
            csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerow(row)
        else:
            out.write(",".join(row) + draw(st.sampled_from(["\n", "\r\n", "\r", ""])))
    data = out.getvalue().encode("utf-8")
    damage = "none" if clean else draw(st.sampled_from(["none", "bom", "bad byte", "cut"]))
    if damage == "bom":
        data = b"\xef\xbb\xbf" + data
    elif damage == "bad byte":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe4\xba"])) + data[at:]
    elif damage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    return data


COMMENT_COLUMNS = [  # a Polis export's
    "timestamp", "datetime", "comment-id", "author-id", "agrees", "disagrees", "moderated",
    "comment-body",
]  # fmt: skip
COMMENT_NAMES = [*COMMENT_COLUMNS, "created", "tid", "txt", "statement_id", "text", "junk"]
VOTE_COLUMNS = ["timestamp", "datetime", "comment-id", "voter-id", "vote"]
VOTE_NAMES = [*VOTE_COLUMNS, "tid", "pid", "participant_id", "statement_id", "modified", "junk"]
WIDE_COLUMNS = ["participant", "group-id", "n-votes", "0", "1", "2", "3", "9"]
WIDE_NAMES = [*WIDE_COLUMNS, "xid", "n-agree", "pid", "4", "5", "99", "junk"]


def fixed_comments(folder: Path) -> None:
    """Statements 0..4 with text, 9 moderated out and blank (its votes are skipped, not fatal)."""
    rows: list[list[object]] = [["comment-id", "moderated", "comment-body"]]
    rows += [[j, 1, f"Statement {j}"] for j in range(5)]
    write_csv(folder / "comments.csv", [*rows, [9, -1, ""]])


def fixed_votes(folder: Path) -> None:
    rows: list[list[object]] = [list(VOTE_COLUMNS)]
    rows += [[100 * p + j, "d", j, p, (p + j) % 3 - 1] for p in range(4) for j in range(4)]
    write_csv(folder / "votes.csv", rows)


@contextlib.contextmanager
def scratch() -> Iterator[tuple[Path, Path]]:
    """(export folder, output folder) in a fresh temporary folder. Writes skip fsync: durability
    is not the property, and a thousand fsyncs per test would cost half a minute."""
    with (
        tempfile.TemporaryDirectory(prefix="charter-prop-") as tmp,
        mock.patch.object(os, "fsync", lambda fd: None),
    ):
        folder = Path(tmp) / "export"
        folder.mkdir()
        yield folder, Path(tmp) / "out"


def votes_of(conv: Conversation) -> set[tuple[str, str, int]]:
    return {
        (conv.participant_ids[p], conv.statement_ids[s], v)
        for p, s, v in zip(
            conv.vote_participant.tolist(),
            conv.vote_statement.tolist(),
            conv.vote_value.tolist(),
            strict=True,
        )
    }


def _reason(err: CharterError) -> str:
    """The kind of problem, without the file, line and values: for the statistics only."""
    text = str(err).split(": ", 1)[-1]
    return " ".join(w for w in text.split()[:4] if not any(c.isdigit() for c in w))


def ingest_or_refuse(folder: Path, out: Path, *, lenient: bool) -> Conversation | None:
    """Ingest and write as the CLI does. A refusal must be typed and leave `out` unwritten; an
    acceptance must read back from `out` unchanged."""
    try:
        conv = ingest(folder, lenient=lenient)
        write_conversation(conv, out)
    except CharterError as e:
        event(f"refused: {type(e).__name__}: {_reason(e)}")  # --hypothesis-show-statistics
        assert e.exit_code == 2
        assert str(e)  # a message a person can act on
        assert not out.exists(), "a failed ingest wrote to the output folder"
        return None
    event(f"accepted ({'some' if conv.n_votes else 'no'} votes)")
    back = read_conversation(out)
    assert back.statements == conv.statements
    assert back.participant_ids == conv.participant_ids
    assert votes_of(back) == votes_of(conv)
    assert back.export_groups == conv.export_groups
    assert back.report.skipped == conv.report.skipped
    return conv


@PROPERTY_SETTINGS
@given(
    content=csv_file(COMMENT_COLUMNS, COMMENT_NAMES, max_rows=5),
    lenient=st.booleans(),
)
def test_comments_csv(content: bytes, lenient: bool) -> None:
    with scratch() as (folder, out):
        (folder / "comments.csv").write_bytes(content)
        fixed_votes(folder)
        conv = ingest_or_refuse(folder, out, lenient=lenient)
        if conv is not None:
            assert all(s.text.strip() for s in conv.statements)


@PROPERTY_SETTINGS
@given(content=csv_file(VOTE_COLUMNS, VOTE_NAMES, max_rows=8), lenient=st.booleans())
def test_long_votes_csv(content: bytes, lenient: bool) -> None:
    with scratch() as (folder, out):
        fixed_comments(folder)
        (folder / "votes.csv").write_bytes(content)
        conv = ingest_or_refuse(folder, out, lenient=lenient)
        if conv is not None:
            assert conv.report.format == "polis-export"
            assert set(conv.vote_value.tolist()) <= {-1, 0, 1}


@PROPERTY_SETTINGS
@given(
    content=csv_file(WIDE_COLUMNS, WIDE_NAMES, max_rows=6),
    lenient=st.booleans(),
    beside_long_votes=st.booleans(),
)
def test_wide_participants_votes_csv(
    content: bytes, lenient: bool, beside_long_votes: bool
) -> None:
    """Alone, the matrix is the votes; beside `votes.csv` it gives only the `group-id`s."""
    with scratch() as (folder, out):
        fixed_comments(folder)
        if beside_long_votes:
            fixed_votes(folder)
        (folder / "participants-votes.csv").write_bytes(content)
        conv = ingest_or_refuse(folder, out, lenient=lenient)
        if conv is not None:
            assert conv.report.format == ("polis-export" if beside_long_votes else "polis-wide")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(
    which=st.sampled_from(["comments.csv", "votes.csv", "participants-votes.csv"]),
    data=st.data(),
)
def test_cli_exit_code_is_0_or_2(which: str, data: st.DataObject) -> None:
    """Through `charter.cli.main` itself: exit 0, or exit 2 with one error line and no output
    folder; any other exception would be a traceback, i.e. a bug."""
    from charter.cli import main

    columns, names = {
        "comments.csv": (COMMENT_COLUMNS, COMMENT_NAMES),
        "votes.csv": (VOTE_COLUMNS, VOTE_NAMES),
        "participants-votes.csv": (WIDE_COLUMNS, WIDE_NAMES),
    }[which]
    content = data.draw(csv_file(columns, names))
    with scratch() as (folder, out):
        fixed_comments(folder)
        fixed_votes(folder)
        (folder / which).write_bytes(content)
        stderr = io.StringIO()
        argv = ["charter", "collective", "ingest", str(folder), "--out", str(out)]
        with (
            mock.patch.object(sys, "argv", argv),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(stderr),
        ):
            try:
                main()
            except SystemExit as e:
                code = e.code
        assert code in (0, 2), stderr.getvalue()
        if code == 2:
            assert stderr.getvalue().startswith("charter: error: ")
            assert not out.exists()
        else:
            assert (out / "ingest.json").is_file()
