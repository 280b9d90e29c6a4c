"""Helpers for the collective tests: the CLI as `charter.cli.main` runs it, and small Polis-style
exports written by the tests themselves (never copies of the real data).

`moderated_export` is built like the public export of issue #25: Polis's own columns, a comment
the moderator removed that has an empty body (and still has votes, in both `votes.csv` and the
`participants-votes.csv` matrix), and a moderated-out comment that kept its text.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path

import click
from click.testing import CliRunner

from charter.cli.collective import collective
from charter.errors import CharterError

COMMENT_HEADER: list[object] = [
    "timestamp", "datetime", "comment-id", "author-id", "agrees", "disagrees", "moderated",
    "comment-body",
]  # fmt: skip
WIDE_META: list[object] = [
    "participant",
    "group-id",
    "n-comments",
    "n-votes",
    "n-agree",
    "n-disagree",
]

N_PARTICIPANTS = 40
N_STATEMENTS = 10  # ids 0..9 have text; 10 is moderated out and empty; 11 is out with text
EMPTY_OUT = 10
TEXT_OUT = 11


def charter(args: list[str]) -> tuple[int, str]:
    """Run `charter ARGS` as `charter.cli.main` does: user errors → one line, exit 2; any other
    exception is a bug and is raised."""
    group = click.Group("charter", commands={"collective": collective})
    result = CliRunner().invoke(group, args, catch_exceptions=True)
    if isinstance(result.exception, CharterError):
        return result.exception.exit_code, f"{result.output}charter: error: {result.exception}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def write_csv(path: Path, rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative name → sha256): to show that nothing changed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _vote(p: int, j: int) -> int | None:
    """Two camps that agree on 0..2 and split on the rest; some statements left unseen."""
    if (p + j) % 7 == 0:
        return None
    if j < 3:
        return 1
    if j == 3 + p % 7:
        return 0
    return 1 if (p < N_PARTICIPANTS // 2) == (j % 2 == 0) else -1


def moderated_export(folder: Path, *, drop_empty: bool = False) -> Path:
    """The export; with `drop_empty` the same export with comment 10 and its votes deleted by hand,
    which is exactly what `--lenient` made of it before comment 10 was skipped."""
    folder.mkdir(parents=True)
    comments: list[list[object]] = [COMMENT_HEADER]
    for j in range(N_STATEMENTS):
        comments.append([1000 + j, "d", j, j % 3, 0, 0, 1 if j % 4 else 0, f"Statement {j}."])
    if not drop_empty:
        comments.append([1010, "d", EMPTY_OUT, 2, 0, 0, -1, ""])
    comments.append([1011, "d", TEXT_OUT, 2, 0, 0, -1, "Removed, but its text was kept."])
    write_csv(folder / "comments.csv", comments)

    ids = [j for j in range(N_STATEMENTS + 2) if not (drop_empty and j == EMPTY_OUT)]
    votes: list[list[object]] = [["timestamp", "datetime", "comment-id", "voter-id", "vote"]]
    wide: list[list[object]] = [WIDE_META + [str(j) for j in ids]]
    for p in range(N_PARTICIPANTS):
        cast: dict[int, int] = {}
        for j in ids:
            value = _vote(p, j) if j < N_STATEMENTS else (1 if p % 3 else -1)
            if value is not None:
                cast[j] = value
                votes.append([10_000 + 100 * p + j, "d", j, p, value])
        group = "" if p == 0 else (0 if p < N_PARTICIPANTS // 2 else 1)
        agree, disagree = sum(v == 1 for v in cast.values()), sum(v == -1 for v in cast.values())
        wide.append([p, group, 0, len(cast), agree, disagree, *(cast.get(j, "") for j in ids)])
    write_csv(folder / "votes.csv", votes)
    write_csv(folder / "participants-votes.csv", wide)
    return folder
