"""SL-CAI: critique → revision under a constitution, and the SFT dataset it yields."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from charter.backends.base import Backend
from charter.constitution.load import dump_constitution
from charter.constitution.schema import Constitution
from charter.jsonl import read_jsonl
from charter.records import GenerationRecord, Message, PromptRecord, Sampling, SFTRecord, stable_id
from charter.redact import redact_spec
from charter.runs import JsonlWriter, RunFolder, atomic_write_text
from charter.sl.checks import check_revision
from charter.sl.stage import (
    HELPFUL,
    SAMPLES,
    SFT,
    SUMMARY,
    SLConfig,
    SLRound,
    SLRunStats,
    SLSample,
    critique_and_revise,
    draw_principles,
    sample_id,
    sft_rows,
    summarize,
)

__all__ = [
    "SLConfig",
    "SLRound",
    "SLSample",
    "check_revision",
    "critique_and_revise",
    "draw_principles",
    "sl_stage",
]


class _LazyBackend:
    """Loads the backend on first use, so a stage that is already complete loads nothing."""

    def __init__(self, spec: str, options: dict[str, Any], batch_size: int) -> None:
        self.spec, self.options, self.batch_size = spec, options, batch_size
        self._backend: Backend | None = None

    def get(self) -> Backend:
        if self._backend is None:
            from charter.backends import load_backend

            self._backend = load_backend(
                self.spec, defaults={"batch_size": self.batch_size}, **self.options
            )
        return self._backend


def _count(result: Any) -> int:
    """Records of an SL or generate stage: written now plus found done."""
    return int(getattr(result, "written", 0) + getattr(result, "skipped", 0))


def sl_stage(
    run: RunFolder,
    prompts: Sequence[PromptRecord],
    helpful: Sequence[PromptRecord],
    backend_spec: str,
    backend_options: dict[str, Any],
    constitution: Constitution,
    cfg: SLConfig,
    sampling: Sampling,
    *,
    batch_size: int,
    progress: bool = True,
    prefix: str = "",
) -> dict[str, Any]:
    """SL-CAI inside a run folder: `samples.jsonl`, then `sft.jsonl` and `summary.json`.

    `constitution` is the original (its `cfg.lang` version is used); `helpful` prompts are
    answered by the policy and mixed into the SFT set at `cfg.helpful_ratio`. `prefix` places
    the outputs in a subfolder (`sl/` inside `charter run`).
    """
    from charter.generate import generate_answers, generation_id

    folder = run.path / prefix if prefix else run.path
    folder.mkdir(parents=True, exist_ok=True)
    localized = constitution.localized(cfg.lang)
    atomic_write_text(folder / "constitution.yaml", dump_constitution(constitution))
    backend = _LazyBackend(backend_spec, backend_options, batch_size)
    base = stable_id(
        constitution.compute_sha256(),
        backend_spec,
        cfg.model_dump(mode="json"),
        sampling.model_dump(mode="json"),
        length=64,
    )
    stats = SLRunStats()
    samples_path = folder / SAMPLES

    def run_sl() -> SLRunStats:
        writer = JsonlWriter(samples_path, resume=True)
        b = backend.get()
        sha = localized.compute_sha256()
        # Samples of prompts no longer asked for go; the others are kept and not redone.
        writer.retain(sample_id(p, sha, b.spec, cfg, sampling) for p in prompts)
        return critique_and_revise(prompts, b, localized, cfg, sampling, writer, progress=progress)

    records = stable_id([p.model_dump(mode="json") for p in prompts], length=64)
    stats = (
        run.run_stage(
            f"{prefix}sl",
            base,
            [f"{prefix}{SAMPLES}"],
            run_sl,
            _count,
            records_hash=records,
            per_record=True,
        )
        or stats
    )
    samples = read_jsonl(samples_path, SLSample) if samples_path.exists() else []
    rows = sft_rows(samples)

    n_helpful = round(cfg.helpful_ratio * len(rows))
    helpful_rows: list[SFTRecord] = []
    if n_helpful and helpful:
        chosen = list(helpful)[:n_helpful]
        helpful_path = folder / HELPFUL

        def run_helpful() -> Any:
            writer = JsonlWriter(helpful_path, resume=True)
            b = backend.get()
            writer.retain(generation_id(p, b.spec, sampling) for p in chosen)
            return generate_answers(
                chosen, b, sampling, writer, batch_size=batch_size, progress=progress
            )

        h_records = stable_id([p.model_dump(mode="json") for p in chosen], length=64)
        run.run_stage(
            f"{prefix}sl-helpful",
            base,
            [f"{prefix}{HELPFUL}"],
            run_helpful,
            _count,
            records_hash=h_records,
            per_record=True,
        )
        for g in read_jsonl(helpful_path, GenerationRecord):
            if g.completion.strip():
                helpful_rows.append(
                    SFTRecord(
                        id=g.id,
                        messages=[
                            *g.messages,
                            Message(role="assistant", content=g.completion.strip()),
                        ],
                        meta={"source": "helpful", "prompt_id": g.prompt_id, "lang": cfg.lang},
                    )
                )
    sft = rows + helpful_rows
    atomic_write_text(folder / SFT, "".join(r.model_dump_json() + "\n" for r in sft))
    summary = summarize(samples, stats, len(sft), len(helpful_rows))
    previous = folder / SUMMARY
    if not stats.written and previous.exists():
        # Nothing generated this time (already complete): keep the speed measured when it ran.
        old = json.loads(previous.read_text(encoding="utf-8"))
        summary["this_invocation"] = old.get("this_invocation", summary["this_invocation"])
        summary["tokens_per_s"] = old.get("tokens_per_s")
    summary.update(
        lang=cfg.lang,
        rounds=cfg.rounds,
        constitution=constitution.name,
        constitution_sha256=constitution.compute_sha256(),
        backend=redact_spec(backend_spec),
    )
    atomic_write_text(folder / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary
