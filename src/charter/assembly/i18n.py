"""The interface's words in English and Arabic (right to left), from `translations/*.json`.

A page's language is the participant's choice (the `lang` cookie, set by `?lang=`), else the
conversation's. Every key exists in every language (a test checks it), so a missing word is a
test failure, never a blank on the page. Templates get `t(key, **values)`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from charter.assembly.store import LANGUAGES, Language

RTL: frozenset[str] = frozenset({"ar"})


@cache
def catalog(lang: Language) -> dict[str, str]:
    path = resources.files("charter.assembly") / "translations" / f"{lang}.json"
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def pick_language(*choices: str | None) -> Language:
    """The first of `choices` that is a supported language, else English."""
    for choice in choices:
        if choice in LANGUAGES:
            return choice
    return "en"


class Translator:
    """`t(key, **values)` for one language; `dir` is `rtl` or `ltr`."""

    def __init__(self, lang: Language) -> None:
        self.lang = lang
        self.dir = "rtl" if lang in RTL else "ltr"
        self._words = catalog(lang)

    def __call__(self, key: str, **values: Any) -> str:
        text = self._words[key]
        return text.format(**values) if values else text
