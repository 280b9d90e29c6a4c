"""Shared-prefix batching of `hf:`: rows grouped by prefix, each prefix computed once, and the
same numbers as without the cache (greedy text, option log-probs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from charter.backends import load_backend
from charter.backends.hf import HFBackend, prefix_groups
from charter.records import Message, OptionQuery, Sampling

FEW_SHOT_A = "Worked example one: a request, a critique of the answer, a better answer. " * 4
FEW_SHOT_B = "A different worked example about privacy and what not to reveal about people. " * 4


def chats() -> list[list[Message]]:
    """Two groups sharing a long system turn each, plus two rows that share nothing long."""
    out = []
    for i, shot in enumerate([FEW_SHOT_A] * 3 + [FEW_SHOT_B] * 3):
        out.append(
            [
                Message(role="system", content=shot),
                Message(role="user", content=f"Question {i}: " + "why? " * (i + 1)),
            ]
        )
    out.append([Message(role="user", content="Short and alone.")])
    out.append([Message(role="user", content="Another one, a little longer than that.")])
    return out


def spy_forward(b: HFBackend) -> list[tuple[int, int]]:
    """Record (batch, width) of every forward pass."""
    seen: list[tuple[int, int]] = []
    forward = b.model.forward

    def spy(*args: object, **kwargs: object) -> object:
        ids = kwargs["input_ids"]
        assert isinstance(ids, torch.Tensor)
        seen.append((ids.shape[0], ids.shape[1]))
        return forward(*args, **kwargs)

    b.model.forward = spy
    return seen


def test_prefix_groups_orders_groups_then_the_rest() -> None:
    a = [1] * 40
    rows = [[5, 5], [*a, 2], [9] * 30, [*a, 3, 3], [*a, 4], [1] * 10 + [7]]
    order, shared = prefix_groups(rows, 16)
    assert order == [3, 1, 4, 2, 5, 0]  # the group (longest first), then the rest
    assert shared == [0, 40, 0, 40, 40, 0]
    assert prefix_groups(rows, 64)[1] == [0] * 6  # nothing shares 64 tokens
    assert prefix_groups([], 16) == ([], [])


def test_generation_with_prefix_groups_matches_plain_batches(tiny_model_dir: Path) -> None:
    b = load_backend(f"hf:{tiny_model_dir}", batch_size=8)
    assert isinstance(b, HFBackend)
    greedy = Sampling(max_new_tokens=12, temperature=0.0)
    seen = spy_forward(b)
    cached = b.generate(chats(), greedy)
    # Two prefix passes (one per group, batch of one), then the batch's own passes.
    prefixes = [w for n, w in seen if n == 1]
    assert len(prefixes) == 2 and min(prefixes) > 200
    b.prefix_cache = False
    seen.clear()
    plain = b.generate(chats(), greedy)
    assert all(n == 8 for n, _ in seen)  # no prefix passes
    assert [c.text for c in cached] == [c.text for c in plain]
    assert [c.completion_tokens for c in cached] == [c.completion_tokens for c in plain]
    assert [c.prompt_tokens for c in cached] == [c.prompt_tokens for c in plain]


def test_option_scoring_with_prefix_groups_matches_plain(tiny_model_dir: Path) -> None:
    b = load_backend(f"hf:{tiny_model_dir}", batch_size=8)
    assert isinstance(b, HFBackend)
    queries = [OptionQuery(prompt=c, options=["A", "B"]) for c in chats()] + [
        OptionQuery(prompt=FEW_SHOT_A + "Is this fine? Answer:", options=[" yes", " no way"])
    ]
    cached = b.option_logprobs(queries)
    b.prefix_cache = False
    plain = b.option_logprobs(queries)
    for x, y in zip(cached, plain, strict=True):
        assert list(x) == list(y)
        for option in x:
            assert x[option] == pytest.approx(y[option], abs=1e-4)


def test_prefix_cache_option_is_validated(tiny_model_dir: Path) -> None:
    from charter.errors import BackendError

    assert load_backend(f"hf:{tiny_model_dir}", prefix_cache="false").prefix_cache is False  # type: ignore[attr-defined]
    with pytest.raises(BackendError, match="prefix_cache must be true or false"):
        load_backend(f"hf:{tiny_model_dir}", prefix_cache="maybe")
