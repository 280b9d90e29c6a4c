"""Detecting failed revisions: what a small model's "revision" often is instead of one.

A revision is rejected with a reason when it is empty, unchanged, an echo of the request, only
meta-text ("Here is the revised response:"), a copy of one of the worked examples' texts (small
models often repeat the few-shot revision instead of revising), far longer than what it revises
(runaway), or a loop of repeated phrases. Leading meta-text is stripped when the rest is usable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

# Openers that announce a revision instead of being one (English and Arabic).
META_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^(?:sure|okay|ok|certainly|of course)?[,.!]?\s*"
        r"(?:here(?:'s| is)|below is|this is) (?:the |a |my |an )?"
        r"(?:revised|rewritten|improved|updated|new|edited|corrected)\s+"
        r"(?:response|version|answer|reply|text)[^:\n]{0,40}:\s*",
        r"^(?:the )?(?:revised|rewritten|improved|updated) "
        r"(?:response|version|answer|reply)\s*:\s*",
        r"^revision\s*:\s*",
        r"^(?:إليك|إليكم|هذه|هذا|فيما يلي)\s+(?:هي\s+|هو\s+)?"
        r"(?:الرد|الإجابة|النسخة|الجواب|الاستجابة)\s+"
        r"(?:المعدل|المعدلة|المنقح|المنقحة|المحسن|المحسنة|الجديد|الجديدة)[^:\n]{0,40}[:：]\s*",
        r"^(?:المراجعة|التعديل|الرد المعدل|الإجابة المعدلة)\s*[:：]\s*",
    )
]


@dataclass(frozen=True)
class RevisionCheck:
    accepted: bool
    text: str
    reason: str | None = None
    note: str | None = None


def normalize(text: str) -> str:
    """Case- and whitespace-insensitive form used for comparisons."""
    return " ".join(text.casefold().split())


def strip_meta(text: str) -> tuple[str, bool]:
    """Remove a leading announcement such as "Here is the revised response:".

    >>> strip_meta("Sure, here's the revised response: Hello.")
    ('Hello.', True)
    >>> strip_meta("إليك الرد المعدل: مرحبا")
    ('مرحبا', True)
    """
    for pattern in META_PATTERNS:
        m = pattern.match(text)
        if m:
            return text[m.end() :].strip(), True
    return text, False


def repetition_ratio(text: str, n: int = 4) -> float:
    """Share of word n-grams that repeat an earlier one (0 for fresh text, → 1 for a loop)."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if len(grams) < 12:
        return 0.0
    return 1 - len(set(grams)) / len(grams)


def check_revision(
    previous: str,
    revision: str,
    requests: list[str],
    *,
    max_growth: float = 4.0,
    max_repetition: float = 0.5,
    examples: Sequence[str] = (),
) -> RevisionCheck:
    """Accept or reject one revision of `previous`; `requests` are the critique and revision
    requests the model was given (an answer that repeats them is an echo, not a revision) and
    `examples` the texts of the worked examples it was shown."""
    text, stripped = strip_meta(revision.strip())
    note = "stripped meta-text" if stripped else None
    if not text:
        return RevisionCheck(False, text, "meta-text only" if stripped else "empty", note)
    norm = normalize(text)
    if norm == normalize(previous):
        return RevisionCheck(False, text, "unchanged", note)
    for request in requests:
        req = normalize(request)
        if req and (req in norm or norm in req or norm.startswith(req[:60])):
            return RevisionCheck(False, text, "echoes the request", note)
    head = norm[:300]
    for example in examples:
        if SequenceMatcher(None, head, normalize(example)[:300], autojunk=False).ratio() > 0.6:
            return RevisionCheck(False, text, "copies a worked example", note)
    if len(text) > max_growth * max(len(previous), 120):
        return RevisionCheck(False, text, "runaway length", note)
    if repetition_ratio(text) > max_repetition:
        return RevisionCheck(False, text, "repetitive", note)
    return RevisionCheck(True, text, None, note)
