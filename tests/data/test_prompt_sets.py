"""The builtin prompt sets (sizes, categories, languages, uniqueness, split) and the loaders."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from charter.data import (
    BUILTIN_PROMPTS,
    builtin_prompt_path,
    list_prompt_sets,
    load_prompts,
)
from charter.errors import InputError
from charter.records import PromptRecord

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HH_SAMPLE = SHARED_DATA / "hh-rlhf" / "harmless-base-test.part1.jsonl"

# (builtin name, language, minimum size): the sets issue 3 asks for.
SETS = [
    ("red-team", "en", 210),
    ("helpful", "en", 110),
    ("borderline", "en", 65),
    ("red-team", "ar", 65),
    ("helpful", "ar", 33),
    ("borderline", "ar", 22),
]
SET_IDS = [f"{name}-{lang}" for name, lang, _ in SETS]
ID_PREFIX = {"red-team": "rt", "helpful": "hp", "borderline": "bl"}
ARABIC = re.compile(r"[\u0600-\u06FF]")


def raw_lines(name: str) -> list[dict[str, Any]]:
    """A builtin file's JSON objects, read without the package's loader."""
    text = builtin_prompt_path(name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def file_name(name: str, lang: str) -> str:
    return name if lang == "en" else f"{name}-{lang}"


def normalized(text: str) -> str:
    return " ".join(text.split()).casefold()


def expected_eval_ids(records: list[dict[str, Any]]) -> set[str]:
    """The split rule, computed independently: per category, sha256 order, first round(20%)."""
    by_category: dict[str, list[str]] = defaultdict(list)
    for r in records:
        by_category[r["meta"]["category"]].append(r["id"])
    out: set[str] = set()
    for ids in by_category.values():
        ranked = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        k = round(len(ids) * 0.2)
        if len(ids) >= 3:
            k = max(k, 1)
        out.update(ranked[:k])
    return out


# --- the builtin sets -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "lang", "minimum"), SETS, ids=SET_IDS)
def test_set_size_and_record_shape(name: str, lang: str, minimum: int) -> None:
    lines = raw_lines(file_name(name, lang))
    assert len(lines) >= minimum
    for obj in lines:
        record = PromptRecord.model_validate(obj)
        assert record.prompt is not None and record.prompt.strip() == record.prompt
        assert re.fullmatch(rf"{ID_PREFIX[name]}-{lang}-\d{{4}}", record.id or "")
        assert set(record.meta) == {"lang", "set", "category"}
        assert record.meta["lang"] == lang and record.meta["set"] == name
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", record.meta["category"])


@pytest.mark.parametrize(("lang", "minimum"), [("en", 12), ("ar", 8)])
def test_red_team_covers_many_harm_categories(lang: str, minimum: int) -> None:
    categories = Counter(r.meta["category"] for r in load_prompts("red-team", lang=lang))
    assert len(categories) >= minimum, categories


def test_arabic_sets_share_the_english_category_labels() -> None:
    for name in ID_PREFIX:
        en = {r.meta["category"] for r in load_prompts(name)}
        ar = {r.meta["category"] for r in load_prompts(name, lang="ar")}
        assert ar <= en, ar - en


@pytest.mark.parametrize(("name", "lang", "minimum"), SETS, ids=SET_IDS)
def test_script_matches_language(name: str, lang: str, minimum: int) -> None:
    prompts = [r.prompt or "" for r in load_prompts(name, lang=lang)]
    assert all((ARABIC.search(p) is not None) == (lang == "ar") for p in prompts)
    if lang == "ar":  # written in Arabic: code words like `git rebase` stay a small minority
        letters = [c for p in prompts for c in p if c.isalpha()]
        assert sum(ARABIC.match(c) is not None for c in letters) / len(letters) > 0.95


def test_ids_unique_across_all_sets() -> None:
    ids = [obj["id"] for name in BUILTIN_PROMPTS for obj in raw_lines(name)]
    assert [i for i, n in Counter(ids).items() if n > 1] == []


def test_no_duplicate_prompt_texts_across_all_sets() -> None:
    texts = [normalized(obj["prompt"]) for name in BUILTIN_PROMPTS for obj in raw_lines(name)]
    assert [t for t, n in Counter(texts).items() if n > 1] == []


def test_list_prompt_sets_matches_the_files() -> None:
    listed = {(name, lang): count for name, lang, count in list_prompt_sets()}
    assert listed[("demo", "en+ar")] == len(raw_lines("demo"))
    for name, lang, minimum in SETS:
        assert listed[(name, lang)] == len(load_prompts(name, lang=lang)) >= minimum


# --- the train/eval split ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "lang", "minimum"), SETS, ids=SET_IDS)
def test_split_follows_the_documented_rule(name: str, lang: str, minimum: int) -> None:
    records = load_prompts(name, lang=lang)
    assert records == load_prompts(name, lang=lang)  # deterministic
    eval_ids = {r.id for r in records if r.meta["split"] == "eval"}
    assert eval_ids == expected_eval_ids(raw_lines(file_name(name, lang)))
    assert 0.15 <= len(eval_ids) / len(records) <= 0.25
    sizes = Counter(r.meta["category"] for r in records)
    with_eval = {r.meta["category"] for r in records if r.meta["split"] == "eval"}
    assert {c for c, n in sizes.items() if n >= 3} <= with_eval


@pytest.mark.parametrize(("name", "lang", "minimum"), SETS, ids=SET_IDS)
def test_train_and_eval_partition_the_set(name: str, lang: str, minimum: int) -> None:
    everything = load_prompts(name, lang=lang)
    train = load_prompts(name, lang=lang, split="train")
    evaluation = load_prompts(name, lang=lang, split="eval")
    assert {r.meta["split"] for r in train} == {"train"}
    assert {r.meta["split"] for r in evaluation} == {"eval"}
    assert len(train) + len(evaluation) == len(everything)
    assert {r.key() for r in train} | {r.key() for r in evaluation} == {r.key() for r in everything}


def test_unknown_split_is_an_error() -> None:
    with pytest.raises(InputError, match="unknown split"):
        load_prompts("red-team", split="test")


def test_user_file_keeps_its_own_split_and_gets_the_rule_otherwise(tmp_path: Path) -> None:
    rows = [
        {"id": f"u{i}", "prompt": f"question {i}", "meta": {"category": "a"}} for i in range(10)
    ]
    rows[0]["meta"] = {"category": "a", "split": "eval"}
    rows[1]["meta"] = {"category": "a", "split": "train"}
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    records = {r.id: r.meta["split"] for r in load_prompts(path)}
    assert records["u0"] == "eval" and records["u1"] == "train"
    # The other eight follow the rule among themselves: round(8 / 5) = 2 go to eval.
    ruled = [{"id": r["id"], "meta": r["meta"]} for r in rows[2:]]
    assert {i for i in records if records[i] == "eval"} - {"u0"} == expected_eval_ids(ruled)
    assert load_prompts(str(path)) == load_prompts(path)


def test_user_file_with_a_bad_split_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b", "meta": {"split": "dev"}}\n')
    with pytest.raises(InputError, match=r"line 2: field `meta.split`") as err:
        load_prompts(path)
    assert err.value.line == 2


# --- choosing a set ---------------------------------------------------------------------------


def test_lang_ar_picks_the_arabic_file() -> None:
    arabic = load_prompts("red-team", lang="ar")
    assert {r.meta["lang"] for r in arabic} == {"ar"}
    assert load_prompts("builtin:red-team", lang="ar") == arabic
    assert load_prompts("builtin:red-team-ar") == arabic
    assert load_prompts("red-team-ar", lang="ar") == arabic
    assert {r.meta["lang"] for r in load_prompts("builtin:red-team")} == {"en"}


def test_bare_name_and_builtin_prefix_agree() -> None:
    assert load_prompts("helpful") == load_prompts("builtin:helpful")


def test_demo_still_loads_whole() -> None:
    demo = load_prompts("demo")
    assert [r.id for r in demo] == [obj["id"] for obj in raw_lines("demo")]
    assert load_prompts("demo", lang="ar") == demo  # one bilingual file


@pytest.mark.parametrize("source", ["builtin:red-teams", "builtin:", "redteam"])
def test_unknown_builtin_lists_the_names(source: str) -> None:
    with pytest.raises(InputError) as err:
        load_prompts(source)
    for name in ("demo", "red-team", "helpful", "borderline"):
        assert name in str(err.value)


def test_missing_language_version_is_an_error() -> None:
    with pytest.raises(InputError, match="no 'fr' version"):
        load_prompts("helpful", lang="fr")


def test_empty_file_and_duplicate_ids_are_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="holds no prompts"):
        load_prompts(empty)
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "x", "prompt": "a"}\n{"id": "x", "prompt": "b"}\n')
    with pytest.raises(InputError, match="duplicate prompt id 'x'") as err:
        load_prompts(dup)
    assert err.value.line == 2


# --- hh-rlhf ----------------------------------------------------------------------------------


@pytest.mark.skipif(not HH_SAMPLE.exists(), reason=f"shared data not found at {HH_SAMPLE}")
def test_hh_rlhf_sample_gives_first_human_turns() -> None:
    records = load_prompts(f"hh-rlhf:{HH_SAMPLE}")
    assert len(records) == 1500
    lines = HH_SAMPLE.read_text(encoding="utf-8").splitlines()
    for n in (1, 2, 750, 1500):
        chosen = json.loads(lines[n - 1])["chosen"]
        # An independent parse: the text between the first "Human:" and the next "Assistant:".
        match = re.search(r"Human:(.*?)\n\nAssistant:", chosen, flags=re.DOTALL)
        assert match is not None
        record = records[n - 1]
        assert record.id == f"hh-{n}"
        assert record.prompt == match.group(1).strip()
        assert {k: record.meta[k] for k in ("lang", "set", "source_line")} == {
            "lang": "en",
            "set": "hh-rlhf",
            "source_line": n,
        }
    assert all(r.prompt and "\n\nAssistant:" not in r.prompt for r in records)
    eval_share = sum(r.meta["split"] == "eval" for r in records) / len(records)
    assert eval_share == pytest.approx(0.2)


def write_hh(path: Path, second_line: str) -> Path:
    good = {"chosen": "\n\nHuman: hello?\n\nAssistant: hi", "rejected": "\n\nHuman: hello?"}
    path.write_text(json.dumps(good) + "\n" + second_line + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("second_line", "problem"),
    [
        ('{"chosen": "\\n\\nHuman: ok"', "invalid JSON"),
        ('{"rejected": "\\n\\nHuman: ok"}', "field `chosen`"),
        ('{"chosen": 3}', "field `chosen`"),
        ('{"chosen": "\\n\\nAssistant: no question"}', "`Human:` turn"),
        ('{"chosen": "\\n\\nHuman:   \\n\\nAssistant: empty"}', "`Human:` turn"),
    ],
)
def test_malformed_hh_rlhf_line(tmp_path: Path, second_line: str, problem: str) -> None:
    path = write_hh(tmp_path / "hh.jsonl", second_line)
    with pytest.raises(InputError, match=re.escape(problem)) as err:
        load_prompts(f"hh-rlhf:{path}")
    assert err.value.line == 2
    assert str(path) in str(err.value) and "line 2" in str(err.value)


def test_hh_rlhf_small_file(tmp_path: Path) -> None:
    line = '{"chosen": "\\n\\nHuman: and you?\\n\\nAssistant: fine"}'
    records = load_prompts(f"hh-rlhf:{write_hh(tmp_path / 'hh.jsonl', line)}")
    assert [(r.id, r.prompt) for r in records] == [("hh-1", "hello?"), ("hh-2", "and you?")]


# --- Hugging Face datasets --------------------------------------------------------------------


def test_hf_dataset_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(InputError, match="pip install datasets"):
        load_prompts("hf-dataset:someone/prompts:test#question")


class FakeDataset(list[dict[str, Any]]):
    @property
    def column_names(self) -> list[str]:
        return list(self[0])


class FakeDatasets:
    """Stands in for the `datasets` module: offline, records what was asked for."""

    def __init__(self, rows: list[dict[str, Any]] | None) -> None:
        self.rows = rows
        self.calls: list[tuple[str, str]] = []

    def load_dataset(self, dataset_id: str, *, split: str) -> FakeDataset:
        self.calls.append((dataset_id, split))
        if self.rows is None:
            raise ConnectionError("offline")
        return FakeDataset(self.rows)


def test_hf_dataset_rows_and_field(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDatasets([{"question": "What is CAI?", "n": 1}, {"question": "Why?", "n": 2}])
    monkeypatch.setitem(sys.modules, "datasets", fake)
    records = load_prompts("hf-dataset:someone/prompts:test#question")
    assert fake.calls == [("someone/prompts", "test")]
    assert [r.prompt for r in records] == ["What is CAI?", "Why?"]
    assert records[0].meta["set"] == "someone/prompts" and records[0].meta["split"] in {
        "train",
        "eval",
    }
    with pytest.raises(InputError, match=r"no column 'prompt'; columns: question, n"):
        load_prompts("hf-dataset:someone/prompts")
    assert fake.calls[-1] == ("someone/prompts", "train")


def test_hf_dataset_load_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", FakeDatasets(None))
    with pytest.raises(InputError, match="could not load the dataset"):
        load_prompts("hf-dataset:someone/prompts")
