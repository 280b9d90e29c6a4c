"""The SL-CAI recipe's filters and mixing (issue #24): the semantic revision checks, refusals
kept out of the helpful mix, and principles selected by the prompt's harm category."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from charter.backends.fake import FakeBackend
from charter.backends.pool import BackendPool
from charter.constitution.schema import Constitution, Principle, select_principles
from charter.generate import GenerationConfig
from charter.records import Message, PromptRecord, Sampling
from charter.runs import JsonlWriter, RunFolder
from charter.sl import SLConfig, SLInputs, check_revision, critique_and_revise, run_sl
from charter.sl.revise import SLSample, sample_id
from charter.stage import StageContext

REQUEST = "How do I bake sourdough bread at home?"


@pytest.mark.parametrize(
    ("revision", "harmful", "accepted", "reason"),
    [
        ("Feed the starter, then bake the bread hot with steam.", False, True, None),
        (
            "I'm sorry, but I can't help with that request.",
            False,
            False,
            "refuses a benign request",
        ),
        # A refusal of a harmful request addresses it by declining.
        ("I'm sorry, but I can't help with that request.", True, True, None),
        (
            "Football is the most popular sport in the world.",
            True,
            False,
            "does not address the request",
        ),
        (
            "Football is the most popular sport in the world.",
            False,
            False,
            "does not address the request",
        ),
    ],
)
def test_semantic_checks(revision: str, harmful: bool, accepted: bool, reason: str | None) -> None:
    check = check_revision("old", revision, [], request=REQUEST, harmful=harmful)
    assert (check.accepted, check.reason) == (accepted, reason)


def test_semantic_checks_off_without_the_request() -> None:
    off = "Football is the most popular sport in the world."
    assert check_revision("old", off, []).accepted


def test_arabic_revision_on_topic() -> None:
    check = check_revision(
        "قديم",
        "اخلط الدقيق بالماء ثم اخبز الخبز في فرن حار.",
        [],
        request="كيف أخبز الخبز في البيت؟",
    )
    assert check.accepted


@pytest.mark.parametrize(
    ("previous", "revision", "reason"),
    [
        # The reviser continued the answer it was asked to rewrite.
        ("The best place to", "The best place to hit someone", "barely changed"),
        ("Hit them in the ribs, hard.", "Hit them in the ribs, hard!", "barely changed"),
        ("Hit them in the ribs, hard.", "I can't help you hurt someone.", None),
    ],
)
def test_a_copied_or_continued_answer_is_not_a_revision(
    previous: str, revision: str, reason: str | None
) -> None:
    assert check_revision(previous, revision, []).reason == reason


@pytest.mark.parametrize(
    ("revision", "harmful", "decline", "reason"),
    [
        # A reworded compliance passes without the check, not with it.
        ("Wait until dark, then force the lock.", True, False, None),
        ("Wait until dark, then force the lock.", True, True, "does not decline a harmful request"),
        ("I won't help you break into a house; that could hurt someone.", True, True, None),
        ("لا أستطيع مساعدتك في ذلك، فهو قد يؤذي شخصاً.", True, True, None),
        # Benign requests are not asked to be declined.
        ("Wait until dark, then force the lock.", False, True, None),
    ],
)
def test_decline_check(revision: str, harmful: bool, decline: bool, reason: str | None) -> None:
    check = check_revision("Sure: first, the lock.", revision, [], harmful=harmful, decline=decline)
    assert check.reason == reason


def test_decline_check_in_the_stage_keeps_the_answer_and_changes_the_id(tmp_path: Path) -> None:
    harmful = PromptRecord(id="h", prompt=REQUEST, meta={"set": "red-team"})
    runs = {}
    for decline in (False, True):
        path = tmp_path / f"{decline}.jsonl"
        critique_and_revise(
            [harmful],
            FakeBackend(answers=_sl_answers("Bake the sourdough bread in a hot oven.")),
            CONSTITUTION,
            SLConfig(rounds=1, few_shot=0, decline_check=decline),
            Sampling(),
            JsonlWriter(path),
            progress=False,
        )
        runs[decline] = SLSample.model_validate_json(path.read_text())
    assert runs[False].revised
    assert not runs[True].revised
    assert runs[True].rounds[0].reason == "does not decline a harmful request"
    assert runs[True].final == runs[True].initial
    # A resumed run with the other setting does not take the first one's samples.
    assert runs[True].id != runs[False].id


def _sl_answers(revision: str):  # type: ignore[no-untyped-def]
    def answer(chat: Sequence[Message]) -> str:
        last = chat[-1].content
        if last.startswith("Critique"):
            return "It could be better."
        if last.startswith("Revise"):
            return revision
        return "Preheat the oven and bake the sourdough bread."

    return answer


CONSTITUTION = Constitution(
    name="t",
    principles=[
        Principle(
            id="life", critique="Critique: danger?", revision="Revise it.", tags=["violence"]
        ),
        Principle(
            id="privacy", critique="Critique: privacy?", revision="Revise it.", tags=["privacy"]
        ),
        Principle(
            id="helpful", critique="Critique: evasive?", revision="Revise it.", tags=["helpfulness"]
        ),
    ],
)


def test_a_benign_prompt_refused_by_the_revision_keeps_its_answer(tmp_path: Path) -> None:
    benign = PromptRecord(id="b", prompt=REQUEST, meta={"set": "borderline"})
    harmful = PromptRecord(id="h", prompt=REQUEST, meta={"set": "red-team"})
    writer = JsonlWriter(tmp_path / "s.jsonl")
    critique_and_revise(
        [benign, harmful],
        FakeBackend(answers=_sl_answers("I'm sorry, but I can't help with that.")),
        CONSTITUTION,
        SLConfig(rounds=1, few_shot=0),
        Sampling(),
        writer,
        progress=False,
    )
    rows = {
        s.prompt_id: s
        for s in map(SLSample.model_validate_json, (tmp_path / "s.jsonl").read_text().splitlines())
    }
    assert rows["b"].rounds[0].reason == "refuses a benign request" and not rows["b"].revised
    assert rows["b"].final == "Preheat the oven and bake the sourdough bread."
    assert rows["h"].revised and rows["h"].final.startswith("I'm sorry")


def test_topic_check_can_be_turned_off(tmp_path: Path) -> None:
    benign = PromptRecord(id="b", prompt=REQUEST, meta={"set": "helpful"})
    writer = JsonlWriter(tmp_path / "s.jsonl")
    critique_and_revise(
        [benign],
        FakeBackend(answers=_sl_answers("I'm sorry, but I can't help with that.")),
        CONSTITUTION,
        SLConfig(rounds=1, few_shot=0, topic_check=False),
        Sampling(),
        writer,
        progress=False,
    )
    sample = SLSample.model_validate_json((tmp_path / "s.jsonl").read_text())
    assert sample.revised


def test_matched_principles_follow_the_category(tmp_path: Path) -> None:
    ps = CONSTITUTION.critique_principles()
    assert [p.id for p in select_principles(ps, "violence", "matched")] == ["life"]
    assert [p.id for p in select_principles(ps, "hate-privacy", "matched")] == ["privacy"]
    assert [p.id for p in select_principles(ps, "drugs", "matched")] == ["life", "privacy"]
    assert [p.id for p in select_principles(ps, "violence", "harm")] == ["life", "privacy"]
    prompts = [
        PromptRecord(id=f"v{i}", prompt=f"violent request {i}", meta={"category": "violence"})
        for i in range(6)
    ]
    writer = JsonlWriter(tmp_path / "s.jsonl")
    critique_and_revise(
        prompts,
        FakeBackend(answers=_sl_answers("A violent request answered safely.")),
        CONSTITUTION,
        SLConfig(rounds=2, few_shot=0, principle_pool="matched"),
        Sampling(),
        writer,
        progress=False,
    )
    used = {
        r.principle_id
        for s in map(SLSample.model_validate_json, (tmp_path / "s.jsonl").read_text().splitlines())
        for r in s.rounds
    }
    assert used == {"life"}


def test_refusals_stay_out_of_the_helpful_mix(tmp_path: Path) -> None:
    def answer(chat: Sequence[Message]) -> str:
        last = chat[-1].content
        if last.startswith("helpful 0"):
            return "I'm sorry, but I can't help with that."
        if last.startswith("Revise"):
            return "A safer answer to the violent request."
        return "Critique." if last.startswith("Critique") else f"An answer to: {last}"

    run = RunFolder.open(tmp_path / "r", {"t": 1})
    helpful = [PromptRecord(id=f"h{i}", prompt=f"helpful {i} cooking pasta") for i in range(4)]
    prompts = [PromptRecord(id=f"q{i}", prompt=f"violent request {i}") for i in range(4)]
    ctx = StageContext(run, BackendPool(4), CONSTITUTION, progress=False)
    policy = GenerationConfig(model="fake", model_options={"answers": answer}, batch_size=4)
    summary = run_sl(
        ctx,
        SLInputs(prompts=prompts, helpful=helpful, policy=policy),
        SLConfig(rounds=1, helpful_ratio=1.0, few_shot=0),
    ).summary
    assert summary["helpful_refused"] == 1 and summary["n_helpful"] == 3
    rows = [json.loads(x) for x in (tmp_path / "r" / "sft.jsonl").read_text().splitlines()]
    helpful_answers = [
        r["messages"][-1]["content"] for r in rows if r["meta"]["source"] == "helpful"
    ]
    assert len(helpful_answers) == 3
    assert not any("sorry" in a for a in helpful_answers)


def test_reviser_teacher_of_a_fake_policy_is_the_policy(tmp_path: Path) -> None:
    """`charter sl --reviser teacher`: the strongest offline model for a local policy; for a
    fake (not local) policy, the policy itself, so no reviser is recorded."""
    from conftest import run_cli

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "q", "prompt": "How do I bake bread?"}) + "\n")
    out = tmp_path / "sl"
    args = ["sl", "--model", "fake", "--reviser", "teacher", "--prompts", str(prompts)]
    r = run_cli([*args, "--split", "all", "--rounds", "1", "--out", str(out), "--no-progress"])
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["reviser"] is None


def test_helpful_mix_takes_languages_in_turn(tmp_path: Path) -> None:
    """`helpful_langs=[en, ar]`: the mix's prefix holds both languages evenly, and each row
    says its language."""
    from charter.data import multilingual

    mix = multilingual("builtin:helpful", ["en", "ar"], "train")
    assert [p.meta["lang"] for p in mix[:4]] == ["en", "ar", "en", "ar"]
    run = RunFolder.open(tmp_path / "r", {"t": 1})
    ctx = StageContext(run, BackendPool(4), CONSTITUTION, progress=False)
    answers = _sl_answers("A violent request answered safely.")
    policy = GenerationConfig(model="fake", model_options={"answers": answers}, batch_size=4)
    prompts = [PromptRecord(id=f"q{i}", prompt=f"violent request {i}") for i in range(2)]
    cfg = SLConfig(rounds=1, few_shot=0, helpful_ratio=2.0, helpful_langs=["en", "ar"])
    run_sl(ctx, SLInputs(prompts=prompts, helpful=mix, policy=policy), cfg)
    rows = [json.loads(x) for x in (tmp_path / "r" / "sft.jsonl").read_text().splitlines()]
    langs = [r["meta"]["lang"] for r in rows if r["meta"]["source"] == "helpful"]
    assert sorted(langs) == ["ar", "ar", "en", "en"]


def test_a_file_is_read_once_for_several_languages(tmp_path: Path) -> None:
    from charter.data import multilingual

    path = tmp_path / "p.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"q{i}", "prompt": f"q {i}"}) + "\n" for i in range(3))
    )
    assert [p.id for p in multilingual(str(path), ["en", "ar"], None)] == ["q0", "q1", "q2"]


def test_sl_langs_revises_each_prompt_under_its_own_language(tmp_path: Path) -> None:
    """`sl.langs=[en, ar]`: builtin red-team prompts of both languages in turn, each critiqued
    with the constitution's principles in its own language, each sample and SFT row saying its
    language; a one-language run keeps its sample ids."""
    from charter.constitution.load import load_constitution
    from charter.data import multilingual
    from charter.evaluate.refusal import arabic_share

    udhr = load_constitution("udhr")
    prompts = multilingual("builtin:red-team", ["en", "ar"], "train")[:4]
    assert [p.meta["lang"] for p in prompts] == ["en", "ar", "en", "ar"]
    seen: list[str] = []

    def answer(chat: Sequence[Message]) -> str:
        seen.append(chat[-1].content)
        return "I can't help with that, because it could hurt someone."

    cfg = SLConfig(rounds=1, few_shot=0, langs=["en", "ar"])
    run = RunFolder.open(tmp_path / "r", {"t": 1})
    ctx = StageContext(run, BackendPool(4), udhr, progress=False)
    policy = GenerationConfig(model="fake", model_options={"answers": answer}, batch_size=4)
    summary = run_sl(ctx, SLInputs(prompts=prompts, policy=policy), cfg).summary
    assert summary["langs"] == ["en", "ar"]
    samples = [
        SLSample.model_validate_json(x)
        for x in (tmp_path / "r" / "samples.jsonl").read_text().splitlines()
    ]
    assert {s.prompt_id: s.lang for s in samples} == {p.key(): p.meta["lang"] for p in prompts}
    for s in samples:
        in_arabic = arabic_share(s.rounds[0].critique_request) > 0.5
        assert in_arabic == (s.lang == "ar"), s.rounds[0].critique_request
    # The English samples have the ids of an English-only run.
    english = [p for p in prompts if p.meta["lang"] == "en"]
    sha = udhr.localized("en").compute_sha256()
    sampling = policy.sampling(0)
    ids = {sample_id(p, sha, "fake", SLConfig(rounds=1, few_shot=0), sampling) for p in english}
    assert ids <= {s.id for s in samples}


def test_contrast_prompts_join_the_helpful_mix_in_turn(tmp_path: Path) -> None:
    """`contrast_prompts=builtin:borderline`: benign prompts that look harmful alternate with
    the helpful ones (train split only: the eval split's borderline prompts stay held out), and
    each mixed-in row names its set."""
    from charter.data import load_prompts, mixed

    cfg = SLConfig(rounds=1, few_shot=0, helpful_ratio=2.0, contrast_prompts="builtin:borderline")
    mix = mixed(cfg.helpful_sources(), ["en"], "train")
    assert [p.meta["set"] for p in mix[:4]] == ["helpful", "borderline"] * 2
    held_out = {p.id for p in load_prompts("builtin:borderline", split="eval")}
    assert held_out and not held_out & {p.id for p in mix}
    run = RunFolder.open(tmp_path / "r", {"t": 1})
    ctx = StageContext(run, BackendPool(4), CONSTITUTION, progress=False)
    answers = _sl_answers("A violent request answered safely.")
    policy = GenerationConfig(model="fake", model_options={"answers": answers}, batch_size=4)
    prompts = [PromptRecord(id=f"q{i}", prompt=f"violent request {i}") for i in range(2)]
    summary = run_sl(ctx, SLInputs(prompts=prompts, helpful=mix, policy=policy), cfg).summary
    assert summary["helpful_by_set"] == {"helpful": 2, "borderline": 2}
    rows = [json.loads(x) for x in (tmp_path / "r" / "sft.jsonl").read_text().splitlines()]
    sets = [r["meta"]["set"] for r in rows if r["meta"]["source"] == "helpful"]
    assert sorted(sets) == ["borderline", "borderline", "helpful", "helpful"]


def test_a_changed_helpful_mix_keeps_the_revisions(tmp_path: Path) -> None:
    """The revisions' manifest step depends on the revision settings only: a resumed run with
    another helpful mix answers the new helpful prompts and revises nothing again."""
    from charter.data import mixed

    revisions: list[str] = []

    def answer(chat: Sequence[Message]) -> str:
        if chat[-1].content.startswith("Revise"):
            revisions.append(chat[-1].content)
        return str(_sl_answers("A violent request answered safely.")(chat))

    policy = GenerationConfig(model="fake", model_options={"answers": answer}, batch_size=4)
    prompts = [PromptRecord(id=f"q{i}", prompt=f"violent request {i}") for i in range(2)]
    first = SLConfig(rounds=1, few_shot=0, helpful_ratio=1.0)
    second = first.model_copy(
        update={"helpful_ratio": 2.0, "contrast_prompts": "builtin:borderline"}
    )
    summaries = []
    for cfg, resume in ((first, False), (second, True)):
        run = RunFolder.open(tmp_path / "r", {"t": 1}, resume=resume)
        ctx = StageContext(run, BackendPool(4), CONSTITUTION, progress=False)
        mix = mixed(cfg.helpful_sources(), ["en"], "train")
        inputs = SLInputs(prompts=prompts, helpful=mix, policy=policy)
        summaries.append(run_sl(ctx, inputs, cfg).summary)
    assert len(revisions) == 2  # the first run's two prompts, none again
    assert summaries[0]["helpful_by_set"] == {"helpful": 2}
    assert summaries[1]["helpful_by_set"] == {"helpful": 2, "borderline": 2}
    assert summaries[1]["n_revised"] == 2


def test_a_run_folder_of_the_previous_release_resumes_its_revisions(tmp_path: Path) -> None:
    """The committed default run's manifest hashed every SL setting into the revisions' step;
    today's code recognises that hash (the same settings), so the run's revisions are not
    redone and no model is loaded."""
    import shutil

    import yaml

    from charter.config import RunConfig
    from charter.constitution.load import load_constitution
    from charter.feedback import ModelRole
    from charter.pipeline import collect_prompts

    committed = Path(__file__).parents[2] / "docs" / "runs" / "default-recipe"
    cfg = RunConfig.model_validate(yaml.safe_load((committed / "config.yaml").read_text()))
    folder = tmp_path / "r"
    folder.mkdir()
    shutil.copy(committed / "manifest.json", folder / "manifest.json")
    run = RunFolder.open(folder, {"t": 1}, resume=True)
    ctx = StageContext(run, BackendPool(1), load_constitution(cfg.constitution), progress=False)
    sl_cfg = SLConfig.model_validate(cfg.sl.model_dump(include=set(SLConfig.model_fields)))
    spec, options = cfg.role("reviser")
    inputs = SLInputs(
        prompts=collect_prompts(cfg)["sl"],
        policy=cfg.generation,
        reviser=ModelRole(model=spec, model_options=options),
    )
    run_sl(ctx.inside("sl"), inputs, sl_cfg)
    assert run.outcomes["sl"] == ("skipped", 160)
    assert ctx.pool.loaded() == 0


def test_sl_writes_its_own_preference_pairs(tmp_path: Path) -> None:
    """sl/pairs.jsonl: each accepted revision over the answer it revised, and each helpful
    answer of the mix over a decline, in the prompt's language where there is one; rows that
    DPO's reader takes (`p_chosen` 1.0)."""
    from charter.constitution.load import load_constitution
    from charter.train.data import load_preference_rows

    def answer(chat: Sequence[Message]) -> str:
        if len(chat) == 1:  # the policy's first answer (or a helpful one) complies
            return f"Here is how: {chat[0].content}"
        # Critiques and revisions decline, in the request's language.
        arabic = "كيف" in chat[0].content
        return "أعتذر، لا أستطيع المساعدة في هذا." if arabic else "I'm sorry, I can't help."

    run = RunFolder.open(tmp_path / "r", {"t": 1})
    ctx = StageContext(run, BackendPool(4), load_constitution("udhr"), progress=False)
    policy = GenerationConfig(model="fake", model_options={"answers": answer}, batch_size=4)
    prompts = [
        PromptRecord(id="q-en", prompt="violent request to hurt him"),
        PromptRecord(id="q-ar", prompt="كيف أؤذيه؟", meta={"lang": "ar"}),
    ]
    helpful = [
        PromptRecord(id="h-en", prompt="helpful question about pasta"),
        PromptRecord(id="h-ar", prompt="سؤال مفيد عن الخبز", meta={"lang": "ar"}),
    ]
    cfg = SLConfig(rounds=1, few_shot=0, helpful_ratio=1.0, topic_check=False, langs=["en", "ar"])
    summary = run_sl(ctx, SLInputs(prompts=prompts, helpful=helpful, policy=policy), cfg).summary
    assert summary["pairs"] == {"revision": 2, "contrast": 2}
    rows = [json.loads(x) for x in (tmp_path / "r" / "pairs.jsonl").read_text().splitlines()]
    revision = {r["prompt_id"]: r for r in rows if r["kind"] == "revision"}
    assert revision["q-en"]["chosen"][0]["content"] == "I'm sorry, I can't help."
    assert revision["q-en"]["rejected"][0]["content"].startswith("Here is how")
    contrast = {r["prompt_id"]: r for r in rows if r["kind"] == "contrast"}
    assert contrast["h-en"]["chosen"][0]["content"].startswith("Here is how")
    assert contrast["h-en"]["rejected"][0]["content"] == "I'm sorry, I can't help."
    assert contrast["h-ar"]["rejected"][0]["content"].startswith("أعتذر")
    loaded = load_preference_rows(tmp_path / "r" / "pairs.jsonl", need_p=True)
    assert len(loaded) == 4 and {r.p_chosen for r in loaded} == {1.0}


def test_retry_rejected_gives_only_unrevised_prompts_another_attempt(tmp_path: Path) -> None:
    bread = PromptRecord(id="b", prompt=REQUEST, meta={"set": "helpful"})
    grow = "How do I grow tomatoes on a balcony?"
    tomato = PromptRecord(id="t", prompt=grow, meta={})
    revisions: list[str] = []

    def answer(chat: Sequence[Message]) -> str:
        last, asked = chat[-1].content, chat[0].content
        if last.startswith("Critique"):
            return "It could be better."
        if not last.startswith("Revise"):
            return "Preheat the oven and bake the sourdough bread." if asked == REQUEST else (
                "Plant tomatoes in pots on the balcony.")  # fmt: skip
        revisions.append(asked)
        if asked == REQUEST:
            return "Bake the sourdough bread in a hot oven."
        # The tomato prompt's first revision drifts off topic (rejected); its second does not.
        if revisions.count(asked) == 1:
            return "Football is the most popular sport in the world."
        return "Grow the tomatoes in large pots in full sun on the balcony."

    samples = {}
    for retry in (False, True):
        revisions.clear()
        path = tmp_path / f"{retry}.jsonl"
        critique_and_revise(
            [bread, tomato],
            FakeBackend(answers=answer),
            CONSTITUTION,
            SLConfig(rounds=2, few_shot=0, retry_rejected=retry),
            Sampling(),
            JsonlWriter(path),
            progress=False,
        )
        rows = [SLSample.model_validate_json(x) for x in path.read_text().splitlines()]
        samples[retry] = {s.prompt_id: s for s in rows}
        if retry:
            # The bread prompt, revised in round 1, is not revised again.
            assert sorted(revisions) == sorted([REQUEST, grow, grow])
    plain, retried = samples[False], samples[True]
    assert len(plain["b"].rounds) == 2  # without retries every prompt takes every round
    assert [r.accepted for r in retried["b"].rounds] == [True]
    assert [r.accepted for r in retried["t"].rounds] == [False, True]
    assert retried["t"].revised and retried["t"].final.startswith("Grow the tomatoes")
    assert retried["b"].id != plain["b"].id  # a resumed run does not mix the two
