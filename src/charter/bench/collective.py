"""`charter bench collective`: the analysis on a large synthetic conversation, timed next to
red-dwarf (a Python reimplementation of Polis) on the very same votes, in the same process.

The synthetic conversation has latent opinion groups: each participant belongs to one, sees a
random ~`density` share of the statements, and agrees with a statement with that group's
probability for it (passing 15 % of the time). Both pipelines get the votes in their own input
form, built before the clock starts: charter a `Conversation`, red-dwarf its list of vote dicts.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np

from charter.bench.machine import git_commit
from charter.collective.analysis import AnalysisConfig, analyze
from charter.collective.conversation import Conversation, IngestReport, Statement
from charter.collective.ingestion import build_conversation
from charter.collective.votes import RawVotes


def synthetic_conversation(
    n_participants: int = 10_000,
    n_statements: int = 2_000,
    density: float = 0.05,
    *,
    n_groups: int = 3,
    seed: int = 0,
) -> Conversation:
    """A seeded synthetic conversation with `n_groups` latent opinion groups."""
    rng = np.random.default_rng(seed)
    target = round(n_participants * n_statements * density)
    # Draw a little more than needed and drop repeated (participant, statement) pairs.
    draw = int(target * 1.03) + 16
    key = np.unique(
        rng.integers(n_participants, size=draw, dtype=np.int64) * n_statements
        + rng.integers(n_statements, size=draw, dtype=np.int64)
    )
    key = rng.permutation(key)[:target]
    rows, cols = key // n_statements, key % n_statements
    group = rng.integers(n_groups, size=n_participants)
    p_agree = rng.beta(0.7, 0.7, size=(n_groups, n_statements))
    u = rng.random(rows.shape[0])
    values = np.where(
        u < 0.15, 0, np.where(rng.random(rows.shape[0]) < p_agree[group[rows], cols], 1, -1)
    ).astype(np.int8)
    statements = [
        Statement(statement_id=str(j), text=f"synthetic statement {j}") for j in range(n_statements)
    ]
    report = IngestReport(
        source=f"synthetic:{n_participants}x{n_statements}@{density}#{seed}",
        format="long-csv",
        statements_file="(synthetic)",
        votes_file="(synthetic)",
        n_statements=n_statements,
        n_participants=n_participants,
        n_votes=int(values.shape[0]),
    )
    pids = np.array([str(i) for i in range(n_participants)], dtype=object)
    sids = np.array([str(j) for j in range(n_statements)], dtype=object)
    raw = RawVotes(
        participant=pids[rows].tolist(),
        statement=sids[cols].tolist(),
        value=values.tolist(),
        time=[-1] * int(values.shape[0]),
    )
    return build_conversation(statements, raw, report)


def reddwarf_votes(conv: Conversation) -> list[dict[str, int]]:
    """The votes as red-dwarf's `run_pipeline` takes them (integer ids, agree = +1)."""
    pids = [int(p) for p in conv.participant_ids]
    sids = [int(s) for s in conv.statement_ids]
    return [
        {"participant_id": pids[p], "statement_id": sids[s], "vote": v, "modified": 0}
        for p, s, v in zip(
            conv.vote_participant.tolist(),
            conv.vote_statement.tolist(),
            conv.vote_value.tolist(),
            strict=True,
        )
    ]


def run_reddwarf(conv: Conversation, seed: int = 0) -> tuple[float, Any]:
    """(seconds, result) of red-dwarf 0.4's Polis pipeline on the same conversation, with
    moderated-out statements zeroed as Polis does. Its input list is built before the clock
    starts. Raises ImportError when red-dwarf is not installed."""
    import warnings

    mod_out = [int(s.statement_id) for s in conv.statements if s.moderated == -1]
    votes = reddwarf_votes(conv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # red-dwarf's pydantic models warn on import
        from reddwarf.implementations.polis import run_pipeline  # type: ignore[import-untyped]

        start = time.perf_counter()
        result = run_pipeline(votes=votes, mod_out_statement_ids=mod_out, random_state=seed)
        return time.perf_counter() - start, result


def reddwarf_groups(rd: Any) -> dict[str, int]:
    """Participant id → red-dwarf group, for the participants it clustered."""
    labels = rd.participants_df["cluster_id"].dropna()
    return {str(pid): int(g) for pid, g in labels.items()}


def ari_between(ours: Any, theirs: dict[str, int]) -> float:
    """Adjusted Rand index between an analysis's groups and another grouping (participant id →
    group), over the participants both grouped."""
    from sklearn.metrics import adjusted_rand_score  # type: ignore[import-untyped]

    a: list[int] = []
    b: list[int] = []
    for i, pid in enumerate(ours.matrix.participant_ids):
        if ours.labels[i] >= 0 and pid in theirs:
            a.append(int(ours.labels[i]))
            b.append(theirs[pid])
    return float(adjusted_rand_score(b, a))


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count() or 1,
        "python": platform.python_version(),
        "commit": git_commit(),
    }


def bench_collective(
    *,
    n_participants: int = 10_000,
    n_statements: int = 2_000,
    density: float = 0.05,
    seed: int = 0,
    reddwarf: bool = True,
    config: AnalysisConfig | None = None,
) -> dict[str, Any]:
    """Seconds for charter's `analyze` and for red-dwarf's `run_pipeline` on one synthetic input,
    plus the adjusted Rand index between their groups."""
    conv = synthetic_conversation(n_participants, n_statements, density, seed=seed)
    config = config or AnalysisConfig(seed=seed)
    start = time.perf_counter()
    result = analyze(conv, config)
    ours = time.perf_counter() - start
    out: dict[str, Any] = {
        "input": {
            "participants": n_participants,
            "statements": n_statements,
            "density": density,
            "votes": conv.n_votes,
            "seed": seed,
        },
        "machine": machine(),
        "charter_seconds": round(ours, 3),
        "charter_stages": result.timings,
        "charter_k": len(result.group_ids),
        "reddwarf_seconds": None,
        "reddwarf_k": None,
        "ratio_reddwarf_charter": None,
        "ari_charter_reddwarf": None,
        "reddwarf_error": None,
    }
    if not reddwarf:
        return out
    try:
        theirs, rd = run_reddwarf(conv, seed)
    except ImportError as e:
        out["reddwarf_error"] = f"red-dwarf is not installed ({e}); pip install red-dwarf==0.4.0"
        return out
    groups = reddwarf_groups(rd)
    out["reddwarf_seconds"] = round(theirs, 3)
    out["reddwarf_k"] = len(set(groups.values()))
    out["ratio_reddwarf_charter"] = round(theirs / ours, 2) if ours > 0 else None
    out["ari_charter_reddwarf"] = round(ari_between(result, groups), 4)
    return out
