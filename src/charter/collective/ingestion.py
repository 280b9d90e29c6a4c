"""Ingest: a Polis export, our own folder, or a votes file → one validated `Conversation`.

First stage of the collective-constitution pipeline (ingest → analyze → draft). The readers in
`charter.collective.votes` validate each file; here the votes are reduced to each participant's
latest vote per statement, tossed participants are dropped, and the result is written to (and
read back from) our own folder: `statements.jsonl`, `votes.csv`, `export_groups.csv`,
`ingest.json`. Writing never overwrites a file the conversation was read from, nor writes into the
folder it was read from: a Polis `votes.csv` and ours share a name but not a format.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from charter.collective.conversation import (
    Conversation,
    IngestReport,
    SourceFormat,
    Statement,
    natural_order,
)
from charter.collective.parsing import csv_header
from charter.collective.votes import (
    VOTE_ALIASES,
    VOTE_ON_SKIPPED,
    WIDE_PARTICIPANT,
    RawVotes,
    read_export_groups,
    read_long_votes,
    read_statements,
    read_toss_ids,
    read_wide_votes,
)
from charter.errors import ConfigError, InputError
from charter.jsonl import describe_validation_error
from charter.runs import atomic_write_text

INGEST_REPORT = "ingest.json"
STATEMENTS_FILE = "statements.jsonl"
VOTES_FILE = "votes.csv"
GROUPS_FILE = "export_groups.csv"
OUTPUT_FILES = (STATEMENTS_FILE, VOTES_FILE, GROUPS_FILE, INGEST_REPORT)


# --- assembling a conversation ------------------------------------------------------------------


def build_conversation(
    statements: Sequence[Statement],
    raw: RawVotes,
    report: IngestReport,
    *,
    export_groups: Mapping[str, int] | None = None,
    toss: set[str] | None = None,
    inputs: Sequence[Path] = (),
) -> Conversation:
    """Keep each participant's latest vote per statement (ties: the later row) and index them."""
    ordered = [statements[i] for i in _statement_order(statements)]
    sid_index = {s.statement_id: i for i, s in enumerate(ordered)}
    tossed = toss or set()
    keep = [i for i, p in enumerate(raw.participant) if p not in tossed]
    n_tossed_votes = len(raw.participant) - len(keep)
    participants = natural_order(list({raw.participant[i] for i in keep}))
    pid_index = {p: i for i, p in enumerate(participants)}
    p = np.fromiter((pid_index[raw.participant[i]] for i in keep), np.int64, len(keep))
    s = np.fromiter((sid_index[raw.statement[i]] for i in keep), np.int64, len(keep))
    v = np.fromiter((raw.value[i] for i in keep), np.int8, len(keep))
    t = np.fromiter((raw.time[i] for i in keep), np.int64, len(keep))
    order = np.arange(len(keep))
    key = p * max(len(ordered), 1) + s
    idx = np.lexsort((order, t, key))
    last = np.ones(len(idx), dtype=bool)
    if len(idx):
        last[:-1] = key[idx][1:] != key[idx][:-1]
    idx = idx[last]
    n_tossed_participants = len({x for x in raw.participant if x in tossed})
    final = report.model_copy(
        update={
            "n_statements": len(ordered),
            "n_participants": len(participants),
            "n_votes": len(idx),
            "n_superseded": len(keep) - len(idx),
            "n_tossed_participants": n_tossed_participants,
            "n_tossed_votes": n_tossed_votes,
        }
    )
    groups = None
    if export_groups is not None:
        groups = {pid: g for pid, g in export_groups.items() if pid not in tossed}
    return Conversation(
        statements=tuple(ordered),
        participant_ids=tuple(participants),
        vote_participant=p[idx].astype(np.int32),
        vote_statement=s[idx].astype(np.int32),
        vote_value=v[idx],
        vote_time=t[idx],
        report=final,
        export_groups=groups,
        inputs=tuple(inputs),
    )


def _statement_order(statements: Sequence[Statement]) -> list[int]:
    ids = [s.statement_id for s in statements]
    position = {sid: i for i, sid in enumerate(ids)}
    return [position[sid] for sid in natural_order(ids)]


def _first(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _merge_drops(*counters: Counter[str]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return dict(sorted(total.items()))


def ingest(
    src: str | Path,
    *,
    statements_path: str | Path | None = None,
    lenient: bool = False,
    toss_path: str | Path | None = None,
) -> Conversation:
    """Read a Polis export folder, one of our folders, or a votes file (with `statements_path`).

    In a Polis folder, `votes.csv` (long, timestamped) is preferred to `participants-votes.csv`;
    the latter still supplies the export's `group-id`s. `ids-to-toss.csv`, when present (or
    given), lists participants to drop entirely.
    """
    # long: the three input layouts (Polis folder, ours, a votes file) resolve to one path of checks
    src = Path(src)
    if src.is_dir() and (src / INGEST_REPORT).is_file():
        return read_conversation(src)
    if src.is_dir():
        stmt_path = (
            Path(statements_path)
            if statements_path
            else _first(src, ("comments.csv", "statements.csv", "statements.jsonl"))
        )
        if stmt_path is None:
            raise InputError(src, None, "no comments.csv, statements.csv or statements.jsonl here")
        long_path = _first(src, ("votes.csv", "votes.jsonl"))
        wide_path = _first(src, ("participants-votes.csv",))
        toss = Path(toss_path) if toss_path else _first(src, ("ids-to-toss.csv",))
    elif src.is_file():
        if statements_path is None:
            raise InputError(src, None, "a votes file needs its statements: pass --statements FILE")
        stmt_path = Path(statements_path)
        header = [] if src.suffix == ".jsonl" else csv_header(src)
        is_wide = (
            bool(header)
            and any(h in WIDE_PARTICIPANT for h in header)
            and not any(h in VOTE_ALIASES["statement_id"] for h in header)
        )
        long_path, wide_path = (None, src) if is_wide else (src, None)
        toss = Path(toss_path) if toss_path else None
    else:
        raise InputError(src, None, "no such file or folder")
    if long_path is None and wide_path is None:
        raise InputError(src, None, "no votes.csv, votes.jsonl or participants-votes.csv here")

    read = read_statements(stmt_path, lenient=lenient)
    known = {s.statement_id: s for s in read.statements}
    groups: dict[str, int] | None = None
    if long_path is not None:
        votes = read_long_votes(long_path, known, lenient=lenient, skipped=read.skipped)
        if wide_path is not None:
            groups = read_export_groups(wide_path)
        votes_file = long_path
        fmt: SourceFormat = (
            "polis-export"
            if src.is_dir() and stmt_path.name == "comments.csv"
            else ("long-jsonl" if long_path.suffix == ".jsonl" else "long-csv")
        )
    else:
        assert wide_path is not None  # one of the two exists, checked above
        votes = read_wide_votes(wide_path, known, lenient=lenient, skipped=read.skipped)
        groups = votes.groups
        votes_file, fmt = wide_path, "polis-wide"
    if not votes.raw.value:
        raise InputError(votes_file, None, "no votes")
    tossed = read_toss_ids(toss) if toss is not None else set()
    skipped = read.skip_counts
    if votes.on_skipped:
        skipped[VOTE_ON_SKIPPED] = votes.on_skipped
    report = IngestReport(
        source=str(src),
        format=fmt,
        statements_file=str(stmt_path),
        votes_file=str(votes_file),
        groups_file=str(wide_path) if groups is not None and wide_path is not None else None,
        n_statements=0,
        n_participants=0,
        n_votes=0,
        dropped=_merge_drops(read.dropped, votes.dropped),
        skipped=dict(sorted(skipped.items())),
        warnings=read.warnings,
    )
    inputs = [p for p in (src, stmt_path, long_path, wide_path, toss) if p is not None]
    return build_conversation(
        read.statements,
        votes.raw,
        report,
        export_groups=groups or None,
        toss=tossed,
        inputs=inputs,
    )


# --- our own folder -----------------------------------------------------------------------------


def _csv_text(rows: Sequence[Sequence[object]]) -> str:
    """CSV with `\n` line ends that reads back cell for cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    # The writer quotes a cell holding "\n" but not one holding a lone "\r", which every reader
    # takes for a line end; such rows (rare: ids with control characters) are quoted whole.
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        (quoted if any("\r" in str(c) for c in row) else writer).writerow(row)
    return buf.getvalue()


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)  # also catches hard links and case-folding systems
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return a.absolute() == b.absolute()


def check_output_folder(conv: Conversation, out: str | Path) -> None:
    """Refuse an output folder that is an input folder, or where writing would replace an input.

    Raises `ConfigError` before anything is written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file: the output of ingest is a folder")
    for source in conv.inputs:
        if source.is_dir() and _same_path(out, source):
            raise ConfigError(
                f"refusing to write into {out}: it is the folder the conversation was read from; "
                "choose another output folder"
            )
        for name in OUTPUT_FILES:
            if _same_path(out / name, source):
                raise ConfigError(
                    f"refusing to write {out / name}: it is the input file {source}; "
                    "choose another output folder"
                )


def write_conversation(conv: Conversation, out: str | Path) -> Path:
    """Write `statements.jsonl`, `votes.csv` (long, latest votes), `export_groups.csv` and
    `ingest.json` to `out`; each file is written whole or not at all. Nothing is written when
    `out` is a folder the conversation was read from or would overwrite one of its inputs."""
    out = Path(out)
    check_output_folder(conv, out)
    lines = [
        json.dumps(s.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
        for s in conv.statements
    ]
    pids = conv.participant_ids
    sids = conv.statement_ids
    rows: list[Sequence[object]] = [("participant_id", "statement_id", "vote", "timestamp")]
    for p, s, v, t in zip(
        conv.vote_participant.tolist(),
        conv.vote_statement.tolist(),
        conv.vote_value.tolist(),
        conv.vote_time.tolist(),
        strict=True,
    ):
        rows.append((pids[p], sids[s], v, "" if t < 0 else t))
    files = {STATEMENTS_FILE: "\n".join(lines) + "\n", VOTES_FILE: _csv_text(rows)}
    if conv.export_groups is not None:
        group_rows: list[Sequence[object]] = [("participant_id", "group")]
        group_rows += [
            (pid, conv.export_groups[pid]) for pid in natural_order(list(conv.export_groups))
        ]
        files[GROUPS_FILE] = _csv_text(group_rows)
    report = conv.report.model_copy(
        update={"groups_file": GROUPS_FILE if conv.export_groups is not None else None}
    )
    files[INGEST_REPORT] = report.model_dump_json(indent=2) + "\n"  # last: marks it complete
    try:
        out.mkdir(parents=True, exist_ok=True)
        # An earlier ingest's groups would be read back as this conversation's.
        if GROUPS_FILE not in files:
            (out / GROUPS_FILE).unlink(missing_ok=True)
        for name, text in files.items():
            atomic_write_text(out / name, text)
    except OSError as e:
        raise ConfigError(f"cannot write to {out}: {e.strerror or e}") from None
    return out


def read_conversation(folder: str | Path) -> Conversation:
    """A folder written by `write_conversation`, validated again (it is an input file too)."""
    folder = Path(folder)
    try:
        report = IngestReport.model_validate_json(
            (folder / INGEST_REPORT).read_text(encoding="utf-8")
        )
    except FileNotFoundError:
        raise InputError(folder / INGEST_REPORT, None, "file not found") from None
    except ValidationError as e:
        raise InputError(folder / INGEST_REPORT, None, describe_validation_error(e)) from None
    statements = read_statements(folder / STATEMENTS_FILE).statements
    known = {s.statement_id: s for s in statements}
    raw = read_long_votes(folder / VOTES_FILE, known).raw
    groups = None
    if (folder / GROUPS_FILE).is_file():
        groups = read_export_groups(folder / GROUPS_FILE)
    inputs = [folder, *(folder / n for n in OUTPUT_FILES if (folder / n).is_file())]
    conv = build_conversation(statements, raw, report, export_groups=groups, inputs=inputs)
    # The counts of the original ingest (superseded, tossed, dropped) describe the source.
    return Conversation(
        statements=conv.statements,
        participant_ids=conv.participant_ids,
        vote_participant=conv.vote_participant,
        vote_statement=conv.vote_statement,
        vote_value=conv.vote_value,
        vote_time=conv.vote_time,
        report=report,
        export_groups=conv.export_groups,
        inputs=conv.inputs,
    )
