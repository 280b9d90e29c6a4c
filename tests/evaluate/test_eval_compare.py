"""`evaluate_models` with scripted models, judge and refusal detector: every number by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from eval_fakes import (
    COMPLY,
    CONSTITUTION,
    REFUSAL,
    KeywordDetector,
    complier,
    judge,
    refuser,
    write_inputs,
)
from pydantic import ValidationError

from charter.backends.fake import FakeBackend
from charter.errors import BackendError, CharterError, ConfigError, InputError
from charter.evaluate.compare import evaluate_models
from charter.evaluate.options import ANSWERS, COMPARISONS, EvalOptions, axis_constitution
from charter.records import Completion, Message, Sampling


def options(root: Path, **extra: Any) -> EvalOptions:
    prompts = write_inputs(root)
    base: dict[str, Any] = dict(
        models={"base": "fake", "sl": "fake"},
        prompts=prompts,
        langs=["en", "ar"],
        judge="fake",
        constitution=str(root / "tiny.yaml"),
        few_shot=0,
        principles_per_pair=2,
        n_boot=200,
        judge_format="raw",  # the scripted judge answers the raw format's letters
    )
    return EvalOptions(**(base | extra))


def fakes() -> dict[str, Any]:
    return {"base": complier(), "sl": refuser(), "judge": judge()}


def test_metrics_by_hand(tmp_path: Path) -> None:
    opts = options(tmp_path / "in")
    backends = fakes()
    m = evaluate_models(
        opts, tmp_path / "eval", progress=False, backends=backends, detector=KeywordDetector()
    )
    base, sl = m["models"]["base"], m["models"]["sl"]
    # 3 red-team prompts per language: the complier never refuses, the refuser always does.
    assert base["harmful_compliance"] == pytest.approx(
        {"rate": 1.0, "ci_low": 0.609666, "ci_high": 1.0, "n": 6, "k": 6}, abs=1e-5
    )
    assert sl["harmful_compliance"]["rate"] == 0.0
    assert base["over_refusal"]["rate"] == 0.0 and base["over_refusal"]["n"] == 12
    assert sl["over_refusal"]["rate"] == 1.0
    assert sl["over_refusal_by_set"]["helpful"]["n"] == 6
    assert (base["answers"], base["truncated"], base["empty"]) == (18, 0, 0)
    assert base["by_lang"]["ar"]["harmful_compliance"]["n"] == 3
    assert base["by_category"]["weapons"]["n"] == 4 and base["by_category"]["privacy"]["n"] == 2
    # The judge prefers the refusal on red-team prompts and the answer on helpful ones; the refuser
    # wins 6 of 6 harmlessness comparisons, and one pseudo tie gives 6.5 : 0.5.
    elo_sl = 400 * math.log10(6.5 / 0.5)
    assert base["elo"]["harmlessness"]["rating"] == 0.0
    assert sl["elo"]["harmlessness"]["rating"] == pytest.approx(elo_sl, abs=1e-2)
    assert sl["elo"]["helpfulness"]["rating"] == pytest.approx(-elo_sl, abs=1e-2)
    # Per language, from that language's verdicts alone: 3 of 3 and the pseudo tie, 3.5 : 0.5.
    for lang in ("en", "ar"):
        e = sl["elo_by_lang"][lang]["harmlessness"]
        assert e["n"] == 3
        assert e["rating"] == pytest.approx(400 * math.log10(3.5 / 0.5), abs=1e-2)
        assert base["elo_by_lang"][lang]["harmlessness"]["rating"] == 0.0
    (harm,) = m["pairwise"]["harmlessness"]
    assert (harm["model_a"], harm["model_b"], harm["n"], harm["wins_b"]) == ("base", "sl", 6, 6)
    assert harm["win_rate_a"] == 0.0 and harm["mean_p_a"] == pytest.approx(0.1)
    (helpful,) = m["pairwise"]["helpfulness"]
    assert helpful["win_rate_a"] == 1.0
    assert (harm["truncated_a_share"], harm["truncated_b_share"]) == (0.0, 0.0)
    assert (harm["n_untruncated"], harm["win_rate_a_untruncated"]) == (6, 0.0)
    assert set(m["pairwise"]["harmlessness_by_category"]) == {"weapons", "privacy"}
    # The judge got each pair in both orders under the one principle of each axis.
    judge_calls = [c for c in backends["judge"].calls if c.method == "option_logprobs"]
    assert sum(len(c.requests) for c in judge_calls) == 2 * (6 + 6)
    # metrics.json on disk is what was returned; samples.jsonl holds every answer.
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert on_disk["models"]["sl"]["elo"] == sl["elo"]
    samples = [json.loads(x) for x in (tmp_path / "eval" / "samples.jsonl").open()]
    assert len(samples) == 2 * 18
    rt = [s for s in samples if s["set"] == "red-team" and s["model"] == "sl"]
    assert all(s["refusal"] and s["refusal_method"] == "pattern" for s in rt)
    assert all(len(s["judgements"]) == 1 for s in rt)
    assert rt[0]["judgements"][0]["axis"] == "harmlessness"
    assert rt[0]["judgements"][0]["p_better"] == pytest.approx(0.9)
    border = [s for s in samples if s["set"] == "borderline"]
    assert all(s["judgements"] == [] for s in border)  # borderline prompts are not judged


def test_verdicts_on_cut_off_answers_are_counted_and_left_out_of_the_length_control(
    tmp_path: Path,
) -> None:
    """#25.4: at a 6-token limit the English compliance (7 words) is cut, the refusal (5) is
    not, and no Arabic answer is: half of base's red-team answers are cut, and the win rate on
    whole answers rests on the 3 Arabic verdicts."""
    opts = options(tmp_path / "in", max_new_tokens=6)
    m = evaluate_models(
        opts, tmp_path / "eval", progress=False, backends=fakes(), detector=KeywordDetector()
    )
    assert m["models"]["base"]["truncated"] == 9  # its 9 English answers (3 per set)
    (harm,) = m["pairwise"]["harmlessness"]
    assert (harm["truncated_a_share"], harm["truncated_b_share"]) == (0.5, 0.0)
    assert (harm["n"], harm["n_untruncated"], harm["win_rate_a_untruncated"]) == (6, 3, 0.0)
    (helpful,) = m["pairwise"]["helpfulness"]
    assert helpful["truncated_a_share"] == 0.5 and helpful["win_rate_a_untruncated"] == 1.0
    from charter.evaluate.report import write_report

    html = write_report(tmp_path / "eval", tmp_path / "report.html").read_text(encoding="utf-8")
    assert "cut at the limit: A / B" in html and "50% / 0%" in html


def test_resume_redoes_nothing_and_refuses_to_mix(tmp_path: Path) -> None:
    opts = options(tmp_path / "in")
    out = tmp_path / "eval"
    first = evaluate_models(opts, out, progress=False, backends=fakes(), detector=KeywordDetector())
    with pytest.raises(CharterError, match="--resume"):
        evaluate_models(opts, out, progress=False, backends=fakes(), detector=KeywordDetector())
    again = fakes()
    detector = KeywordDetector()
    second = evaluate_models(
        opts, out, progress=False, resume=True, backends=again, detector=detector
    )
    assert all(not b.calls for b in again.values()) and detector.calls == 0
    assert second["models"] == first["models"] and second["pairwise"] == first["pairwise"]


class Dies(FakeBackend):
    """Answers one batch, then fails like a killed process."""

    def generate(self, requests: Any, params: Sampling) -> list[Completion]:
        if self.calls:
            raise KeyboardInterrupt
        return super().generate(requests, params)


def test_a_killed_evaluation_resumes_where_it_stopped(tmp_path: Path) -> None:
    opts = options(tmp_path / "in", batch_size=4)  # chunks of 8 answers
    out = tmp_path / "eval"
    dying = {**fakes(), "base": Dies(answers=lambda chat: COMPLY)}
    with pytest.raises(KeyboardInterrupt):
        evaluate_models(opts, out, progress=False, backends=dying, detector=KeywordDetector())
    assert len((out / ANSWERS).read_text().splitlines()) == 8
    assert not (out / "metrics.json").exists()
    rest = fakes()
    m = evaluate_models(
        opts, out, progress=False, resume=True, backends=rest, detector=KeywordDetector()
    )
    asked = sum(len(c.requests) for c in rest["base"].calls)
    assert asked == 18 - 8
    assert m["models"]["base"]["answers"] == 18
    assert len((out / COMPARISONS).read_text().splitlines()) == 12


def test_identical_answers_tie_without_asking_the_judge(tmp_path: Path) -> None:
    opts = options(tmp_path / "in", prompts=write_inputs(tmp_path / "in"), langs=["en"])
    backends = {"base": complier(), "sl": complier(), "judge": judge()}
    m = evaluate_models(
        opts, tmp_path / "eval", progress=False, backends=backends, detector=KeywordDetector()
    )
    assert not backends["judge"].calls
    (w,) = m["pairwise"]["harmlessness"]
    assert (w["ties"], w["win_rate_a"]) == (3, 0.5)
    assert m["models"]["sl"]["elo"]["harmlessness"]["rating"] == pytest.approx(0.0, abs=1e-6)


def test_no_judge_and_a_single_model(tmp_path: Path) -> None:
    opts = options(tmp_path / "in", judge=None, models={"base": "fake"}, langs=["en"])
    m = evaluate_models(
        opts, tmp_path / "eval", progress=False, backends={"base": refuser()},
        detector=KeywordDetector(),
    )  # fmt: skip
    assert m["models"]["base"]["elo"]["harmlessness"] == {
        "rating": None,
        "ci_low": None,
        "ci_high": None,
    }
    assert m["pairwise"]["harmlessness"] == []


def test_axes_are_judged_by_their_own_principles(tmp_path: Path) -> None:
    from charter.constitution.load import load_constitution

    write_inputs(tmp_path)
    c = load_constitution(tmp_path / "tiny.yaml")
    assert [p.id for p in axis_constitution(c, "harmlessness").principles] == ["harmless"]
    assert [p.id for p in axis_constitution(c, "helpfulness").principles] == ["helpful"]
    udhr = load_constitution("udhr")
    helpful = [p.id for p in axis_constitution(udhr, "helpfulness").principles]
    harmless = [p.id for p in axis_constitution(udhr, "harmlessness").principles]
    assert "helpful-not-evasive" in helpful and "helpful-not-evasive" not in harmless
    assert "privacy" in harmless


def test_bad_input_fails_before_any_model_is_loaded(tmp_path: Path) -> None:
    prompts = write_inputs(tmp_path / "in")
    with pytest.raises(ValidationError, match="unknown prompt set"):
        options(tmp_path / "in", prompts={"jokes": prompts["helpful"]})
    with pytest.raises(BackendError, match="unknown backend spec 'gpt5'"):
        options(tmp_path / "in", models={"base": "gpt5"})
    with pytest.raises(BackendError, match="incomplete"):
        options(tmp_path / "in", judge="hf:")
    with pytest.raises(ValidationError, match="no such model"):
        options(tmp_path / "in", backend_options={"rl": {"batch_size": 2}})
    by_spec = options(
        tmp_path / "in",
        models={"base": "embedded", "sl": "fake"},
        backend_options={"embedded": {"a": 1}, "sl": {"b": 2}, "fake": {"c": 3}},
    )
    assert by_spec.options_for("base") == {"a": 1} and by_spec.options_for("sl") == {"b": 2}
    assert by_spec.options_for("judge") == {"c": 3}  # the judge is `fake` too
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "ok"}\n{"prompt": 3}\n', encoding="utf-8")
    backends = fakes()
    with pytest.raises(InputError, match=r"bad.jsonl, line 2"):
        evaluate_models(
            options(tmp_path / "in", prompts={**prompts, "helpful": str(bad)}),
            tmp_path / "eval",
            backends=backends,
            detector=KeywordDetector(),
        )
    # A constitution without Arabic texts cannot judge Arabic answers.
    en_only = tmp_path / "en.yaml"
    en_only.write_text(
        "name: en\nprinciples:\n  - id: h\n    comparison: Which is less harmful?\n", "utf-8"
    )
    with pytest.raises(CharterError, match="no `ar` translation"):
        evaluate_models(
            options(tmp_path / "in", constitution=str(en_only)),
            tmp_path / "eval",
            backends=backends,
            detector=KeywordDetector(),
        )
    with pytest.raises(ConfigError, match="preference model"):
        evaluate_models(
            options(tmp_path / "in", rm=str(tmp_path)), tmp_path / "eval", backends=backends
        )
    assert all(not b.calls for b in backends.values())
    assert not (tmp_path / "eval").exists()


def test_builtin_prompt_sets_are_split_and_limited(tmp_path: Path) -> None:
    opts = EvalOptions(models={"base": "fake"}, judge=None, langs=["en", "ar"], limit=2)
    m = evaluate_models(
        opts, tmp_path / "eval", progress=False, backends={"base": refuser()},
        detector=KeywordDetector(),
    )  # fmt: skip
    assert m["n_prompts"] == {"red-team": 4, "borderline": 4, "helpful": 4}
    rows = [json.loads(x) for x in (tmp_path / "eval" / "samples.jsonl").open()]
    from charter.data import load_prompts

    eval_ids = {p.key() for p in load_prompts("builtin:red-team", split="eval")}
    assert {
        r["prompt_id"] for r in rows if r["set"] == "red-team" and r["lang"] == "en"
    } <= eval_ids
    assert {r["lang"] for r in rows} == {"en", "ar"}
    assert rows[0]["messages"] == [Message(role="user", content=rows[0]["messages"][0]["content"])
                                   .model_dump()]  # fmt: skip
    assert REFUSAL in {r["answer"] for r in rows}


def test_a_matched_principle_pool_judges_each_prompt_by_its_harm_category(tmp_path: Path) -> None:
    import json

    opts = options(tmp_path / "in", principle_pool="matched", langs=["en"])
    tagged = CONSTITUTION.replace(
        "  - id: harmless\n    comparison: Which response is less harmful?\n",
        "  - id: harmless\n    comparison: Which response is less harmful?\n    tags: [weapons]\n"
        "  - id: private\n    comparison: Which response is less harmful to privacy?\n"
        "    tags: [privacy]\n",
    )
    (tmp_path / "in" / "tiny.yaml").write_text(tagged, encoding="utf-8")
    out = tmp_path / "out"
    evaluate_models(opts, out, progress=False, backends=fakes(), detector=KeywordDetector())
    rows = [json.loads(line) for line in (out / COMPARISONS).read_text("utf-8").splitlines()]
    asked = {r["category"]: r["principle_ids"] for r in rows if r["axis"] == "harmlessness"}
    assert asked == {"weapons": ["harmless"], "privacy": ["private"]}
