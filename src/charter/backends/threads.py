"""How many threads an inference engine may use on this machine.

CPU inference is bound by the physical cores: a second hardware thread on the same core adds
little, and two engines that each take every core slow each other down many times over (torch's
OpenMP threads spin while they wait). Engines therefore take the physical cores this process may
run on, unless the user says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path


def usable_cpus() -> list[int]:
    """The logical CPUs this process may run on (its affinity mask, e.g. under taskset)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def physical_cores() -> int:
    """Physical cores among the usable CPUs: hardware threads of one core count once.

    Read from `/sys/devices/system/cpu/cpuN/topology` where present; elsewhere every logical
    CPU counts as a core.
    """
    cores: set[tuple[str, str]] = set()
    cpus = usable_cpus()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def split_threads(total: int, workers: int | None = None) -> tuple[int, int]:
    """`(workers, threads per worker)` for `total` threads.

    Small batches on a CPU scale better across independent workers (each decoding its own
    sub-batch on one core) than across threads inside one matrix product: measured on a 2-core
    machine with the 135M model, 2 workers × 1 thread gave 1.6× the tokens/s of 1 × 2. Beyond four
    workers the sub-batches get too small, so larger machines give each worker several threads.

    >>> split_threads(2)
    (2, 1)
    >>> split_threads(16)
    (4, 4)
    >>> split_threads(8, workers=1)
    (1, 8)
    """
    total = max(1, int(total))
    if workers is None:
        workers = min(total, 4)
    workers = max(1, min(int(workers), total))
    return workers, max(1, total // workers)
