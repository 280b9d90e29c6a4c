"""Prompt sets: the builtin ones written by this project, and loaders for the user's own.

This is the `prompts` stage's input: every later stage (SL-CAI, labelling, evaluation) takes the
`PromptRecord`s that `load_prompts` returns. A source is one of

- `builtin:NAME` or a bare `NAME`: a set shipped in the package (`demo`, `red-team`, `helpful`,
  `borderline`). `lang="ar"` picks the Arabic version (`red-team-ar`, ...), which can also be named
  directly. `demo` holds both languages in one file and ignores `lang`.
- a JSONL file: one `PromptRecord` per line, `{"id"?, "prompt": str}` or
  `{"id"?, "messages": [...]}`, optionally with `meta`. Prompts without an id get a content hash.
- `hh-rlhf:PATH`: Anthropic's hh-rlhf JSONL (`chosen`/`rejected` transcripts in
  "\\n\\nHuman: … \\n\\nAssistant: …" form); the prompt is the first Human turn of `chosen`.
- `hf-dataset:ID[:SPLIT][#FIELD]`: a Hugging Face dataset (needs `pip install datasets`); SPLIT
  defaults to `train`, FIELD (the column holding the prompt) to `prompt`.

Train/eval split. Every record gets `meta["split"]`, "train" or "eval", so that evaluation uses
prompts that training never saw. The rule is deterministic and stratified by category: within each
`meta["category"]` (records without one form their own group), order the records by the hex
sha256 of their id (UTF-8; the content hash for records without an id) and mark the first
`round(n / 5)` as "eval", at least one when the group has three or more records. It depends only
on the ids and categories, so adding a prompt to one category never moves prompts of another, and
the builtin files carry no split of their own. A user file's own `meta.split` is kept; records
without one get the rule, applied among themselves. `split="train"` or `"eval"` keeps only that
part.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from charter.errors import InputError, show_value
from charter.jsonl import describe_validation_error, iter_jsonl_lines, read_jsonl_numbered
from charter.records import PromptRecord, canonical_json

T = TypeVar("T")

__all__ = [
    "BUILTIN_PROMPTS",
    "SPLITS",
    "builtin_prompt_path",
    "eval_count",
    "first_human_turn",
    "list_prompt_sets",
    "load_prompts",
]

# Builtin file per name; `NAME-LANG` is NAME's version in that language.
BUILTIN_PROMPTS = {
    "demo": "demo.jsonl",
    "red-team": "red-team.jsonl",
    "helpful": "helpful.jsonl",
    "borderline": "borderline.jsonl",
    "red-team-ar": "red-team-ar.jsonl",
    "helpful-ar": "helpful-ar.jsonl",
    "borderline-ar": "borderline-ar.jsonl",
}
# Sets whose one file holds every language, so `lang` does not pick another file.
MULTILINGUAL_SETS = frozenset({"demo"})
DEFAULT_LANG = "en"
SPLITS = ("train", "eval")

BUILTIN_PREFIX = "builtin:"
HH_RLHF_PREFIX = "hh-rlhf:"
HF_DATASET_PREFIX = "hf-dataset:"

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"

Numbered = list[tuple[int | None, PromptRecord]]


def builtin_prompt_path(name: str) -> Path:
    """The packaged JSONL file of a builtin set (`red-team`, `red-team-ar`, ...)."""
    if name not in BUILTIN_PROMPTS:
        raise InputError(name, None, f"unknown builtin prompt set; builtin sets: {_names()}")
    return Path(str(resources.files("charter.data") / "prompts" / BUILTIN_PROMPTS[name]))


def load_prompts(
    source: str | Path, *, lang: str = DEFAULT_LANG, split: str | None = None
) -> list[PromptRecord]:
    """Prompts from a source (see the module docstring), each with `meta["split"]` set.

    Empty sources and duplicate ids are errors; `split` keeps only "train" or "eval" records.
    """
    if split is not None and split not in SPLITS:
        raise InputError(source, None, f"unknown split {split!r}; expected one of {SPLITS}")
    where: str | Path
    if isinstance(source, Path):
        where, numbered = source, _read_prompt_file(source)
    elif source.startswith(BUILTIN_PREFIX):
        where = _resolve_builtin(source.removeprefix(BUILTIN_PREFIX), lang)
        numbered = _read_prompt_file(where)
    elif source.startswith(HH_RLHF_PREFIX):
        where = Path(source.removeprefix(HH_RLHF_PREFIX))
        numbered = _read_hh_rlhf(where)
    elif source.startswith(HF_DATASET_PREFIX):
        where, numbered = source, _read_hf_dataset(source)
    elif source in BUILTIN_PROMPTS:
        where = _resolve_builtin(source, lang)
        numbered = _read_prompt_file(where)
    else:
        where = Path(source)
        if not where.exists() and where.suffix == "" and len(where.parts) == 1:
            # A bare word is more likely a misspelt set name than a missing file.
            raise InputError(
                source, None, f"no such file, and no builtin prompt set of that name: {_names()}"
            )
        numbered = _read_prompt_file(where)
    if not numbered:
        raise InputError(where, None, "holds no prompts")
    _check_unique_ids(where, numbered)
    records = _with_splits(where, numbered)
    if split is None:
        return records
    kept = [r for r in records if r.meta["split"] == split]
    if not kept:
        raise InputError(where, None, f"holds no prompts in the {split!r} split")
    return kept


def list_prompt_sets() -> list[tuple[str, str, int]]:
    """(name, language, number of prompts) for each builtin set, for `charter prompts list`.

    A name is what `load_prompts` takes together with the language: ("red-team", "ar", n) is
    `load_prompts("red-team", lang="ar")`. A set holding several languages lists them as "en+ar".
    """
    out = []
    for file_name in BUILTIN_PROMPTS:
        name, lang = _split_lang(file_name)
        records = [p for _, p in read_jsonl_numbered(builtin_prompt_path(file_name), PromptRecord)]
        # English first, then the rest alphabetically: "en+ar".
        langs = sorted(
            {str(p.meta.get("lang", lang)) for p in records}, key=lambda x: (x != "en", x)
        )
        out.append((name, lang if name not in MULTILINGUAL_SETS else "+".join(langs), len(records)))
    return out


def eval_count(n: int) -> int:
    """How many of a category's `n` records go to "eval": round(n / 5), at least 1 when n >= 3.

    n / 5 never ends in exactly .5, so there are no ties to break.

    >>> [eval_count(n) for n in (1, 2, 3, 4, 5, 7, 8, 10, 15)]
    [0, 0, 1, 1, 1, 1, 2, 2, 3]
    """
    k = (n + 2) // 5
    return max(k, 1) if n >= 3 else k


def first_human_turn(transcript: str) -> str | None:
    """The first Human turn of an hh-rlhf transcript, stripped; None if it has none.

    >>> first_human_turn("\\n\\nHuman: Hi there\\n\\nAssistant: Hello!\\n\\nHuman: Bye")
    'Hi there'
    >>> first_human_turn("Assistant: no human here") is None
    True
    """
    head, marker, rest = ("\n\n" + transcript.lstrip()).partition(HUMAN)
    if head or not marker:
        return None
    ends = [i for i in (rest.find(ASSISTANT), rest.find(HUMAN)) if i >= 0]
    turn = rest[: min(ends)] if ends else rest
    return turn.strip() or None


def _names() -> str:
    return ", ".join(BUILTIN_PROMPTS)


def _split_lang(file_name: str) -> tuple[str, str]:
    """`red-team-ar` -> (`red-team`, `ar`); a name without a language suffix is English."""
    base, _, suffix = file_name.rpartition("-")
    if base in BUILTIN_PROMPTS and suffix.isalpha() and len(suffix) == 2:
        return base, suffix
    return file_name, DEFAULT_LANG


def _resolve_builtin(name: str, lang: str) -> Path:
    """The file for a builtin name in a language; a name with a language suffix wins over `lang`."""
    if name not in BUILTIN_PROMPTS:
        raise InputError(
            f"{BUILTIN_PREFIX}{name}", None, f"unknown builtin prompt set; builtin sets: {_names()}"
        )
    base, _ = _split_lang(name)
    if name != base or lang == DEFAULT_LANG or name in MULTILINGUAL_SETS:
        return builtin_prompt_path(name)
    localized = f"{name}-{lang}"
    if localized not in BUILTIN_PROMPTS:
        langs = sorted({_split_lang(n)[1] for n in BUILTIN_PROMPTS if _split_lang(n)[0] == name})
        raise InputError(
            f"{BUILTIN_PREFIX}{name}", None, f"no {lang!r} version; languages: {', '.join(langs)}"
        )
    return builtin_prompt_path(localized)


def _read_prompt_file(path: Path) -> Numbered:
    return list(read_jsonl_numbered(path, PromptRecord))


def _check_unique_ids(where: str | Path, numbered: Numbered) -> None:
    seen: dict[str, int | None] = {}
    for lineno, p in numbered:
        key = p.key()
        if key in seen:
            first = seen[key]
            at = f" (first seen on line {first})" if first is not None else ""
            raise InputError(where, lineno, f"duplicate prompt id {key!r}{at}")
        seen[key] = lineno


def _with_splits(where: str | Path, numbered: Numbered) -> list[PromptRecord]:
    """Each record with `meta["split"]`: its own if it gives one, else the stratified rule's."""
    groups: dict[str, list[int]] = {}
    for i, (lineno, p) in enumerate(numbered):
        given = p.meta.get("split")
        if given is None:
            groups.setdefault(canonical_json(p.meta.get("category")), []).append(i)
        elif given not in SPLITS:
            raise InputError(
                where,
                lineno,
                f"field `meta.split`: expected 'train' or 'eval' (got {show_value(given)})",
            )
    eval_rows = set()
    for rows in groups.values():
        ranked = sorted(rows, key=lambda i: _split_hash(numbered[i][1].key()))
        eval_rows.update(ranked[: eval_count(len(ranked))])
    out = []
    for i, (_, p) in enumerate(numbered):
        if "split" in p.meta:
            out.append(p)
        else:
            split = "eval" if i in eval_rows else "train"
            out.append(p.model_copy(update={"meta": {**p.meta, "split": split}}))
    return out


def _split_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _read_hh_rlhf(path: Path) -> Numbered:
    out: Numbered = []
    for lineno, obj in iter_jsonl_lines(path):
        chosen = obj.get("chosen")
        if not isinstance(chosen, str):
            got = "missing" if chosen is None else f"a {type(chosen).__name__}"
            raise InputError(path, lineno, f"field `chosen`: expected a transcript string ({got})")
        turn = first_human_turn(chosen)
        if turn is None:
            raise InputError(
                path, lineno, "field `chosen`: does not start with a non-empty `Human:` turn"
            )
        meta = {"lang": "en", "set": "hh-rlhf", "source_line": lineno}
        out.append((lineno, PromptRecord(id=f"hh-{lineno}", prompt=turn, meta=meta)))
    return out


def _parse_hf_spec(source: str) -> tuple[str, str, str]:
    """`hf-dataset:ID[:SPLIT][#FIELD]` -> (ID, SPLIT, FIELD).

    >>> _parse_hf_spec("hf-dataset:org/prompts:test#question")
    ('org/prompts', 'test', 'question')
    >>> _parse_hf_spec("hf-dataset:org/prompts")
    ('org/prompts', 'train', 'prompt')
    """
    spec, _, field = source.removeprefix(HF_DATASET_PREFIX).partition("#")
    dataset_id, _, hf_split = spec.partition(":")
    if not dataset_id:
        raise InputError(source, None, f"expected {HF_DATASET_PREFIX}ID[:SPLIT][#FIELD]")
    return dataset_id, hf_split or "train", field or "prompt"


def _read_hf_dataset(source: str) -> Numbered:
    dataset_id, hf_split, field = _parse_hf_spec(source)
    try:
        # Imported here, and only for this source: `datasets` is heavy and optional.
        datasets: Any = importlib.import_module("datasets")
    except ImportError:
        raise InputError(
            source,
            None,
            "loading a Hugging Face dataset needs the `datasets` package: pip install datasets",
        ) from None
    try:
        dataset = datasets.load_dataset(dataset_id, split=hf_split)
    except Exception as e:  # network, missing dataset or split: all the user's to fix
        raise InputError(
            source,
            None,
            f"could not load the dataset ({type(e).__name__}: {e}); check the id and split, "
            "and note that offline (HF_HUB_OFFLINE=1) only datasets already cached can load",
        ) from None
    columns = list(dataset.column_names)
    if field not in columns:
        raise InputError(
            source, None, f"no column {field!r}; columns: {', '.join(map(str, columns))}"
        )
    return [
        (None, _hf_record(source, row, field, index, dataset_id, hf_split))
        for index, row in enumerate(dataset)
    ]


def _hf_record(
    source: str, row: dict[str, Any], field: str, index: int, dataset_id: str, hf_split: str
) -> PromptRecord:
    value = row[field]
    form = "messages" if isinstance(value, list) else "prompt"
    meta = {"set": dataset_id, "source_split": hf_split, "source_row": index}
    try:
        return PromptRecord.model_validate({"id": f"hf-{index}", form: value, "meta": meta})
    except ValidationError as e:
        raise InputError(
            source, None, f"row {index}, column {field!r}: {describe_validation_error(e)}"
        ) from None


def interleave(groups: Sequence[Sequence[T]]) -> list[T]:
    """The items of `groups` taken in turn, so that any prefix mixes them evenly.

    >>> interleave([[1, 2, 3], ["a"]])
    [1, 'a', 2, 3]
    """
    out: list[T] = []
    for i in range(max(map(len, groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def mixed(sources: Sequence[str], langs: Sequence[str], split: str | None) -> list[PromptRecord]:
    """Each of `sources` in each of `langs` (`multilingual`), the sources taken in turn."""
    return interleave([multilingual(s, langs, split) for s in sources])


def multilingual(source: str, langs: Sequence[str], split: str | None) -> list[PromptRecord]:
    """`source` in each of `langs`, taken in turn (SL-CAI's prompts and its helpful mix); a
    source without language versions (a file) is read once, not once per language."""
    seen: set[str] = set()
    out = []
    for p in interleave([load_prompts(source, lang=lang, split=split) for lang in langs]):
        if p.key() not in seen:
            seen.add(p.key())
            out.append(p)
    return out
