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

The records these readers fill are in `charter.collective.conversation`; the CSV rows, column
aliases and cell values they rest on in `charter.collective.parsing`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from charter.collective.conversation import Statement
from charter.collective.parsing import (
    Problems,
    cell_at,
    csv_rows,
    parse_integer,
    parse_vote,
    resolve_columns,
)
from charter.errors import InputError
from charter.jsonl import describe_validation_error, iter_jsonl_lines

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
    problems = Problems(path, lenient)
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix == ".jsonl":
        for lineno, obj in iter_jsonl_lines(path):
            rows.append((lineno, obj))
    else:
        header: list[str] | None = None
        cols: dict[str, int] = {}
        for lineno, cells in csv_rows(path):
            if header is None:
                header = [c.strip() for c in cells]
                cols = resolve_columns(
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
    problems: Problems,
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
    problems = Problems(path, lenient)
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
        for lineno, cells in csv_rows(path):
            if cols is None:
                cols = resolve_columns(
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
                cell_at(cells, cols.get("timestamp")),
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
    # long: one pass over the rows of a wide CSV that records every kind of dropped cell as it goes
    problems = Problems(path, lenient)
    raw = RawVotes()
    groups: dict[str, int] = {}
    on_skipped = 0
    header: list[str] | None = None
    pid_col = group_col = -1
    statement_cols: list[tuple[int, str]] = []
    skipped_cols: list[int] = []
    seen_pids: dict[str, int] = {}
    for lineno, cells in csv_rows(path):
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
    for lineno, cells in csv_rows(path):
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
    for lineno, cells in csv_rows(path):
        if header is None:
            header = [c.strip() for c in cells]
            pid_col = next((i for i, h in enumerate(header) if h in WIDE_PARTICIPANT), -1)
            group_col = next((i for i, h in enumerate(header) if h in ("group-id", "group")), -1)
            if pid_col < 0 or group_col < 0:
                raise InputError(path, 1, "expected columns `participant` and `group-id`")
            continue
        try:
            group = parse_integer(cell_at(cells, group_col))
        except ValueError as e:
            raise InputError(
                path, lineno, f"column `{header[group_col]}` (column {group_col + 1}): {e}"
            ) from None
        pid = cell_at(cells, pid_col).strip()
        if group is not None and pid:
            groups[pid] = group
    return groups
