"""What every engine benchmark shares: the torch fp32 twin of the spec under test (its
baseline), the options charter is measured with, the prompts, and an untimed warm-up."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from charter.data import load_prompts
from charter.errors import CharterError
from charter.records import PromptRecord, Sampling

if TYPE_CHECKING:
    from charter.backends.hf import HFBackend


def bench_prompts(n: int) -> list[PromptRecord]:
    """`n` prompts cycled from the builtin demo set, each with its own id."""
    base = load_prompts("demo")
    return [base[i % len(base)].model_copy(update={"id": f"bench-{i}"}) for i in range(n)]


def warm_up(backend: Any, chats: list[Any], batch_size: int, max_new_tokens: int) -> None:
    """One untimed full batch at full length: on a GPU the first calls pay for loading kernels
    and choosing matrix-product algorithms for each new shape, which a real run amortizes."""
    if chats:
        batch = [chats[i % len(chats)] for i in range(batch_size)]
        forced = Sampling(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens)
        backend.generate(batch, forced)
        forget = getattr(backend, "forget", None)
        if callable(forget):
            forget()


def torch_twin(backend_spec: str) -> str:
    """The spec of the same weights on the torch engine: the baseline of every engine bench.

    >>> torch_twin("ct2:embedded"), torch_twin("ct2:/m"), torch_twin("hf:/m")
    ('embedded', 'hf:/m', 'hf:/m')
    """
    from charter.backends import check_spec

    name, arg = check_spec(backend_spec)
    if name == "ct2":
        return "embedded" if arg == "embedded" else f"hf:{arg}"
    if name not in ("embedded", "hf"):
        raise CharterError(
            f"this benchmark needs a local model (embedded, hf:PATH or ct2:PATH), not "
            f"{backend_spec!r}: its baseline is transformers on the same weights"
        )
    return backend_spec


def engine_under_test(backend_spec: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The options the benchmarks measure charter with: CTranslate2 for the embedded model and
    local `hf:` folders unless the user names an engine (it is not the default engine yet, see
    `charter.backends.engine`; the benchmarks measure it against torch fp32)."""
    options = dict(options or {})
    local = backend_spec == "embedded" or (
        backend_spec.startswith("hf:") and Path(backend_spec[3:]).expanduser().is_dir()
    )
    if local and "engine" not in options:
        options["engine"] = "ct2"
    return options


def load_torch_baseline(backend_spec: str, batch_size: int, **options: Any) -> HFBackend:
    """The transformers fp32 backend on the same weights as `backend_spec`."""
    from charter.backends import load_backend
    from charter.backends.hf import HFBackend

    backend = load_backend(
        torch_twin(backend_spec),
        engine="torch",
        dtype="float32",
        batch_size=batch_size,
        **options,
    )
    assert isinstance(backend, HFBackend)
    return backend
