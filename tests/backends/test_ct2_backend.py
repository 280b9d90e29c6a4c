"""The CTranslate2 backend: conversion once by content, engine choice, generation and scoring
against the torch backend on the same weights, and clear errors on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from charter.backends import load_backend
from charter.backends.ct2 import CT2Backend, partition, score_batches
from charter.backends.hf import HFBackend
from charter.errors import BackendError
from charter.records import Message, OptionQuery, Sampling
from conftest import run_cli

CHATS = [
    [Message(role="user", content="hello there")],
    [Message(role="user", content="a much longer question, asked with many more words in it")],
    [
        Message(role="system", content="Be brief."),
        Message(role="user", content="why is the sky blue?"),
    ],
]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $CHARTER_HOME, so each test sees its own conversion cache."""
    monkeypatch.setenv("CHARTER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def converted(home: Path) -> list[str]:
    root = home / "ct2"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_converts_once_by_content(tiny_model_dir: Path, home: Path, tmp_path: Path) -> None:
    first = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32")
    assert isinstance(first, CT2Backend) and first.converted_now
    again = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32")
    assert isinstance(again, CT2Backend) and not again.converted_now
    assert again.model_dir == first.model_dir
    # The same files in another folder: same content, so the same converted copy.
    copy = tmp_path / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, copy)
    moved = load_backend(f"ct2:{copy}", compute_type="float32")
    assert isinstance(moved, CT2Backend) and not moved.converted_now
    assert moved.model_dir == first.model_dir
    # int8 stores its weights differently: one more copy, and nothing else in the cache.
    load_backend(f"ct2:{tiny_model_dir}", compute_type="int8")
    names = converted(home)
    assert len(names) == 2 and {n.rsplit("-", 1)[1] for n in names} == {"float32", "int8"}
    mark = json.loads((first.model_dir / "charter-ct2.json").read_text())
    assert mark["weights"] == "float32" and len(mark["source_sha256"]) == 64


def test_changed_weights_convert_again(tiny_model_dir: Path, home: Path, tmp_path: Path) -> None:
    from charter.backends.gguf_convert import make_tiny_random_model

    other = make_tiny_random_model(tmp_path / "other", seed=1)
    a = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32")
    b = load_backend(f"ct2:{other}", compute_type="float32")
    assert isinstance(a, CT2Backend) and isinstance(b, CT2Backend)
    assert a.model_dir != b.model_dir and b.converted_now


def test_engine_choice(tiny_model_dir: Path, home: Path) -> None:
    # Not the default (int8 changed the embedded model's answers); a ct2 option asks for it.
    assert isinstance(load_backend(f"hf:{tiny_model_dir}"), HFBackend)
    assert isinstance(load_backend(f"hf:{tiny_model_dir}", compute_type="float32"), CT2Backend)
    assert isinstance(load_backend(f"hf:{tiny_model_dir}", engine="torch"), HFBackend)
    b = load_backend(f"hf:{tiny_model_dir}", engine="ct2", compute_type="float32", workers=1)
    assert isinstance(b, CT2Backend)
    info = b.describe()
    assert info["engine"] == "ct2" and info["compute_type"] == "float32"
    assert info["workers"] == 1 and info["spec"] == f"hf:{tiny_model_dir}"
    with pytest.raises(BackendError, match="engine=torch"):
        load_backend(f"hf:{tiny_model_dir}", engine="ct2", dtype="bfloat16")
    with pytest.raises(BackendError, match="engine=ct2"):
        load_backend(f"hf:{tiny_model_dir}", engine="torch", compute_type="int8")
    with pytest.raises(BackendError, match="expected auto, torch or ct2"):
        load_backend(f"hf:{tiny_model_dir}", engine="tensorrt")


def test_generation_matches_torch_fp32(tiny_model_dir: Path, home: Path) -> None:
    """Greedy decoding on float32 gives torch's tokens, with the same Completion fields."""
    torch_b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=2)
    ct2_b = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32", batch_size=2)
    greedy = Sampling(max_new_tokens=12, temperature=0.0)
    want = torch_b.generate(CHATS, greedy)
    got = ct2_b.generate(CHATS, greedy)
    assert [c.text for c in got] == [c.text for c in want]
    assert [c.prompt_tokens for c in got] == [c.prompt_tokens for c in want]
    assert [c.completion_tokens for c in got] == [c.completion_tokens for c in want]
    assert [c.finish_reason for c in got] == [c.finish_reason for c in want]


def test_lengths_and_stops(tiny_model_dir: Path, home: Path) -> None:
    b = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32")
    forced = b.generate(CHATS, Sampling(max_new_tokens=7, min_new_tokens=7, seed=3))
    assert all(c.completion_tokens == 7 and c.finish_reason == "length" for c in forced)
    capped = b.generate(CHATS, Sampling(max_new_tokens=3, temperature=0.0))
    assert all(c.completion_tokens <= 3 for c in capped)
    text = capped[0].text
    if text:  # a stop string inside the text cuts it at its first occurrence, as a stop
        stop = text[-1]
        cut = b.generate(CHATS[:1], Sampling(max_new_tokens=3, temperature=0.0, stop=[stop]))
        assert cut[0].text == text[: text.index(stop)] and cut[0].finish_reason == "stop"


def test_sampling_is_seeded(tiny_model_dir: Path, home: Path) -> None:
    """A fresh backend with one worker samples the same for the same seed, and differently
    for another seed (also after switching back: the generator is re-seeded)."""
    params = Sampling(max_new_tokens=16, temperature=1.0, seed=5)

    def texts(seed: int, b: CT2Backend) -> list[str]:
        return [c.text for c in b.generate(CHATS, params.model_copy(update={"seed": seed}))]

    one = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32", workers=1)
    two = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32", workers=1)
    assert isinstance(one, CT2Backend) and isinstance(two, CT2Backend)
    a = texts(5, one)
    assert texts(5, two) == a
    assert texts(6, one) != a
    assert texts(5, one) == a


def test_top_k_one_is_greedy(tiny_model_dir: Path, home: Path) -> None:
    b = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32")
    greedy = [c.text for c in b.generate(CHATS, Sampling(max_new_tokens=8, temperature=0.0))]
    top1 = b.generate(CHATS, Sampling(max_new_tokens=8, temperature=1.3, top_k=1, seed=9))
    assert [c.text for c in top1] == greedy


def test_option_logprobs_match_torch(tiny_model_dir: Path, home: Path) -> None:
    """Single-token options (read from one pass over the context), multi-token options (scored
    as context + option), chats and raw text, shared prefixes: within 1e-3 nats of torch."""
    few_shot = "Example: which is kinder? (A) help (B) harm. The answer is: (A)\n" * 4
    queries = [
        OptionQuery(
            prompt=few_shot + f"Question {i}: pick one. The answer is: (", options=["A", "B"]
        )
        for i in range(5)
    ]
    queries += [
        OptionQuery(prompt="The sky is", options=[" blue today", " green", " x"]),
        OptionQuery(prompt=[Message(role="user", content="yes or no?")], options=["yes", "no"]),
    ]
    torch_b = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=4)
    ct2_b = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32", batch_size=4)
    want = torch_b.option_logprobs(queries)
    got = ct2_b.option_logprobs(queries)
    assert [list(g) for g in got] == [q.options for q in queries]
    for g, w in zip(got, want, strict=True):
        for option in w:
            assert g[option] == pytest.approx(w[option], abs=1e-3)


def test_multi_token_options_score_the_same_in_any_batches(
    tiny_model_dir: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows scored as context + option are cut into batches by padded positions; the cut
    changes no score (each against torch, and one row per batch against sixteen)."""
    queries = [
        OptionQuery(prompt="word " * n + "The answer is:", options=[" (A)", " (B) and more"])
        for n in (1, 3, 40, 41, 90, 7, 2)
    ]
    want = load_backend(f"hf:{tiny_model_dir}", engine="torch").option_logprobs(queries)
    scores = []
    for positions in (1, 512, 10**6):
        monkeypatch.setattr(CT2Backend, "score_positions", positions)
        b = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32", batch_size=16)
        scores.append(b.option_logprobs(queries))
    for got in scores:
        for g, w in zip(got, want, strict=True):
            assert g == pytest.approx(w, abs=1e-3)
    for one, many in zip(scores[0], scores[2], strict=True):
        assert one == pytest.approx(many, abs=1e-4)


def test_score_batches_cap_rows_and_padded_positions() -> None:
    assert score_batches([], 16, 512) == []
    assert score_batches([10] * 5, 16, 512) == [[0, 1, 2, 3, 4]]
    assert score_batches([10] * 5, 2, 512) == [[0, 1], [2, 3], [4]]
    # rows x longest row stays within the cap; a row longer than the cap goes alone
    assert score_batches([100, 200, 300, 2000], 16, 512) == [[0, 1], [2], [3]]
    for batch in score_batches(list(range(1, 300, 7)), 16, 512):
        assert len(batch) == 1 or len(batch) * (max(batch) * 7 + 1) <= 512


def test_partition_weighs_padding_steps_against_batching() -> None:
    assert partition([], 8, 16) == []
    # Equal lengths: one batch; a batch never exceeds max_rows.
    assert partition([20] * 5, 32, 16) == [[0, 1, 2, 3, 4]]
    assert [len(b) for b in partition([20] * 5, 32, 2)] == [1, 2, 2]
    # A very long row would cost every short row hundreds of forced steps: it goes alone.
    batches = partition([30, 31, 32, 900], 16, 16)
    assert sorted(map(sorted, batches)) == [[0, 1, 2], [3]]
    assert sorted(i for b in partition([5, 9, 3, 7, 50, 6], 4, 3) for i in b) == list(range(6))


def test_bad_input_is_one_paragraph_and_leaves_nothing(
    tiny_model_dir: Path, home: Path, tmp_path: Path
) -> None:
    with pytest.raises(BackendError, match="unknown compute_type 'int4'"):
        load_backend(f"ct2:{tiny_model_dir}", compute_type="int4")
    with pytest.raises(BackendError, match=r"no config\.json"):
        load_backend(f"ct2:{tmp_path}")
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text(
        json.dumps({"architectures": ["BertModel"], "model_type": "bert"})
    )
    with pytest.raises(BackendError, match="not a causal language model"):
        load_backend(f"ct2:{encoder}")
    unsupported = tmp_path / "gpt-neo"
    unsupported.mkdir()
    (unsupported / "config.json").write_text(
        json.dumps({"architectures": ["GPTNeoForCausalLM"], "model_type": "gpt_neo"})
    )
    with pytest.raises(BackendError, match=r"cannot convert .* Llama"):
        load_backend(f"ct2:{unsupported}")
    # engine=auto falls back to torch for what CTranslate2 cannot convert.
    from charter.backends.engine import pick_engine

    assert pick_engine("auto", unsupported, {"compute_type": "int8"}, "hf:x") == "torch"
    # A folder whose weights are missing: conversion fails and leaves no partial copy.
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(BackendError, match="could not convert"):
        load_backend(f"ct2:{broken}", compute_type="float32")
    ct2_root = home / "ct2"
    assert not [p for p in ct2_root.iterdir() if p.is_dir()]
    r = run_cli(
        ["generate", "--model", f"ct2:{unsupported}", "--prompts", "demo", "--out",
         str(tmp_path / "out")],
        env={"CHARTER_HOME": str(home)},
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "cannot convert" in r.stderr and "Traceback" not in r.stderr


def test_torch_keeps_its_threads_after_ct2_ran(tiny_model_dir: Path, home: Path) -> None:
    """CTranslate2 set the OpenMP thread count torch reads to its own (1 per worker): torch
    generation after a ct2 call then ran on half the cores. The backend gives it back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        backend = load_backend(f"ct2:{tiny_model_dir}", compute_type="float32", workers=2)
        backend.generate(CHATS, Sampling(max_new_tokens=4, temperature=0.0))
        assert torch.get_num_threads() == 2
        backend.option_logprobs([OptionQuery(prompt="pick (", options=["A", "B"])])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
