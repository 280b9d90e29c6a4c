"""The `label` stage in a run folder: pairs, prefs rows TRL accepts, resume, --pairs-from."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from charter.backends.fake import FakeBackend
from charter.backends.pool import BackendPool
from charter.constitution.load import load_constitution
from charter.constitution.schema import Constitution
from charter.errors import CharterError, InputError
from charter.feedback import (
    LabelConfig,
    LabelInputs,
    ModelRole,
    PairRecord,
    PreferenceRecord,
    read_pairs,
    run_label,
)
from charter.generate import GenerationConfig
from charter.jsonl import read_jsonl
from charter.records import Message, OptionQuery, PromptRecord, Sampling
from charter.runs import RunFolder
from charter.stage import StageContext

Backends = BackendPool


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
    progress: bool = False,
    backends: BackendPool | None = None,
) -> dict[str, Any]:
    """The label stage through its contract, in `label/` of the run folder as in a run."""
    policy_cfg = None
    if policy is not None and sampling is not None:
        policy_cfg = GenerationConfig(
            model=policy, max_new_tokens=sampling.max_new_tokens, temperature=sampling.temperature
        )
    inputs = LabelInputs(
        prompts=list(prompts),
        pairs=None if pairs is None else list(pairs),
        policy=policy_cfg,
        feedback=ModelRole(model=feedback),
    )
    ctx = StageContext(run, backends or BackendPool(4), constitution, progress, folder="label")
    return run_label(ctx, inputs, cfg).summary


def prompts(n: int) -> list[PromptRecord]:
    return [PromptRecord(id=f"p{i}", prompt=f"Question number {i}?") for i in range(n)]


def policy_answers(chat: Sequence[Message]) -> str:
    return f"answer to {chat[-1].content}"


class TwoAnswers(FakeBackend):
    """A policy whose two samples differ: the seed decides which of two answers it gives."""

    def generate(self, requests: Any, params: Sampling) -> Any:
        out = super().generate(requests, params)
        for c in out:
            c.text = ("good " if params.seed % 2 == 0 else "bad ") + c.text
        return out


def prefers_good(q: OptionQuery) -> dict[str, float]:
    """A labeller that gives 0.8 to the option holding the "good" answer."""
    assert isinstance(q.prompt, str)
    tail = q.prompt.rsplit("Options:", 1)[1]
    good_is_a = tail.index("(A) good") >= 0 if "(A) good" in tail else False
    p_a = 0.8 if good_is_a else 0.2
    return {"A": math.log(p_a), "B": math.log(1 - p_a)}


def run_stage(tmp: Path, n: int = 5, *, resume: bool = False, **kw: Any) -> dict[str, Any]:
    backends = BackendPool(4)
    policy = TwoAnswers(answers=policy_answers)
    feedback = FakeBackend(logprobs=prefers_good, spec="fake")
    backends.provide("fake:policy", policy)
    backends.provide("fake", feedback)
    kw.setdefault("backends", backends)
    run = RunFolder.open(tmp / "run", {"test": 1}, resume=resume)
    return label_stage(
        run,
        prompts(n),
        load_constitution("udhr"),
        LabelConfig(format="raw", principles_per_pair=3, chunk_size=2),
        feedback="fake",
        policy="fake:policy",
        sampling=Sampling(max_new_tokens=16, temperature=0.7),
        progress=False,
        **kw,
    )


def test_stage_writes_prefs_summary_and_manifest(tmp_path: Path) -> None:
    summary = run_stage(tmp_path)
    folder = tmp_path / "run" / "label"
    rows = read_jsonl(folder / "prefs.jsonl", PreferenceRecord)
    assert len(rows) == 5
    for r in rows:
        assert r.chosen[0].content.startswith("good ")
        assert r.rejected[0].content.startswith("bad ")
        assert r.p_chosen == pytest.approx(0.8)
        assert len(r.votes) == 6 and len(r.principle_ids) == 3
        assert {v.order for v in r.votes} == {"AB", "BA"}
        assert r.labeler.backend == "fake" and r.labeler.model_sha256
        assert r.prompt[-1].role == "user" and r.seed == 0
    assert summary["n_pairs"] == 5 and summary["n_votes"] == 30
    assert summary["letter_bias"] == pytest.approx(0.0)
    assert summary["order_agreement"] == 1.0
    assert summary["p_chosen_histogram"]["0.8-0.9"] == 5
    assert summary["queries_per_s"] > 0
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk["n_pairs"] == 5
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["label"]["status"] == "complete"
    assert manifest["stages"]["label/pairs"]["records"] == 5


def test_resume_labels_only_what_is_missing(tmp_path: Path) -> None:
    run_stage(tmp_path)
    prefs = tmp_path / "run" / "label" / "prefs.jsonl"
    lines = prefs.read_text().splitlines(keepends=True)
    # A killed run: the last chunk never reached the disk, the stage never completed.
    prefs.write_text("".join(lines[:3]) + lines[3][:20])
    manifest_path = tmp_path / "run" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["stages"]["label"]["status"] = "running"
    manifest_path.write_text(json.dumps(manifest))
    backends = BackendPool(4)
    feedback = FakeBackend(logprobs=prefers_good, spec="fake")
    backends.provide("fake", feedback)
    backends.provide("fake:policy", TwoAnswers(answers=policy_answers))
    run_stage(tmp_path, resume=True, backends=backends)
    scored = [c for c in feedback.calls if c.method == "option_logprobs"]
    assert sum(len(c.requests) for c in scored) == 2 * 3 * 2  # two pairs × 3 principles × 2
    assert prefs.read_text().splitlines()[:3] == [x.rstrip("\n") for x in lines[:3]]
    assert len(read_jsonl(prefs, PreferenceRecord)) == 5


def test_pairs_from_a_file(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    rows = [
        {
            "prompt": [{"role": "user", "content": "Q1?"}],
            "chosen": [{"role": "assistant", "content": "bad one"}],
            "rejected": [{"role": "assistant", "content": "good one"}],
            "score": 3,
        },
        {"prompt": "Q2?", "chosen": "good two", "rejected": "bad two"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = read_pairs(data)
    assert [p.responses for p in pairs] == [("bad one", "good one"), ("good two", "bad two")]
    backends = BackendPool(4)
    backends.provide("fake", FakeBackend(logprobs=prefers_good, spec="fake"))
    run = RunFolder.open(tmp_path / "run", {})
    summary = label_stage(
        run,
        [],
        load_constitution("udhr"),
        LabelConfig(format="raw", principles_per_pair=2),
        feedback="fake",
        pairs=pairs,
        backends=backends,
        progress=False,
    )
    out = read_jsonl(tmp_path / "run" / "label" / "prefs.jsonl", PreferenceRecord)
    assert [r.chosen[0].content for r in out] == ["good one", "good two"]
    assert [r.agrees_with_file for r in out] == [False, True]
    assert summary["agreement_with_file"] == 0.5


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"prompt": "Q", "chosen": "a"}, "field `rejected`"),
        (
            {"prompt": [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"},
            "must end with a `user` message",
        ),
        (
            {"prompt": "Q", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"},
            "one `assistant` message",
        ),
    ],
)
def test_bad_pairs_file_names_line_and_field(
    tmp_path: Path, row: dict[str, Any], problem: str
) -> None:
    data = tmp_path / "pairs.jsonl"
    good = {"prompt": "Q", "chosen": "a", "rejected": "b"}
    data.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InputError, match=problem) as info:
        read_pairs(data)
    assert info.value.line == 2 and "pairs.jsonl, line 2" in str(info.value)


def test_policy_needs_temperature(tmp_path: Path) -> None:
    with pytest.raises(CharterError, match="temperature > 0"):
        backends = BackendPool(4)
        backends.provide("fake", FakeBackend())
        label_stage(
            RunFolder.open(tmp_path / "run", {}),
            prompts(1),
            load_constitution("udhr"),
            LabelConfig(format="raw"),
            feedback="fake",
            policy="fake",
            sampling=Sampling(temperature=0.0),
            backends=backends,
            progress=False,
        )


def assert_dpo_trainer_accepts(prefs: Path, model_dir: Path, tmp: Path) -> None:
    """Load prefs rows as a `datasets.Dataset` and hand them to TRL's DPOTrainer, which
    validates and tokenizes them (conversational format, via the chat template); then one
    training step on the tiny model, so the rows also get through the collator and the loss."""
    import datasets  # type: ignore[import-untyped]
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.data_utils import is_conversational, maybe_apply_chat_template
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    rows = [json.loads(line) for line in prefs.read_text().splitlines()]
    ds = datasets.Dataset.from_list(rows)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert is_conversational(ds[0])
    rendered = maybe_apply_chat_template(ds[0], tok)
    assert rendered["chosen"].strip() and rendered["prompt"].strip()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = DPOConfig(
        output_dir=str(tmp / "dpo"),
        per_device_train_batch_size=2,
        max_steps=1,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        dataset_num_proc=None,
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    assert len(trainer.train_dataset) == len(rows)
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)
    out = trainer.train()
    assert math.isfinite(out.training_loss)


def test_dpo_trainer_accepts_the_rows(tmp_path: Path, tiny_model_dir: Path) -> None:
    run_stage(tmp_path, n=4)
    assert_dpo_trainer_accepts(tmp_path / "run" / "label" / "prefs.jsonl", tiny_model_dir, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_embedded_label_16_rows_that_dpo_accepts(
    tmp_path: Path, embedded_dir: Path, tiny_model_dir: Path
) -> None:
    from click.testing import CliRunner

    from charter.cli.label import label

    out = tmp_path / "run"
    args = [
        "--policy", "embedded", "--feedback", "embedded", "--prompts", "builtin:red-team",
        "--limit", "16", "--max-new-tokens", "32", "--principles-per-pair", "2",
        "--few-shot", "1", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(label, args)
    assert result.exit_code == 0, result.output
    prefs = out / "prefs.jsonl"
    rows = read_jsonl(prefs, PreferenceRecord)
    assert len(rows) == 16
    assert all(0.5 <= r.p_chosen <= 1 and len(r.votes) == 4 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["order_agreement"] is not None and summary["letter_bias"] is not None
    # The rows, not the model, are under test: the tiny model's tokenizer and chat template keep
    # TRL's preprocessing and a training step fast.
    assert_dpo_trainer_accepts(prefs, tiny_model_dir, tmp_path)
