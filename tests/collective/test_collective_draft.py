"""Draft: selection, near-duplicate merging, template and LLM wording, provenance, and a valid
constitution that `--constitution collective:DIR` loads."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from polis_data import ccai, needs_polis_data
from pydantic import ValidationError

from charter.backends.embeddings import bag_of_words, minilm
from charter.backends.fake import FakeBackend
from charter.bench.collective import synthetic_conversation
from charter.collective.analysis import (
    AnalysisConfig,
    AnalysisSummary,
    analyze,
    summarize,
    write_analysis,
)
from charter.collective.draft import (
    DraftConfig,
    draft_constitution,
    merge_near_duplicates,
    select_statements,
    write_constitution,
)
from charter.collective.ingestion import ingest
from charter.constitution.load import load_constitution
from charter.errors import ConfigError
from charter.records import Message

TEXTS = [
    "The AI should be honest.",
    "the AI should be HONEST",  # a near-copy: merges with the first under bag-of-words
    "The AI should respect privacy.",
    "يجب أن يحترم الذكاء الاصطناعي خصوصية المستخدم",
    "人工智能应该尊重隐私",
    "The AI should refuse to help with weapons.",
]


def toy_summary() -> AnalysisSummary:
    """A real analysis of a synthetic conversation, its statements given our texts and GICs."""
    summary = summarize(analyze(synthetic_conversation(300, 8, 0.6, seed=7)))
    gics = [0.9, 0.85, 0.8, 0.75, 0.72, 0.3, 0.95, 0.99]
    moderated = [1, 1, 0, 1, 1, 1, -1, 1]
    statements = []
    for i, s in enumerate(summary.statements):
        text = TEXTS[i] if i < len(TEXTS) else f"Statement number {i}, moderated out or not."
        statements.append(
            s.model_copy(update={"text": text, "gic": gics[i], "moderated": moderated[i]})
        )
    return summary.model_copy(update={"statements": statements})


def test_selection_thresholds_and_moderation() -> None:
    summary = toy_summary()
    picked = select_statements(summary, DraftConfig(min_gic=0.7))
    # highest GIC first; GIC 0.95 is moderated out, 0.3 is below the threshold
    assert [s.statement_id for s in picked] == ["7", "0", "1", "2", "3", "4"]
    strict = select_statements(summary, DraftConfig(min_gic=0.7, include_unmoderated=False))
    assert "2" not in [s.statement_id for s in strict]
    floor = 0.6
    by_group = select_statements(summary, DraftConfig(min_group_agree=floor))
    assert all(min(g.pa for g in s.groups.values()) >= floor for s in by_group)
    with pytest.raises(ValidationError, match="not both"):
        DraftConfig(min_gic=0.5, min_group_agree=0.5)


def test_near_duplicates_merge_into_the_higher_gic_statement() -> None:
    picked = select_statements(toy_summary(), DraftConfig(min_gic=0.7))
    ideas = merge_near_duplicates(picked, bag_of_words, 0.85)
    leads = [i.lead.statement_id for i in ideas]
    assert leads == ["7", "0", "2", "3", "4"]
    honest = ideas[1]
    assert [m.statement_id for m, _ in honest.members] == ["0", "1"]
    assert honest.members[1][1] == pytest.approx(1.0)
    assert len(merge_near_duplicates(picked, bag_of_words, 1.01)) == len(picked)


def test_template_constitution_with_provenance(tmp_path: Path) -> None:
    summary = toy_summary()
    config = DraftConfig(min_gic=0.7, dedup_threshold=0.85)
    constitution = draft_constitution(summary, config, embed=bag_of_words, analysis_sha256="abc")
    assert len(constitution.principles) == 5
    by_id = {s.statement_id: s for s in summary.statements}
    for p in constitution.principles:
        assert p.comparison is not None and p.comparison.startswith("Choose the response that")
        assert p.critique and p.revision
        assert p.sources and all(s.kind == "public" for s in p.sources)
        assert all("GIC" in s.note for s in p.sources)
        prov = p.provenance
        assert prov["selection"]["rule"] == "min_gic" and prov["selection"]["threshold"] == 0.7
        assert prov["selection"]["dedup_threshold"] == 0.85
        assert prov["rewrite"] == "template" and prov["analysis_sha256"] == "abc"
        for cited in prov["statements"]:
            s = by_id[cited["id"]]
            assert cited["text_sha256"] == hashlib.sha256(s.text.encode("utf-8")).hexdigest()
            assert cited["gic"] == s.gic
            assert cited["agree_rate"] == {g: st.pa for g, st in s.groups.items()}
            assert cited["seen"] == {g: st.ns for g, st in s.groups.items()}
        assert [s.ref for s in p.sources] == [c["id"] for c in prov["statements"]]
    arabic = constitution.principle("public-3")
    assert TEXTS[3] in (arabic.comparison or "")  # non-English text kept as voted on

    analysis_dir = tmp_path / "analysis"
    analysis_dir.mkdir()
    written = write_constitution(constitution, tmp_path / "out.yaml", analysis_dir)
    assert written == [tmp_path / "out.yaml", analysis_dir / "constitution.yaml"]
    loaded = load_constitution(f"collective:{analysis_dir}")
    assert loaded.compute_sha256() == constitution.compute_sha256()
    assert load_constitution(tmp_path / "out.yaml").principles == constitution.principles


def test_llm_rewrite_through_a_backend_with_fallback() -> None:
    summary = toy_summary()
    good = (
        "COMPARISON: Choose the response that is more honest.\n"
        "CRITIQUE: Point out anything dishonest in the response.\n"
        "REVISION: Rewrite the response to be fully honest."
    )
    backend = FakeBackend(answers=[good] + ["I cannot help with that."] * 10)
    config = DraftConfig(min_gic=0.7, rewrite="llm")
    constitution = draft_constitution(summary, config, embed=bag_of_words, backend=backend)
    first, second = constitution.principles[0], constitution.principles[1]
    assert first.comparison == "Choose the response that is more honest."
    assert first.provenance["rewrite"] == "llm:fake"
    assert second.comparison is not None and "publicly supported principle" in second.comparison
    assert second.provenance["rewrite"] == "template (llm:fake answer unusable)"
    (call,) = backend.calls
    assert call.params is not None and call.params.temperature == 0.0
    chats = cast(list[list[Message]], call.requests)
    assert "Statement number 7" in chats[0][-1].content  # ideas in order of GIC
    assert TEXTS[0] in chats[1][-1].content
    with pytest.raises(ConfigError, match="--model"):
        draft_constitution(summary, config, embed=bag_of_words)


def test_nothing_passes_the_threshold() -> None:
    with pytest.raises(ConfigError, match="lower the threshold"):
        draft_constitution(toy_summary(), DraftConfig(min_gic=0.999), embed=bag_of_words)


def test_minilm_embeds_any_language() -> None:
    vectors = minilm([*TEXTS, "The AI should always be honest."])
    assert vectors.shape == (len(TEXTS) + 1, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[-1]) > 0.85  # a paraphrase
    assert float(vectors[0] @ vectors[5]) < 0.7  # a different idea
    picked = select_statements(toy_summary(), DraftConfig(min_gic=0.7))
    ideas = merge_near_duplicates(picked, minilm, 0.85)
    assert 3 <= len(ideas) <= len(picked)


@needs_polis_data
def test_ccai_poll_drafts_a_valid_constitution(tmp_path: Path) -> None:
    conv = ingest(ccai())
    write_analysis(analyze(conv, AnalysisConfig(groups="export")), tmp_path, figures=False)
    from charter.collective.analysis import read_summary
    from charter.collective.draft import analysis_sha256

    summary = read_summary(tmp_path)
    constitution = draft_constitution(
        summary, DraftConfig(), analysis_sha256=analysis_sha256(tmp_path)
    )
    out = tmp_path / "ccai-constitution.yaml"
    write_constitution(constitution, out, tmp_path)
    gic = {s.statement_id: s.gic for s in summary.statements}
    assert 30 <= len(constitution.principles) <= 94
    for p in constitution.principles:
        assert len(p.sources) >= 1
        for cited in p.provenance["statements"]:
            assert cited["gic"] == gic[cited["id"]] >= 0.7
    loaded = load_constitution(f"collective:{tmp_path}")
    assert loaded.compute_sha256() == constitution.compute_sha256()
    try:
        from click.testing import CliRunner

        from charter.cli.constitution import constitution as constitution_cli
    except ImportError:  # the `constitution` commands live in another part of the tree
        return
    result = CliRunner().invoke(constitution_cli, ["validate", str(out)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
