"""The in-process vLLM backend (`vllm:<model>`): one-node high-throughput generation on a GPU.

vLLM is imported only here, and only when this backend is created. It cannot run without a
CUDA GPU, so creating it elsewhere fails at once with an error that says what is missing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from charter.backends.base import truncate_at_stop
from charter.errors import BackendError
from charter.records import Completion, Message, OptionQuery, Sampling


class VLLMBackend:
    """Options: `tensor_parallel_size`, `gpu_memory_utilization`, `dtype`, `max_model_len`."""

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        dtype: str = "auto",
        max_model_len: int | None = None,
    ) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise BackendError(
                "the vllm backend needs vLLM, which is not installed: `pip install vllm` on a "
                "machine with a CUDA GPU, or use hf:<model> (transformers) or "
                "openai:<url>#<model> against a vLLM server"
            )
        import torch

        if not torch.cuda.is_available():
            raise BackendError(
                "the vllm backend needs a CUDA GPU and none is visible here; use hf:<model> on "
                "CPU, or openai:<url>#<model> against a vLLM server running elsewhere"
            )
        from vllm import LLM

        self.spec = f"vllm:{model}"
        kwargs: dict[str, Any] = {
            "model": model,
            "tensor_parallel_size": int(tensor_parallel_size),
            "gpu_memory_utilization": float(gpu_memory_utilization),
            "dtype": dtype,
        }
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def _render(self, chat: Sequence[Message]) -> str:
        text: str = self.tokenizer.apply_chat_template(
            [m.model_dump() for m in chat], tokenize=False, add_generation_prompt=True
        )
        return text

    def generate(self, requests: Sequence[Sequence[Message]], params: Sampling) -> list[Completion]:
        from vllm import SamplingParams

        sp = SamplingParams(
            max_tokens=params.max_new_tokens,
            min_tokens=params.min_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            stop=list(params.stop) or None,
        )
        outputs = self.llm.generate([self._render(c) for c in requests], sp, use_tqdm=False)
        results = []
        for o in outputs:
            gen = o.outputs[0]
            text, stopped = truncate_at_stop(gen.text, params.stop)
            results.append(
                Completion(
                    text=text,
                    finish_reason="length"
                    if gen.finish_reason == "length" and not stopped
                    else "stop",
                    prompt_tokens=len(o.prompt_token_ids or []),
                    completion_tokens=len(gen.token_ids),
                )
            )
        return results

    def option_logprobs(self, requests: Sequence[OptionQuery]) -> list[dict[str, float]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts, spans = [], []
        for q in requests:
            prefix = self._render(q.prompt) if isinstance(q.prompt, list) else q.prompt
            stripped = prefix.rstrip(" ")
            context = self.tokenizer(stripped, add_special_tokens=not isinstance(q.prompt, list))[
                "input_ids"
            ]
            for option in q.options:
                cont = self.tokenizer(prefix[len(stripped) :] + option, add_special_tokens=False)[
                    "input_ids"
                ]
                prompts.append(TokensPrompt(prompt_token_ids=context + cont))
                spans.append((len(context), len(cont)))
        # prompt_logprobs=0 returns the log-prob of each actual prompt token (plus the top 0).
        sp = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outputs = self.llm.generate(prompts, sp, use_tqdm=False)
        scores = []
        for out, (start, length) in zip(outputs, spans, strict=True):
            ids, plp = out.prompt_token_ids, out.prompt_logprobs
            scores.append(sum(plp[i][ids[i]].logprob for i in range(start, start + length)))
        result: list[dict[str, float]] = []
        k = 0
        for q in requests:
            result.append({o: float(scores[k + j]) for j, o in enumerate(q.options)})
            k += len(q.options)
        return result
