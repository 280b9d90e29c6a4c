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

from charter.backends.base import Backend
from charter.records import GenerationRecord, PromptRecord, Sampling, stable_id
from charter.runs import JsonlWriter, RunFolder

GENERATIONS = "generations.jsonl"


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


def generate_stage(
    run: RunFolder,
    prompts: Sequence[PromptRecord],
    backend_spec: str,
    backend_options: dict[str, Any],
    sampling: Sampling,
    *,
    batch_size: int,
    progress: bool = True,
) -> GenerateSummary | None:
    """Run the `generate` stage inside a run folder; None when it was already complete.

    The backend is loaded only when there is work to do, and the manifest records the stage as
    running, then complete or failed (with the error), so `--resume` knows where things stand.
    """
    from charter.backends import load_backend

    name = "generate"
    if not run.begin_stage(
        name,
        stable_id(backend_spec, sampling.model_dump(mode="json"), length=64),
        [GENERATIONS],
        records_hash=stable_id([p.model_dump(mode="json") for p in prompts], length=64),
        per_record=True,
    ):
        return None
    writer = JsonlWriter(run.path / GENERATIONS, resume=True)
    try:
        backend = load_backend(backend_spec, defaults={"batch_size": batch_size}, **backend_options)
        # Answers to prompts no longer in the file go; the others are kept, not redone.
        writer.retain(generation_id(p, backend.spec, sampling) for p in prompts)
        summary = generate_answers(
            prompts, backend, sampling, writer, batch_size=batch_size, progress=progress
        )
    except BaseException as e:
        run.fail_stage(name, len(writer.done), str(e) or type(e).__name__)
        raise
    run.finish_stage(name, len(writer.done))
    return summary
