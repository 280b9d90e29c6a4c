"""SL-CAI's own preference pairs (`sl/pairs.jsonl`), for DPO when the labeller is too weak.

Two kinds, each preferred by construction under the constitution:

- *revision*: on a red-team prompt, the accepted revision over the answer it revised (the
  critique/revision pairs that open recipes of CAI with DPO train on);
- *contrast*: on a helpful or borderline prompt of the mix, the policy's helpful answer over a
  decline taken from the accepted revisions (in the prompt's language where there is one), so
  that DPO teaches where declining stops as well as where it starts.

No model votes on them (`p_chosen` is 1.0); they are what the SL stage already decided. The
paper's RL-CAI labels pairs sampled from the SL-CAI model with the feedback model instead
(`train.pairs: label`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from charter.records import Message, SFTRecord, stable_id
from charter.sl.revise import SLSample

PAIRS = "pairs.jsonl"


def preference_pairs(
    samples: Sequence[SLSample], helpful_rows: Sequence[SFTRecord]
) -> list[dict[str, Any]]:
    """The revision pairs of `samples`, then one contrast pair per helpful row (none when no
    accepted revision declines), as rows in `charter label`'s preference format.
    """
    from charter.evaluate.refusal import match_pattern

    revised = [s for s in samples if s.revised and s.final.strip() != s.initial.strip()]
    out = [
        _row(s.id, "revision", s.messages, s.final, s.initial, s.prompt_id, s.lang) for s in revised
    ]
    declines: dict[str, list[str]] = {}
    for s in revised:
        if match_pattern(s.final) is not None:
            declines.setdefault(s.lang, []).append(s.final)
    every = [d for texts in declines.values() for d in texts]
    if not every:
        return out
    for i, row in enumerate(helpful_rows):
        lang = str(row.meta.get("lang", ""))
        pool = declines.get(lang) or every
        prompt, answer = row.messages[:-1], row.messages[-1].content
        pid = str(row.meta.get("prompt_id", row.id))
        out.append(_row(row.id, "contrast", prompt, answer, pool[i % len(pool)], pid, lang))
    return out


def _row(
    key: str,
    kind: str,
    prompt: Sequence[Message],
    chosen: str,
    rejected: str,
    prompt_id: str,
    lang: str | None,
) -> dict[str, Any]:
    return {
        "id": stable_id(key, kind, rejected),
        "kind": kind,
        "prompt_id": prompt_id,
        "lang": lang,
        "prompt": [m.model_dump(mode="json") for m in prompt],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "p_chosen": 1.0,
    }
