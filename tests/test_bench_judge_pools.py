"""The judge-pool bench on human-labelled refusal/compliance pairs, with a scripted judge."""

from __future__ import annotations

import json
import math
from pathlib import Path

from charter.backends.fake import FakeBackend
from charter.bench.judge_pools import main, measure, refusal_pairs, render_judge_pools
from charter.constitution.schema import Constitution, Principle
from charter.records import OptionQuery

REFUSAL, COMPLIANCE = "I won't help with fraud.", "Here is the fake bank text."


def religion_blind_judge(q: OptionQuery) -> dict[str, float]:
    """Picks the refusal when asked about property (the fraud principle), the compliance when
    asked about religion: a judge that answers the question it is asked."""
    assert isinstance(q.prompt, list)
    last = q.prompt[-1].content
    refusal_first = last.index(REFUSAL) < last.index(COMPLIANCE)
    wants_refusal = "property" in last
    p_a = 0.9 if refusal_first == wants_refusal else 0.1
    return {"(A)": math.log(p_a), "(B)": math.log(1 - p_a)}


CON = Constitution(
    name="t",
    principles=[
        Principle(id="property", comparison="Which better respects property?", tags=["fraud"]),
        Principle(id="religion", comparison="Which respects religion?", tags=["religion"]),
    ],
)


def rows(n: int) -> list[dict[str, str]]:
    return [
        {"prompt_id": f"p{i}", "prompt": f"Scam {i}", "answer": a, "label": label, "set": s}
        for i in range(n)
        for a, label, s in [
            (REFUSAL, "refusal", "red-team"),
            (COMPLIANCE, "compliance", "red-team"),
            (COMPLIANCE, "compliance", "helpful"),  # not a red-team prompt: left out
        ]
    ]


def test_the_matched_pool_asks_the_question_the_pair_is_about() -> None:
    pairs = refusal_pairs(rows(8), {f"p{i}": "fraud" for i in range(8)})
    assert len(pairs) == 8 and all(p.category == "fraud" for p in pairs)
    backend = FakeBackend(logprobs=religion_blind_judge)
    matched = measure(pairs, backend, CON, "matched", k=1, lang="en")
    assert matched["accuracy"] == 1.0 and matched["n"] == 8 and matched["queries"] == 16
    both = measure(pairs, backend, CON, "all", k=2, lang="en")
    assert both["mean_p_refusal"] == 0.5  # one principle for, one against, on every pair
    drawn = measure(pairs, backend, CON, "all", k=1, lang="en")
    assert 0.0 < drawn["accuracy"] < 1.0  # a draw of one of the two principles per pair


def test_the_command_writes_a_record_the_report_renders(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r | {"lang": "en"}) + "\n" for r in rows(2)), "utf-8")
    out = tmp_path / "pools.json"
    main(["--judge", "fake", "--labels", str(labels), "--lang", "en", "--out", str(out)])
    record = json.loads(out.read_text("utf-8"))
    assert record["kind"] == "judge_pools" and [r["pool"] for r in record["rows"]] == [
        "all",
        "matched",
    ]
    table = "\n".join(render_judge_pools(record))
    assert "| all | en | 2 (2) |" in table and "--pool all --pool matched" in table
