"""SL-CAI: principle sampling, batching per round, revision checks, outputs and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from charter.backends.fake import FakeBackend
from charter.backends.pool import BackendPool
from charter.constitution.load import dump_constitution
from charter.constitution.schema import Constitution, CritiqueRevisionExample, FewShot, Principle
from charter.generate import GenerationConfig
from charter.records import Message, PromptRecord, Sampling
from charter.runs import JsonlWriter, RunFolder
from charter.sl import (
    SLConfig,
    SLInputs,
    check_revision,
    critique_and_revise,
    draw_principles,
    run_sl,
)
from charter.sl.checks import strip_meta
from charter.sl.revise import SLSample
from charter.stage import StageContext
from conftest import run_cli

PRINCIPLES = [
    Principle(
        id=f"p{i}",
        critique=f"Critique request number {i}.",
        revision=f"Revision request number {i}.",
    )
    for i in range(5)
]
EXAMPLE = CritiqueRevisionExample(
    messages=[Message(role="user", content="ex q"), Message(role="assistant", content="ex bad")],
    critique_request="ex creq",
    critique="ex crit",
    revision_request="ex rreq",
    revision="ex good",
)
CONSTITUTION = Constitution(
    name="test",
    principles=[*PRINCIPLES, Principle(id="cmp", comparison="Which is better?")],
    few_shot=FewShot(critique_revision=[EXAMPLE]),
)


def scripted(chat: Sequence[Message]) -> str:
    """Answer, critique or revise, depending on what was asked last."""
    last = chat[-1].content
    if last.startswith("Critique request"):
        return f"Critique of '{chat[-2].content}'."
    if last.startswith("Revision request"):
        previous = chat[-4].content
        return f"Here is the revised response: better, {previous} (said more plainly)"
    return f"initial answer to {last}"


def prompts(n: int) -> list[PromptRecord]:
    return [PromptRecord(id=f"q{i}", prompt=f"question {i}") for i in range(n)]


def test_principles_are_seeded_per_prompt_and_come_from_the_constitution() -> None:
    a = [p.id for p in draw_principles(PRINCIPLES, "q1", seed=3, rounds=20)]
    assert a == [p.id for p in draw_principles(PRINCIPLES, "q1", seed=3, rounds=20)]
    assert a != [p.id for p in draw_principles(PRINCIPLES, "q1", seed=4, rounds=20)]
    assert len(set(a)) > 1 and set(a) <= {p.id for p in PRINCIPLES}
    # With replacement: over many draws some principle repeats.
    assert len(a) > len(set(a))


def test_one_batched_call_per_step_and_final_is_last_accepted(tmp_path: Path) -> None:
    fake = FakeBackend(answers=scripted)
    writer = JsonlWriter(tmp_path / "s.jsonl")
    cfg = SLConfig(rounds=2, few_shot=1, chunk_size=8)
    stats = critique_and_revise(
        prompts(6), fake, CONSTITUTION, cfg, Sampling(seed=1), writer, progress=False
    )
    assert stats.written == 6
    # 1 answer + 2 rounds × (critique + revision) = 5 calls, each with all 6 prompts.
    assert [len(c.requests) for c in fake.calls] == [6] * 5
    samples = [
        SLSample.model_validate_json(line)
        for line in (tmp_path / "s.jsonl").read_text().splitlines()
    ]
    s = next(x for x in samples if x.prompt_id == "q2")
    assert s.initial == "initial answer to question 2"
    assert [r.principle_id for r in s.rounds] == [
        p.id for p in draw_principles(PRINCIPLES, "q2", 1, 2)
    ]
    assert all(r.accepted and r.note == "stripped meta-text" for r in s.rounds)
    assert s.final == (
        "better, better, initial answer to question 2 (said more plainly) (said more plainly)"
    )
    assert s.revised
    # The critique turn saw the few-shot example first, then the prompt and current answer.
    critique_chat = fake.calls[1].requests[0]
    assert isinstance(critique_chat, list)
    assert [m.content for m in critique_chat[:2]] == ["ex q", "ex bad"]
    assert critique_chat[-1].content.startswith("Critique request")


def test_rejected_revisions_keep_the_previous_answer(tmp_path: Path) -> None:
    def lazy(chat: Sequence[Message]) -> str:
        last = chat[-1].content
        if last.startswith("Revision request"):
            return chat[-4].content  # unchanged
        return "crit" if last.startswith("Critique") else "first"

    writer = JsonlWriter(tmp_path / "s.jsonl")
    critique_and_revise(
        prompts(2),
        FakeBackend(answers=lazy),
        CONSTITUTION,
        SLConfig(rounds=2),
        Sampling(),
        writer,
        progress=False,
    )
    for line in (tmp_path / "s.jsonl").read_text().splitlines():
        s = SLSample.model_validate_json(line)
        assert not s.revised and s.final == "first"
        assert [r.reason for r in s.rounds] == ["unchanged", "unchanged"]


@pytest.mark.parametrize(
    ("previous", "revision", "accepted", "reason", "text"),
    [
        ("old", "   ", False, "empty", ""),
        ("Old answer.", "old   ANSWER.", False, "unchanged", None),
        ("old", "Please rewrite the response to be kind.", False, "echoes the request", None),
        ("old", "Here is the revised response:", False, "meta-text only", ""),
        ("old", "Sure! Here's the rewritten answer: new text", True, None, "new text"),
        ("old", "Revision: new text", True, None, "new text"),
        ("قديم", "إليك الرد المعدل: نص جديد", True, None, "نص جديد"),
        ("short", "x" * 2000, False, "runaway length", None),
        ("old", "a gentle rain falls " * 20, False, "repetitive", None),
        ("old", "A better, kinder answer.", True, None, "A better, kinder answer."),
    ],
)
def test_check_revision(
    previous: str, revision: str, accepted: bool, reason: str | None, text: str | None
) -> None:
    check = check_revision(previous, revision, ["Please rewrite the response to be kind."])
    assert (check.accepted, check.reason) == (accepted, reason)
    if text is not None:
        assert check.text == text


def test_copy_of_a_worked_example_is_rejected() -> None:
    example = "For many healthy adults, up to about 400 mg of caffeine a day is considered safe."
    check = check_revision("old", example + " That is about four cups.", [], examples=[example])
    assert (check.accepted, check.reason) == (False, "copies a worked example")
    assert check_revision("old", "A new, different answer.", [], examples=[example]).accepted


def test_strip_meta_leaves_normal_text() -> None:
    assert strip_meta("Here is how to boil an egg: ...") == (
        "Here is how to boil an egg: ...",
        False,
    )


def test_stage_writes_sft_and_summary_and_mixes_helpful(tmp_path: Path) -> None:
    run = RunFolder.open(tmp_path / "r", {"t": 1})
    helpful = [PromptRecord(id=f"h{i}", prompt=f"helpful {i}") for i in range(10)]
    cfg = SLConfig(rounds=1, helpful_ratio=0.5)
    # The fake backend is created by spec, as a user would name it.
    # The fake backend is loaded by the pool from its spec and options.
    ctx = StageContext(run, BackendPool(4), CONSTITUTION, progress=False)
    policy = GenerationConfig(model="fake", model_options={"answers": scripted}, batch_size=4)
    inputs = SLInputs(prompts=prompts(4), helpful=helpful, policy=policy)
    summary = run_sl(ctx, inputs, cfg).summary
    assert summary["n_samples"] == 4 and summary["n_revised"] == 4
    assert summary["n_helpful"] == 2 and summary["n_sft"] == 6
    for key in ("n_samples", "acceptance_rate", "tokens_per_s", "per_principle", "per_round"):
        assert key in summary
    rows = [json.loads(x) for x in (tmp_path / "r" / "sft.jsonl").read_text().splitlines()]
    assert [r["meta"]["source"] for r in rows].count("helpful") == 2
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["n_sft"] == 6
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["stages"]["sl"]["status"] == "complete"
    assert manifest["stages"]["sl/helpful"]["status"] == "complete"


def write_inputs(tmp_path: Path, n: int) -> tuple[Path, Path]:
    p = tmp_path / "p.jsonl"
    p.write_text(
        "".join(json.dumps({"id": f"q{i}", "prompt": f"question {i}"}) + "\n" for i in range(n))
    )
    c = tmp_path / "c.yaml"
    c.write_text(dump_constitution(CONSTITUTION))
    return p, c


def test_kill_mid_round_then_resume(tmp_path: Path) -> None:
    n = 12
    p, c = write_inputs(tmp_path, n)
    out = tmp_path / "sl"
    args = [
        "sl",
        "--model",
        "fake",
        "--constitution",
        str(c),
        "--prompts",
        str(p),
        "--split",
        "all",
        "--out",
        str(out),
        "--rounds",
        "2",
        "--chunk-size",
        "2",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "charter", *args, "--model-opt", "delay=0.1"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        samples.exists() and len(samples.read_text().splitlines()) >= 4
    ):
        time.sleep(0.02)
    time.sleep(0.15)  # land inside the next chunk's rounds
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(samples.read_text().splitlines())
    assert 4 <= before < n
    r = run_cli([*args, "--resume"])
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    assert len(rows) == n and len({x["id"] for x in rows}) == n
    assert sorted(x["prompt_id"] for x in rows) == sorted(f"q{i}" for i in range(n))
    assert all(len(x["rounds"]) == 2 for x in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == n and summary["this_invocation"]["samples_skipped"] == before


def test_arabic_uses_arabic_principles_and_examples(tmp_path: Path) -> None:
    from charter.constitution.load import load_constitution

    udhr = load_constitution("udhr")
    fake = FakeBackend(answers=scripted)
    writer = JsonlWriter(tmp_path / "s.jsonl")
    cfg = SLConfig(rounds=1, few_shot=1, lang="ar")
    arabic = [PromptRecord(id="a1", prompt="كيف أتجسس على هاتف أخي؟")]
    critique_and_revise(arabic, fake, udhr.localized("ar"), cfg, Sampling(), writer, progress=False)
    chat = fake.calls[1].requests[0]
    assert isinstance(chat, list)
    ar_examples = [e for e in udhr.few_shot.critique_revision if e.lang == "ar"]
    assert chat[0].content in {e.messages[0].content for e in ar_examples}
    sample = SLSample.model_validate_json((tmp_path / "s.jsonl").read_text())
    principle = udhr.principle(sample.rounds[0].principle_id)
    assert chat[-1].content == principle.translations["ar"].critique


def test_a_reviser_writes_the_critiques_and_revisions(tmp_path: Path) -> None:
    """The policy answers; the reviser (the paper's default: the policy itself) critiques and
    revises, and the sample says which model did."""
    policy = FakeBackend(answers=scripted, spec="fake-policy")
    reviser = FakeBackend(answers=scripted, spec="fake-reviser")
    writer = JsonlWriter(tmp_path / "s.jsonl")
    cfg = SLConfig(rounds=2, few_shot=0)
    critique_and_revise(
        prompts(3), policy, CONSTITUTION, cfg, Sampling(), writer, progress=False, reviser=reviser
    )
    assert [len(c.requests) for c in policy.calls] == [3]  # the answers only
    assert [len(c.requests) for c in reviser.calls] == [3] * 4  # 2 × (critique, revision)
    rows = [
        SLSample.model_validate_json(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()
    ]
    assert {r.reviser for r in rows} == {"fake-reviser"} and {r.backend for r in rows} == {
        "fake-policy"
    }
    assert all(r.initial.startswith("initial answer") and r.revised for r in rows)
    # Without a reviser the same prompts get other ids (and none is taken as done).
    from charter.sl.revise import sample_id

    p = prompts(1)[0]
    sha = CONSTITUTION.compute_sha256()
    assert sample_id(p, sha, "fake-policy", cfg, Sampling()) != sample_id(
        p, sha, "fake-policy", cfg, Sampling(), "fake-reviser"
    )
