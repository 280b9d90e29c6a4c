"""The `embedded` backend's caches (shared prefixes, keys and values kept between calls, the
static cache) on the real model through the SL-CAI stage: the same text as without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from charter.backends import load_backend
from charter.constitution.load import load_constitution
from charter.data import load_prompts
from charter.records import Sampling
from charter.runs import JsonlWriter
from charter.sl.revise import SLConfig, critique_and_revise

pytestmark = pytest.mark.slow


def test_sl_texts_are_the_same_with_and_without_caches(embedded_dir: Path, tmp_path: Path) -> None:
    prompts = load_prompts("builtin:red-team", lang="en", split="train")[:4]
    constitution = load_constitution("udhr").localized("en")
    greedy = Sampling(max_new_tokens=16, temperature=0.0)
    cfg = SLConfig(rounds=1, few_shot=1, lang="en", chunk_size=4)
    texts = {}
    runs: dict[str, dict[str, Any]] = {
        "caches": {"engine": "torch"},
        "none": {"engine": "torch", "prefix_cache": False, "static_cache": False},
    }
    for name, options in runs.items():
        backend = load_backend("embedded", batch_size=4, **options)
        writer = JsonlWriter(tmp_path / f"{name}.jsonl")
        critique_and_revise(prompts, backend, constitution, cfg, greedy, writer, progress=False)
        rows = writer.path.read_text(encoding="utf-8").splitlines()
        texts[name] = sorted(rows)
        assert len(rows) == 4
    assert texts["caches"] == texts["none"]
