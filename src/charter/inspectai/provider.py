"""An Inspect model provider for charter's backends: `--model charter/SPEC`.

Inspect calls `generate` once per sample, concurrently; charter's local backends are not
thread-safe, so calls go to the backend one at a time, in a worker thread (the event loop stays
free). The backend is loaded on the first call, from the spec after `charter/`
(`charter/embedded`, `charter/hf:/models/x`, `charter/ct2:embedded`, `charter/fake`), with any
`-M key=value` model args as backend options.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from charter.records import Message, OptionQuery, Sampling

DEFAULT_MAX_TOKENS = 128


def to_messages(messages: list[ChatMessage]) -> list[Message]:
    """Inspect chat messages as charter's (system, user, assistant; tool turns are refused)."""
    out = []
    for m in messages:
        if m.role not in ("system", "user", "assistant"):
            raise ValueError(f"charter backends take system, user and assistant turns: {m.role}")
        out.append(Message(role=m.role, content=m.text))
    return out


def to_inspect(messages: list[Message]) -> list[ChatMessage]:
    """charter's chat messages as Inspect's (the inverse of `to_messages`)."""
    kinds = {
        "system": ChatMessageSystem,
        "user": ChatMessageUser,
        "assistant": ChatMessageAssistant,
    }
    return [kinds[m.role](content=m.content) for m in messages]


def to_sampling(config: GenerateConfig) -> Sampling:
    """Inspect's generate config as charter's sampling (temperature 0 is greedy)."""
    return Sampling(
        max_new_tokens=config.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=config.temperature if config.temperature is not None else 0.0,
        top_p=config.top_p if config.top_p is not None else 1.0,
        seed=config.seed if config.seed is not None else 0,
    )


@modelapi(name="charter")
class CharterModelAPI(ModelAPI):
    """Any charter backend as an Inspect model (see the module docstring)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 - Inspect's own signature
        **model_args: Any,
    ) -> None:
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key, config=config)
        from charter.backends import check_spec

        check_spec(model_name)
        self.spec = model_name
        self.options = dict(model_args)
        self._backend: Any = None
        self._lock = threading.Lock()

    def charter_backend(self) -> Any:
        """The charter backend, loaded on first use."""
        with self._lock:
            if self._backend is None:
                from charter.backends import load_backend

                self._backend = load_backend(self.spec, **self.options)
            return self._backend

    def option_probs(self, query: OptionQuery) -> dict[str, float]:
        """The backend's normalized probabilities of a query's options (charter's scoring)."""
        from charter.backends.base import normalized_option_probs

        backend = self.charter_backend()
        with self._lock:
            (logprobs,) = backend.option_logprobs([query])
        return normalized_option_probs(logprobs)

    def max_connections(self) -> int:
        return 1  # one request at a time: the backend answers them in turn anyway

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        chat, sampling = to_messages(input), to_sampling(config)

        def answer() -> str:
            backend = self.charter_backend()
            with self._lock:
                (completion,) = backend.generate([chat], sampling)
            return str(completion.text)

        text = await asyncio.to_thread(answer)
        return ModelOutput.from_content(model=self.model_name, content=text)
