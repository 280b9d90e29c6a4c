"""The `label` stage inside a run folder: pairs, then AI-feedback preference labels.

Writes `label/pairs.jsonl` (two answers per prompt, or the pairs of `--pairs-from`),
`label/prefs.jsonl` (one TRL preference row per pair, written per chunk of pairs) and
`label/summary.json`. Both JSONL files are keyed by deterministic ids, so `--resume` after a
crash skips every pair and label already on disk; the manifest records each sub-stage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from charter.backends.base import Backend
from charter.constitution.schema import Constitution
from charter.errors import CharterError
from charter.feedback.labeler import (
    LabelConfig,
    Labeler,
    LabelTimings,
    PairRecord,
    PreferenceRecord,
    label_pairs,
    model_fingerprint,
    preference_id,
    summarize_labels,
)
from charter.feedback.pairs import pair_id, sample_pairs
from charter.jsonl import read_jsonl
from charter.records import PromptRecord, Sampling, stable_id
from charter.redact import redact_spec
from charter.runs import JsonlWriter, RunFolder, atomic_write_text

PAIRS = "pairs.jsonl"
PREFS = "prefs.jsonl"
SUMMARY = "summary.json"
T = TypeVar("T")


class Backends:
    """Loads each backend on first use, once per (spec, options): a policy that is also the
    feedback model is loaded once, and a stage that is already complete loads nothing."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self._loaded: dict[str, Backend] = {}

    def provide(self, spec: str, backend: Backend, options: dict[str, Any] | None = None) -> None:
        """Use an already loaded `backend` for `spec` (tests, notebooks, `charter run`)."""
        self._loaded[stable_id(spec, options or {})] = backend

    def get(self, spec: str, options: dict[str, Any]) -> Backend:
        key = stable_id(spec, options)
        if key not in self._loaded:
            from charter.backends import load_backend

            self._loaded[key] = load_backend(
                spec, defaults={"batch_size": self.batch_size}, **options
            )
        return self._loaded[key]


def label_stage(
    run: RunFolder,
    prompts: Sequence[PromptRecord],
    constitution: Constitution,
    cfg: LabelConfig,
    *,
    feedback: str,
    policy: str | None = None,
    sampling: Sampling | None = None,
    pairs: Sequence[PairRecord] | None = None,
    policy_options: dict[str, Any] | None = None,
    feedback_options: dict[str, Any] | None = None,
    batch_size: int = 16,
    progress: bool = True,
    prefix: str = "label/",
    backends: Backends | None = None,
) -> dict[str, Any]:
    """RL-CAI labelling in `run`: sample pairs from `policy` (or take `pairs`), label them with
    the `feedback` model under `constitution`, and return the summary that is also written."""
    folder = run.path / prefix if prefix else run.path
    folder.mkdir(parents=True, exist_ok=True)
    try:
        localized = constitution.localized(cfg.lang)
    except KeyError as e:
        raise CharterError(f"constitution {constitution.name!r}: {e.args[0]}") from None
    if not localized.comparison_principles():
        raise CharterError(
            f"constitution {constitution.name!r} has no `comparison` questions to label with"
        )
    backends = backends or Backends(batch_size)
    pairs_path = folder / PAIRS
    timings: dict[str, float] = {}
    if pairs is None:
        if policy is None or sampling is None:
            raise CharterError("label needs a policy (with its sampling) or pairs from a file")
        policy_spec, opts, smp = policy, policy_options or {}, sampling

        def run_pairs() -> int:
            writer = JsonlWriter(pairs_path, resume=True)
            b = backends.get(policy_spec, opts)
            # Pairs of prompts no longer asked for go; the others are kept, not redone.
            writer.retain(pair_id(p, b.spec, smp) for p in prompts)
            t0 = time.perf_counter()
            _, tokens = sample_pairs(prompts, b, smp, writer, chunk_size=cfg.chunk_size)
            timings["pairs_s"] = round(time.perf_counter() - t0, 3)
            timings["pairs_tokens"] = tokens
            return len(writer.done)

        run.run_stage(
            f"{prefix}pairs",
            stable_id(policy, smp.model_dump(mode="json")),
            [f"{prefix}{PAIRS}"],
            run_pairs,
            records_hash=stable_id([p.model_dump(mode="json") for p in prompts]),
            per_record=True,
        )
        pair_rows = read_jsonl(pairs_path, PairRecord) if pairs_path.exists() else []
    else:
        pair_rows = list(pairs)
        atomic_write_text(pairs_path, "".join(p.model_dump_json() + "\n" for p in pair_rows))

    prefs_path = folder / PREFS
    lt = LabelTimings()
    fb_opts = feedback_options or {}

    def run_labels() -> int:
        backend = backends.get(feedback, fb_opts)
        labeler = Labeler(
            backend=backend.spec,
            model_sha256=model_fingerprint(backend),
            cot=cfg.cot,
            clamp=cfg.clamp if cfg.cot else None,
            few_shot=cfg.few_shot,
        )
        writer = JsonlWriter(prefs_path, resume=True)
        sha = localized.compute_sha256()  # label_pairs ids rows by the constitution it gets
        writer.retain(preference_id(p.id, labeler, cfg, sha) for p in pair_rows)
        todo = [p for p in pair_rows if preference_id(p.id, labeler, cfg, sha) not in writer.done]
        with _progress(len(pair_rows), len(pair_rows) - len(todo), progress) as bar:
            for start in range(0, len(todo), cfg.chunk_size):
                chunk = todo[start : start + cfg.chunk_size]
                writer.write(label_pairs(chunk, backend, localized, cfg, labeler, lt))
                if lt.scoring_s:
                    bar.set_postfix_str(f"{lt.queries_per_s:.1f} queries/s", refresh=False)
                bar.update(len(chunk))
        return len(writer.done)

    l_hash = stable_id(
        feedback,
        fb_opts,
        cfg.model_dump(mode="json", exclude={"chunk_size"}),
        constitution.compute_sha256(),
    )
    run.run_stage(
        f"{prefix}label",
        l_hash,
        [f"{prefix}{PREFS}"],
        run_labels,
        records_hash=stable_id([p.id for p in pair_rows]),
        per_record=True,
    )
    records = read_jsonl(prefs_path, PreferenceRecord) if prefs_path.exists() else []
    wanted = {p.id for p in pair_rows}
    records = [r for r in records if r.pair_id in wanted]
    summary = summarize_labels(records)
    this_run: dict[str, Any] = dict(timings)
    if lt.queries:
        this_run.update(
            queries=lt.queries,
            scoring_s=round(lt.scoring_s, 3),
            queries_per_s=round(lt.queries_per_s, 2),
        )
        if cfg.cot:
            this_run.update(
                reasoning_s=round(lt.reasoning_s, 3), reasoning_tokens=lt.reasoning_tokens
            )
    previous = folder / SUMMARY
    if not lt.queries and previous.exists():
        # Nothing labelled this time (already complete): keep the speed measured when it ran.
        this_run = json.loads(previous.read_text(encoding="utf-8")).get("timings", this_run)
    summary.update(
        timings=this_run,
        queries_per_s=this_run.get("queries_per_s"),
        feedback=redact_spec(feedback),
        policy=None if policy is None else redact_spec(policy),
        labeler=records[0].labeler.model_dump(mode="json") if records else None,
        config=cfg.model_dump(mode="json"),
        constitution=constitution.name,
        constitution_sha256=constitution.compute_sha256(),
    )
    atomic_write_text(folder / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="pair",
        desc="label",
        disable=not enabled,
        dynamic_ncols=True,
    )


def prefs_path(run_path: Path, prefix: str = "label/") -> Path:
    return run_path / prefix / PREFS
