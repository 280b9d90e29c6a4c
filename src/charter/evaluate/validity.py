"""How far a judge or labeller can be trusted: its measured accuracy on the CAI paper's 438 HHH
comparisons, looked up for the report.

`charter evaluate mc --swap` on the full file records its result in
`$CHARTER_HOME/validity/<model sha256>-<format>.json` (the model's fingerprint, see
`charter.feedback.labeler.model_fingerprint`). For the models of the catalog, the figures
measured by the project ship in `data/judge_validity.json`, so that a fresh machine's report can
say how good its default judge is. `lookup` prefers a measurement of these very weights on this
machine, then the shipped one for a catalog spec. A judge whose averaged accuracy is below
`NEAR_CHANCE`, or whose interval reaches 0.5, is near chance: the report says so in a banner.
"""

from __future__ import annotations

import datetime as _dt
import json
from importlib import resources
from pathlib import Path
from typing import Any

from charter.backends.gguf_convert import charter_home

HHH_FILE = "438HHHEvaluations.jsonl"
NEAR_CHANCE = 0.6


def cache_dir() -> Path:
    return charter_home() / "validity"


def record(result: dict[str, Any], *, model_sha256: str, data: Path, spec: str) -> Path | None:
    """Keep `evaluate mc`'s result on the whole HHH file, asked in both orders; `None` when it
    is not such a result (a subset or one order says little about the judge)."""
    if data.name != HHH_FILE or "swap" not in result or result["n"] != 438:
        return None
    entry = {
        "spec": spec,
        "model_sha256": model_sha256,
        "format": result.get("format", "raw"),
        "examples": result.get("examples", 0),
        "questions": result.get("questions", 1),
        "accuracy": result["swap"]["accuracy"],
        "ci": [result["swap"]["ci_low"], result["swap"]["ci_high"]],
        "accuracy_one_order": result["accuracy"],
        "letter_bias": result["letter_bias"],
        "ece": result["swap"]["ece"],
        "n": result["n"],
        "date": _dt.date.today().isoformat(),
        "source": "measured on this machine",
    }
    from charter.runs import atomic_write_text

    path = cache_dir() / f"{model_sha256[:16]}-{entry['format']}-{entry['examples']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(entry, indent=2) + "\n")
    return path


def shipped() -> list[dict[str, Any]]:
    text = resources.files("charter.evaluate").joinpath("data/judge_validity.json").read_text()
    entries: list[dict[str, Any]] = json.loads(text)["entries"]
    return entries


def lookup(
    spec: str, model_sha256: str | None, fmt: str, examples: int | None = None
) -> dict[str, Any] | None:
    """The judge's measured HHH accuracy in this format (this machine's measurement of these
    weights first, then the latest shipped one for the spec; with as many worked examples as
    `examples` where there is one), or `None`."""
    local: list[dict[str, Any]] = []
    if model_sha256 and cache_dir().is_dir():
        for path in cache_dir().glob(f"{model_sha256[:16]}-*.json"):
            entry = json.loads(path.read_text(encoding="utf-8"))
            if entry.get("model_sha256") == model_sha256:
                local.append(entry)
    candidates = local + [e for e in shipped() if e["spec"] == spec]
    same = [e for e in candidates if e["format"] == fmt]
    if not same:
        return None
    best = max(
        same, key=lambda e: (e in local, e.get("examples", 0) == examples, e["date"], e["n"])
    )
    return {**best, "near_chance": near_chance(best)}


def near_chance(entry: dict[str, Any]) -> bool:
    return bool(entry["accuracy"] < NEAR_CHANCE or entry["ci"][0] <= 0.5)
