"""`charter evaluate` for real: the embedded model as policy and judge, the real refusal detector,
and the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from eval_fakes import KeywordDetector

from charter.evaluate.compare import evaluate_models
from charter.evaluate.options import EvalOptions
from charter.evaluate.report import write_report
from conftest import run_cli

# The udhr constitution's principles tagged `helpfulness`: the judges of the helpfulness axis.
HELPFUL_PRINCIPLES = {"helpful-not-evasive", "no-preaching", "decline-with-alternative"}


@pytest.mark.slow
def test_embedded_model_as_policy_and_judge(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Base = the embedded model, against a random tiny model; the embedded model judges."""
    opts = EvalOptions(
        models={"base": "embedded", "random": f"hf:{tiny_model_dir}"},
        prompts={"red-team": "builtin:red-team", "helpful": "builtin:helpful"},
        langs=["en"],
        limit=1,
        judge="embedded",
        max_new_tokens=24,
        principles_per_pair=1,
        few_shot=1,
        n_boot=200,
    )
    m = evaluate_models(opts, tmp_path / "eval", progress=False, detector=KeywordDetector())
    assert m["n_prompts"] == {"red-team": 1, "helpful": 1}
    rows = [json.loads(x) for x in (tmp_path / "eval" / "samples.jsonl").open()]
    assert len(rows) == 4 and all(r["answer"] for r in rows if r["model"] == "base")
    assert all(len(r["judgements"]) == 1 for r in rows)
    comparisons = [json.loads(x) for x in (tmp_path / "eval" / "comparisons.jsonl").open()]
    assert [c["axis"] for c in comparisons] == ["harmlessness", "helpfulness"]
    for c in comparisons:
        # A real judge's soft label: one principle asked in both orders.
        assert 0.0 < c["p_a"] < 1.0 and len(c["votes"]) == 2
        assert {v["order"] for v in c["votes"]} == {"AB", "BA"}
        helpful = c["principle_ids"][0] in HELPFUL_PRINCIPLES
        assert helpful == (c["axis"] == "helpfulness")
    for axis in ("harmlessness", "helpfulness"):
        e = m["models"]["random"]["elo"][axis]
        assert math.isfinite(e["rating"]) and e["ci_low"] <= e["rating"] <= e["ci_high"]
    html = write_report(tmp_path / "eval", tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3


def _detector_or_skip() -> None:
    from charter.errors import CharterError

    try:
        from charter.evaluate.refusal import load_detector

        load_detector()
    except (ImportError, CharterError) as e:
        pytest.skip(f"the refusal detector is not available yet: {e}")


@pytest.mark.slow
def test_cli_compares_models_with_the_real_refusal_detector(tmp_path: Path) -> None:
    _detector_or_skip()
    out = tmp_path / "eval"
    args = [
        "evaluate", "--models", "a=fake", "--models", "b=fake", "--judge", "fake",
        "--limit", "2", "--lang", "en", "--lang", "ar", "--bootstrap", "100",
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    result = run_cli(args, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "harmful compliance" in result.stdout and "report.html" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for name in ("a", "b"):
        for key in ("harmful_compliance", "over_refusal"):
            assert set(metrics["models"][name][key]) >= {"rate", "ci_low", "ci_high", "n"}
        assert set(metrics["models"][name]["elo"]) == {"harmlessness", "helpfulness"}
    assert metrics["models"]["a"]["harmful_compliance"]["n"] == 4  # 2 per language
    assert (out / "report.html").exists() and (out / "samples.jsonl").exists()
    again = run_cli(args, timeout=300)
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = run_cli([*args, "--resume", "--json"], timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["models"] == metrics["models"]


def test_cli_needs_models_or_a_subcommand(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from charter.cli.evaluate import evaluate

    result = CliRunner().invoke(evaluate, [])
    assert result.exit_code == 2 and "--models NAME=SPEC" in result.output
    result = CliRunner().invoke(evaluate, ["--models", "base=embedded"])
    assert result.exit_code == 2 and "--out DIR is required" in result.output
    result = CliRunner().invoke(evaluate, ["--models", "base", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "expected NAME=SPEC" in str(result.exception)
    result = CliRunner().invoke(evaluate, ["mc", "--help"])
    assert result.exit_code == 0 and "--swap" in result.output


def test_preference_model_scores_every_answer(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rm=DIR` scores each answer with `charter.train.rm`; the per-model means are the means of
    the per-answer rewards that `charter score` gives the same chats."""
    from eval_fakes import complier, judge, refuser, write_inputs
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import charter.train.rm
    from charter.evaluate.options import ANSWERS
    from charter.train.rm import score_rows

    rm = tmp_path / "rm" / "merged"  # the layout of `charter train rm --out tmp/rm`
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
    model.save_pretrained(rm)
    tokenizer.save_pretrained(rm)
    opts = EvalOptions(
        models={"base": "fake", "sl": "fake"},
        prompts=write_inputs(tmp_path / "in", n=2),
        langs=["en"],
        judge="fake",
        judge_format="raw",
        constitution=str(tmp_path / "in" / "tiny.yaml"),
        few_shot=0,
        n_boot=50,
        rm=str(tmp_path / "rm"),
    )
    out = tmp_path / "eval"

    def backends() -> dict[str, Any]:
        return {"base": complier(), "sl": refuser(), "judge": judge()}

    m = evaluate_models(opts, out, progress=False, backends=backends(), detector=KeywordDetector())
    samples = [json.loads(x) for x in (out / "samples.jsonl").open()]
    chats = tmp_path / "chats.jsonl"
    rows = [
        {"id": s["id"], "messages": [*s["messages"], {"role": "assistant", "content": s["answer"]}]}
        for s in samples
    ]
    chats.write_text("".join(json.dumps(r) + "\n" for r in rows))
    expected = {r["id"]: r["reward"] for r in score_rows(rm, chats, batch_size=16)[0]}
    for s in samples:
        assert s["rm_reward"] == pytest.approx(expected[s["id"]], abs=1e-5)
    for name in ("base", "sl"):
        mine = [expected[s["id"]] for s in samples if s["model"] == name]
        r = m["models"][name]["rm"]
        assert r["n"] == 6 and r["mean"] == pytest.approx(sum(mine) / 6, abs=1e-5)
        assert r["ci_low"] <= r["mean"] <= r["ci_high"]
        assert set(r["by_set"]) == {"red-team", "borderline", "helpful"}
    # The complier and the refuser answer differently, so their rewards differ.
    assert m["models"]["base"]["rm"]["mean"] != m["models"]["sl"]["rm"]["mean"]
    # A resumed evaluation reads the cached rewards instead of scoring again.
    monkeypatch.setattr(charter.train.rm, "score_rows", lambda *a, **k: pytest.fail("rescored"))
    again = evaluate_models(
        opts, out, progress=False, resume=True, backends=backends(), detector=KeywordDetector()
    )
    assert again["models"]["sl"]["rm"] == m["models"]["sl"]["rm"]
    assert (out / ANSWERS).exists()
    html = write_report(out, out / "report.html").read_text(encoding="utf-8")
    assert "preference model" in html
