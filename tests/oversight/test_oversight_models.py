"""Real models as judge and debaters: an OpenAI-compatible server (the local test server backed by
a tiny model) and the embedded SmolLM2-135M through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charter.backends import load_backend
from charter.backends.base import normalized_option_probs
from charter.backends.hf import HFBackend
from charter.oversight.protocols import OversightConfig, plan_units, run_units
from charter.oversight.questions import synthetic_questions
from charter.records import OptionQuery
from conftest import run_cli
from openai_server import FakeOpenAI, serve


def test_openai_backend_as_judge_and_debater(tiny_model_dir: Path) -> None:
    tiny = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=8)
    assert isinstance(tiny, HFBackend)
    vocab = len(tiny.tokenizer)
    server = FakeOpenAI(backend=tiny)
    config = OversightConfig(
        protocols=["debate", "consultancy", "oracle"], rounds=1, max_new_tokens=8, temperature=0
    )
    with serve(server.app()) as base:
        # Ask for every token's log-prob so the letters are always among the returned ones.
        remote = load_backend(f"openai:{base}#{server.model}", concurrency=4, top_logprobs=vocab)
        units = plan_units(synthetic_questions(1, seed=7), config, [remote.spec])
        got = run_units(units, remote, {remote.spec: remote}, config)
    assert len(got) == 2 * (1 + 2 + 1)
    paths = server.paths()
    speeches = sum(len(t.turns) for t in got)
    assert paths.count("chat/completions") == speeches + len(got)  # speeches + judge queries
    assert all(t.turns[0].debater.startswith("openai:") for t in got if t.protocol != "oracle")
    # The judge's letters, scored over HTTP, match the model behind the server.
    local = tiny.option_logprobs(
        [OptionQuery(prompt=t.judge_prompt, options=["A", "B"]) for t in got]
    )
    for t, lp in zip(got, local, strict=True):
        assert t.p_a == pytest.approx(normalized_option_probs(lp)["A"], abs=1e-4)


@pytest.mark.slow
def test_embedded_model_debates_and_judges_offline(tmp_path: Path, embedded_dir: Path) -> None:
    out = tmp_path / "debate"
    done = run_cli(
        ["oversight", "run", "--protocol", "debate", "--data", "synthetic:1",
         "--judge", "embedded", "--debater", "embedded", "--rounds", "1",
         "--max-new-tokens", "16", "--out", str(out), "--no-progress"],
        # On a busy 2-core machine a second OpenMP thread spin-waits for a core: this run took
        # over 10 minutes with two threads at load 20 and under 2 minutes with one.
        env={"OMP_NUM_THREADS": "1"},
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(x) for x in (out / "transcripts.jsonl").read_text().splitlines()]
    debates = [r for r in rows if r["protocol"] == "debate"]
    assert len(debates) == len(rows) == 2  # one question, both answer orders
    for r in debates:
        assert [t["speaker"] for t in r["turns"]] == ["A", "B"]
        assert all(t["text"].strip() for t in r["turns"])  # the model said something
        assert 0 < r["p_a"] < 1 and r["judge"] == "embedded"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["protocols"]["debate"]["accuracy"]["value"] <= 1
