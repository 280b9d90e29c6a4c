"""Run folders: the unit of work.

A run folder holds `config.yaml` (the fully resolved config), `manifest.json` (stage status, input
hashes, package versions, timings) and the stages' outputs. Records are appended to JSONL files
as they are produced, flushed and fsynced per batch, each keyed by a deterministic id; a killed
run therefore loses at most the batch in flight, and `--resume` skips every id already on disk.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import Field, model_validator

from charter import __version__
from charter.errors import RunFolderError
from charter.records import Strict, stable_id
from charter.redact import redact_config, redact_spec

T = TypeVar("T")

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
TRACKED_PACKAGES = ("torch", "transformers", "pydantic", "accelerate", "vllm", "trl", "peft")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers, read without importing them."""
    from charter.bench.machine import git_source

    versions = {"python": platform.python_version(), "charter": __version__}
    # The commit of a git checkout charter runs from (`+dirty`: with uncommitted changes).
    if (source := git_source()) is not None:
        versions["charter_commit"] = source
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
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)  # a full disk says ENOSPC, not where
        raise


class StageStatus(Strict):
    status: Literal["running", "complete", "failed"]
    input_hash: str
    records_hash: str | None = None
    started_at: str
    finished_at: str | None = None
    seconds: float | None = None
    records: int = 0
    outputs: list[str] = Field(default_factory=list)
    error: str | None = None
    # The backends that answered this stage's calls: spec, engine, precision, threads.
    engines: list[dict[str, Any]] = Field(default_factory=list)


# Manifest keys of earlier releases → the stage names they are now.
OLD_STAGE_KEYS = {"sl/sl": "sl", "sl/sl-helpful": "sl/helpful", "sl-helpful": "sl/helpful"}
OLD_STAGE_KEYS["label/label"] = "label"


class Manifest(Strict):
    schema_version: int = 1
    name: str
    created_at: str
    config_sha256: str
    packages: dict[str, str]
    stages: dict[str, StageStatus] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _renamed_stages(cls, data: Any) -> Any:
        """A run folder of an earlier release resumes under today's stage names."""
        if isinstance(data, dict) and isinstance(data.get("stages"), dict):
            stages = {OLD_STAGE_KEYS.get(k, k): v for k, v in data["stages"].items()}
            data = {**data, "stages": stages}
        return data


RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LOCK = ".charter.lock"


def check_run_name(name: str) -> str:
    """A run name is a plain folder name: letters, digits, `.`, `_`, `-`; not `.` or `..`.

    >>> check_run_name("quick-2")
    'quick-2'
    """
    if not RUN_NAME.match(name or "") or name in (".", ".."):
        raise RunFolderError(
            f"run name {name!r} is not a plain folder name: use letters, digits, '.', '_' and "
            "'-' (starting with a letter or digit, at most 128 characters); a run always lives "
            "directly inside the runs folder"
        )
    return name


def holds_manifest(path: Path) -> bool:
    """Whether `path` is a charter run folder: it holds a manifest charter can read."""
    try:
        Manifest.model_validate_json((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def list_runs(parent: Path) -> list[dict[str, Any]]:
    """The run folders in `parent` (those holding a manifest): name, stage counts, status
    (`complete`, `failed`, `running` or `empty`) and when a stage last changed."""
    found: list[dict[str, Any]] = []
    if not parent.is_dir():
        return found
    for path in sorted(p for p in parent.iterdir() if holds_manifest(p)):
        manifest = _read_manifest(path)
        if manifest is None:
            continue
        stages = manifest.stages.values()
        statuses = {s.status for s in stages}
        status = next(
            (k for k in ("failed", "running") if k in statuses), "complete" if stages else "empty"
        )
        times = [t for s in stages for t in (s.started_at, s.finished_at) if t]
        found.append(
            {
                "name": path.name,
                "path": str(path),
                "stages": len(manifest.stages),
                "complete": sum(s.status == "complete" for s in stages),
                "status": status,
                "created_at": manifest.created_at,
                "updated_at": max(times) if times else None,
            }
        )
    return found


def show_run(parent: Path, name: str) -> dict[str, Any]:
    """One run: its manifest's stages (status, seconds, records, error) and, when evaluated,
    each model's harmful compliance and over-refusal from `eval/metrics.json`."""
    path = parent / check_run_name(name)
    manifest = _read_manifest(path) if holds_manifest(path) else None
    if manifest is None:
        runs = [r["name"] for r in list_runs(parent)]
        raise RunFolderError(
            f"there is no run {name!r} in {parent}; "
            + (f"runs there: {', '.join(runs)}" if runs else "it holds no runs")
        )
    metrics: dict[str, Any] = {}
    metrics_path = path / "eval" / "metrics.json"
    if metrics_path.exists():
        import json

        data = json.loads(metrics_path.read_text(encoding="utf-8"))
        for model, m in (data.get("models") or {}).items():
            metrics[model] = {
                key: (m.get(key) or {}).get("rate")
                for key in ("harmful_compliance", "over_refusal")
            }
    return {
        "name": name,
        "path": str(path),
        "created_at": manifest.created_at,
        "stages": {
            k: {"status": s.status, "seconds": s.seconds, "records": s.records, "error": s.error}
            for k, s in manifest.stages.items()
        },
        "metrics": metrics,
    }


def _read_manifest(path: Path) -> Manifest | None:
    try:
        return Manifest.model_validate_json((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class _Lock:
    """An exclusive lock on a run folder, held while this process writes it.

    `flock` on `.charter.lock` (released by the kernel when the process ends, however it ends);
    the file holds the owner's PID for the message a second process gets. A process may open
    the same folder again (one lock per folder per process, counted).
    """

    held: ClassVar[dict[str, tuple[int, int]]] = {}  # resolved path -> (fd, count)

    @classmethod
    def acquire(cls, folder: Path) -> None:
        import fcntl

        key = str(folder.resolve())
        if key in cls.held:
            fd, count = cls.held[key]
            cls.held[key] = (fd, count + 1)
            return
        path = folder / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderError(
                f"{folder} is in use by another charter process (PID {holder}); wait for it to "
                "finish or stop it, then run again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        cls.held[key] = (fd, 1)

    @classmethod
    def release(cls, folder: Path) -> None:
        import fcntl

        key = str(folder.resolve())
        if key not in cls.held:
            return
        fd, count = cls.held[key]
        if count > 1:
            cls.held[key] = (fd, count - 1)
            return
        del cls.held[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _jsonl_lines(path: Path) -> int:
    """Complete lines of a JSONL output (records already there); 0 when absent."""
    try:
        with path.open("rb") as f:
            return sum(1 for line in f if line.endswith(b"\n") and line.strip())
    except OSError:
        return 0


class RunFolder:
    """A run folder on disk, with its manifest kept in step with every stage transition.

    While open, the folder is locked against other processes (see `close`). `redo` names stages
    whose outputs may be thrown away and recomputed although their options are unchanged or
    changed (`--redo STAGE`); without it, a stage whose options changed since it produced
    records refuses to run rather than silently discard that work.
    """

    def __init__(self, path: Path, manifest: Manifest, redo: Sequence[str] = ()) -> None:
        self.path = path
        self.manifest = manifest
        self.redo = set(redo)
        self.discarded: list[str] = []  # stages whose outputs a changed input threw away
        self.notes: list[str] = []  # what was redone or kept, and why, for the user
        # How each stage begun in this process went: "ran", "resumed" or "skipped", with the
        # records that were already there.
        self.outcomes: dict[str, tuple[str, int]] = {}

    @classmethod
    def open(
        cls,
        path: str | Path,
        config: dict[str, Any],
        *,
        resume: bool = False,
        overwrite: bool = False,
        redo: Sequence[str] = (),
    ) -> RunFolder:
        """Create a run folder, or reopen one with `resume`; refuse to mix two runs silently.

        `overwrite` deletes the folder only if it is a charter run folder (it holds a manifest);
        any other non-empty folder is an error that names it, whatever the flags.
        """
        path = Path(path)
        manifest_path = path / MANIFEST
        config = redact_config(config)  # a backend URL's credentials never reach the folder
        config_hash = stable_id(config, length=64)
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"{path} is a file, expected a run folder")
        # A folder that holds only a config, a manifest and a lock (a run that failed before
        # producing anything) is reused as if new.
        ours = (CONFIG, MANIFEST, LOCK)
        if path.exists() and any(p.name not in ours for p in path.iterdir()):
            if not holds_manifest(path):
                raise RunFolderError(
                    f"{path} is not empty and is not a charter run folder (no manifest.json): "
                    "charter neither writes into nor deletes it; choose another folder"
                )
            if overwrite:
                _Lock.acquire(path)  # never delete a folder another process is writing
                _Lock.release(path)
                shutil.rmtree(path)
            elif not resume:
                raise RunFolderError(
                    f"{path} already holds a run; pass --resume to continue it or --overwrite to "
                    "start again"
                )
        path.mkdir(parents=True, exist_ok=True)
        _Lock.acquire(path)
        try:
            if manifest_path.exists():
                try:
                    manifest = Manifest.model_validate_json(
                        manifest_path.read_text(encoding="utf-8")
                    )
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
            run = cls(path, manifest, redo)
            atomic_write_text(
                path / CONFIG, yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
            )
            run.save()
        except BaseException:
            _Lock.release(path)
            raise
        return run

    def close(self) -> None:
        """Release the folder's lock (it is also released when the process ends)."""
        _Lock.release(self.path)

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def portable(self, value: Any) -> Any:
        """`value` (JSON data: stage options) with this folder's path written as `<run>`, so
        that a stage's hash does not change when the run folder is moved or renamed.

        >>> import tempfile
        >>> run = RunFolder.open(Path(tempfile.mkdtemp()) / "r", {})
        >>> run.portable({"model": f"hf:{run.path}/train/sft/merged", "lr": 1e-4})
        {'model': 'hf:<run>/train/sft/merged', 'lr': 0.0001}
        """
        if isinstance(value, dict):
            return {k: self.portable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.portable(v) for v in value]
        if isinstance(value, str):
            return value.replace(str(self.path.resolve()), "<run>").replace(str(self.path), "<run>")
        return value

    def options_hashes(self, options: Any, *salt: Any) -> tuple[str, tuple[str, ...]]:
        """A stage's options hash (with `portable` paths) and the hash the previous release
        wrote (with the folder's absolute path), for `run_stage(earlier_hashes=...)`."""
        digest = stable_id(self.portable(options), *salt, length=64)
        return digest, (stable_id(options, *salt, length=64),)

    def save(self) -> None:
        atomic_write_text(self.path / MANIFEST, self.manifest.model_dump_json(indent=2) + "\n")

    def _discard(self, name: str) -> None:
        for out in self.manifest.stages[name].outputs:
            target = self.path / out
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        del self.manifest.stages[name]
        self.discarded.append(name)

    def begin_stage(
        self,
        name: str,
        input_hash: str,
        outputs: Sequence[str],
        *,
        records_hash: str | None = None,
        per_record: bool = False,
        ask: bool = True,
        earlier_hashes: Sequence[str] = (),
    ) -> bool:
        """Mark `name` running; return False when it is already complete for these inputs.

        `input_hash` covers the stage's options; `records_hash` the records it works on (the
        prompts, the pairs, the training data). When the options changed since the stage
        produced records, it refuses (RunFolderError) unless the stage is in `redo` or `ask`
        is false (cheap stages); then its outputs are discarded and it runs again. When only
        the records changed, a `per_record` stage keeps its outputs (it computes the new
        records and drops the ones no longer asked for); any other stage is redone. Later
        stages see their own inputs change through their hashes. `earlier_hashes` are these
        options as an earlier release hashed them: a run folder it made resumes.
        """
        stages = self.manifest.stages
        previous = stages.get(name)
        if previous is not None and previous.input_hash in earlier_hashes:
            previous.input_hash = input_hash
        existing = sum(_jsonl_lines(self.path / o) for o in outputs if o.endswith(".jsonl"))
        records_changed = (
            previous is not None
            and records_hash is not None
            and previous.records_hash not in (None, records_hash)
        )
        if previous is not None and name in self.redo:
            self._discard(name)
            self.notes.append(f"{name}: redone as asked (--redo)")
            previous, existing = None, 0
        elif previous is not None and previous.input_hash != input_hash:
            # New input records would redo a stage that is not per-record anyway: nothing to ask.
            stale = records_changed and not per_record
            if ask and not stale and (existing or previous.records):
                done = existing or previous.records
                spent = f", {previous.seconds:.0f} s of work" if previous.seconds else ""
                raise RunFolderError(
                    f"stage {name} of {self.path} was run with other options ({done} records"
                    f"{spent}); continuing would discard them. Pass --redo {name} to redo it "
                    "(later stages follow where their inputs change), --overwrite to start the "
                    "run again, or restore the options it ran with"
                )
            self._discard(name)
            self.notes.append(f"{name}: redone because its options changed")
            previous, existing = None, 0
        elif previous is not None and records_changed:
            if per_record:
                self.notes.append(
                    f"{name}: its input records changed; the {existing} finished records whose "
                    "own inputs are unchanged are kept, new or changed ones are computed"
                )
                previous = previous.model_copy(update={"status": "running"})
            else:
                self._discard(name)
                self.notes.append(f"{name}: redone because its input data changed")
                previous, existing = None, 0
        if previous is not None and previous.status == "complete":
            self.outcomes[name] = ("skipped", previous.records)
            return False
        self.outcomes[name] = ("resumed" if existing else "ran", existing)
        stages[name] = StageStatus(
            status="running",
            input_hash=input_hash,
            records_hash=records_hash,
            started_at=now_iso(),
            outputs=list(outputs),
        )
        self._clock = time.perf_counter()
        self._usage = _backend_usage()
        self.save()
        return True

    def run_stage(
        self,
        name: str,
        input_hash: str,
        outputs: Sequence[str],
        fn: Callable[[], T],
        records: Callable[[T], int] | None = None,
        *,
        records_hash: str | None = None,
        per_record: bool = False,
        ask: bool = True,
        earlier_hashes: Sequence[str] = (),
    ) -> T | None:
        """Run `fn` as stage `name` with the manifest's bookkeeping: its result, or None (and
        nothing run) when the stage is already complete for these inputs (see `begin_stage`).
        A failure is recorded and re-raised. The record count is `records(result)`, or the
        result itself."""
        if not self.begin_stage(
            name,
            input_hash,
            outputs,
            records_hash=records_hash,
            per_record=per_record,
            ask=ask,
            earlier_hashes=earlier_hashes,
        ):
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
        self._end(name, "failed", records, redact_spec(error))

    def _end(
        self, name: str, status: Literal["complete", "failed"], records: int, error: str | None
    ) -> None:
        stage = self.manifest.stages[name]
        stage.status = status
        stage.finished_at = now_iso()
        stage.seconds = round(time.perf_counter() - getattr(self, "_clock", time.perf_counter()), 3)
        stage.records = records
        stage.error = error
        stage.engines = _engines_since(getattr(self, "_usage", {}))
        self.save()


def _backend_usage() -> dict[int, int]:
    from charter.backends import usage

    return usage()


def _engines_since(before: dict[int, int]) -> list[dict[str, Any]]:
    from charter.backends import used_since

    return used_since(before)


# Re-exported: the run stages write their records through it.
from charter.jsonl_writer import JsonlWriter as JsonlWriter  # noqa: E402
