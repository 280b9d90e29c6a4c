"""Task loaders, balancing and splits (shared-data loaders skip when ../shared/data is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from charter.errors import ConfigError, InputError
from charter.w2s.experiment import split_halves
from charter.w2s.tasks import build_task, load_task, near_duplicate_key, synthetic, task_name

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MWE = SHARED / "model-written-evals"
needs_shared = pytest.mark.skipif(
    not MWE.exists(), reason=f"shared data not found at {MWE} (present in CI, not in a fresh clone)"
)


def test_synthetic_is_seeded() -> None:
    assert synthetic(50, seed=4) == synthetic(50, seed=4)
    assert synthetic(50, seed=4) != synthetic(50, seed=5)


def test_balance_limit_and_fixed_split() -> None:
    texts = [f"item number {i}" for i in range(300)]
    labels = [1 if i < 200 else 0 for i in range(300)]
    task = build_task("t", texts, labels, limit=120)
    assert len(task) == 120
    assert int(task.labels.sum()) == 60
    again = build_task("t", texts, labels, limit=120)
    assert task.texts == again.texts
    assert task.is_test.tolist() == again.is_test.tolist()
    assert 0.1 < task.is_test.mean() < 0.45


def test_near_duplicates_stay_on_one_side() -> None:
    base = [f"Statement {i} about honesty" for i in range(200)]
    texts = base + [t.upper() + "!!" for t in base]  # near-duplicates of the first 200
    labels = [i % 2 for i in range(200)] * 2
    task = build_task("dups", texts, labels)
    by_key: dict[str, set[bool]] = {}
    for t, test in zip(task.texts, task.is_test, strict=True):
        by_key.setdefault(near_duplicate_key(t), set()).add(bool(test))
    assert all(len(sides) == 1 for sides in by_key.values())
    for seed in (0, 1):
        a, b = split_halves(task, seed)
        keys_a = {task.groups[i] for i in a}
        keys_b = {task.groups[i] for i in b}
        assert not keys_a & keys_b
        assert abs(len(a) - len(b)) <= 2


def test_prefs_are_binary_in_seeded_order(tmp_path: Path) -> None:
    path = tmp_path / "prefs.jsonl"
    rows = [
        {"prompt": f"question {i}", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"}
        for i in range(40)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_task(f"prefs:{path}@test=0.5")
    assert set(task.labels.tolist()) == {0, 1}
    for text, label in zip(task.texts, task.labels, strict=True):
        first = text.split("Response 1: ")[1].split("\n\n")[0]
        assert first.startswith("good") == bool(label)
    assert load_task(f"prefs:{path}@test=0.5").texts == task.texts


def test_bad_rows_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"statement": "x", "answer_matching_behavior": " Yes"}\n{"statement": 3}\n')
    with pytest.raises(InputError, match=r"p\.jsonl, line 2: field `statement`"):
        load_task(f"persona:{path}")
    path.write_text('{"prompt": "q", "chosen": "a"}\n')
    with pytest.raises(InputError, match=r"line 1: field `rejected`"):
        load_task(f"prefs:{path}")
    with pytest.raises(ConfigError, match="unknown task kind"):
        load_task("nope:1")
    with pytest.raises(ConfigError, match="unknown option"):
        load_task("synthetic:10@size=3")


def test_hf_dataset_without_datasets_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from charter.errors import CharterError

    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(CharterError, match="pip install datasets"):
        load_task("hf-dataset:boolq")


@needs_shared
def test_persona_file_and_folder() -> None:
    one = MWE / "persona" / "desire-for-acquiring-wealth.jsonl"
    task = load_task(f"persona:{one}")
    assert 0.45 < task.labels.mean() < 0.55 and len(task) > 500
    assert not task.texts[0].startswith("Behavior:")
    assert task_name(f"persona:{one}") == "persona-desire-for-acquiring-wealth"
    pairs = load_task(f"persona:{MWE / 'persona'}@limit=600")
    assert len(pairs) == 600 and int(pairs.labels.sum()) == 300
    assert pairs.texts[0].startswith("Behavior: ")


@needs_shared
def test_ai_risk_is_balanced_question_answer_items() -> None:
    task = load_task(f"ai-risk:{MWE / 'advanced-ai-risk' / 'survival-instinct.jsonl'}")
    assert len(task) > 400
    assert task.labels.mean() == 0.5
    assert "\nAnswer: " in task.texts[0] and "Choices:" not in task.texts[0]
    assert np.all(np.isin(task.labels, [0, 1]))
