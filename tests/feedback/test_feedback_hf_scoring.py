"""The prefix-sharing option scorer of `hf:` against an independent unpadded forward pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from charter.backends import load_backend
from charter.backends.hf import HFBackend
from charter.records import OptionQuery


def reference_logprob(backend: HFBackend, context: list[int], continuation: list[int]) -> float:
    """One unpadded forward pass over context + continuation, no cache, no batching."""
    ids = torch.tensor([context + continuation])
    with torch.no_grad():
        logp = torch.log_softmax(backend.model(ids).logits[0].float(), dim=-1)
    return sum(float(logp[len(context) - 1 + j, t]) for j, t in enumerate(continuation))


def test_shared_prefix_rows_match_unpadded_passes(tiny_model_dir: Path) -> None:
    b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=4)
    assert isinstance(b, HFBackend)
    shared = "A long shared few-shot block that every query starts with. " * 3
    queries = [
        OptionQuery(prompt=shared + "Question one? The answer is: (", options=["A", "B"]),
        OptionQuery(
            prompt=shared + "Q2, much longer than the first one? The answer is: (",
            options=["A", "B"],
        ),
        OptionQuery(prompt=shared + "Q3? Answer:", options=[" yes", " no way"]),
        OptionQuery(prompt=shared + "Question one? The answer is: (", options=["A", "B"]),
        OptionQuery(prompt="unrelated", options=["x", "yz"]),
    ]
    got = b.option_logprobs(queries)
    for q, scores in zip(queries, got, strict=True):
        assert isinstance(q.prompt, str)
        context = b.encode(q.prompt.rstrip(" "), rendered_chat=False)
        for option in q.options:
            cont = b.tokenizer(option, add_special_tokens=False)["input_ids"]
            assert scores[option] == pytest.approx(reference_logprob(b, context, cont), abs=1e-4)
    assert got[0] == got[3]


def test_prefix_cache_is_used_for_a_shared_prefix(tiny_model_dir: Path) -> None:
    b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=8)
    assert isinstance(b, HFBackend)
    seen: list[int] = []
    forward = b.model.forward

    def spy(*args: object, **kwargs: object) -> object:
        ids = kwargs["input_ids"]
        assert isinstance(ids, torch.Tensor)
        seen.append(ids.shape[1])
        return forward(*args, **kwargs)

    b.model.forward = spy
    shared = "x" * 200
    b.option_logprobs([OptionQuery(prompt=shared + s, options=["A", "B"]) for s in "abcd"])
    # One pass over the 200-token prefix, then one over the four one-token suffixes.
    assert seen == [200, 1]
