"""The UDHR in XML loader, citations into it, and `format_with_sources`.

Tests marked by the `real_udhr` fixture read the Declaration from `../shared/data/udhr` (never
shipped in this repo) and skip when it is absent; the rest use small XML files written here with
placeholder text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from charter.constitution import Constitution, Principle, Source
from charter.constitution.load import load_constitution
from charter.constitution.udhr import (
    UDHR,
    CitationError,
    format_with_sources,
    load_udhr,
    parse_article_ref,
    resolve_udhr,
    udhr_for_lang,
)
from charter.errors import CharterError, InputError

UDHR_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "udhr"
ARABIC_29_3_OFFICIAL_START = "لا يصح بحال من الأحوال"


@pytest.fixture(scope="module")
def udhr_dir() -> Path:
    if not (UDHR_DIR / "udhr_eng.xml").is_file() or not (UDHR_DIR / "udhr_arb.xml").is_file():
        pytest.skip(
            f"shared UDHR data not found at {UDHR_DIR} (a fresh clone lacks ../shared/data)"
        )
    return UDHR_DIR


@pytest.fixture(scope="module")
def eng(udhr_dir: Path) -> UDHR:
    return udhr_for_lang(udhr_dir, "en")


@pytest.fixture(scope="module")
def arb(udhr_dir: Path) -> UDHR:
    return udhr_for_lang(udhr_dir, "ar")


def write_udhr(
    path: Path, body: str, *, lang: str = "en", prolog: str = '<?xml version="1.0"?>\n'
) -> Path:
    """A small UDHR in XML file with placeholder text."""
    path.write_text(
        f'{prolog}<udhr xmlns="http://efele.net/udhr" xml:lang="{lang}">'
        f"<title>Test Declaration</title>{body}</udhr>",
        encoding="utf-8",
    )
    return path


PLAIN = '<article number="1"><title>Article 1</title><para>Only paragraph.</para></article>'
LISTED = (
    '<article number="2"><title>Article 2</title><orderedlist>'
    "<listitem><para>Clause one.</para></listitem>"
    "<listitem><para>Clause <emphasis>two</emphasis>\n   continues.</para></listitem>"
    "</orderedlist></article>"
)


# --- the real Declaration ------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_thirty_articles_with_titles(udhr_dir: Path, lang: str) -> None:
    udhr = udhr_for_lang(udhr_dir, lang)
    assert udhr.lang == lang
    assert sorted(udhr.articles) == list(range(1, 31))
    assert udhr.title and udhr.preamble
    for number, article in udhr.articles.items():
        assert article.number == number
        assert article.title.endswith(str(number))
        assert article.paragraphs and all(p.strip() for p in article.paragraphs)


def test_titles_are_in_the_files_language(eng: UDHR, arb: UDHR) -> None:
    assert eng.title == "Universal Declaration of Human Rights"
    assert eng.articles[12].title == "Article 12"
    assert arb.articles[12].title == "المادة 12"
    assert "لحقوق الإنسان" in arb.title


def test_clause_reference_gives_only_that_clause(eng: UDHR, arb: UDHR) -> None:
    clause = eng.cite("art. 25(2)")
    assert clause.startswith("Motherhood and childhood are entitled to special care")
    assert "standard of living" not in clause  # clause 1 is not included
    assert arb.cite("art. 25(2)").startswith("للأمومة والطفولة")
    assert eng.articles[25].numbered and len(eng.articles[25].paragraphs) == 2


def test_article_reference_gives_the_whole_article(eng: UDHR) -> None:
    assert eng.cite("art. 12").startswith("No one shall be subjected to arbitrary interference")
    assert eng.cite("art. 12") == eng.articles[12].paragraphs[0]
    whole = eng.cite("art. 25")
    assert "(1) Everyone has the right to a standard of living" in whole
    assert "(2) Motherhood and childhood" in whole
    # Article 2 has two paragraphs that are not numbered clauses: both are cited, no numbers.
    assert len(eng.articles[2].paragraphs) == 2 and not eng.articles[2].numbered
    assert eng.cite("art. 2").count("\n") == 1 and not eng.cite("art. 2").startswith("(1)")


def test_reference_spellings() -> None:
    assert parse_article_ref("art. 12") == (12, None)
    assert parse_article_ref("Art 25 (2)") == (25, 2)
    assert parse_article_ref("article 3") == (3, None)


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("art. 31", "no article 31"),
        ("art. 0", "no article 0"),
        ("art. 25(3)", "no clause 3"),
        ("art. 25(0)", "no clause 0"),
        ("art. 12(1)", "no numbered clauses"),
        ("art. 2(2)", "no numbered clauses"),
        ("article twelve", "expected `art. N`"),
        ("arts. 22-25", "expected `art. N`"),
        ("", "expected `art. N`"),
    ],
)
def test_bad_references_raise_a_clear_error(eng: UDHR, ref: str, says: str) -> None:
    with pytest.raises(CitationError, match=re.escape(repr(ref))) as e:
        eng.cite(ref)
    assert says in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, CharterError)


def test_arabic_29_3_negation_is_repaired_and_recorded(arb: UDHR, eng: UDHR) -> None:
    clause = arb.cite("art. 29(3)")
    assert clause.startswith("لا ")
    assert clause.startswith(ARABIC_29_3_OFFICIAL_START)
    assert len(arb.corrections) == 1
    assert "art. 29(3)" in arb.corrections[0] and "«لا»" in arb.corrections[0]
    assert "udhr_arb.xml" in arb.corrections[0]
    # The other clauses are untouched, and the English text needs no repair.
    assert arb.cite("art. 29(2)").startswith("يخضع الفرد")
    assert eng.corrections == []
    assert eng.cite("art. 29(3)").startswith("These rights and freedoms may in no case")


def test_raw_arabic_file_really_has_the_defect(udhr_dir: Path) -> None:
    # Guards the repair against a silently fixed upstream file: if this fails, the data changed
    # and the repair (and its test above) should be revisited.
    raw = (udhr_dir / "udhr_arb.xml").read_text(encoding="utf-8")
    assert "<para>يصح بحال من الأحوال" in raw


def test_udhr_for_lang_accepts_iso_codes_and_rejects_unknown(udhr_dir: Path) -> None:
    assert udhr_for_lang(udhr_dir, "arb").lang == "ar"
    assert udhr_for_lang(udhr_dir, "eng").lang == "en"
    with pytest.raises(CitationError, match=r"'fr'.*known: ar, en"):
        udhr_for_lang(udhr_dir, "fr")
    with pytest.raises(InputError, match="not a folder"):
        udhr_for_lang(udhr_dir / "udhr_eng.xml", "en")


def test_resolve_udhr_takes_a_file_or_a_folder(udhr_dir: Path) -> None:
    assert resolve_udhr(udhr_dir / "udhr_arb.xml").lang == "ar"
    assert resolve_udhr(udhr_dir, "ar").lang == "ar"
    assert resolve_udhr(udhr_dir).lang == "en"


# --- format_with_sources -------------------------------------------------------------------------


def test_format_with_sources_english(eng: UDHR) -> None:
    constitution = load_constitution("udhr")
    text = format_with_sources(constitution, eng)
    for principle in constitution.principles:
        assert f"[{principle.id}]" in text
        assert principle.critique is not None
        assert " ".join(principle.critique.split()[:6]) in " ".join(text.split())
    flat = " ".join(text.split())
    # A clause citation prints that clause and not its neighbour.
    assert eng.cite("art. 25(2)") in flat
    assert eng.cite("art. 12") in flat
    assert "Everyone has the right to a standard of living" in flat  # cited by art. 25(1)
    assert "cannot resolve" not in text
    assert "Corrections applied" not in text


def test_format_with_sources_arabic_from_a_folder(udhr_dir: Path, arb: UDHR) -> None:
    constitution = load_constitution("udhr")
    text = format_with_sources(constitution, udhr_dir, lang="ar")
    flat = " ".join(text.split())
    for principle in constitution.principles:
        assert f"[{principle.id}]" in text
        comparison = principle.text("ar").comparison
        assert comparison is not None
        assert " ".join(comparison.split()) in flat
    assert arb.cite("art. 12") in flat
    assert arb.cite("art. 25(2)") in flat
    assert arb.cite("art. 29(3)") in flat  # cited by rights-of-others, repaired
    assert "Corrections applied" in text and "art. 29(3)" in text


def test_format_with_sources_from_one_file_and_minimal(udhr_dir: Path) -> None:
    text = format_with_sources(load_constitution("minimal"), udhr_dir / "udhr_eng.xml")
    assert "[best-for-humanity]" in text and "[helpful-and-harmless]" in text
    assert "source: custom general" in text


def test_format_with_sources_marks_or_raises_on_unresolved_refs(eng: UDHR) -> None:
    bad = Constitution(
        name="bad",
        principles=[
            Principle(
                id="p",
                comparison="Choose the response that is best.",
                sources=[Source(kind="udhr", ref="art. 99")],
            )
        ],
    )
    assert "art. 99: (cannot resolve:" in format_with_sources(bad, eng)
    with pytest.raises(CitationError, match="no article 99"):
        format_with_sources(bad, eng, strict=True)


def test_format_falls_back_to_english_without_a_translation(eng: UDHR) -> None:
    untranslated = Constitution(
        name="u",
        principles=[
            Principle(
                id="p",
                comparison="Choose the kindest response.",
                sources=[Source(kind="udhr", ref="art. 1")],
            )
        ],
    )
    text = format_with_sources(untranslated, eng, lang="ar")
    assert "no `ar` translation" in text and "Choose the kindest response." in text


# --- synthetic files: structure, repair logic, malformed input ---------------------------------


def test_synthetic_file_structure(tmp_path: Path) -> None:
    udhr = load_udhr(write_udhr(tmp_path / "t.xml", PLAIN + LISTED))
    assert udhr.title == "Test Declaration" and udhr.preamble == []
    assert udhr.cite("art. 1") == "Only paragraph."
    # Inline markup is flattened and whitespace collapsed.
    assert udhr.cite("art. 2(2)") == "Clause two continues."
    assert udhr.cite("art. 2") == "(1) Clause one.\n(2) Clause two continues."


def _arabic_29(third: str) -> str:
    items = "".join(f"<listitem><para>{t}</para></listitem>" for t in ("أ", "ب", third))
    return (
        f'<article number="29"><title>المادة 29</title><orderedlist>{items}</orderedlist></article>'
    )


def test_repair_only_when_the_negation_is_missing(tmp_path: Path) -> None:
    already = load_udhr(write_udhr(tmp_path / "ok.xml", _arabic_29("لا يصح نص"), lang="ar"))
    assert already.corrections == [] and already.cite("art. 29(3)") == "لا يصح نص"
    broken = load_udhr(write_udhr(tmp_path / "bad.xml", _arabic_29("يصح نص"), lang="ar"))
    assert broken.cite("art. 29(3)") == "لا يصح نص" and len(broken.corrections) == 1
    # The same clause in a non-Arabic file is never touched.
    english = load_udhr(write_udhr(tmp_path / "en.xml", _arabic_29("text"), lang="en"))
    assert english.corrections == [] and english.cite("art. 29(3)") == "text"


def test_malformed_xml_raises_input_error_with_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_text('<udhr xmlns="http://efele.net/udhr">\n<article number="1">\n</udhr>')
    with pytest.raises(InputError, match="not well-formed XML") as e:
        load_udhr(path)
    assert e.value.line == 3 and "broken.xml" in str(e.value)


def test_dtd_and_entities_are_rejected(tmp_path: Path) -> None:
    prolog = '<?xml version="1.0"?>\n<!DOCTYPE udhr [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    body = '<article number="1"><title>A</title><para>&x;</para></article>'
    path = write_udhr(tmp_path / "dtd.xml", body, prolog=prolog)
    with pytest.raises(InputError, match="DTD"):
        load_udhr(path)
    undeclared = write_udhr(tmp_path / "ent.xml", body)
    with pytest.raises(InputError, match="undefined entity"):
        load_udhr(undeclared)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('<?xml version="1.0"?><html xmlns="http://efele.net/udhr"/>', "expected a <udhr> root"),
        (
            '<?xml version="1.0"?><udhr xmlns="http://efele.net/udhr" xml:lang="en"/>',
            "no <article>",
        ),
        (
            '<?xml version="1.0"?><udhr xmlns="http://efele.net/udhr">' + PLAIN + "</udhr>",
            "xml:lang",
        ),
    ],
)
def test_wrong_documents_are_rejected(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "x.xml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=says):
        load_udhr(path)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (PLAIN + PLAIN, "article 1 appears twice"),
        ('<article number="one"><para>x</para></article>', "expected a positive integer"),
        ('<article number="3"><title>Article 3</title></article>', "empty or missing paragraph"),
        (
            '<article number="3"><para>a</para><orderedlist><listitem><para>b</para></listitem>'
            "</orderedlist></article>",
            "mixes paragraphs and a numbered list",
        ),
    ],
)
def test_bad_articles_are_rejected(tmp_path: Path, body: str, says: str) -> None:
    with pytest.raises(InputError, match=says):
        load_udhr(write_udhr(tmp_path / "x.xml", body))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_udhr(tmp_path / "nope.xml")
    with pytest.raises(InputError, match="not found"):
        udhr_for_lang(tmp_path, "ar")
