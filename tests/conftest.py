"""Shared fixtures. Tests run offline: no model hub, only local folders and the embedded model."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# `--set` items for a `charter run` of seconds: the fake policy, no training (it needs weights),
# a handful of prompts per stage.
FAKE_RUN = [
    "generation.model=fake",
    "train.enabled=false",
    "sl.limit=2",
    "label.limit=2",
    "label.principles_per_pair=1",
    "evaluate.limit=1",
    "evaluate.langs=[en]",
    "evaluate.max_new_tokens=8",
]

TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama with a byte-level tokenizer (built offline in ~0.1 s)."""
    from charter.backends.gguf_convert import make_tiny_random_model

    return make_tiny_random_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The real embedded model, converted once into the user cache (shared across runs)."""
    from charter.backends.gguf_convert import ensure_embedded_model

    return ensure_embedded_model()


def run_cli(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run `charter ARGS` in a fresh interpreter, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "charter", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
