"""`evaluate mc`: accuracy with a Wilson interval, letter bias, calibration, --swap."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from charter.backends.fake import FakeBackend
from charter.cli.evaluate import evaluate
from charter.errors import InputError
from charter.evaluate.stats import wilson_interval
from charter.feedback.mc_eval import (
    Loaded,
    MCItem,
    calibration,
    evaluate_mc,
    read_mc,
    reliability_plot,
    swap_options,
)
from charter.records import OptionQuery

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HHH = SHARED / "anthropic-cai" / "evals" / "438HHHEvaluations.jsonl"


def paper_item(a: str, b: str, correct: str) -> dict[str, object]:
    """An item in the paper's format, with answers `a` and `b`."""
    prompt = (
        "\n\nConsider the following conversation between a human and an assistant:\n\n"
        "Human: hi\n\n\nPlease choose the response that is the most helpful. Options:\n"
        f" (A) [[[{a}]]]\n (B) [[[{b}]]]\n\nThe answer is:"
    )
    wrong = " (B)" if correct == " (A)" else " (A)"
    return {"prompt": prompt, "corrects": [correct], "incorrects": [wrong]}


def write(tmp: Path, items: list[dict[str, object]]) -> Path:
    path = tmp / "evals.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def test_wilson_interval_matches_scipy() -> None:
    from scipy.stats import binomtest  # type: ignore[import-untyped]

    for k, n in [(0, 10), (7, 10), (219, 438), (300, 438), (438, 438)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = wilson_interval(k, n)
        assert lo == pytest.approx(ci.low, abs=1e-6) and hi == pytest.approx(ci.high, abs=1e-6)


def test_ece_by_hand() -> None:
    ece, bins = calibration([0.55, 0.58, 0.95, 0.92, 0.99], [True, False, True, True, False])
    # bin [0.5, 0.6): conf 0.565, acc 0.5; bin [0.9, 1.0]: conf 0.62/... computed by hand:
    conf_hi = (0.95 + 0.92 + 0.99) / 3
    expected = 2 / 5 * abs(0.5 - 0.565) + 3 / 5 * abs(2 / 3 - conf_hi)
    assert ece == pytest.approx(expected, abs=1e-6)
    assert [b["n"] for b in bins] == [2, 3]


def test_swap_parses_the_paper_format() -> None:
    item = MCItem.model_validate(paper_item("first\n\ntext", "second (B) text", " (B)"))
    swapped = swap_options(Loaded(Path("x"), 1, item))
    assert " (A) [[[second (B) text]]]\n (B) [[[first\n\ntext]]]\n\nThe answer is:" in (
        swapped.prompt
    )
    assert swapped.corrects == [" (A)"] and swapped.incorrects == [" (B)"]
    bad = MCItem(prompt="no options here", corrects=[" (A)"], incorrects=[" (B)"])
    with pytest.raises(InputError, match="line 7"):
        swap_options(Loaded(Path("x"), 7, bad))


def biased_backend(bias: float) -> FakeBackend:
    """Knows the right answer (the one containing "good") with 0.7, plus a letter-A bias."""

    def logprobs(q: OptionQuery) -> dict[str, float]:
        assert isinstance(q.prompt, str)
        good_is_a = q.prompt.index("good") < q.prompt.index(" (B) [[[")
        p_a = (0.7 if good_is_a else 0.3) + bias
        return {" (A)": math.log(p_a), " (B)": math.log(1 - p_a)}

    return FakeBackend(logprobs=logprobs)


def test_accuracy_letter_bias_and_swap(tmp_path: Path) -> None:
    items = [paper_item("good", "bad", " (A)")] * 3 + [paper_item("bad", "good", " (B)")] * 5
    loaded = read_mc(write(tmp_path, items))
    r = evaluate_mc(loaded, biased_backend(0.25), swap=True)
    # With +0.25 on A: A-items get p_correct 0.95, B-items 1 - 0.55 = 0.45 (wrong).
    assert r["n"] == 8 and r["correct"] == 3 and r["accuracy"] == pytest.approx(3 / 8)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(wilson_interval(3, 8), abs=1e-6)
    assert r["letter_bias"] == pytest.approx((3 * 0.95 + 5 * 0.55) / 8 - 0.5)
    assert r["predicted_a_rate"] == 1.0 and r["correct_is_a_rate"] == pytest.approx(3 / 8)
    assert r["chance"] == 0.5
    # Both orders averaged: p_correct = 0.7 for every item, so all are right.
    assert r["swap"]["accuracy"] == 1.0
    assert r["swap"]["order_agreement"] == 0.0  # every item flips with the letters
    assert r["swap"]["ece"] == pytest.approx(0.3)
    png = reliability_plot(r, tmp_path / "rel.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_eval_file_names_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, [paper_item("a", "b", " (A)"), {"prompt": "x", "corrects": [" (A)"]}])
    with pytest.raises(InputError, match=r"line 2: field `incorrects`"):
        read_mc(path)


def test_cli_json_and_plot(tmp_path: Path, tiny_model_dir: Path) -> None:
    items = [paper_item("good", "bad", " (A)"), paper_item("bad", "good", " (B)")] * 2
    data = write(tmp_path, items)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        evaluate,
        [
            "mc",
            "--model",
            f"hf:{tiny_model_dir}",
            "--data",
            str(data),
            "--swap",
            "--json",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert {"n", "accuracy", "ci_low", "ci_high", "letter_bias", "ece"} <= set(r)
    assert r["n"] == 4 and 0 <= r["ci_low"] <= r["accuracy"] <= r["ci_high"] <= 1
    assert (out / "reliability.png").exists() and (out / "metrics.json").exists()


@pytest.mark.slow
def test_embedded_on_a_subset_of_the_hhh_evals(tmp_path: Path) -> None:
    if not HHH.exists():
        pytest.skip(f"the CAI paper's HHH evals are not at {HHH} (shared data absent)")
    subset = tmp_path / "hhh-16.jsonl"
    subset.write_text("".join(HHH.read_text(encoding="utf-8").splitlines(keepends=True)[:16]))
    result = CliRunner().invoke(
        evaluate, ["mc", "--model", "embedded", "--data", str(subset), "--json", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["n"] == 16 and r["ci_low"] <= r["accuracy"] <= r["ci_high"]
    assert -0.5 < r["letter_bias"] < 0.5 and 0 <= r["ece"] <= 1


def test_chat_format_examples_and_principle_ensemble(tmp_path: Path) -> None:
    """--format chat asks the item as a user turn and scores "(A)"/"(B)" as the answer;
    --examples puts worked examples first; --principles asks once per principle and averages."""
    from charter.feedback.mc_eval import mc_format, mc_queries

    item = MCItem.model_validate(paper_item("kind", "rude", " (A)"))
    [(q, back)] = mc_queries(item, mc_format("chat", examples=2))
    assert isinstance(q.prompt, list) and q.options == ["(A)", "(B)"]
    assert back == {"(A)": " (A)", "(B)": " (B)"}
    assert [m.role for m in q.prompt] == ["user", "assistant", "user", "assistant", "user"]
    last = q.prompt[-1].content
    assert last.startswith("Consider the following conversation") and "The answer is" not in last
    assert last.endswith("(B) [[[rude]]]\n\nAnswer with (A) or (B) only.")
    asked = mc_queries(item, mc_format("raw", principles=3))
    assert len(asked) == 3 and all(isinstance(q.prompt, str) for q, _ in asked)
    assert len({q.prompt for q, _ in asked}) == 3
    assert all(
        "most helpful" not in str(q.prompt) and "[[[kind]]]" in str(q.prompt) for q, _ in asked
    )

    # The ensemble's probability is the mean over its questions: 0.9, 0.6 and 0.3 for (A).
    p_a = iter([0.9, 0.6, 0.3])

    def logprobs(q: OptionQuery) -> dict[str, float]:
        p = next(p_a)
        return {" (A)": math.log(p), " (B)": math.log(1 - p)}

    loaded = [Loaded(Path("x"), 1, item)]
    result = evaluate_mc(loaded, FakeBackend(logprobs=logprobs), fmt=mc_format(principles=3))
    assert result["mean_p_correct"] == pytest.approx(0.6) and result["questions"] == 3
    with pytest.raises(Exception, match="need the chat format"):
        mc_format("raw", examples=1)
    r = CliRunner().invoke(
        evaluate,
        [
            "mc",
            "--model",
            "fake",
            "--data",
            str(write(tmp_path, [paper_item("a", "b", " (B)")])),
            "--format",
            "chat",
            "--examples",
            "1",
            "--swap",
            "--json",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["format"] == "chat" and out["examples"] == 1 and "swap" in out


def test_pointwise_format_compares_two_judgements_and_needs_no_swap() -> None:
    from charter.feedback.mc_eval import mc_format, mc_queries

    item = MCItem.model_validate(paper_item("kind answer", "rude answer", " (A)"))
    asked = mc_queries(item, mc_format("pointwise"))
    assert [q.options for q, _ in asked] == [["Yes", "No"], ["Yes", "No"]]
    texts = [q.prompt[-1].content for q, _ in asked if isinstance(q.prompt, list)]
    assert "Assistant: kind answer" in texts[0] and "Assistant: rude answer" in texts[1]
    assert all("(A)" not in t and "[[[" not in t for t in texts)

    def logprobs(q: OptionQuery) -> dict[str, float]:
        text = q.prompt[-1].content if isinstance(q.prompt, list) else q.prompt
        p = 0.9 if "kind" in text else 0.3
        return {"Yes": math.log(p), "No": math.log(1 - p)}

    fake = FakeBackend(logprobs=logprobs)
    result = evaluate_mc([Loaded(Path("x"), 1, item)], fake, swap=True, fmt=mc_format("pointwise"))
    assert result["mean_p_correct"] == pytest.approx(0.9 / 1.2)
    assert result["swap"]["order_agreement"] == 1.0 and result["queries"] == 2
    assert len([c for c in fake.calls if c.method == "option_logprobs"]) == 1  # not asked twice
