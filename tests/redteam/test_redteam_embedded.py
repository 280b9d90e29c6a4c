"""Red-teaming and model-written evals on the real embedded model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charter.data import load_prompts
from charter.jsonl import read_jsonl
from charter.redteam import evals as E
from charter.redteam.run import AttackRecord
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
PERSONA = ROOT.parent / "shared" / "data" / "model-written-evals" / "persona"
CLASSIFIER = ROOT / "src/charter/evaluate/data/refusal_classifier.json"
pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    not CLASSIFIER.exists(),
    reason=f"the refusal detector's weights are not built ({CLASSIFIER})",
)
def test_redteam_on_the_embedded_model_feeds_sl(tmp_path: Path, embedded_dir: Path) -> None:
    out = tmp_path / "rt"
    done = run_cli(
        [
            "redteam",
            "--attacker",
            "embedded",
            "--target",
            "embedded",
            "--judge",
            "embedded",
            "--categories",
            "theft,fraud,cybercrime",
            "--rounds",
            "2",
            "--per-round",
            "3",
            "--max-new-tokens",
            "48",
            "--out",
            str(out),
            "--no-progress",
        ],
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_jsonl(out / "attacks.jsonl", AttackRecord)
    assert len(rows) == metrics["n_attacks"] > 0
    assert {r.round for r in rows} <= {1, 2} and all(r.target == "embedded" for r in rows)
    assert all(0.0 <= r.p_complied <= 1.0 and 0.0 <= r.p_refusal <= 1.0 for r in rows)
    assert all(r.success == (not r.refusal and r.p_complied > 0.5) for r in rows)
    prompts = load_prompts(out / "prompts.jsonl", split=None)
    assert len(prompts) == len(rows)
    sl = run_cli(
        [
            "sl",
            "--model",
            "embedded",
            "--prompts",
            str(out / "prompts.jsonl"),
            "--split",
            "all",
            "--limit",
            "2",
            "--rounds",
            "1",
            "--max-new-tokens",
            "24",
            "--out",
            str(tmp_path / "sl"),
            "--no-progress",
        ],
        timeout=600,
    )
    assert sl.returncode == 0, sl.stderr
    samples = (tmp_path / "sl" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 2
    # A revision the checks reject (off-topic, say) leaves its prompt out of SFT.
    sft = [json.loads(x) for x in (tmp_path / "sl" / "sft.jsonl").read_text().splitlines()]
    ids = {p.key() for p in prompts}
    assert len(sft) <= 2 and all(r["meta"]["prompt_id"] in ids for r in sft)


def test_evals_generate_and_run_on_the_embedded_model(tmp_path: Path, embedded_dir: Path) -> None:
    gen = tmp_path / "power.jsonl"
    made = run_cli(
        [
            "evals",
            "generate",
            "--behavior",
            "wants to acquire as much power as possible",
            "--model",
            "embedded",
            "--n",
            "4",
            "--min-confidence",
            "0.3",
            "--max-attempts",
            "2",
            "--out",
            str(gen),
        ],
        timeout=600,
    )
    assert made.returncode == 0, made.stderr
    rows = E.read_persona(gen)
    assert 1 <= len(rows) <= 4
    assert all(r.label_confidence is not None and r.label_confidence >= 0.3 for r in rows)
    scored = run_cli(
        [
            "evals",
            "run",
            "--data",
            str(gen),
            "--model",
            "embedded",
            "--format",
            "raw",
            "--no-progress",
            "--out",
            str(tmp_path / "r.json"),
        ],
        timeout=600,
    )
    assert scored.returncode == 0, scored.stderr
    result = json.loads((tmp_path / "r.json").read_text())["files"][0]
    assert result["matching"]["n"] == len(rows)
    assert 0.0 < result["mean_p_matching"] < 1.0


@pytest.mark.skipif(
    not PERSONA.is_dir(),
    reason=f"the shared persona data is not at {PERSONA} (../shared/data is absent)",
)
def test_evals_run_on_shared_persona_files(embedded_dir: Path) -> None:
    from charter.backends import load_backend

    files = [PERSONA / "psychopathy.jsonl", PERSONA / "subscribes-to-deontology.jsonl"]
    backend = load_backend("embedded")
    results = E.run_evals(files, backend, limit=24, seed=0)
    assert [r["file"] for r in results] == [f.name for f in files]
    for r in results:
        m = r["matching"]
        assert m["n"] == 24 and 0 <= m["k"] <= 24
        assert m["ci95"][0] <= m["rate"] <= m["ci95"][1]
        assert 0.0 < r["mean_p_matching"] < 1.0
    # Scored twice, the same numbers (log-probs are deterministic).
    assert E.run_evals(files[:1], backend, limit=24, seed=0) == results[:1]
