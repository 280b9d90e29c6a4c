"""The Universal Declaration of Human Rights, read from "UDHR in XML" files, and citations into it.

The `udhr` constitution grounds its principles in articles of the Declaration (`Source(kind="udhr",
ref="art. 25(2)")`). This module reads the Declaration's text from the UDHR in XML project's files
(namespace `http://efele.net/udhr`) so that `charter constitution show udhr --with-sources PATH`
can print each principle beside the text it cites, and so tests can check that every citation
resolves. The project ships no UDHR text: the user points at the files.

An article is either one or more plain paragraphs, or an `<orderedlist>` whose items are the
numbered clauses cited as `art. N(K)`. Known defects of the source files are repaired on load and
each repair is recorded in `UDHR.corrections`, so nobody quotes a corrupted text unawares.
"""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

from charter.constitution.schema import Constitution, Principle
from charter.errors import CharterError, InputError

NAMESPACE = "http://efele.net/udhr"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

# The files of the UDHR in XML project, by language; the ISO 639-3 codes they are named after are
# accepted too.
FILES = {"en": "udhr_eng.xml", "ar": "udhr_arb.xml"}
_LANG_ALIASES = {"eng": "en", "arb": "ar", "ara": "ar"}

_REF = re.compile(r"^\s*art(?:icle|\.)?\s*(\d+)\s*(?:\(\s*(\d+)\s*\))?\s*$", re.IGNORECASE)

# The official Arabic text of art. 29(3) begins «لا يصح بحال من الأحوال …» ("may in no case be
# exercised …"); the UDHR in XML file drops the «لا», which inverts the clause's meaning.
_ARABIC_NEGATION = "لا"


class CitationError(CharterError, ValueError):
    """A reference such as `art. 31` or `art. 12(2)` that names no text of the Declaration."""


@dataclass(frozen=True)
class Article:
    """One article. `paragraphs` holds one entry per numbered clause when `numbered`, else the
    article's plain paragraphs (art. 2 has two that are not numbered)."""

    number: int
    title: str
    paragraphs: list[str]
    numbered: bool = False

    def clause(self, index: int) -> str:
        """Numbered clause `index` (1-based), as cited by `art. N(index)`."""
        if not self.numbered:
            raise CitationError(
                f"art. {self.number} has no numbered clauses; cite it whole as `art. {self.number}`"
            )
        if not 1 <= index <= len(self.paragraphs):
            last = len(self.paragraphs)
            raise CitationError(
                f"art. {self.number} has clauses 1-{last}; there is no clause {index}"
            )
        return self.paragraphs[index - 1]

    def text(self) -> str:
        """The whole article: numbered clauses as `(1) …` lines, plain paragraphs one per line."""
        if self.numbered:
            return "\n".join(f"({i}) {p}" for i, p in enumerate(self.paragraphs, start=1))
        return "\n".join(self.paragraphs)


@dataclass
class UDHR:
    """The Declaration in one language."""

    lang: str
    title: str
    preamble: list[str]
    articles: dict[int, Article]
    corrections: list[str] = field(default_factory=list)
    path: Path | None = None

    def article(self, number: int) -> Article:
        try:
            return self.articles[number]
        except KeyError:
            first, last = min(self.articles), max(self.articles)
            raise CitationError(
                f"the Declaration has articles {first}-{last}; there is no article {number}"
            ) from None

    def cite(self, ref: str) -> str:
        """The text a reference names: `art. 12` (the whole article) or `art. 25(2)` (clause 2).

        Raises `CitationError` (a `ValueError`) for a malformed or unknown reference.
        """
        number, clause = parse_article_ref(ref)
        try:
            article = self.article(number)
            return article.text() if clause is None else article.clause(clause)
        except CitationError as e:
            raise CitationError(f"UDHR reference {ref!r}: {e}") from None


def parse_article_ref(ref: str) -> tuple[int, int | None]:
    """`"art. 25(2)"` → `(25, 2)`; `"art. 12"` → `(12, None)`.

    >>> parse_article_ref("art. 25(2)"), parse_article_ref("Article 12")
    ((25, 2), (12, None))
    """
    match = _REF.match(ref)
    if match is None:
        raise CitationError(
            f"cannot read UDHR reference {ref!r}: "
            "expected `art. N` or `art. N(K)`, e.g. `art. 25(2)`"
        )
    return int(match.group(1)), int(match.group(2)) if match.group(2) else None


class _NoDoctype(ET.TreeBuilder):
    """Rejects any DTD: UDHR files need none, and without one no entity can be declared, so
    nothing is ever expanded or fetched."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _DoctypeFound


class _DoctypeFound(Exception):
    pass


def _parse_xml(path: Path) -> ET.Element:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, None, "UDHR XML file not found") from None
    except OSError as e:
        raise InputError(path, None, f"cannot read the UDHR XML file: {e.strerror or e}") from None
    parser = ET.XMLParser(target=_NoDoctype())
    try:
        parser.feed(data)
        root: ET.Element = parser.close()
    except _DoctypeFound:
        raise InputError(
            path, None, "a DTD (<!DOCTYPE …>) is not allowed in a UDHR XML file"
        ) from None
    except ET.ParseError as e:
        line, _column = e.position
        raise InputError(path, line, f"not well-formed XML: {e}") from None
    return root


def _text(element: ET.Element) -> str:
    """The element's text with inline markup flattened and whitespace collapsed."""
    return " ".join("".join(element.itertext()).split())


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def load_udhr(path: str | Path) -> UDHR:
    """Read one UDHR in XML file (e.g. `udhr_eng.xml`), repairing known defects of the source."""
    path = Path(path)
    root = _parse_xml(path)
    ns = f"{{{NAMESPACE}}}" if root.tag.startswith(f"{{{NAMESPACE}}}") else ""
    if root.tag != f"{ns}udhr":
        raise InputError(
            path, None, f"expected a <udhr> root element in namespace {NAMESPACE}, got <{root.tag}>"
        )
    lang = root.get(_XML_LANG) or _LANG_ALIASES.get(root.get("iso639-3", ""), "")
    if not lang:
        raise InputError(path, None, "the <udhr> element has no xml:lang attribute")
    title_el = root.find(f"{ns}title")
    title = _text(title_el) if title_el is not None else ""

    preamble_el = root.find(f"{ns}preamble")
    preamble = [] if preamble_el is None else [_text(p) for p in preamble_el.iterfind(f"{ns}para")]

    articles: dict[int, Article] = {}
    for i, el in enumerate(root.iterfind(f"{ns}article"), start=1):
        article = _read_article(el, ns, path, i)
        if article.number in articles:
            raise InputError(path, None, f"article {article.number} appears twice")
        articles[article.number] = article
    if not articles:
        raise InputError(path, None, "no <article> elements: is this a UDHR in XML file?")

    udhr = UDHR(lang=lang, title=title, preamble=preamble, articles=articles, path=path)
    _repair_known_defects(udhr)
    return udhr


def _read_article(el: ET.Element, ns: str, path: Path, position: int) -> Article:
    raw = el.get("number", "")
    if not raw.strip().isdigit():
        raise InputError(
            path, None, f"article #{position} has number {raw!r}; expected a positive integer"
        )
    number = int(raw)
    title_el = el.find(f"{ns}title")
    title = _text(title_el) if title_el is not None else f"Article {number}"
    paragraphs: list[str] = []
    numbered = False
    for child in el:
        kind = _local(child.tag)
        if kind == "para":
            paragraphs.append(_text(child))
        elif kind == "orderedlist":
            numbered = True
            for item in child.iterfind(f"{ns}listitem"):
                paragraphs.append(" ".join(_text(p) for p in item.iterfind(f"{ns}para")))
    if numbered and len(paragraphs) != sum(1 for _ in el.iter(f"{ns}listitem")):
        # A clause number must mean the same clause in every language, so a mix of plain
        # paragraphs and list items is refused rather than guessed at.
        raise InputError(path, None, f"article {number} mixes paragraphs and a numbered list")
    if not paragraphs or not all(paragraphs):
        raise InputError(path, None, f"article {number} has an empty or missing paragraph")
    return Article(number=number, title=title, paragraphs=paragraphs, numbered=numbered)


def _repair_known_defects(udhr: UDHR) -> None:
    article = udhr.articles.get(29)
    if udhr.lang != "ar" or article is None or not article.numbered or len(article.paragraphs) < 3:
        return
    clause = article.paragraphs[2]
    if clause.startswith(_ARABIC_NEGATION):
        return
    repaired = [*article.paragraphs[:2], f"{_ARABIC_NEGATION} {clause}", *article.paragraphs[3:]]
    udhr.articles[29] = replace(article, paragraphs=repaired)
    where = udhr.path.name if udhr.path is not None else "the Arabic text"
    udhr.corrections.append(
        f"art. 29(3) in {where}: the source lacks the negation «لا» at the start of the clause, "
        "which inverts its meaning; «لا » was prepended to match the official text "
        "(«لا يصح بحال من الأحوال …», 'may in no case be exercised …')."
    )


def udhr_for_lang(folder: str | Path, lang: str) -> UDHR:
    """The Declaration in `lang` (`en`, `ar`, or `eng`/`arb`) from a folder of UDHR in XML files."""
    code = _LANG_ALIASES.get(lang, lang)
    if code not in FILES:
        raise CitationError(
            f"no UDHR file is known for language {lang!r}; known: {', '.join(sorted(FILES))}"
        )
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, None, "not a folder (expected one holding udhr_*.xml files)")
    return load_udhr(folder / FILES[code])


def resolve_udhr(path: str | Path, lang: str = "en") -> UDHR:
    """A UDHR from a path the user gave: one XML file, or a folder picked from by `lang`."""
    path = Path(path)
    return load_udhr(path) if path.is_file() else udhr_for_lang(path, lang)


def format_with_sources(
    constitution: Constitution,
    udhr: UDHR | str | Path,
    lang: str = "en",
    *,
    strict: bool = False,
    width: int = 100,
) -> str:
    """Each principle's critique and comparison texts (translated when `lang` is not English),
    each followed by the text of the UDHR articles or clauses it cites.

    `udhr` is a loaded `UDHR` or a path (a file, or a folder of `udhr_*.xml` picked from by
    `lang`). A reference that does not resolve is shown inline, or raises when `strict`.
    """
    if not isinstance(udhr, UDHR):
        udhr = resolve_udhr(udhr, lang)
    lines = [f"{constitution.name} (version {constitution.version}) — {udhr.title} [{udhr.lang}]"]
    for principle in constitution.principles:
        lines.append("")
        lines.extend(_principle_block(principle, udhr, lang, strict, width))
    if udhr.corrections:
        lines += ["", "Corrections applied to the source text:"]
        lines += [_wrap(c, width, "  - ", "    ") for c in udhr.corrections]
    return "\n".join(lines) + "\n"


def _principle_block(
    principle: Principle, udhr: UDHR, lang: str, strict: bool, width: int
) -> list[str]:
    untranslated = lang not in ("en", None) and lang not in principle.translations
    texts = principle.text(None if untranslated else lang)
    header = f"[{principle.id}]"
    if principle.tags:
        header += f"  ({', '.join(principle.tags)})"
    if untranslated:
        header += f"  (no `{lang}` translation; English shown)"
    lines = [header]
    for label, value in (("critique", texts.critique), ("comparison", texts.comparison)):
        if value is not None:
            lines.append(_wrap(value, width, f"  {label}: ", "    "))
    for source in principle.sources:
        if source.kind != "udhr":
            note = f": {source.note}" if source.note else ""
            lines.append(_wrap(f"{source.kind} {source.ref}{note}", width, "  source: ", "    "))
            continue
        try:
            number, _clause = parse_article_ref(source.ref)
            cited = udhr.cite(source.ref)
            title = udhr.article(number).title
        except CitationError as e:
            if strict:
                raise
            lines.append(f"  {source.ref}: (cannot resolve: {e})")
            continue
        note = f" — {source.note}" if source.note else ""
        lines.append(_wrap(f"{source.ref} ({title}){note}", width, "  ", "    "))
        for paragraph in cited.split("\n"):
            lines.append(_wrap(paragraph, width, "      ", "      "))
    return lines


def _wrap(text: str, width: int, first: str, rest: str) -> str:
    return textwrap.fill(
        text, width=width, initial_indent=first, subsequent_indent=rest, break_long_words=False
    )
