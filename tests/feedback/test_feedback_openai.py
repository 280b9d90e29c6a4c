"""An OpenAI-compatible server as the feedback model, against the local test server."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.backends import load_backend
from charter.backends.hf import HFBackend
from charter.constitution.load import load_constitution
from charter.feedback import LabelConfig, Labeler, PairRecord, label_pairs
from charter.feedback.labeler import model_fingerprint
from charter.records import Message
from openai_server import FakeOpenAI, serve


def pairs() -> list[PairRecord]:
    return [
        PairRecord(
            id=f"p{i}",
            prompt_id=f"p{i}",
            prompt=[Message(role="user", content=f"How do I do thing {i}?")],
            responses=(f"Carefully, step {i}.", "I won't help with that."),
            source="policy",
        )
        for i in range(2)
    ]


def test_openai_feedback_model_labels_like_the_model_behind_it(tiny_model_dir: Path) -> None:
    tiny = load_backend(f"hf:{tiny_model_dir}", engine="torch", batch_size=4)
    assert isinstance(tiny, HFBackend)
    const = load_constitution("udhr").localized("en")
    cfg = LabelConfig(format="raw", principles_per_pair=2, few_shot=1)
    server = FakeOpenAI(backend=tiny)
    with serve(server.app()) as base:
        remote = load_backend(f"openai:{base}#{server.model}", concurrency=4)
        labeler = Labeler(
            backend=remote.spec,
            model_sha256=model_fingerprint(remote),
            cot=False,
            clamp=None,
            few_shot=1,
        )
        got = label_pairs(pairs(), remote, const, cfg, labeler)
    # Exact (echo) scoring of the string prompts, one request per (question, letter).
    assert all(body.get("echo") for _, body in server.bodies)
    assert server.requests == 2 * 2 * 2 * 2
    want = label_pairs(pairs(), tiny, const, cfg, labeler)
    for g, w in zip(got, want, strict=True):
        assert g.chosen == w.chosen
        assert g.p_chosen == pytest.approx(w.p_chosen, abs=1e-4)
        assert [v.p_a for v in g.votes] == pytest.approx([v.p_a for v in w.votes], abs=1e-4)
    assert got[0].labeler.backend.startswith("openai:")
