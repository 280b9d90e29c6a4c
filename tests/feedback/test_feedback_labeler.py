"""The labeller's arithmetic, pinned with scripted log-probs against hand computations."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from charter.backends.fake import FakeBackend
from charter.constitution.schema import Constitution, FewShot, LabelExample, Principle
from charter.feedback import (
    LabelConfig,
    Labeler,
    PairRecord,
    clamp,
    draw_principles,
    label_pairs,
    letter_probability,
    soft_label,
)
from charter.feedback.labeler import summarize_labels, vote_pairs
from charter.feedback.prompts import ANSWER_CUE
from charter.records import Message, OptionQuery, Sampling

LABELER = Labeler(backend="fake", model_sha256="x", cot=False, clamp=None, few_shot=0)


def constitution(n: int = 3, examples: int = 0) -> Constitution:
    return Constitution(
        name="t",
        principles=[
            Principle(id=f"q{i}", comparison=f"Which answer is better by rule {i}?")
            for i in range(n)
        ],
        few_shot=FewShot(
            labeling=[
                LabelExample(
                    messages=[Message(role="user", content=f"example question {i}")],
                    question=f"example rule {i}",
                    chosen=f"example good {i}",
                    rejected=f"example bad {i}",
                    reasoning=f"because {i}",
                )
                for i in range(examples)
            ]
        ),
    )


def pair(first: str = "first answer", second: str = "second answer", pid: str = "p") -> PairRecord:
    return PairRecord(
        id=pid,
        prompt_id=pid,
        prompt=[Message(role="user", content="What should I do?")],
        responses=(first, second),
        source="policy",
    )


def options_block(q: OptionQuery) -> tuple[str, str]:
    """The texts shown as (A) and (B) in the last question of a prompt."""
    assert isinstance(q.prompt, str)
    tail = q.prompt.rsplit("Options:\n", 1)[1]
    a, rest = tail.split("\n(B) ", 1)
    return a.removeprefix("(A) "), rest.split("\n\n", 1)[0]


def scripted(p_a: Callable[[OptionQuery], float]) -> FakeBackend:
    def logprobs(q: OptionQuery) -> dict[str, float]:
        p = p_a(q)
        # Unnormalized on purpose: the labeller must normalize over the two letters.
        return {"A": math.log(p) - 1.3, "B": math.log(1 - p) - 1.3}

    return FakeBackend(logprobs=logprobs)


def test_letter_probability_is_a_softmax_over_the_two_letters() -> None:
    la, lb = -2.0, -0.5
    expected = math.exp(la) / (math.exp(la) + math.exp(lb))
    assert letter_probability({"A": la, "B": lb}) == pytest.approx(expected)
    assert letter_probability({"A": -1000.0, "B": -1000.0}) == pytest.approx(0.5)


def test_a_labeller_that_always_says_a_yields_one_half() -> None:
    backend = scripted(lambda q: 0.97)
    cfg = LabelConfig(format="raw", principles_per_pair=2)
    [row] = label_pairs([pair()], backend, constitution(), cfg, LABELER)
    assert row.p_chosen == pytest.approx(0.5)
    assert row.chosen[0].content == "first answer"  # a tie keeps the pair's order
    assert sorted(v.p for v in row.votes) == pytest.approx([0.03, 0.03, 0.97, 0.97])
    assert all(v.p_a == pytest.approx(0.97) for v in row.votes)
    assert summarize_labels([row])["letter_bias"] == pytest.approx(0.47)
    assert summarize_labels([row])["order_agreement"] == 0.0


def test_every_question_is_asked_in_both_orders_in_one_call() -> None:
    backend = scripted(lambda q: 0.5)
    label_pairs(
        [pair(pid="a"), pair(pid="b")], backend, constitution(), LabelConfig(format="raw"), LABELER
    )
    [call] = backend.calls
    queries = [q for q in call.requests if isinstance(q, OptionQuery)]
    assert len(queries) == 2 * 3 * 2  # pairs × principles (all 3: K=4 > 3) × orders
    shown = [options_block(q) for q in queries]
    assert shown.count(("first answer", "second answer")) == 6
    assert shown.count(("second answer", "first answer")) == 6
    for q in queries:
        assert q.options == ["A", "B"]
        assert isinstance(q.prompt, str) and q.prompt.endswith(ANSWER_CUE)


def test_principles_are_averaged_and_the_preferred_answer_is_chosen() -> None:
    # Rule 0 prefers the second answer with 0.9, rule 1 with 0.6, rule 2 with 0.3 (i.e. the
    # first with 0.7); the letters carry a bias of +0.05 that the two orders must cancel.
    strength = {"rule 0": 0.9, "rule 1": 0.6, "rule 2": 0.3}

    def p_a(q: OptionQuery) -> float:
        assert isinstance(q.prompt, str)
        rule = next(r for r in strength if r in q.prompt)
        second_is_a = options_block(q)[0] == "second answer"
        p = strength[rule] if second_is_a else 1 - strength[rule]
        return p + 0.05

    cfg = LabelConfig(format="raw", principles_per_pair=3)
    [row] = label_pairs([pair()], scripted(p_a), constitution(), cfg, LABELER)
    # Independent computation: per rule, P(second better) = mean of (p + b) and (1 - (1 - p + b)).
    expected = sum(strength.values()) / 3
    assert row.p_chosen == pytest.approx(expected)
    assert row.chosen[0].content == "second answer"
    assert row.rejected[0].content == "first answer"
    assert row.p_chosen >= 0.5
    assert sum(v.p for v in row.votes) / len(row.votes) == pytest.approx(row.p_chosen)
    by_vote = {(v.principle_id, v.order): v.p for v in row.votes}
    # "AB": the chosen (second) answer shown as (A): p_a = 0.9 + 0.05.
    assert by_vote[("q0", "AB")] == pytest.approx(0.95)
    assert by_vote[("q0", "BA")] == pytest.approx(0.85)
    assert sorted(row.principle_ids) == ["q0", "q1", "q2"]
    assert summarize_labels([row])["letter_bias"] == pytest.approx(0.05)


def test_soft_label_and_clamp_by_hand() -> None:
    votes: dict[tuple[str, Any], float] = {("x", "AB"): 0.9, ("x", "BA"): 0.3}
    p, per_vote = soft_label(votes, None)
    assert per_vote == {("x", "AB"): 0.9, ("x", "BA"): pytest.approx(0.7)}
    assert p == pytest.approx(0.8)
    p, _ = soft_label(votes, (0.4, 0.6))
    assert p == pytest.approx(0.6)
    assert clamp(0.55, (0.4, 0.6)) == 0.55 and clamp(0.01, (0.4, 0.6)) == 0.4


def test_chain_of_thought_votes_are_clamped_and_keep_the_reasoning() -> None:
    def p_a(q: OptionQuery) -> float:
        assert isinstance(q.prompt, str)
        assert "So the answer is: (" in q.prompt and "I reason that" in q.prompt
        return 0.999 if options_block(q)[0] == "second answer" else 0.001

    backend = scripted(p_a)
    backend.answers = lambda chat: "I reason that the second one is better."
    cfg = LabelConfig(format="raw", principles_per_pair=2, cot=True, few_shot=1)
    [row] = label_pairs([pair()], backend, constitution(examples=1), cfg, LABELER)
    assert row.p_chosen == pytest.approx(0.6)
    assert all(v.p == pytest.approx(0.6) for v in row.votes)
    assert all(v.reasoning == "I reason that the second one is better." for v in row.votes)
    gen = backend.calls[0]
    assert gen.method == "generate" and len(gen.requests) == 4
    assert gen.params == Sampling(max_new_tokens=128, temperature=0.0, seed=0)
    wide = LabelConfig(format="raw", principles_per_pair=2, cot=True, clamp=(0.1, 0.9))
    [row] = label_pairs([pair()], backend, constitution(), wide, LABELER)
    assert row.p_chosen == pytest.approx(0.9)


def test_clamp_band_is_validated() -> None:
    with pytest.raises(ValueError, match="band"):
        LabelConfig(format="raw", clamp=(0.6, 0.9))
    with pytest.raises(ValueError, match="band"):
        LabelConfig(format="raw", clamp=(0.2, 0.9))


def test_principle_draws_are_seeded_distinct_and_capped() -> None:
    principles = constitution(6).principles
    a = draw_principles(principles, "pair-1", seed=0, k=3)
    assert a == draw_principles(principles, "pair-1", seed=0, k=3)
    assert len({p.id for p in a}) == 3
    draws = {tuple(p.id for p in draw_principles(principles, f"p{i}", 0, 3)) for i in range(20)}
    assert len(draws) > 5  # different pairs get different principles
    assert len(draw_principles(principles, "x", 0, 10)) == 6


def test_few_shot_examples_lead_every_prompt_and_alternate_letters() -> None:
    backend = scripted(lambda q: 0.5)
    cfg = LabelConfig(format="raw", principles_per_pair=1, few_shot=2)
    label_pairs([pair(), pair(pid="z")], backend, constitution(examples=3), cfg, LABELER)
    prompts = [q.prompt for q in backend.calls[0].requests if isinstance(q, OptionQuery)]
    assert all(isinstance(p, str) for p in prompts)
    texts = [p for p in prompts if isinstance(p, str)]
    head = texts[0].split("What should I do?")[0]
    assert all(t.startswith(head) for t in texts)  # one shared prefix for the backend
    assert "(A) example good 0" in head and "The answer is: (A)" in head
    assert "(B) example good 1" in head and "The answer is: (B)" in head
    assert "example good 2" not in head


def test_summary_counts_identical_pairs_and_histogram() -> None:
    backend = scripted(lambda q: 0.9 if options_block(q)[0] == "first answer" else 0.1)
    rows = label_pairs(
        [pair(), pair("same", "same", pid="s")],
        backend,
        constitution(),
        LabelConfig(format="raw"),
        LABELER,
    )
    s = summarize_labels(rows)
    assert rows[1].p_chosen == pytest.approx(0.5)
    assert s["identical_pairs"] == 1
    assert s["p_chosen_histogram"]["0.9-1.0"] == 1 and s["p_chosen_histogram"]["0.5-0.6"] == 1
    assert s["p_chosen_mean"] == pytest.approx(0.7)


def test_the_chat_format_asks_in_turns_and_scores_the_option_as_the_answer() -> None:
    seen: list[OptionQuery] = []

    def logprobs(q: OptionQuery) -> dict[str, float]:
        seen.append(q)
        return {"(A)": math.log(0.8), "(B)": math.log(0.2)}

    cfg = LabelConfig(principles_per_pair=1, few_shot=2, format="chat")
    labeler = LABELER.model_copy(update={"format": "chat", "few_shot": 2})
    [row] = label_pairs([pair()], FakeBackend(logprobs=logprobs), constitution(1, 2), cfg, labeler)
    q = seen[0]
    assert isinstance(q.prompt, list) and q.options == ["(A)", "(B)"]
    # Two worked examples (user, assistant) then the question; the examples' answers alternate.
    assert [m.role for m in q.prompt] == ["user", "assistant"] * 2 + ["user"]
    assert [m.content for m in q.prompt if m.role == "assistant"] == ["(A)", "(B)"]
    assert q.prompt[-1].content.endswith("Answer with (A) or (B) only.")
    assert all(v.p_a == pytest.approx(0.8) for v in row.votes)
    # Always (A) in both orders: no preference, as in the raw format.
    assert row.p_chosen == pytest.approx(0.5)


def test_the_raw_format_keeps_the_ids_of_records_written_before_formats() -> None:
    from charter.feedback.labeler import preference_id

    raw = preference_id("p", LABELER, LabelConfig(format="raw"), "sha")
    chat = preference_id(
        "p", LABELER.model_copy(update={"format": "chat"}), LabelConfig(format="chat"), "sha"
    )
    assert raw != chat
    from charter.records import stable_id

    # The formula before formats existed, which knew no `format` field.
    before = stable_id(
        "p",
        LABELER.model_dump(mode="json", exclude={"format"}),
        LabelConfig(format="raw").model_dump(mode="json", exclude={"chunk_size", "format"}),
        "sha",
    )
    assert raw == before


def test_the_pointwise_format_judges_each_answer_alone_and_compares() -> None:
    """P(yes | first) 0.8 and P(yes | second) 0.2 under every principle: p_chosen 0.8 for the
    first answer, in both orders, from two queries per (pair, principle)."""
    seen: list[OptionQuery] = []

    def logprobs(q: OptionQuery) -> dict[str, float]:
        seen.append(q)
        text = q.prompt[-1].content if isinstance(q.prompt, list) else q.prompt
        p = 0.8 if "Assistant: first answer" in text else 0.2
        return {"Yes": math.log(p) - 2.0, "No": math.log(1 - p) - 2.0}

    cfg = LabelConfig(principles_per_pair=2, format="pointwise")
    [row] = label_pairs([pair()], FakeBackend(logprobs=logprobs), constitution(), cfg, LABELER)
    assert len(seen) == 4 and all(q.options == ["Yes", "No"] for q in seen)
    assert row.p_chosen == pytest.approx(0.8) and row.chosen[0].content == "first answer"
    assert {v.order for v in row.votes} == {"AB", "BA"}
    assert all(v.p == pytest.approx(0.8) for v in row.votes)
    assert summarize_labels([row])["order_agreement"] == 1.0


def test_a_matched_pool_asks_the_principles_of_the_prompts_harm_category() -> None:
    con = Constitution(
        name="t",
        principles=[
            Principle(id="property", comparison="Which better respects property?", tags=["fraud"]),
            Principle(id="religion", comparison="Which respects belief?", tags=["religion"]),
            Principle(id="helpful", comparison="Which is more helpful?", tags=["helpfulness"]),
        ],
    )
    fraud = pair(pid="fraud").model_copy(update={"category": "fraud"})
    unknown = pair(pid="other").model_copy(update={"category": "chem-bio"})
    backend = scripted(lambda q: 0.5)
    cfg = LabelConfig(principles_per_pair=3, few_shot=0, format="raw", principle_pool="matched")
    matched, fallback = vote_pairs([fraud, unknown], backend, con, cfg)
    assert [p.id for p in matched.principles] == ["property"]
    # No principle has the category's tag: every harm principle, never a helpfulness one.
    assert sorted(p.id for p in fallback.principles) == ["property", "religion"]
    everything = vote_pairs([fraud], backend, con, cfg.model_copy(update={"principle_pool": "all"}))
    assert len(everything[0].principles) == 3


def test_the_default_pool_keeps_the_ids_and_hashes_of_earlier_runs() -> None:
    from charter.feedback.labeler import preference_id

    # A field added after runs were made is left out of the dump at its default...
    assert "principle_pool" not in LabelConfig().model_dump(mode="json")
    from charter.records import stable_id

    fields = set(LabelConfig.model_fields) - {"chunk_size", "principle_pool"}
    earlier = {k: v for k, v in vars(LabelConfig()).items() if k in fields}
    earlier["clamp"] = list(earlier["clamp"])
    formula = stable_id("p", LABELER.model_dump(mode="json"), earlier, "sha")
    assert preference_id("p", LABELER, LabelConfig(), "sha") == formula
    # ...and set, it is hashed: labels asked under other principles are other records.
    matched = LabelConfig(principle_pool="matched")
    assert matched.model_dump(mode="json")["principle_pool"] == "matched"
    assert preference_id("p", LABELER, matched, "sha") != preference_id(
        "p", LABELER, LabelConfig(), "sha"
    )
