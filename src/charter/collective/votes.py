"""Reading public statements and votes at the edge: the records, the readers, the validation.

Part of the first stage of the collective-constitution pipeline (ingest → analyze → draft);
`charter.collective.ingestion` assembles what these readers return into a `Conversation`. They
take a Polis export folder (`comments.csv` plus `votes.csv` in long form, or only the wide
`participants-votes.csv`), or our own long format (`participant_id, statement_id, vote` and an
optional `timestamp`, as CSV or JSONL) with statements from `statements.csv`/`statements.jsonl`.

Conventions, the same everywhere in charter's API: **agree = +1, disagree = -1, pass = 0**, a
missing cell means "not seen". These are the Polis CSV exports' values; Polis's internal math uses
agree = -1, which only flips signs and changes no statistic. Ids are strings (Polis's are
integers; they sort numerically when every id is a number).

Column names are matched through aliases (`comment-id`, `tid` and `statement_id` are one column),
so every Polis spelling is read without renaming. Known Polis columns that carry nothing we need
(`datetime`, `agrees`, ...) are skipped; any other column is an error, so a misspelt column is
reported rather than silently ignored. Problems (unknown vote values, votes on unknown statements,
duplicate ids, timestamps or group ids that are not 64-bit integers) are collected per file and
reported together with their line and column; `lenient=True` drops the offending rows instead and
counts them by reason. A CSV file that cannot be split into records (a quote never closed) is an
error in every mode, naming the line where the broken record starts: read leniently, it would
swallow the rows after it.

Statements with an empty text are skipped, never an error: a comment the moderator removed
(`moderated = -1`) is often blanked in real exports; any other empty one is skipped with a
warning. Votes on skipped statements are counted, not fatal. Both go into the ingest report.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, ValidationError, field_validator

from charter.errors import InputError
from charter.jsonl import describe_validation_error, iter_jsonl_lines
from charter.records import Record, Strict

Moderation = Literal[-1, 0, 1]
SourceFormat = Literal["polis-export", "polis-wide", "long-csv", "long-jsonl", "ingested"]

# canonical name → accepted spellings (first one is ours)
VOTE_ALIASES: dict[str, tuple[str, ...]] = {
    "participant_id": ("participant_id", "voter-id", "voter_id", "pid", "participant"),
    "statement_id": ("statement_id", "comment-id", "comment_id", "tid"),
    "vote": ("vote",),
    "timestamp": ("timestamp", "modified", "created"),
}
VOTE_SKIPPED = frozenset({"datetime", "conversation_id", "weight_x_32767"})
STATEMENT_ALIASES: dict[str, tuple[str, ...]] = {
    "statement_id": ("statement_id", "comment-id", "comment_id", "tid"),
    "text": ("text", "comment-body", "comment_body", "txt", "body"),
    "moderated": ("moderated", "mod"),
    "author_id": ("author_id", "author-id", "participant_id", "pid"),
    "created": ("created", "timestamp"),
}
STATEMENT_SKIPPED = frozenset(
    {
        "datetime",
        "agrees",
        "disagrees",
        "agree_count",
        "disagree_count",
        "pass_count",
        "count",
        "is-seed",
        "is_seed",
        "is-meta",
        "is_meta",
        "lang",
        "velocity",
        "active",
        "conversation_id",
        "quote_src_url",
        "tweet_id",
        "schema_version",
    }
)
# The wide matrix's participant columns; every other column is a statement id.
WIDE_PARTICIPANT = ("participant", "participant_id", "pid", "voter-id")
WIDE_META = frozenset({"xid", "group-id", "n-comments", "n-votes", "n-agree", "n-disagree"})

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # numpy's int64, where timestamps are kept
VOTE_TEXT = {"1": 1, "+1": 1, "1.0": 1, "0": 0, "0.0": 0, "-0": 0, "-1": -1, "-1.0": -1}
MAX_LISTED = 5  # offending rows quoted in an error message


class Statement(Record):
    """One public statement (a Polis "comment"). `moderated`: 1 in, -1 out, 0 never moderated."""

    statement_id: str = Field(min_length=1)
    text: str
    moderated: Moderation = 0
    author_id: str | None = None
    created: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)

    @field_validator("statement_id")
    @classmethod
    def _id_clean(cls, v: str) -> str:
        if v != v.strip() or not v:
            raise ValueError("statement ids must be non-empty and carry no surrounding spaces")
        return v

    @field_validator("text")
    @classmethod
    def _text_nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty text")
        return v


class IngestReport(Strict):
    """What ingest read and what it dropped; written as `ingest.json`."""

    schema_version: int = 1
    source: str
    format: SourceFormat
    statements_file: str
    votes_file: str
    groups_file: str | None = None
    n_statements: int
    n_participants: int
    n_votes: int
    n_superseded: int = Field(0, description="Older votes replaced by a later vote on the pair.")
    n_tossed_participants: int = Field(0, description="Participants in ids-to-toss.csv dropped.")
    n_tossed_votes: int = 0
    dropped: dict[str, int] = Field(default_factory=dict, description="--lenient drops by reason.")
    skipped: dict[str, int] = Field(
        default_factory=dict,
        description="Left out by rule in every mode, never fatal: statements with empty text "
        "(moderated out, or not) and the votes on them.",
    )
    warnings: list[str] = Field(default_factory=list, description="Skips a person should check.")


@dataclass(frozen=True)
class Conversation:
    """Validated statements and votes (the latest vote per participant and statement).

    Votes are parallel arrays indexing `participant_ids` and `statements`; values are +1/0/-1.
    `export_groups` holds the group ids of a Polis `participants-votes.csv`, when there was one.
    """

    statements: tuple[Statement, ...]
    participant_ids: tuple[str, ...]
    vote_participant: NDArray[np.int32]
    vote_statement: NDArray[np.int32]
    vote_value: NDArray[np.int8]
    vote_time: NDArray[np.int64]  # -1 where the source had no timestamp
    report: IngestReport
    export_groups: Mapping[str, int] | None = None
    # The files and folder it was read from: writing the conversation must never overwrite them.
    inputs: tuple[Path, ...] = ()

    @property
    def statement_ids(self) -> list[str]:
        return [s.statement_id for s in self.statements]

    @property
    def n_votes(self) -> int:
        return int(self.vote_value.shape[0])


@dataclass
class _Problems:
    """Offending rows of one file: kept for the error message, or counted when lenient."""

    path: Path
    lenient: bool
    found: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, detail)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, line: int, reason: str, detail: str) -> None:
        self.counts[reason] += 1
        if len(self.found) < MAX_LISTED:
            self.found.append((line, reason, detail))

    def raise_if_any(self) -> None:
        if not self.counts or self.lenient:
            return
        total = sum(self.counts.values())
        first_line, _, first = self.found[0]
        rest = "; ".join(f"line {ln}: {d}" for ln, _, d in self.found[1:])
        summary = ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))
        more = f"; also {rest}" if rest else ""
        raise InputError(
            self.path,
            first_line,
            f"{first}{more} ({total} bad in all: {summary}; pass --lenient to drop them)",
        )


def natural_order(ids: Sequence[str]) -> list[str]:
    """Ids sorted numerically when all are integers, else as text.

    Ties (`0` and `000`) are broken by the text, so the order never depends on the order the ids
    came in (participant ids come out of a set, whose order changes from run to run).

    >>> natural_order(["10", "9", "100"])
    ['9', '10', '100']
    >>> natural_order(["b", "a10", "a9"])
    ['a10', 'a9', 'b']
    >>> natural_order(["000", "0", "+0"])
    ['+0', '0', '000']
    """
    try:
        return sorted(ids, key=lambda x: (int(x), x))
    except ValueError:
        return sorted(ids)


def parse_vote(raw: object) -> int | None:
    """A vote from a CSV cell or JSON value; None when it is not -1, 0 or 1.

    >>> [parse_vote(x) for x in ("1", " -1 ", "0.0", 1, "2", True, "agree")]
    [1, -1, 0, 1, None, None, None]
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw in (-1, 0, 1) else None
    if isinstance(raw, float):
        return int(raw) if raw in (-1.0, 0.0, 1.0) else None
    if isinstance(raw, str):
        return VOTE_TEXT.get(raw.strip())
    return None


def parse_integer(raw: object) -> int | None:
    """A timestamp or group id: an integer that fits numpy's int64; None for an empty cell.

    Raises `ValueError` saying what is wrong (callers add the file, line and column).

    >>> [parse_integer(x) for x in ("1700000000000", " 7 ", "2.0", "", None, 3)]
    [1700000000000, 7, 2, None, None, 3]
    >>> for bad in ("inf", "nan", "1e30", "9223372036854775808", "1.5", "x"):
    ...     try:
    ...         parse_integer(bad)
    ...     except ValueError as e:
    ...         print(e)
    not a finite number: "inf"
    not a finite number: "nan"
    beyond a 64-bit integer: "1e30"
    beyond a 64-bit integer: "9223372036854775808"
    not a whole number: "1.5"
    not a number: "x"
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    shown = json.dumps(raw, ensure_ascii=False)[:40]
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"expected an integer, got {shown}")
    if isinstance(raw, int):
        value = raw
    else:
        text = raw.strip() if isinstance(raw, str) else ""
        if text and _DIGITS.fullmatch(text):
            # Length first: int() of thousands of digits is slow, then refused by Python.
            too_long = len(text.lstrip("+-").lstrip("0")) > 19
            value = INT64_MAX + 1 if too_long else int(text)
        else:
            try:
                number = raw if isinstance(raw, float) else float(text)
            except ValueError:
                raise ValueError(f"not a number: {shown}") from None
            if not math.isfinite(number):
                # float() turns "1e999" into inf: a finite spelling too big for any clock
                big = bool(text) and not any(w in text.lower() for w in ("inf", "nan"))
                raise ValueError(
                    f"{'beyond a 64-bit integer' if big else 'not a finite number'}: {shown}"
                )
            if not number.is_integer():
                raise ValueError(f"not a whole number: {shown}")
            value = int(number)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"beyond a 64-bit integer: {shown}")
    return value


_DIGITS = re.compile(r"[+-]?[0-9]+")


def _resolve_columns(
    path: Path,
    header: Sequence[str],
    aliases: Mapping[str, tuple[str, ...]],
    required: Sequence[str],
    skipped: frozenset[str],
) -> dict[str, int]:
    """Map canonical names to column positions; unknown or doubled columns are errors."""
    found: dict[str, int] = {}
    spelled: dict[str, str] = {}
    for i, raw in enumerate(header):
        name = raw.strip()
        canonical = next((c for c, names in aliases.items() if name in names), None)
        if canonical is None:
            if name in skipped:
                continue
            known = ", ".join(a[0] for a in aliases.values())
            raise InputError(path, 1, f"unknown column `{name}` (column {i + 1}); expected {known}")
        if canonical in found:
            raise InputError(
                path,
                1,
                f"columns `{spelled[canonical]}` and `{name}` both give `{canonical}`",
            )
        found[canonical] = i
        spelled[canonical] = name
    for name in required:
        if name not in found:
            spellings = ", ".join(f"`{a}`" for a in aliases[name])
            raise InputError(path, 1, f"missing column `{name}` (spelled {spellings})")
    return found


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, cells) for every record, the header included.

    `strict=True`: without it, a quote that is never closed silently turns the rest of the file
    into one cell; with it, the reader fails, and the error names the line where the broken
    record starts.
    """
    if not path.is_file():
        raise InputError(path, None, "file not found" if not path.exists() else "not a file")
    last = 0
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, strict=True)
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    problem = _describe_csv_error(e, last + 1, reader.line_num)
                    raise InputError(path, last + 1, problem) from None
                start, last = last + 1, reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip() and start > 1):
                    continue
                yield start, cells
    except UnicodeDecodeError:
        line, column, byte = _first_bad_utf8(path)
        raise InputError(
            path, line, f"not valid UTF-8 (byte 0x{byte:02x}, byte {column} of the line)"
        ) from None


def _first_bad_utf8(path: Path) -> tuple[int, int, int]:
    """(line, column, byte) of the first byte that is not UTF-8; the reader's own error gives
    only an offset into the block it was decoding."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return lineno, e.start + 1, raw[e.start]
    return 1, 1, 0  # not reached: the reader found one


def _describe_csv_error(err: csv.Error, start: int, end: int) -> str:
    if "unexpected end of data" in str(err):
        return (
            "a quoted cell in the record starting on this line is never closed: the file ends "
            f"inside it (line {end}); close the quote, or double a quote that is part of the text"
        )
    spans = f" (the record runs on to line {end}: an unclosed quote swallows the lines after it)"
    return f"malformed CSV: {err}{spans if end > start else ''}"


def csv_header(path: Path) -> list[str]:
    for _, cells in _csv_rows(path):
        return [c.strip() for c in cells]
    raise InputError(path, None, "empty file: expected a header row")


def _cell(cells: Sequence[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


# --- statements ---------------------------------------------------------------------------------


EMPTY_MODERATED_OUT = "empty statement, moderated out"
EMPTY_NOT_MODERATED = "empty statement, not moderated out"
VOTE_ON_SKIPPED = "vote on a skipped statement"


@dataclass
class StatementsRead:
    """What `read_statements` kept, what `--lenient` dropped, and what was skipped by rule."""

    statements: list[Statement]
    dropped: Counter[str]
    skipped: dict[str, str]  # statement id → reason (EMPTY_MODERATED_OUT or EMPTY_NOT_MODERATED)
    warnings: list[str]

    @property
    def skip_counts(self) -> Counter[str]:
        return Counter(self.skipped.values())


def read_statements(path: Path, *, lenient: bool = False) -> StatementsRead:
    """Statements from a Polis `comments.csv`, our `statements.csv`, or `statements.jsonl`.

    A statement whose text is empty is skipped, never fatal: silently when the moderator removed
    it (`moderated = -1`; real exports blank such comments), with a warning otherwise.
    """
    problems = _Problems(path, lenient)
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix == ".jsonl":
        for lineno, obj in iter_jsonl_lines(path):
            rows.append((lineno, obj))
    else:
        header: list[str] | None = None
        cols: dict[str, int] = {}
        for lineno, cells in _csv_rows(path):
            if header is None:
                header = [c.strip() for c in cells]
                cols = _resolve_columns(
                    path, header, STATEMENT_ALIASES, ("statement_id", "text"), STATEMENT_SKIPPED
                )
                continue
            if len(cells) != len(header):
                problems.add(
                    lineno, "malformed row", f"{len(cells)} cells, the header has {len(header)}"
                )
                continue
            row: dict[str, Any] = {name: cells[i] for name, i in cols.items()}
            for optional in ("author_id", "created", "moderated"):
                if optional in row and not row[optional].strip():
                    del row[optional]
            rows.append((lineno, row))
    statements: list[Statement] = []
    skipped: dict[str, str] = {}
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for lineno, obj in rows:
        data = _statement_fields(obj)
        if "created" in data:
            try:
                data["created"] = parse_integer(data["created"])
            except ValueError as e:
                problems.add(lineno, "bad timestamp", f"column `created`: {e}")
                continue
        text = data.get("text")
        empty = isinstance(text, str) and not text.strip()
        try:
            # An empty text is checked apart, so that the rest of the row is still validated.
            statement = Statement.model_validate({**data, "text": "-"} if empty else data)
        except ValidationError as e:
            problems.add(lineno, "invalid statement", describe_validation_error(e))
            continue
        sid = statement.statement_id
        if sid in seen:
            problems.add(
                lineno,
                "duplicate statement id",
                f"column `statement_id`: duplicate id {sid!r} (first on line {seen[sid]})",
            )
            continue
        seen[sid] = lineno
        if not empty:
            statements.append(statement)
        elif statement.moderated == -1:
            skipped[sid] = EMPTY_MODERATED_OUT
        else:
            skipped[sid] = EMPTY_NOT_MODERATED
            warnings.append(
                f"{path}, line {lineno}: statement {sid!r} has an empty text and was not "
                "moderated out; skipped, with the votes on it"
            )
    problems.raise_if_any()
    if not statements:
        raise InputError(path, None, "no statements" + (" with text" if skipped else ""))
    return StatementsRead(statements, problems.counts, skipped, warnings)


def _statement_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical field names for a statement row (aliases resolved; JSON or CSV values)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        canonical = next((c for c, names in STATEMENT_ALIASES.items() if key in names), None)
        if canonical is None:
            if key in STATEMENT_SKIPPED:
                continue
            out[key] = value  # unknown field: let the strict model name it
            continue
        out[canonical] = value
    if isinstance(out.get("statement_id"), int | str) and not isinstance(
        out.get("statement_id"), bool
    ):
        out["statement_id"] = str(out["statement_id"]).strip()
    if isinstance(out.get("author_id"), int) and not isinstance(out.get("author_id"), bool):
        out["author_id"] = str(out["author_id"])
    if isinstance(out.get("moderated"), str):
        text = out["moderated"].strip()
        out["moderated"] = int(text) if text in ("-1", "0", "1") else text
    return out


# --- votes --------------------------------------------------------------------------------------


@dataclass
class RawVotes:
    """Votes as read, in file order, before the latest-vote-per-pair rule."""

    participant: list[str] = field(default_factory=list)
    statement: list[str] = field(default_factory=list)
    value: list[int] = field(default_factory=list)
    time: list[int] = field(default_factory=list)

    def add(self, participant: str, statement: str, value: int, time: int | None) -> None:
        self.participant.append(participant)
        self.statement.append(statement)
        self.value.append(value)
        self.time.append(-1 if time is None else time)


def _check_vote(
    problems: _Problems,
    lineno: int,
    participant: str,
    statement: str,
    raw_vote: object,
    raw_time: object,
    known: Mapping[str, Statement],
) -> tuple[int, int | None] | None:
    if not participant:
        problems.add(lineno, "empty participant id", "column `participant_id`: empty")
        return None
    if statement not in known:
        problems.add(
            lineno,
            "vote on unknown statement",
            f"column `statement_id`: no statement {statement!r} in the statements file",
        )
        return None
    value = parse_vote(raw_vote)
    if value is None:
        problems.add(
            lineno,
            "unknown vote value",
            f"column `vote`: expected -1, 0 or 1 (agree = 1), got {json.dumps(raw_vote)}",
        )
        return None
    try:
        time = parse_integer(raw_time)
    except ValueError as e:
        problems.add(lineno, "bad timestamp", f"column `timestamp`: {e}")
        return None
    return value, time


@dataclass
class VotesRead:
    """What a votes reader kept, what `--lenient` dropped, and the votes on skipped statements."""

    raw: RawVotes
    dropped: Counter[str]
    on_skipped: int = 0
    groups: dict[str, int] = field(default_factory=dict)  # the wide matrix's `group-id`s


def _json_id(value: object) -> str | None:
    """A participant or statement id from JSON: a string or an integer, nothing else."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip()


def read_long_votes(
    path: Path,
    known: Mapping[str, Statement],
    *,
    lenient: bool = False,
    skipped: Collection[str] = (),
) -> VotesRead:
    """Long-format votes: CSV (Polis `votes.csv` or ours) or JSONL, one vote per row.

    Votes on `skipped` statements (ids that the statements reader skipped) are counted only.
    """
    problems = _Problems(path, lenient)
    raw = RawVotes()
    on_skipped = 0
    if path.suffix == ".jsonl":
        for lineno, obj in iter_jsonl_lines(path):
            fields: dict[str, Any] = {}
            for key, value in obj.items():
                canonical = next((c for c, names in VOTE_ALIASES.items() if key in names), None)
                if canonical is None:
                    if key in VOTE_SKIPPED:
                        continue
                    raise InputError(path, lineno, f"unknown field `{key}`")
                fields[canonical] = value
            missing = [k for k in ("participant_id", "statement_id", "vote") if k not in fields]
            if missing:
                raise InputError(path, lineno, f"missing field `{missing[0]}`")
            pid, sid = _json_id(fields["participant_id"]), _json_id(fields["statement_id"])
            if pid is None or sid is None:
                name = "participant_id" if pid is None else "statement_id"
                shown = json.dumps(fields[name])[:40]
                problems.add(lineno, "bad id", f"field `{name}`: expected a string, got {shown}")
                continue
            if sid in skipped:
                on_skipped += 1
                continue
            checked = _check_vote(
                problems, lineno, pid, sid, fields["vote"], fields.get("timestamp"), known
            )
            if checked is not None:
                raw.add(pid, sid, *checked)
    else:
        cols: dict[str, int] | None = None
        width = 0
        for lineno, cells in _csv_rows(path):
            if cols is None:
                cols = _resolve_columns(
                    path,
                    cells,
                    VOTE_ALIASES,
                    ("participant_id", "statement_id", "vote"),
                    VOTE_SKIPPED,
                )
                width = len(cells)
                continue
            if len(cells) != width:
                problems.add(lineno, "malformed row", f"{len(cells)} cells, the header has {width}")
                continue
            pid = cells[cols["participant_id"]].strip()
            sid = cells[cols["statement_id"]].strip()
            if sid in skipped:
                on_skipped += 1
                continue
            checked = _check_vote(
                problems,
                lineno,
                pid,
                sid,
                cells[cols["vote"]],
                _cell(cells, cols.get("timestamp")),
                known,
            )
            if checked is not None:
                raw.add(pid, sid, *checked)
    problems.raise_if_any()
    return VotesRead(raw, problems.counts, on_skipped)


def read_wide_votes(
    path: Path,
    known: Mapping[str, Statement],
    *,
    lenient: bool = False,
    skipped: Collection[str] = (),
) -> VotesRead:
    """A Polis `participants-votes.csv`: one row per participant, one column per statement id.

    Returns the votes, the `group-id` of every participant that has one, and the drop counts;
    the columns of `skipped` statements are counted only.
    """
    problems = _Problems(path, lenient)
    raw = RawVotes()
    groups: dict[str, int] = {}
    on_skipped = 0
    header: list[str] | None = None
    pid_col = group_col = -1
    statement_cols: list[tuple[int, str]] = []
    skipped_cols: list[int] = []
    seen_pids: dict[str, int] = {}
    for lineno, cells in _csv_rows(path):
        if header is None:
            header = [c.strip() for c in cells]
            pid_col = next((i for i, h in enumerate(header) if h in WIDE_PARTICIPANT), -1)
            if pid_col < 0:
                raise InputError(path, 1, "missing column `participant` (the participant id)")
            group_col = header.index("group-id") if "group-id" in header else -1
            doubled = [h for h, n in Counter(header).items() if n > 1]
            if doubled:
                raise InputError(path, 1, f"column `{doubled[0]}` appears twice")
            for i, h in enumerate(header):
                if i == pid_col or h in WIDE_META:
                    continue
                if h in skipped:
                    skipped_cols.append(i)
                    continue
                if h not in known:
                    problems.add(
                        1,
                        "vote on unknown statement",
                        f"column `{h}` (column {i + 1}): no statement {h!r} in the statements file",
                    )
                    continue
                statement_cols.append((i, h))
            continue
        if len(cells) != len(header):
            problems.add(
                lineno, "malformed row", f"{len(cells)} cells, the header has {len(header)}"
            )
            continue
        pid = cells[pid_col].strip()
        if not pid:
            problems.add(lineno, "empty participant id", "column `participant`: empty")
            continue
        if pid in seen_pids:
            problems.add(
                lineno,
                "duplicate participant id",
                f"column `participant`: duplicate id {pid!r} (first on line {seen_pids[pid]})",
            )
            continue
        seen_pids[pid] = lineno
        if group_col >= 0:
            try:
                group = parse_integer(cells[group_col])
            except ValueError as e:
                problems.add(
                    lineno, "bad group id", f"column `group-id` (column {group_col + 1}): {e}"
                )
                group = None
            if group is not None:
                groups[pid] = group
        on_skipped += sum(1 for i in skipped_cols if cells[i].strip())
        for i, sid in statement_cols:
            cell = cells[i].strip()
            if not cell:
                continue
            value = parse_vote(cell)
            if value is None:
                problems.add(
                    lineno,
                    "unknown vote value",
                    f"column `{sid}` (column {i + 1}): expected -1, 0 or 1, got {cell!r}",
                )
                continue
            raw.add(pid, sid, value, None)
    if header is None:
        raise InputError(path, None, "empty file: expected a header row")
    problems.raise_if_any()
    return VotesRead(raw, problems.counts, on_skipped, groups)


def read_toss_ids(path: Path) -> set[str]:
    """Participant ids to drop (one per line; a non-numeric first line is taken as a header)."""
    ids: set[str] = set()
    for lineno, cells in _csv_rows(path):
        value = cells[0].strip() if cells else ""
        if not value or (lineno == 1 and not value.lstrip("-").isdigit()):
            continue
        ids.add(value)
    return ids


def read_export_groups(path: Path) -> dict[str, int]:
    """`group-id` per participant from a Polis `participants-votes.csv` (or our groups CSV)."""
    groups: dict[str, int] = {}
    header: list[str] | None = None
    pid_col = group_col = -1
    for lineno, cells in _csv_rows(path):
        if header is None:
            header = [c.strip() for c in cells]
            pid_col = next((i for i, h in enumerate(header) if h in WIDE_PARTICIPANT), -1)
            group_col = next((i for i, h in enumerate(header) if h in ("group-id", "group")), -1)
            if pid_col < 0 or group_col < 0:
                raise InputError(path, 1, "expected columns `participant` and `group-id`")
            continue
        try:
            group = parse_integer(_cell(cells, group_col))
        except ValueError as e:
            raise InputError(
                path, lineno, f"column `{header[group_col]}` (column {group_col + 1}): {e}"
            ) from None
        pid = _cell(cells, pid_col).strip()
        if group is not None and pid:
            groups[pid] = group
    return groups
