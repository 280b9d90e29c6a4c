"""Binary classification tasks for weak-to-strong experiments: loaders, balancing and splits.

A `Task` is `{text, label}` rows with a fixed train/test split. Each row also carries a `group`:
a key under which near-duplicate texts (same words, any case or punctuation) fall together, so
they stay on one side of every split (train/test here, A/B in `experiment`). The train/test
split is a function of the group key alone, so it is the same for every seed and every model.

Task specs (`KIND:ARG[@key=value,...]`):
- `persona:PATH`: model-written-evals persona files. A single file gives its statements, labelled
  1 when `answer_matching_behavior` is " Yes". A folder gives every file's statements as
  (behavior, statement) pairs, since whether a statement matches only means something relative
  to the behavior it was written for (~29,000 items, a task that needs the relation).
- `ai-risk:PATH` (alias `advanced-ai-risk:`): two-choice questions; each question becomes one
  item (the question followed by one of its answers, chosen by a seeded coin per question),
  labelled 1 when that answer is the behavior-matching one. A folder joins all files.
- `prefs:PATH`: our preference JSONL (`prompt`/`chosen`/`rejected`): the two answers are shown in
  a seeded order and the label says whether the first one was chosen (reward modelling as binary
  classification).
- `synthetic:N`: a seeded generator (`@seed=`, `@noise=` label-flip rate, `@hard=0` without
  the negation that makes it an XOR) for tests.
- `hf-dataset:ID`: SciQ, BoolQ, CosmosQA, Amazon polarity as in the paper; needs `datasets` and
  the network (or a local cache).

Options common to all: `@limit=N` keeps N items (half per class), chosen by text hash, not by
seed, so every run of a sweep sees the same items; `@test=F` the test fraction (default 0.25).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from charter.errors import CharterError, ConfigError, InputError
from charter.jsonl import describe_validation_error, iter_jsonl_lines
from charter.records import stable_id

DEFAULT_TEST_FRACTION = 0.25


@dataclass(frozen=True)
class Task:
    """Rows of a binary task. `is_test[i]` is the fixed split; `groups[i]` the near-dup key."""

    name: str
    texts: list[str]
    labels: NDArray[np.int64]
    groups: list[str]
    is_test: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def texts_hash(self) -> str:
        """Hash of the texts in order: the feature cache key's task part."""
        h = hashlib.sha256()
        for t in self.texts:
            h.update(t.encode("utf-8"))
            h.update(b"\0")
        return h.hexdigest()[:16]

    @property
    def train_idx(self) -> NDArray[np.int64]:
        return np.flatnonzero(~self.is_test).astype(np.int64)

    @property
    def test_idx(self) -> NDArray[np.int64]:
        return np.flatnonzero(self.is_test).astype(np.int64)


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """`kind:arg@k=v,k=v` → (kind, arg, options).

    >>> parse_spec("persona:data/x.jsonl@limit=100,test=0.3")
    ('persona', 'data/x.jsonl', {'limit': '100', 'test': '0.3'})
    >>> parse_spec("tfidf")
    ('tfidf', '', {})
    """
    body, _, opts = spec.partition("@")
    kind, _, arg = body.partition(":")
    options: dict[str, str] = {}
    for part in filter(None, opts.split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"spec {spec!r}: option {part!r} is not KEY=VALUE")
        options[key.strip()] = value.strip()
    return kind.strip(), arg.strip(), options


def near_duplicate_key(text: str) -> str:
    """Texts with the same lowercased words (any punctuation, spacing) share this key.

    >>> near_duplicate_key("I like  cats!") == near_duplicate_key("i like cats")
    True
    """
    words = re.findall(r"\w+", text.lower())
    return hashlib.sha256(" ".join(words).encode("utf-8")).hexdigest()[:16]


def _unit_hash(*parts: Any) -> float:
    """A deterministic number in [0, 1) from the parts (seed-free splitting and sampling)."""
    return int(stable_id(*parts), 16) / 16**16


def build_task(
    name: str,
    texts: Sequence[str],
    labels: Sequence[int],
    groups: Sequence[str] | None = None,
    *,
    limit: int | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> Task:
    """Balance classes (by text hash), optionally cap the size, and split train/test by group."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"task {name}: test fraction must be in (0, 1), got {test_fraction}")
    keys = list(groups) if groups is not None else [near_duplicate_key(t) for t in texts]
    by_class: dict[int, list[int]] = {0: [], 1: []}
    for i, y in enumerate(labels):
        by_class[int(y)].append(i)
    if not by_class[0] or not by_class[1]:
        raise CharterError(f"task {name}: needs both labels, got only label {int(labels[0])}")
    per_class = min(len(by_class[0]), len(by_class[1]))
    if limit is not None:
        per_class = min(per_class, limit // 2)
    keep: list[int] = []
    for members in by_class.values():
        members.sort(key=lambda i: _unit_hash("keep", texts[i], i))
        keep.extend(members[:per_class])
    keep.sort()
    kept_groups = [keys[i] for i in keep]
    is_test = np.array([_unit_hash("test", g) < test_fraction for g in kept_groups], dtype=bool)
    return Task(
        name=name,
        texts=[texts[i] for i in keep],
        labels=np.array([int(labels[i]) for i in keep], dtype=np.int64),
        groups=kept_groups,
        is_test=is_test,
    )


def _files(path: Path, kind: str) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise InputError(path, None, f"no *.jsonl files in this {kind} folder")
        return files
    if not path.exists():
        raise InputError(path, None, "file not found")
    return [path]


def _str_field(path: Path, line: int, obj: dict[str, object], field: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InputError(path, line, f"field `{field}`: expected a non-empty string")
    return value


def load_persona(path: Path) -> tuple[list[str], list[int], list[str]]:
    """Persona statements; a folder gives (behavior, statement) pairs over all its files."""
    files = _files(path, "persona")
    paired = len(files) > 1 or path.is_dir()
    texts: list[str] = []
    labels: list[int] = []
    groups: list[str] = []
    for f in files:
        behavior = f.stem.replace("-", " ")
        for line, obj in iter_jsonl_lines(f):
            statement = _str_field(f, line, obj, "statement")
            answer = _str_field(f, line, obj, "answer_matching_behavior").strip()
            if answer not in ("Yes", "No"):
                raise InputError(
                    f,
                    line,
                    f'field `answer_matching_behavior`: expected " Yes" or " No", got {answer!r}',
                )
            texts.append(f"Behavior: {behavior}\nStatement: {statement}" if paired else statement)
            labels.append(int(answer == "Yes"))
            groups.append(near_duplicate_key(statement))
    return texts, labels, groups


_CHOICE = re.compile(r"^\s*\(([A-Z])\)\s*(.*?)\s*$")


def load_ai_risk(path: Path) -> tuple[list[str], list[int], list[str]]:
    """Two-choice questions → (question + one answer, is it the behavior-matching answer)."""
    texts: list[str] = []
    labels: list[int] = []
    groups: list[str] = []
    for f in _files(path, "advanced-ai-risk"):
        for line, obj in iter_jsonl_lines(f):
            question = _str_field(f, line, obj, "question")
            match = _str_field(f, line, obj, "answer_matching_behavior").strip()
            stem, sep, choices_block = question.partition("Choices:")
            if not sep:
                raise InputError(f, line, "field `question`: no `Choices:` section")
            choices: dict[str, str] = {}
            for row in choices_block.splitlines():
                m = _CHOICE.match(row)
                if m:
                    choices[m.group(1)] = m.group(2)
            letter = match.strip("() ")
            if letter not in choices or len(choices) < 2:
                raise InputError(
                    f,
                    line,
                    f"field `answer_matching_behavior`: {match!r} is not one of the "
                    f"choices {sorted(choices)}",
                )
            # One item per question: a seeded coin (per question, not per run) picks whether we
            # show the matching answer or another one, which balances the classes.
            show_match = _unit_hash("ai-risk", f.name, line) < 0.5
            other = next(k for k in sorted(choices) if k != letter)
            shown = choices[letter if show_match else other]
            texts.append(f"{stem.strip()}\nAnswer: {shown}")
            labels.append(int(show_match))
            groups.append(near_duplicate_key(stem))
    return texts, labels, groups


class _PrefRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str | list[dict[str, Any]]
    chosen: str | list[dict[str, Any]]
    rejected: str | list[dict[str, Any]]


def _render(value: str | list[dict[str, Any]]) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in value)


def load_prefs(path: Path) -> tuple[list[str], list[int], list[str]]:
    """Pairwise rows → binary: (prompt, first, second) with label 1 when the first was chosen."""
    texts: list[str] = []
    labels: list[int] = []
    groups: list[str] = []
    for f in _files(path, "preference"):
        for line, obj in iter_jsonl_lines(f):
            try:
                row = _PrefRow.model_validate(obj)
            except ValidationError as e:
                raise InputError(f, line, describe_validation_error(e)) from None
            prompt, chosen, rejected = (
                _render(row.prompt),
                _render(row.chosen),
                _render(row.rejected),
            )
            chosen_first = _unit_hash("prefs", prompt, chosen, rejected) < 0.5
            a, b = (chosen, rejected) if chosen_first else (rejected, chosen)
            texts.append(f"{prompt}\n\nResponse 1: {a}\n\nResponse 2: {b}")
            labels.append(int(chosen_first))
            groups.append(near_duplicate_key(prompt))
    return texts, labels, groups


_SUBJECTS = ["the cat", "my neighbour", "the committee", "our robot", "the teacher", "a farmer"]
_GOOD = ["kind", "honest", "careful", "generous", "patient", "brave", "gentle", "wise"]
_BAD = ["cruel", "dishonest", "careless", "greedy", "rude", "lazy", "reckless", "petty"]
_TAILS = ["today", "at the market", "in the story", "after lunch", "this year", "as usual"]
# Words between the negation and the adjective, so that no word bigram holds both.
_FILLERS = ["by most accounts", "in every sense", "as people say", "at all times", "truly"]


def synthetic(
    n: int, *, seed: int = 0, noise: float = 0.0, hard: bool = True
) -> tuple[list[str], list[int]]:
    """Sentences whose label is the adjective's valence, flipped by a negation.

    A bag of words (or bigrams: a filler phrase separates the two) sees the adjective and the
    negation but not their interaction (an XOR), so tf-idf is a weaker supervisor here than a
    model that reads the sentence. `hard=False` leaves the negation out: the label is the
    adjective's valence, which any bag of words with the adjectives can learn.

    >>> texts, labels = synthetic(4, seed=1)
    >>> len(texts), set(labels) <= {0, 1}
    (4, True)
    """
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[int] = []
    for _ in range(n):
        good = bool(rng.integers(2))
        negated = hard and bool(rng.integers(2))
        adj = str(rng.choice(_GOOD if good else _BAD))
        subject = str(rng.choice(_SUBJECTS))
        tail = str(rng.choice(_TAILS))
        filler = str(rng.choice(_FILLERS))
        verb = "was not" if negated else "was"
        label = int(good != negated)
        if rng.random() < noise:
            label = 1 - label
        texts.append(f"{subject.capitalize()} {verb} {filler} {adj} {tail}.")
        labels.append(label)
    return texts, labels


def load_hf_dataset(dataset_id: str) -> tuple[list[str], list[int]]:
    """The paper's Hugging Face tasks as binary items (train split)."""
    try:
        import datasets  # type: ignore[import-untyped]
    except ImportError:
        raise CharterError(
            f"hf-dataset:{dataset_id} needs the `datasets` package: pip install datasets"
        ) from None
    name = dataset_id.lower().split("/")[-1]
    try:
        ds: Any = datasets.load_dataset(dataset_id, split="train")
    except Exception as e:  # datasets raises many types for offline/missing ids
        raise CharterError(f"could not load hf-dataset:{dataset_id}: {e}") from None
    texts: list[str] = []
    labels: list[int] = []
    for i, row in enumerate(ds):
        if name == "amazon_polarity":
            texts.append(f"{row['title']}\n{row['content']}")
            labels.append(int(row["label"]))
        elif name == "boolq":
            texts.append(f"{row['passage']}\nQuestion: {row['question']}?")
            labels.append(int(bool(row["answer"])))
        elif name == "sciq":
            correct = i % 2 == 0
            answer = row["correct_answer"] if correct else row["distractor1"]
            texts.append(f"Q: {row['question']} A: {answer}")
            labels.append(int(correct))
        elif name == "cosmos_qa":
            correct = i % 2 == 0
            k = int(row["label"]) if correct else (int(row["label"]) + 1) % 4
            texts.append(f"{row['context']}\nQ: {row['question']} A: {row[f'answer{k}']}")
            labels.append(int(correct))
        else:
            raise ConfigError(
                f"hf-dataset:{dataset_id}: no binary recipe; known: amazon_polarity, boolq, "
                "sciq, cosmos_qa"
            )
    return texts, labels


def load_task(spec: str) -> Task:
    """A task from its spec (see the module docstring)."""
    kind, arg, options = parse_spec(spec)
    unknown = set(options) - {"limit", "test", "seed", "noise", "hard"}
    if unknown:
        raise ConfigError(f"task {spec!r}: unknown option(s) {sorted(unknown)}")
    try:
        limit = int(options["limit"]) if "limit" in options else None
        test = float(options.get("test", DEFAULT_TEST_FRACTION))
        seed = int(options.get("seed", 0))
        noise = float(options.get("noise", 0.0))
        hard = options.get("hard", "1") not in ("0", "false", "no")
    except ValueError as e:
        raise ConfigError(f"task {spec!r}: {e}") from None
    groups: list[str] | None = None
    if kind == "persona":
        texts, labels, groups = load_persona(Path(arg).expanduser())
    elif kind in ("ai-risk", "advanced-ai-risk"):
        texts, labels, groups = load_ai_risk(Path(arg).expanduser())
    elif kind == "prefs":
        texts, labels, groups = load_prefs(Path(arg).expanduser())
    elif kind == "synthetic":
        try:
            n = int(arg or "1000")
        except ValueError:
            raise ConfigError(f"task {spec!r}: synthetic:N needs a number of items") from None
        texts, labels = synthetic(n, seed=seed, noise=noise, hard=hard)
    elif kind == "hf-dataset":
        texts, labels = load_hf_dataset(arg)
    else:
        raise ConfigError(
            f"unknown task kind {kind!r} in {spec!r}: expected persona:, ai-risk:, prefs:, "
            "synthetic: or hf-dataset:"
        )
    if not texts:
        raise CharterError(f"task {spec!r} has no items")
    return build_task(task_name(spec), texts, labels, groups, limit=limit, test_fraction=test)


def task_name(spec: str) -> str:
    """A short readable name for file names and tables: `persona:.../x.jsonl` → `persona-x`."""
    kind, arg, options = parse_spec(spec)
    stem = Path(arg).stem if kind in ("persona", "ai-risk", "advanced-ai-risk", "prefs") else arg
    base = f"{kind}-{stem}" if stem else kind
    if options:
        base += "-" + "-".join(f"{k}{v}" for k, v in sorted(options.items()))
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)
