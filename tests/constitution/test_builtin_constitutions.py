"""The builtin constitutions `udhr` and `minimal`: they load, they are complete in English and
Arabic, their few-shot examples agree with their principles, and every UDHR citation resolves
against the real Declaration (read from `../shared/data/udhr`, skipped when absent)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from charter.constitution import Constitution
from charter.constitution.load import (
    builtin_names,
    dump_constitution,
    load_constitution,
    parse_constitution,
)
from charter.constitution.schema import PRINCIPLE_TEXTS
from charter.constitution.udhr import UDHR, parse_article_ref, udhr_for_lang

UDHR_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "udhr"
ARABIC = re.compile(r"[\u0600-\u06FF]")
ANTI_EVASIVE_TAGS = {"anti-evasiveness", "anti-preachiness"}


@pytest.fixture(scope="module")
def udhr() -> Constitution:
    return load_constitution("udhr")


@pytest.fixture(scope="module")
def minimal() -> Constitution:
    return load_constitution("minimal")


@pytest.fixture(scope="module", params=["en", "ar"])
def declaration(request: pytest.FixtureRequest) -> UDHR:
    if not UDHR_DIR.is_dir():
        pytest.skip(
            f"shared UDHR data not found at {UDHR_DIR} (a fresh clone lacks ../shared/data)"
        )
    lang: str = request.param
    return udhr_for_lang(UDHR_DIR, lang)


def all_constitutions() -> list[Constitution]:
    return [load_constitution("udhr"), load_constitution("minimal")]


def test_both_are_builtin_and_load(udhr: Constitution, minimal: Constitution) -> None:
    assert {"udhr", "minimal"} <= set(builtin_names())
    assert (udhr.name, udhr.version) == ("udhr", "1")
    assert (minimal.name, minimal.version) == ("minimal", "1")
    assert udhr.description and minimal.description
    assert udhr.languages() == ["ar", "en"] == minimal.languages()


@pytest.mark.parametrize("name", ["udhr", "minimal"])
def test_sha256_is_stable_and_survives_export(name: str) -> None:
    first, second = load_constitution(name), load_constitution(name)
    assert first.compute_sha256() == second.compute_sha256()
    exported = parse_constitution(yaml.safe_load(dump_constitution(first)), "export")
    assert exported.compute_sha256() == first.compute_sha256()


def test_hashes_differ(udhr: Constitution, minimal: Constitution) -> None:
    assert udhr.compute_sha256() != minimal.compute_sha256()


def test_udhr_principle_counts(udhr: Constitution) -> None:
    ids = [p.id for p in udhr.principles]
    assert len(ids) == len(set(ids)) >= 18
    grounded = [p for p in udhr.principles if any(s.kind == "udhr" for s in p.sources)]
    assert len(grounded) >= 16
    # Principles that are not about evasiveness rest on the Declaration alone.
    for p in udhr.principles:
        if not ANTI_EVASIVE_TAGS & set(p.tags):
            assert p.sources and all(s.kind == "udhr" for s in p.sources), p.id
            assert all(s.note for s in p.sources), p.id


def test_udhr_covers_the_articles_the_brief_names(udhr: Constitution) -> None:
    cited = {
        parse_article_ref(s.ref)[0] for p in udhr.principles for s in p.sources if s.kind == "udhr"
    }
    required = {1, 2, 3, 4, 5, 7, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26}
    assert required | {27, 29, 30} <= cited


def test_anti_evasiveness_principles_exist(udhr: Constitution) -> None:
    balancing = [p for p in udhr.principles if ANTI_EVASIVE_TAGS & set(p.tags)]
    assert len(balancing) >= 2
    assert {"anti-evasiveness", "anti-preachiness"} <= {t for p in balancing for t in p.tags}
    for p in balancing:
        assert any(s.kind == "custom" and s.note for s in p.sources), p.id
    critique = udhr.principle("helpful-not-evasive").critique
    assert critique is not None and "A refusal that helps no one is not harmless" in critique


def test_minimal_is_two_general_principles(minimal: Constitution) -> None:
    assert [p.id for p in minimal.principles] == ["best-for-humanity", "helpful-and-harmless"]
    for p in minimal.principles:
        assert p.sources and all(s.kind == "custom" for s in p.sources)


@pytest.mark.parametrize("constitution", all_constitutions(), ids=lambda c: c.name)
def test_every_principle_is_complete_in_english_and_arabic(constitution: Constitution) -> None:
    for p in constitution.principles:
        assert p.present() == set(PRINCIPLE_TEXTS), p.id
        assert set(p.translations) == {"ar"}, p.id
        arabic = p.text("ar")
        for name in PRINCIPLE_TEXTS:
            english, translated = getattr(p, name), getattr(arabic, name)
            assert english and not ARABIC.search(english), (p.id, name)
            assert translated and ARABIC.search(translated), (p.id, name)
            # Translated, not copied: no Latin words left in the Arabic text.
            assert not re.search(r"[A-Za-z]{3,}", translated), (p.id, name)
        assert p.critique is not None and p.critique.startswith("Identify specific ways")
        assert p.revision is not None and p.revision.startswith("Rewrite the assistant's response")
        assert p.comparison is not None and p.comparison.startswith(
            ("Which of these assistant responses", "Choose the response that")
        )
        assert p.comparison.endswith(("?", "."))
        assert p.tags, p.id


@pytest.mark.parametrize("constitution", all_constitutions(), ids=lambda c: c.name)
def test_few_shot_examples_agree_with_their_principles(constitution: Constitution) -> None:
    for ex in constitution.few_shot.critique_revision:
        assert ex.principle_id is not None
        texts = constitution.principle(ex.principle_id).text(ex.lang)
        assert ex.critique_request == texts.critique, ex.principle_id
        assert ex.revision_request == texts.revision, ex.principle_id
        assert [m.role for m in ex.messages] == ["user", "assistant"]
        assert ex.revision != ex.messages[-1].content
        script = ARABIC.search(ex.messages[0].content + ex.critique + ex.revision)
        assert bool(script) == (ex.lang == "ar"), ex.principle_id
    for label in constitution.few_shot.labeling:
        comparisons = {p.text(label.lang).comparison for p in constitution.principles}
        assert label.question in comparisons
        assert label.messages[-1].role == "user"
        assert label.chosen != label.rejected
        assert bool(ARABIC.search(label.chosen)) == (label.lang == "ar")


def test_udhr_few_shot_counts(udhr: Constitution) -> None:
    crit = Counter(ex.lang for ex in udhr.few_shot.critique_revision)
    labels = Counter(ex.lang for ex in udhr.few_shot.labeling)
    assert crit["en"] >= 4 and crit["ar"] >= 3
    assert labels["en"] >= 4 and labels["ar"] >= 2
    assert sum(ex.reasoning is not None for ex in udhr.few_shot.labeling) >= 2
    # At least one example, per language, where the flaw is an over-refusal or a lecture and
    # the revision becomes helpful.
    for lang in ("en", "ar"):
        assert any(
            ex.lang == lang and ANTI_EVASIVE_TAGS & set(udhr.principle(ex.principle_id).tags)
            for ex in udhr.few_shot.critique_revision
            if ex.principle_id is not None
        )


def test_minimal_few_shot_counts(minimal: Constitution) -> None:
    crit = Counter(ex.lang for ex in minimal.few_shot.critique_revision)
    assert crit["en"] >= 1 and crit["ar"] >= 1


def test_every_udhr_citation_resolves(udhr: Constitution, declaration: UDHR) -> None:
    refs = [s.ref for p in udhr.principles for s in p.sources if s.kind == "udhr"]
    assert refs
    for ref in refs:
        assert declaration.cite(ref).strip(), ref
