"""Weak-to-strong generalization (Burns et al. 2023) in probe mode, on a CPU.

tasks (loaders, balancing, splits) → features (frozen, cached) → heads (linear, soft labels,
losses) → experiment (weak on A, student on B's weak labels, ceiling on B, test) → pgr → report;
sweep runs tasks × model pairs × losses × seeds. `charter w2s run|sweep` is the command line.
"""

from charter.w2s.pgr import median_pgr_interval, performance_gap_recovered

__all__ = ["median_pgr_interval", "performance_gap_recovered"]
