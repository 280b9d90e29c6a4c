"""`JsonlWriter`: the append-only, resumable JSONL every stage writes its records to."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from charter.errors import RunFolderError
from charter.records import Record, canonical_json

__all__ = ["JsonlWriter"]


class JsonlWriter:
    """Append-only JSONL of records keyed by `id`, durable per batch, resumable without duplicates.

    The file is created on the first write, so a run that fails before producing anything leaves
    no empty or partial output behind. On reopening, a trailing partial line (the batch a kill
    interrupted) is cut off; every complete line's id counts as done.
    """

    def __init__(self, path: str | Path, *, resume: bool = False) -> None:
        self.path = Path(path)
        self.done: set[str] = set()
        if self.path.exists():
            if not resume:
                raise RunFolderError(f"{self.path} exists; pass --resume to continue it")
            self._recover()

    def _recover(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with self.path.open("r+b") as f:
                f.truncate(end)
        for lineno, line in enumerate(data[:end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                self.done.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                raise RunFolderError(
                    f"{self.path}, line {lineno}: not a record with an `id`; the file was changed "
                    "by something other than charter"
                ) from None

    def retain(self, ids: Iterable[str]) -> int:
        """Drop the records whose id is not in `ids` (inputs no longer asked for, e.g. a prompt
        removed from the file); return how many were dropped. The file is rewritten atomically."""
        from charter.runs import atomic_write_text  # runs re-exports this module

        keep = set(ids)
        stale = self.done - keep
        if not stale or not self.path.exists():
            return 0
        kept = [
            line
            for line in self.path.read_bytes().splitlines(keepends=True)
            if line.strip() and str(json.loads(line)["id"]) in keep
        ]
        atomic_write_text(self.path, b"".join(kept).decode("utf-8"))
        self.done -= stale
        return len(stale)

    def pending(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if i not in self.done]

    def write(self, records: Sequence[Record]) -> int:
        """Append the records not yet on disk; return how many were written."""
        fresh = []
        for r in records:
            rid = str(getattr(r, "id"))  # noqa: B009 - every written record has an id
            if rid not in self.done:
                self.done.add(rid)
                fresh.append(canonical_json(r.model_dump(mode="json")))
        if fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write("\n".join(fresh) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                e.filename = e.filename or str(self.path)  # a full disk says ENOSPC, not where
                raise
        return len(fresh)
