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
    b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=8)
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
    b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=8)
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

    backend = load_backend(f"hf:{tiny_model_dir}", engine="torch", prefix_cache="false")
    assert backend.prefix_cache is False  # type: ignore[attr-defined]
    with pytest.raises(BackendError, match="prefix_cache must be true or false"):
        load_backend(f"hf:{tiny_model_dir}", engine="torch", prefix_cache="maybe")


def test_a_call_continues_the_previous_calls_conversations(tiny_model_dir: Path) -> None:
    """An SL-CAI revision continues its critique's conversation: the second call starts from
    the first call's keys and values and gives the same greedy text as without them."""
    greedy = Sampling(max_new_tokens=12, temperature=0.0)
    first = chats()[:6]
    outputs = {}
    budgets: dict[str, int] = {"kept": 2048, "none": 0}
    for name, mb in budgets.items():
        b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=8, kv_store_mb=mb)
        assert isinstance(b, HFBackend)
        answers = b.generate(first, greedy)
        second = [
            [*c, Message(role="assistant", content=a.text), Message(role="user", content="Again.")]
            for c, a in zip(first, answers, strict=True)
        ]
        seen = spy_forward(b)
        outputs[name] = [c.text for c in b.generate(second, greedy)]
        full = min(len(b.encode_chat(c)) for c in second)
        # Prefill width: with kept keys and values only the new turn (and any padding).
        prefill = seen[0] if name == "kept" else next(w for w in seen if w[0] == 6)
        if name == "kept":
            assert prefill[0] == 6 and prefill[1] < 60 < full
        else:
            assert prefill[1] >= full - 300  # the rows' own parts, after the group prefixes
    assert outputs["kept"] == outputs["none"]


def test_kv_store_respects_its_budget(tiny_model_dir: Path) -> None:
    b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=8, kv_store_mb=1)
    assert isinstance(b, HFBackend)
    b.generate(chats(), Sampling(max_new_tokens=4, temperature=0.0))
    assert 0 < sum(s.nbytes for s in b._kv_store) <= 2**20
    off = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=8, kv_store_mb=0)
    assert isinstance(off, HFBackend)
    off.generate(chats(), Sampling(max_new_tokens=4, temperature=0.0))
    assert off._kv_store == []


def test_static_cache_gives_the_text_of_a_growing_cache(tiny_model_dir: Path) -> None:
    """On CPU generation writes keys and values into one buffer sized for the call (no copy of
    the whole cache per step): same greedy text as the growing cache, with and without shared
    prefixes, and when a call continues the previous call's conversations."""
    from transformers import DynamicCache, StaticCache

    greedy = Sampling(max_new_tokens=12, temperature=0.0)
    texts: dict[tuple[bool, bool], list[str]] = {}
    for static in (True, False):
        for prefix in (True, False):
            b = load_backend(
                f"hf:{tiny_model_dir}",
                engine="torch",
                batch_size=4,
                static_cache=static,
                prefix_cache=prefix,
            )
            assert isinstance(b, HFBackend) and b.static_cache is static
            caches: list[type] = []
            generate = b.model.generate

            def spy(
                *args: object,
                _generate: object = generate,
                _caches: list[type] = caches,
                **kwargs: object,
            ) -> object:
                cache = kwargs.get("cache", kwargs.get("past_key_values"))
                _caches.append(type(cache))
                return _generate(*args, **kwargs)  # type: ignore[operator]

            b.model.generate = spy
            answers = b.generate(chats(), greedy)
            assert bool(b._kv_store) is prefix  # kept from the static cache too
            again = [
                [*c, Message(role="assistant", content=a.text), Message(role="user", content="?")]
                for c, a in zip(chats(), answers, strict=True)
            ]
            texts[static, prefix] = [c.text for c in answers + b.generate(again, greedy)]
            if static:
                assert caches and all(c is StaticCache for c in caches)
            else:
                assert all(c in (DynamicCache, type(None)) for c in caches)
    assert texts[True, True] == texts[False, True] == texts[True, False] == texts[False, False]


def test_static_cache_option(tiny_model_dir: Path) -> None:
    from charter.errors import BackendError

    assert load_backend(f"hf:{tiny_model_dir}", engine="torch").static_cache is True  # type: ignore[attr-defined]
    off = load_backend(f"hf:{tiny_model_dir}", engine="torch", static_cache="false")
    assert off.static_cache is False  # type: ignore[attr-defined]
    with pytest.raises(BackendError, match="static_cache must be true or false"):
        load_backend(f"hf:{tiny_model_dir}", engine="torch", static_cache="sometimes")
    # A model whose generation config names its own cache gets that cache (transformers refuses
    # a cache object beside `cache_implementation`).
    own = load_backend(f"hf:{tiny_model_dir}", engine="torch", prefix_cache=False)
    assert isinstance(own, HFBackend)
    own.model.generation_config.cache_implementation = "dynamic"
    assert own.generate(chats()[:2], Sampling(max_new_tokens=3, temperature=0.0))[0].text


def test_embedded_takes_every_hf_option() -> None:
    """`embedded` is `hf:` over the bundled model: each `hf:` option works there too."""
    import inspect

    from charter.backends.embedded import EmbeddedBackend

    hf = set(inspect.signature(HFBackend.__init__).parameters) - {"self", "path", "spec"}
    assert hf <= set(inspect.signature(EmbeddedBackend.__init__).parameters)
