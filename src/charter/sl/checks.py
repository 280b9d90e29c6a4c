"""Detecting failed revisions: what a small model's "revision" often is instead of one.

A revision is rejected with a reason when it is empty, unchanged or barely changed (90% the same
text: a reviser that copies, or continues, the answer it was asked to rewrite), an echo of the
request, only meta-text ("Here is the revised response:"), a copy of one of the worked examples'
texts (small models often repeat the few-shot revision instead of revising), far longer than what
it revises (runaway), or a loop of repeated phrases. Leading meta-text is stripped when the rest is
usable.

Two semantic checks follow (`topic_check`, on by default): a revision that refuses a benign
request (one whose prompt set is not `red-team`; by the refusal detector's patterns) is rejected,
since CAI's revisions must not teach evasiveness; and a revision that no longer addresses the
request (it shares no content word with the request, and is not a refusal of a harmful one) is
rejected as off-topic, the small model's drift into unrelated text. With `decline` (off by
default), a revision of a harmful request must decline it (the refusal detector's patterns): the
graders cannot tell a harmless rewrite from a reworded compliance, and a small reviser's rewrites
of harmful answers are mostly the latter.
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


# Words that say nothing about a request's topic (English; Arabic words under 3 letters are
# dropped by length, and the article ال is stripped).
_STOPWORDS_TEXT = """
about above after again also because been before being below between both could does doing down
during each from further have having here into just more most other over own same should some
such than that their theirs them then there these they this those through under until very what
when where which while will with would your yours you please tell write give make explain help
want need know like how can the and for are was were not but all any our out who why its it's
i'm
كيف ماذا لماذا متى أين هذا هذه ذلك تلك التي الذي على إلى الى عن مع يمكن يمكنني أريد هل ليس كان
كانت أو ثم لكن
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_WORD = re.compile(r"[a-z0-9]+|[\u0621-\u064a]+")


def content_words(text: str) -> set[str]:
    """The words of `text` that carry its topic: English words of 4+ letters not in
    `STOPWORDS` (a plural's final s dropped), Arabic words of 3+ letters without the article.

    >>> sorted(content_words("How do I bake sourdough breads at home?"))
    ['bake', 'bread', 'home', 'sourdough']
    >>> sorted(content_words("كيف أخبز الخبز في البيت"))
    ['أخبز', 'بيت', 'خبز']
    """
    out = set()
    for w in _WORD.findall(text.casefold()):
        if w[0].isascii():
            if len(w) >= 4 and w not in STOPWORDS:
                out.add(w[:-1] if w.endswith("s") and len(w) > 4 else w)
        else:
            w = w[2:] if w.startswith("ال") and len(w) > 4 else w
            if len(w) >= 3 and w not in STOPWORDS:
                out.add(w)
    return out


def off_topic(request: str, text: str) -> bool:
    """No content word of `request` (of at least 2) appears in `text`.

    >>> off_topic("How do I bake sourdough bread?", "Preheat the oven; the bread needs steam.")
    False
    >>> off_topic("How do I bake sourdough bread?", "Football is a popular sport worldwide.")
    True
    """
    words = content_words(request)
    return len(words) >= 2 and not words & content_words(text)


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


# A revision at least this similar to what it revises (difflib's ratio) is "barely changed".
MAX_SIMILARITY = 0.9


def barely_changed(previous: str, revision: str) -> bool:
    """`revision` is `previous` continued, or at least `MAX_SIMILARITY` the same text.

    >>> barely_changed("The best place to", "The best place to hit someone")
    True
    >>> barely_changed("Hit them in the ribs.", "I can't help you hurt someone.")
    False
    """
    a, b = normalize(previous), normalize(revision)
    if a and b.startswith(a):
        return True
    return SequenceMatcher(None, a, b, autojunk=False).ratio() >= MAX_SIMILARITY


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
    request: str | None = None,
    harmful: bool = True,
    decline: bool = False,
) -> RevisionCheck:
    """Accept or reject one revision of `previous`; `requests` are the critique and revision
    requests the model was given (an answer that repeats them is an echo, not a revision) and
    `examples` the texts of the worked examples it was shown. With the user's `request`, the
    semantic checks run too; `harmful` says whether the request is a red-team one (a refusal of
    it is on topic) or benign (a refusal of it is rejected); with `decline`, a revision of a
    harmful request that does not refuse it is rejected too."""
    # Here, not at the top: the refusal module loads numpy, and the CLI imports this one.
    from charter.evaluate.refusal import match_pattern

    text, stripped = strip_meta(revision.strip())
    note = "stripped meta-text" if stripped else None
    if not text:
        return RevisionCheck(False, text, "meta-text only" if stripped else "empty", note)
    norm = normalize(text)
    if norm == normalize(previous):
        return RevisionCheck(False, text, "unchanged", note)
    if barely_changed(previous, text):
        return RevisionCheck(False, text, "barely changed", note)
    for asked in requests:
        req = normalize(asked)
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
    refuses = match_pattern(text) is not None
    if request is not None:
        if refuses and not harmful:
            return RevisionCheck(False, text, "refuses a benign request", note)
        if not refuses and off_topic(request, text):
            return RevisionCheck(False, text, "does not address the request", note)
    if decline and harmful and not refuses:
        return RevisionCheck(False, text, "does not decline a harmful request", note)
    return RevisionCheck(True, text, None, note)
