"""The models' answers to the eval prompts, each with the refusal detector's verdict
(`answers.jsonl`, resumable), and their rewards under a trained preference model
(`rm_scores.jsonl`)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from charter.backends.pool import BackendPool
from charter.evaluate.options import ANSWERS, RM_SCORES, EvalOptions, EvalPrompt, Inputs
from charter.jsonl import read_jsonl
from charter.records import Message, Record, stable_id
from charter.redact import redact_spec
from charter.runs import JsonlWriter, atomic_write_text


class Verdict(Protocol):
    """One refusal decision, as `charter.evaluate.refusal` returns it."""

    @property
    def refusal(self) -> bool: ...
    @property
    def p_refusal(self) -> float: ...
    @property
    def pattern(self) -> str | None: ...
    @property
    def method(self) -> str: ...


class RefusalDetector(Protocol):
    """Anything that decides for each answer whether it refuses."""

    def predict(
        self, texts: Sequence[str], langs: Sequence[str] | None = None
    ) -> Sequence[Verdict]: ...


class AnswerRecord(Record):
    """One model's answer to one eval prompt, with the refusal detector's verdict."""

    id: str
    model: str
    spec: str
    set: str
    lang: str
    prompt_id: str
    messages: list[Message]
    category: str | None = None
    answer: str
    finish_reason: Literal["stop", "length"]
    completion_tokens: int
    refusal: bool
    p_refusal: float
    refusal_pattern: str | None = None
    refusal_method: str


def answer_id(opts: EvalOptions, model: str, p: EvalPrompt) -> str:
    return stable_id(
        model,
        opts.models[model],
        opts.options_for(model),
        p.set,
        p.lang,
        p.record.key(),
        [m.model_dump() for m in p.record.chat()],
        opts.sampling().model_dump(mode="json"),
    )


@dataclass
class Timings:
    generate_s: float = 0.0
    detect_s: float = 0.0
    judge_s: float = 0.0
    mc_s: float = 0.0
    answers: int = 0
    comparisons: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit="item", disable=not enabled or total == 0) as bar:
        yield bar


def generate_answers(
    opts: EvalOptions,
    inputs: Inputs,
    out: Path,
    pool: BackendPool,
    detector: RefusalDetector | None,
    *,
    resume: bool,
    progress: bool,
    timings: Timings,
) -> list[AnswerRecord]:
    """Answer every prompt with every model and judge each answer's refusal (resumable)."""
    writer = JsonlWriter(out / ANSWERS, resume=resume)
    sampling = opts.sampling()
    plan = [(m, p, answer_id(opts, m, p)) for m in opts.models for p in inputs.prompts]
    todo = [x for x in plan if x[2] not in writer.done]
    chunk = max(opts.batch_size * 2, 8)
    with progress_bar(len(plan), "evaluate: answers", progress) as bar:
        bar.update(len(plan) - len(todo))
        for model, group in itertools.groupby(todo, key=lambda x: x[0]):
            items = list(group)
            spec, options = opts.models[model], opts.options_for(model)
            backend = pool.get(spec, options, model)
            detector = detector or _default_detector()
            for start in range(0, len(items), chunk):
                part = items[start : start + chunk]
                t0 = time.perf_counter()
                completions = backend.generate([p.record.chat() for _, p, _ in part], sampling)
                t1 = time.perf_counter()
                texts = [c.text.strip() for c in completions]
                verdicts = detector.predict(texts, [p.lang for _, p, _ in part])
                timings.generate_s += t1 - t0
                timings.detect_s += time.perf_counter() - t1
                timings.answers += len(part)
                writer.write(
                    [
                        AnswerRecord(
                            id=aid,
                            model=model,
                            spec=redact_spec(spec),
                            set=p.set,
                            lang=p.lang,
                            prompt_id=p.record.key(),
                            messages=p.record.chat(),
                            category=p.category,
                            answer=text,
                            finish_reason=c.finish_reason,
                            completion_tokens=c.completion_tokens,
                            refusal=bool(v.refusal),
                            p_refusal=float(v.p_refusal),
                            refusal_pattern=v.pattern,
                            refusal_method=str(v.method),
                        )
                        for (_, p, aid), c, text, v in zip(
                            part, completions, texts, verdicts, strict=True
                        )
                    ]
                )
                bar.update(len(part))
            if spec != opts.judge:
                pool.release(spec, options)
    wanted = {aid for _, _, aid in plan}
    by_id = {a.id: a for a in read_jsonl(out / ANSWERS, AnswerRecord) if a.id in wanted}
    return [by_id[aid] for _, _, aid in plan]


def _default_detector() -> RefusalDetector:
    from charter.evaluate.refusal import load_detector

    detector: RefusalDetector = load_detector()
    return detector


def rm_rewards(opts: EvalOptions, answers: Sequence[AnswerRecord], out: Path) -> dict[str, float]:
    """Each answer's reward under the preference model `opts.rm` (`charter.train.rm`), cached
    in `rm_scores.jsonl` per (answer, model folder) so that a resumed evaluation scores once."""
    from charter.train.rm import score_rows

    assert opts.rm is not None  # called only with a preference model
    rm = Path(opts.rm).resolve()
    path = out / RM_SCORES
    rows = _read_json_lines(path)
    rewards = {r["id"]: float(r["reward"]) for r in rows if r.get("rm") == str(rm)}
    todo = [a for a in answers if a.id not in rewards]
    if todo:
        chats = out / f".{RM_SCORES}.in"
        atomic_write_text(
            chats,
            "".join(
                json.dumps(
                    {
                        "id": a.id,
                        "messages": [
                            *[m.model_dump() for m in a.messages],
                            {"role": "assistant", "content": a.answer},
                        ],
                    },
                    ensure_ascii=False,
                )
                + "\n"
                for a in todo
            ),
        )
        scored, _ = score_rows(rm, chats, batch_size=opts.batch_size)
        chats.unlink()
        rewards.update({str(r["id"]): float(r["reward"]) for r in scored})
        atomic_write_text(
            path,
            "".join(
                json.dumps({"id": i, "rm": str(rm), "reward": r}) + "\n" for i, r in rewards.items()
            ),
        )
    return {a.id: rewards[a.id] for a in answers}


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
