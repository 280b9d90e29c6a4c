"""Where, when and from which commit a benchmark ran, and how much memory each part took."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


def git_commit() -> str | None:
    """The short commit of the checkout charter runs from (`git rev-parse --short HEAD` in the
    package's folder); None when that folder is not in a git repository or git is missing."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and sha else None


def git_source() -> str | None:
    """`git_commit()`, with `+dirty` when the checkout has uncommitted changes to tracked files:
    what a run folder's manifest records as the code that made it."""
    sha = git_commit()
    if sha is None:
        return None
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return sha
    return sha + ("+dirty" if done.returncode == 0 and done.stdout.strip() else "")


def machine(backend: Any) -> dict[str, Any]:
    """Where and when a benchmark ran: platform, cores, torch threads and SIMD level, device, the
    model's dtype, the date (UTC) and charter's git commit."""
    import torch

    from charter.backends.threads import physical_cores

    model = getattr(backend, "model", None)
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "torch_threads": torch.get_num_threads(),
        # The SIMD level torch's CPU kernels use (AVX2, AVX512, ...): bf16 and int8 speeds
        # depend on it more than on the core count.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": getattr(backend, "device", None),
        "dtype": str(model.dtype).removeprefix("torch.") if model is not None else None,
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "commit": git_commit(),
    }


@contextmanager
def peak_rss(into: dict[str, float], name: str) -> Iterator[None]:
    """Record the process's peak resident memory (MB) while the block runs as `into[name]`.

    On Linux the peak is reset first (`/proc/self/clear_refs`), so each part of a benchmark
    gets its own figure; elsewhere it is the process's peak so far.
    """
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    try:
        yield
    finally:
        into[name] = round(_peak_rss_mb(), 1)


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def note_lines(result: dict[str, Any]) -> list[str]:
    """A recorded benchmark's `note` (what the person who ran it said about the run) as the
    first paragraph of its section, or nothing."""
    return [result["note"], ""] if result.get("note") else []


def write_record(out: Path, kind: str, rows: list[dict[str, Any]], **fields: Any) -> None:
    """Write a benchmark's record for `python -m charter.bench.report`: its `kind`, the fields
    that name what was measured, its `rows`, the machine and (when given) the `note`."""
    import json

    note = fields.pop("note", None)
    record = {
        "kind": kind,
        **fields,
        "rows": rows,
        "machine": machine(None),
        **({"note": note} if note else {}),
    }
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
