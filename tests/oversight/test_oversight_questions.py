"""Question loaders: our simple format, QuALITY-style rows, the synthetic generator, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charter.errors import InputError
from charter.oversight.questions import load_question_file, load_questions, synthetic_questions


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_simple_format(tmp_path: Path) -> None:
    ana = {
        "id": "x",
        "source": "Ana is 9.",
        "question": "Ana?",
        "answers": ["9", "8"],
        "correct": 0,
    }
    bo = {"source": "Bo is 7.", "question": "Bo?", "answers": ["6", "7"], "correct": 1}
    qs = load_question_file(write(tmp_path / "q.jsonl", [ana, bo]))
    assert qs[0].id == "x" and len(qs[1].id) == 16
    assert qs[1].answers[qs[1].correct] == "7"


def test_quality_flat_and_nested_rows(tmp_path: Path) -> None:
    options = ["red", "blue", "green", "white"]
    f = write(tmp_path / "quality.jsonl", [
        {"article": "The door is blue.", "question": "Door?", "options": options, "gold_label": 2},
        {"article": "The cat is white.", "question": "Cat?", "options": options, "gold_index": 3},
        {
            "article_id": "52", "title": "T", "author": "X", "article": "The sky was green.",
            "questions": [{
                "question": "Sky colour?", "options": options, "gold_label": 3,
                "question_unique_id": "52_q0",
                "validation": [{"untimed_best_distractor": 1}, {"untimed_best_distractor": 1},
                               {"untimed_best_distractor": 4}],
            }],
        },
    ])  # fmt: skip
    qs = load_question_file(f)
    assert [q.answers[q.correct] for q in qs] == ["blue", "white", "green"]
    # The annotators' best distractor (option 1, 1-based) is the second answer.
    assert set(qs[2].answers) == {"green", "red"} and qs[2].id == "52_q0"
    assert all(q.answers[1 - q.correct] in options for q in qs)


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"source": "s", "question": "q", "answers": ["a"], "correct": 0}, "answers"),
        ({"source": "s", "question": "q", "answers": ["a", "b"], "correct": 2}, "correct"),
        ({"source": "s", "question": "q", "answers": ["a", "a"], "correct": 0}, "differ"),
        ({"source": "s", "question": "q", "answers": ["a", "b"], "correct": 0, "x": 1}, "`x`"),
        ({"article": "a", "question": "q", "options": ["x", "y"]}, "gold_label"),
        ({"article": "a", "question": "q", "options": ["x", "y"], "gold_label": 3}, "outside"),
        ({"text": "hello"}, "unrecognised"),
    ],
)
def test_bad_rows_name_file_line_and_field(
    tmp_path: Path, row: dict[str, object], needle: str
) -> None:
    good = {"source": "s", "question": "q", "answers": ["a", "b"], "correct": 0, "id": "ok"}
    f = write(tmp_path / "bad.jsonl", [good, row])
    with pytest.raises(InputError, match=rf"bad.jsonl, line 2: .*{needle}"):
        load_question_file(f)


def test_duplicate_ids_and_empty_files_are_errors(tmp_path: Path) -> None:
    row = {"id": "same", "source": "s", "question": "q", "answers": ["a", "b"], "correct": 0}
    with pytest.raises(InputError, match="twice"):
        load_question_file(write(tmp_path / "dup.jsonl", [row, row]))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no questions"):
        load_question_file(tmp_path / "empty.jsonl")


def test_synthetic_questions_are_seeded_and_answerable_only_from_the_source() -> None:
    a, b = synthetic_questions(20, seed=3), synthetic_questions(20, seed=3)
    assert a == b and synthetic_questions(20, seed=4) != a
    assert {q.correct for q in a} == {0, 1}
    for q in a:
        evidence = q.meta["evidence"]
        assert evidence in q.source and q.answers[q.correct] in evidence
        # The distractor is in the passage too, attached to someone else.
        assert q.answers[1 - q.correct] in q.source and q.answers[1 - q.correct] not in evidence


def test_load_questions_specs() -> None:
    assert len(load_questions("synthetic:5@seed=2", limit=3)) == 3
    with pytest.raises(InputError, match="synthetic"):
        load_questions("synthetic:five")
    with pytest.raises(InputError, match="not found"):
        load_questions("/nonexistent/q.jsonl")
