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
duplicate ids, empty text) are collected per file and reported together with their line and
column; `lenient=True` drops the offending rows instead and counts them by reason.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
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

VOTE_TEXT = {"1": 1, "+1": 1, "1.0": 1, "0": 0, "0.0": 0, "-0": 0, "-1": -1, "-1.0": -1}
MAX_LISTED = 5  # offending rows quoted in an error message


class Statement(Record):
    """One public statement (a Polis "comment"). `moderated`: 1 in, -1 out, 0 never moderated."""

    statement_id: str = Field(min_length=1)
    text: str
    moderated: Moderation = 0
    author_id: str | None = None
    created: int | None = None

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

    >>> natural_order(["10", "9", "100"])
    ['9', '10', '100']
    >>> natural_order(["b", "a10", "a9"])
    ['a10', 'a9', 'b']
    """
    try:
        return sorted(ids, key=int)
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


def _parse_timestamp(raw: object) -> int | None:
    """Milliseconds (Polis) or any integer clock; None for an empty cell; raises on junk."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise ValueError
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return int(text)
        except ValueError:
            return int(float(text))
    raise ValueError


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
    """(line number where the record starts, cells) for every record after the header."""
    if not path.is_file():
        raise InputError(path, None, "file not found")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            last = 0
            for cells in reader:
                start, last = last + 1, reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip() and start > 1):
                    continue
                yield start, cells
    except UnicodeDecodeError as e:
        raise InputError(path, None, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise InputError(path, None, f"malformed CSV: {e}") from None


def csv_header(path: Path) -> list[str]:
    for _, cells in _csv_rows(path):
        return [c.strip() for c in cells]
    raise InputError(path, None, "empty file: expected a header row")


def _cell(cells: Sequence[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


# --- statements ---------------------------------------------------------------------------------


def read_statements(path: Path, *, lenient: bool = False) -> tuple[list[Statement], Counter[str]]:
    """Statements from a Polis `comments.csv`, our `statements.csv`, or `statements.jsonl`."""
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
    seen: dict[str, int] = {}
    for lineno, obj in rows:
        data = _statement_fields(obj)
        try:
            statement = Statement.model_validate(data)
        except ValidationError as e:
            reason = "empty text" if "empty text" in str(e) else "invalid statement"
            problems.add(lineno, reason, describe_validation_error(e))
            continue
        if statement.statement_id in seen:
            problems.add(
                lineno,
                "duplicate statement id",
                f"column `statement_id`: duplicate id {statement.statement_id!r} "
                f"(first on line {seen[statement.statement_id]})",
            )
            continue
        seen[statement.statement_id] = lineno
        statements.append(statement)
    problems.raise_if_any()
    if not statements:
        raise InputError(path, None, "no statements")
    return statements, problems.counts


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
    if isinstance(out.get("statement_id"), int | str):
        out["statement_id"] = str(out["statement_id"]).strip()
    if isinstance(out.get("author_id"), int):
        out["author_id"] = str(out["author_id"])
    if isinstance(out.get("moderated"), str):
        text = out["moderated"].strip()
        out["moderated"] = int(text) if text in ("-1", "0", "1") else text
    if isinstance(out.get("created"), str):
        with contextlib.suppress(ValueError):  # the model reports what is left unparsed
            out["created"] = _parse_timestamp(out["created"])
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
        time = _parse_timestamp(raw_time)
    except ValueError:
        problems.add(
            lineno, "bad timestamp", f"column `timestamp`: not a number: {json.dumps(raw_time)}"
        )
        return None
    return value, time


def read_long_votes(
    path: Path, known: Mapping[str, Statement], *, lenient: bool = False
) -> tuple[RawVotes, Counter[str]]:
    """Long-format votes: CSV (Polis `votes.csv` or ours) or JSONL, one vote per row."""
    problems = _Problems(path, lenient)
    raw = RawVotes()
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
            pid, sid = str(fields["participant_id"]).strip(), str(fields["statement_id"]).strip()
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
    return raw, problems.counts


def read_wide_votes(
    path: Path, known: Mapping[str, Statement], *, lenient: bool = False
) -> tuple[RawVotes, dict[str, int], Counter[str]]:
    """A Polis `participants-votes.csv`: one row per participant, one column per statement id.

    Returns the votes, the `group-id` of every participant that has one, and the drop counts.
    """
    problems = _Problems(path, lenient)
    raw = RawVotes()
    groups: dict[str, int] = {}
    header: list[str] | None = None
    pid_col = group_col = -1
    statement_cols: list[tuple[int, str]] = []
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
        if group_col >= 0 and cells[group_col].strip():
            text = cells[group_col].strip()
            try:
                groups[pid] = int(float(text))
            except ValueError:
                problems.add(lineno, "bad group id", f"column `group-id`: not a number: {text!r}")
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
    return raw, groups, problems.counts


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
        text = _cell(cells, group_col).strip()
        if not text:
            continue
        try:
            groups[_cell(cells, pid_col).strip()] = int(float(text))
        except ValueError:
            raise InputError(path, lineno, f"column `group-id`: not a number: {text!r}") from None
    return groups
