"""Run folders: the unit of work.

A run folder holds `config.yaml` (the fully resolved config), `manifest.json` (stage status, input
hashes, package versions, timings) and the stages' outputs. Records are appended to JSONL files
as they are produced, flushed and fsynced per batch, each keyed by a deterministic id; a killed
run therefore loses at most the batch in flight, and `--resume` skips every id already on disk.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import Field

from charter import __version__
from charter.errors import RunFolderError
from charter.records import Record, Strict, canonical_json, stable_id

T = TypeVar("T")

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
TRACKED_PACKAGES = ("torch", "transformers", "pydantic", "accelerate", "vllm", "trl", "peft")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers, read without importing them."""
    versions = {"python": platform.python_version(), "charter": __version__}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes: the identity of an input file in configs and manifests."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing: a crash never leaves a half-written manifest."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class StageStatus(Strict):
    status: Literal["running", "complete", "failed"]
    input_hash: str
    started_at: str
    finished_at: str | None = None
    seconds: float | None = None
    records: int = 0
    outputs: list[str] = Field(default_factory=list)
    error: str | None = None


class Manifest(Strict):
    schema_version: int = 1
    name: str
    created_at: str
    config_sha256: str
    packages: dict[str, str]
    stages: dict[str, StageStatus] = Field(default_factory=dict)


class RunFolder:
    """A run folder on disk, with its manifest kept in step with every stage transition."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest
        self.discarded: list[str] = []  # stages whose outputs a changed input threw away

    @classmethod
    def open(
        cls,
        path: str | Path,
        config: dict[str, Any],
        *,
        resume: bool = False,
        overwrite: bool = False,
    ) -> RunFolder:
        """Create a run folder, or reopen one with `resume`; refuse to mix two runs silently."""
        path = Path(path)
        manifest_path = path / MANIFEST
        config_hash = stable_id(config, length=64)
        # A folder that holds only a config and a manifest (a run that failed before producing
        # anything) is reused as if new.
        if path.exists() and any(p.name not in (CONFIG, MANIFEST) for p in path.iterdir()):
            if overwrite:
                shutil.rmtree(path)
            elif not resume:
                raise RunFolderError(
                    f"{path} already holds a run; pass --resume to continue it or --overwrite to "
                    "start again"
                )
        path.mkdir(parents=True, exist_ok=True)
        if manifest_path.exists():
            try:
                manifest = Manifest.model_validate_json(manifest_path.read_text(encoding="utf-8"))
            except ValueError as e:
                raise RunFolderError(f"{manifest_path}: unreadable manifest ({e})") from None
            manifest.config_sha256 = config_hash
            manifest.packages = package_versions()
        else:
            manifest = Manifest(
                name=path.name,
                created_at=now_iso(),
                config_sha256=config_hash,
                packages=package_versions(),
            )
        run = cls(path, manifest)
        atomic_write_text(
            path / CONFIG, yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        )
        run.save()
        return run

    def save(self) -> None:
        atomic_write_text(self.path / MANIFEST, self.manifest.model_dump_json(indent=2) + "\n")

    def begin_stage(self, name: str, input_hash: str, outputs: Sequence[str]) -> bool:
        """Mark `name` running; return False when it is already complete for these inputs.

        When the stage's inputs changed since it last ran, its outputs and every later stage
        (later in the manifest's order, i.e. downstream) are discarded first.
        """
        stages = self.manifest.stages
        previous = stages.get(name)
        if previous is not None and previous.input_hash != input_hash:
            names = list(stages)
            for stale in names[names.index(name) :]:
                for out in stages[stale].outputs:
                    target = self.path / out
                    if target.is_dir():
                        shutil.rmtree(target)
                    else:
                        target.unlink(missing_ok=True)
                del stages[stale]
                self.discarded.append(stale)
            previous = None
        if previous is not None and previous.status == "complete":
            return False
        stages[name] = StageStatus(
            status="running", input_hash=input_hash, started_at=now_iso(), outputs=list(outputs)
        )
        self._clock = time.perf_counter()
        self.save()
        return True

    def run_stage(
        self,
        name: str,
        input_hash: str,
        outputs: Sequence[str],
        fn: Callable[[], T],
        records: Callable[[T], int] | None = None,
    ) -> T | None:
        """Run `fn` as stage `name` with the manifest's bookkeeping: its result, or None (and
        nothing run) when the stage is already complete for these inputs. A failure is recorded
        and re-raised. The stage's record count is `records(result)`, or the result itself."""
        if not self.begin_stage(name, input_hash, outputs):
            return None
        try:
            result = fn()
        except BaseException as e:
            self.fail_stage(name, 0, str(e) or type(e).__name__)
            raise
        count = records(result) if records is not None else result
        self.finish_stage(name, int(count))  # type: ignore[arg-type]
        return result

    def finish_stage(self, name: str, records: int) -> None:
        self._end(name, "complete", records, None)

    def fail_stage(self, name: str, records: int, error: str) -> None:
        self._end(name, "failed", records, error)

    def _end(
        self, name: str, status: Literal["complete", "failed"], records: int, error: str | None
    ) -> None:
        stage = self.manifest.stages[name]
        stage.status = status
        stage.finished_at = now_iso()
        stage.seconds = round(time.perf_counter() - getattr(self, "_clock", time.perf_counter()), 3)
        stage.records = records
        stage.error = error
        self.save()


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
            with self.path.open("a", encoding="utf-8") as f:
                f.write("\n".join(fresh) + "\n")
                f.flush()
                os.fsync(f.fileno())
        return len(fresh)
