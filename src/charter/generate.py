"""The `generate` stage: answers from a backend for a set of prompts, written as they come.

Used by `charter generate`, by `charter run` and by the benchmark, so all three measure and
exercise the same path. Records are keyed by a deterministic id (prompt, backend, sampling);
on `--resume`, prompts whose answer is already on disk are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, model_validator

from charter.backends.base import Backend
from charter.records import GenerationRecord, PromptRecord, Sampling, Strict, stable_id
from charter.runs import JsonlWriter
from charter.stage import Stage, StageContext

GENERATIONS = "generations.jsonl"


def renamed_keys(data: Any, renames: dict[str, str]) -> Any:
    """Config keys of an older release under their new names (`backend` is now `model`)."""
    if isinstance(data, dict):
        for old, new in renames.items():
            if old in data and new not in data:
                data = {**data, new: data[old]}
                del data[old]
    return data


MODEL_RENAMES = {"backend": "model", "backend_options": "model_options"}


class GenerationConfig(Strict):
    """The policy model and how it samples (the `generation` section of a run config)."""

    model: str = Field(
        "embedded",
        description="Backend spec of the model: embedded, hf:PATH, openai:URL#MODEL, ...",
    )
    model_options: dict[str, Any] = Field(
        default_factory=dict, description="Backend options of the model (KEY=VALUE)."
    )
    batch_size: int = Field(16, ge=1, description="Prompts per batch (and per flush to disk).")
    max_new_tokens: int = Field(256, ge=1, description="Most tokens per answer.")
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling: top-p mass kept.")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        return renamed_keys(data, MODEL_RENAMES)

    def sampling(self, seed: int) -> Sampling:
        return Sampling(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=seed,
        )


class GenerateResult(BaseModel):
    """What the `generate` stage did: `complete` when it was already done (nothing ran)."""

    total: int
    skipped: int = 0
    written: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    complete: bool = False


@dataclass
class GenerateSummary:
    total: int
    skipped: int
    written: int
    completion_tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


def generation_id(prompt: PromptRecord, backend_spec: str, sampling: Sampling) -> str:
    return stable_id(prompt.key(), backend_spec, sampling.model_dump(mode="json"))


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="prompt",
        desc="generate",
        disable=not enabled,
        dynamic_ncols=True,
    )


def generate_answers(
    prompts: Sequence[PromptRecord],
    backend: Backend,
    sampling: Sampling,
    writer: JsonlWriter,
    *,
    batch_size: int = 16,
    progress: bool = True,
) -> GenerateSummary:
    """Answer every prompt not yet in `writer`, flushing each batch of `batch_size` to disk."""
    ids = [generation_id(p, backend.spec, sampling) for p in prompts]
    todo = [(i, p) for i, p in zip(ids, prompts, strict=True) if i not in writer.done]
    # Longest first, so each batch holds prompts of similar length (little padding) and the
    # progress bar's rate only improves as the run goes on.
    todo.sort(key=lambda item: -sum(len(m.content) for m in item[1].chat()))
    skipped = len(prompts) - len(todo)
    written = tokens = 0
    started = time.perf_counter()
    with _progress(len(prompts), skipped, progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            chats = [p.chat() for _, p in batch]
            completions = backend.generate(chats, sampling)
            records = [
                GenerationRecord(
                    id=rid,
                    prompt_id=p.key(),
                    messages=chat,
                    completion=c.text,
                    finish_reason=c.finish_reason,
                    prompt_tokens=c.prompt_tokens,
                    completion_tokens=c.completion_tokens,
                    backend=backend.spec,
                    sampling=sampling,
                )
                for (rid, p), chat, c in zip(batch, chats, completions, strict=True)
            ]
            written += writer.write(records)
            tokens += sum(c.completion_tokens for c in completions)
            elapsed = time.perf_counter() - started
            bar.set_postfix_str(f"{tokens / elapsed:.1f} tok/s", refresh=False)
            bar.update(len(batch))
    return GenerateSummary(
        total=len(prompts),
        skipped=skipped,
        written=written,
        completion_tokens=tokens,
        seconds=time.perf_counter() - started,
    )


def run_generate(
    ctx: StageContext, prompts: Sequence[PromptRecord], cfg: GenerationConfig
) -> GenerateResult:
    """The `generate` stage: answers to `prompts` in `ctx.out`/generations.jsonl.

    The backend is loaded only when there is work to do, and the manifest records the stage as
    running, then complete or failed (with the error), so `--resume` knows where things stand.
    """
    sampling = cfg.sampling(ctx.seed)
    name = "generate"
    if not ctx.runfolder.begin_stage(
        name,
        stable_id(cfg.model, sampling.model_dump(mode="json"), length=64),
        [ctx.file(GENERATIONS)],
        records_hash=stable_id([p.model_dump(mode="json") for p in prompts], length=64),
        per_record=True,
    ):
        return GenerateResult(total=len(prompts), skipped=len(prompts), complete=True)
    writer = JsonlWriter(ctx.out / GENERATIONS, resume=True)
    try:
        backend = ctx.pool.get(cfg.model, cfg.model_options)
        # Answers to prompts no longer in the file go; the others are kept, not redone.
        writer.retain(generation_id(p, backend.spec, sampling) for p in prompts)
        summary = generate_answers(
            prompts, backend, sampling, writer, batch_size=cfg.batch_size, progress=ctx.progress
        )
    except BaseException as e:
        ctx.runfolder.fail_stage(name, len(writer.done), str(e) or type(e).__name__)
        raise
    ctx.runfolder.finish_stage(name, len(writer.done))
    return GenerateResult(
        total=summary.total,
        skipped=summary.skipped,
        written=summary.written,
        completion_tokens=summary.completion_tokens,
        seconds=summary.seconds,
        tokens_per_s=summary.tokens_per_s,
    )


GENERATE: Stage[Sequence[PromptRecord], GenerationConfig, GenerateResult] = Stage(
    "generate", GenerationConfig, run_generate, "the policy's answers to a prompt set"
)
