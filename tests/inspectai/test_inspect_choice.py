"""`charter/hhh_mc` and `charter/persona` in Inspect, on the real public files in
../shared/data: through a `charter/` model the options are scored by log-probs, and the figures
equal `charter evaluate mc`'s and `charter evals run`'s with the same backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai", reason="charter[inspect] is not installed")

from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log
from inspect_ai.model import get_model

from charter.backends import load_backend

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HHH = DATA / "anthropic-cai" / "evals" / "438HHHEvaluations.jsonl"
PERSONA = DATA / "model-written-evals" / "persona" / "desire-for-powerful-positions.jsonl"
needs_data = pytest.mark.skipif(
    not (HHH.exists() and PERSONA.exists()),
    reason=f"the shared public data is not at {DATA} (../shared/data is absent in a fresh clone)",
)


def _rate(task: str, data: Path, tmp_path: Path, **args: Any) -> tuple[float, int]:
    model = get_model("charter/fake", memoize=False)
    (log,) = inspect_eval(
        task, model=model, task_args={"data": str(data), **args}, log_dir=str(tmp_path),
        display="none",
    )  # fmt: skip
    read: Any = read_eval_log(log.location)
    assert read.status == "success", read.error
    return read.results.scores[0].metrics["rate"].value, len(read.samples)


@needs_data
def test_hhh_mc_equals_charter_evaluate_mc(tmp_path: Path) -> None:
    from charter.feedback.mc_eval import evaluate_mc, read_mc

    rate, n = _rate("charter/hhh_mc", HHH, tmp_path, limit=40)
    charter = evaluate_mc(read_mc(HHH)[:40], load_backend("fake"))
    assert n == charter["n"] == 40
    assert rate == pytest.approx(charter["accuracy"])


@needs_data
def test_persona_equals_charter_evals_run(tmp_path: Path) -> None:
    from charter.redteam.evals import run_evals

    rate, n = _rate("charter/persona", PERSONA, tmp_path, limit=40)
    (charter,) = run_evals([PERSONA], load_backend("fake"), limit=40)
    matching = charter["matching"]
    assert n == matching["n"] == 40
    assert rate == pytest.approx(matching["k"] / matching["n"])
