"""charter in Inspect AI: a real `inspect eval` of `charter/harmful_compliance` on the embedded
model through the `charter/` provider, read back from its log and checked against
`charter evaluate` on the same prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

inspect_ai = pytest.importorskip("inspect_ai", reason="charter[inspect] is not installed")

from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.log import read_eval_log  # noqa: E402


def _run(task: str, model: str, log_dir: Path, **kw: Any) -> Any:
    (log,) = inspect_eval(task, model=model, log_dir=str(log_dir), display="none", **kw)
    read: Any = read_eval_log(log.location)
    assert read.status == "success", read.error
    return read


def test_tasks_and_provider_are_found_through_the_entry_point(tmp_path: Path) -> None:
    log = _run("charter/over_refusal", "charter/fake", tmp_path, limit=3)
    assert log.eval.task == "charter/over_refusal" and log.eval.model == "charter/fake"
    assert len(log.samples) == 3
    metrics = log.results.scores[0].metrics
    assert {"rate", "ci_low", "ci_high"} <= set(metrics)
    assert all("refusal" in s.scores["refusal"].metadata for s in log.samples)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_harmful_compliance_on_the_embedded_model_equals_charter_evaluate(
    tmp_path: Path, embedded_dir: Path
) -> None:
    from charter.evaluate.answers import AnswerRecord
    from charter.evaluate.compare import evaluate_models
    from charter.evaluate.options import EvalOptions
    from charter.jsonl import read_jsonl

    log = _run("charter/harmful_compliance", "charter/embedded", tmp_path / "logs", limit=8,
               task_args={"max_tokens": 64})  # fmt: skip
    inspect_rate = log.results.scores[0].metrics["rate"].value
    answers = {s.metadata["prompt_id"]: s.output.completion.strip() for s in log.samples}
    assert len(answers) == 8
    opts = EvalOptions(
        models={"embedded": "embedded"},
        prompts={"red-team": "builtin:red-team"},
        langs=["en"],
        split="eval",
        limit=8,
        judge=None,
        max_new_tokens=64,
        batch_size=1,  # one prompt per call, as Inspect's provider does: the same greedy answers
    )
    metrics = evaluate_models(opts, tmp_path / "eval", progress=False)
    rows = read_jsonl(tmp_path / "eval" / "answers.jsonl", AnswerRecord)
    charter_answers = {a.prompt_id: a.answer for a in rows}
    assert charter_answers == answers  # the same prompts, the same greedy answers
    charter_rate = metrics["models"]["embedded"]["harmful_compliance"]["rate"]
    assert inspect_rate == pytest.approx(charter_rate)
