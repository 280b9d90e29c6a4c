"""The constitution schema: principles, their sources and translations, and few-shot examples.

A principle carries up to three texts: a `critique` request and a `revision` request (used by the
SL-CAI critique → revision stage; they come as a pair) and a `comparison` question (used by the
RL-CAI labeller, "Which response is …?"). The CAI paper's own files keep the two kinds apart, so
either kind may be absent, but never both. A constitution's identity is the sha256 of its
canonical JSON form (every field but `sha256` itself), so a YAML export imports back to the same
hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from charter.records import Message, Strict, canonical_json

SourceKind = Literal["udhr", "public", "paper", "custom"]
PRINCIPLE_TEXTS = ("critique", "revision", "comparison")
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


class Source(Strict):
    """Where a principle comes from: `udhr` (ref `art. 12`), `public` (a statement id of a
    public-input process), `paper` (a published constitution), or `custom`."""

    kind: SourceKind
    ref: str = Field(min_length=1)
    note: str = ""


def _nonempty(value: str | None, name: str) -> str | None:
    if value is not None and not value.strip():
        raise ValueError(f"`{name}` is empty")
    return value


class PrincipleText(Strict):
    """A principle's texts in one language (a translation)."""

    critique: str | None = None
    revision: str | None = None
    comparison: str | None = None

    @field_validator("critique", "revision", "comparison")
    @classmethod
    def _not_blank(cls, v: str | None, info: Any) -> str | None:
        return _nonempty(v, info.field_name)

    def present(self) -> set[str]:
        return {name for name in PRINCIPLE_TEXTS if getattr(self, name) is not None}


class Principle(PrincipleText):
    id: str = Field(pattern=ID_PATTERN)
    sources: list[Source] = Field(default_factory=list)
    translations: dict[str, PrincipleText] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    # How the principle was made (e.g. the statement ids, GIC and group agree rates of a
    # collectively drafted one). Free-form, but part of the constitution's hash.
    provenance: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _texts_consistent(self) -> Principle:
        present = self.present()
        if not present:
            raise ValueError(
                "a principle needs `critique` + `revision`, or `comparison`, or all three"
            )
        if ("critique" in present) != ("revision" in present):
            missing = "revision" if "critique" in present else "critique"
            raise ValueError(f"`{missing}` is missing: critique and revision come as a pair")
        for lang, text in self.translations.items():
            if text.present() != present:
                lacking = sorted(present - text.present())
                extra = sorted(text.present() - present)
                detail = (
                    f"lacks {', '.join(lacking)}" if lacking else f"has extra {', '.join(extra)}"
                )
                raise ValueError(
                    f"translation `{lang}` {detail} (it must have: {', '.join(sorted(present))})"
                )
        return self

    def text(self, lang: str | None = None) -> PrincipleText:
        """The principle's texts in `lang` (the original when `lang` is None or "en")."""
        if lang in (None, "en") and "en" not in self.translations:
            return PrincipleText(
                critique=self.critique, revision=self.revision, comparison=self.comparison
            )
        if lang not in self.translations:
            raise KeyError(lang)
        return self.translations[lang]


class CritiqueRevisionExample(Strict):
    """A worked critique → revision example: the conversation ends with the answer to improve."""

    lang: str = "en"
    messages: list[Message] = Field(min_length=2)
    critique_request: str = Field(min_length=1)
    critique: str = Field(min_length=1)
    revision_request: str = Field(min_length=1)
    revision: str = Field(min_length=1)
    principle_id: str | None = None

    @model_validator(mode="after")
    def _ends_with_answer(self) -> CritiqueRevisionExample:
        if self.messages[-1].role != "assistant":
            raise ValueError("the example's conversation must end with the assistant's answer")
        return self


class LabelExample(Strict):
    """A worked labelling example: the conversation (ending with the user's turn), two answers,
    which is better, and optionally the reasoning (for chain-of-thought labelling)."""

    lang: str = "en"
    messages: list[Message] = Field(min_length=1)
    question: str | None = None
    chosen: str = Field(min_length=1)
    rejected: str = Field(min_length=1)
    reasoning: str | None = None


class FewShot(Strict):
    critique_revision: list[CritiqueRevisionExample] = Field(default_factory=list)
    labeling: list[LabelExample] = Field(default_factory=list)


class Constitution(Strict):
    schema_version: int = 1
    name: str = Field(min_length=1)
    version: str = "1"
    description: str = ""
    principles: list[Principle] = Field(min_length=1)
    few_shot: FewShot = Field(default_factory=FewShot)
    sha256: str | None = Field(None, description="Written on export; recomputed, never trusted.")

    @model_validator(mode="after")
    def _unique_ids(self) -> Constitution:
        seen: set[str] = set()
        for i, p in enumerate(self.principles):
            if p.id in seen:
                raise ValueError(f"duplicate principle id {p.id!r} (principles.{i}.id)")
            seen.add(p.id)
        return self

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"sha256"})

    def compute_sha256(self) -> str:
        return hashlib.sha256(canonical_json(self.canonical()).encode("utf-8")).hexdigest()

    def with_hash(self) -> Constitution:
        return self.model_copy(update={"sha256": self.compute_sha256()})

    def principle(self, pid: str) -> Principle:
        for p in self.principles:
            if p.id == pid:
                return p
        raise KeyError(pid)

    def critique_principles(self) -> list[Principle]:
        return [p for p in self.principles if p.critique is not None]

    def comparison_principles(self) -> list[Principle]:
        return [p for p in self.principles if p.comparison is not None]

    def localized(self, lang: str) -> Constitution:
        """The constitution with every principle's texts in `lang` and only `lang` few-shots.

        Raises `KeyError` naming the first principle that has no translation into `lang`.
        """
        if lang == "en":
            texts = {p.id: p.text() for p in self.principles}
        else:
            missing = [p.id for p in self.principles if lang not in p.translations]
            if missing:
                raise KeyError(f"principle {missing[0]!r} has no `{lang}` translation")
            texts = {p.id: p.translations[lang] for p in self.principles}
        principles = [p.model_copy(update=texts[p.id].model_dump()) for p in self.principles]
        few_shot = FewShot(
            critique_revision=[e for e in self.few_shot.critique_revision if e.lang == lang],
            labeling=[e for e in self.few_shot.labeling if e.lang == lang],
        )
        return self.model_copy(
            update={"principles": principles, "few_shot": few_shot, "sha256": None}
        )

    def languages(self) -> list[str]:
        langs = {"en"}
        for p in self.principles:
            langs.update(p.translations)
        return sorted(langs)


# The tag of the principles that ask for helpfulness (anti-evasiveness, anti-preachiness).
HELPFULNESS_TAG = "helpfulness"

# Which principles a prompt's critiques or comparisons are drawn from (`select_principles`).
PrinciplePool = Literal["all", "harm", "matched"]


def select_principles(
    principles: Sequence[Principle], category: str | None, mode: PrinciplePool
) -> list[Principle]:
    """The principles drawn for a prompt of harm `category` (SL-CAI's critiques, the
    labeller's and the judge's comparisons). `all`: every one. `harm`: those not
    tagged `helpfulness` (on a harmful request the anti-evasiveness principles ask for
    compliance). `matched`: the harm principles with a tag that is the prompt's category or one
    of its hyphen-parts (`hate-harassment` matches `hate`), else every harm principle.

    >>> P = Principle
    >>> ps = [P(id="life", critique="c", revision="r", tags=["violence"]),
    ...       P(id="privacy", critique="c", revision="r", tags=["privacy"]),
    ...       P(id="helpful", critique="c", revision="r", tags=["helpfulness"])]
    >>> [p.id for p in select_principles(ps, "violence", "matched")]
    ['life']
    >>> [p.id for p in select_principles(ps, "chem-bio", "matched")]
    ['life', 'privacy']
    >>> [p.id for p in select_principles(ps, None, "all")]
    ['life', 'privacy', 'helpful']
    """
    if mode == "all":
        return list(principles)
    harm = [p for p in principles if HELPFULNESS_TAG not in p.tags] or list(principles)
    if mode == "harm" or not category:
        return harm
    parts = {category, *category.split("-")}
    return [p for p in harm if parts & set(p.tags)] or harm
