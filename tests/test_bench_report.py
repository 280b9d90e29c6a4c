"""`docs/results.md` is generated from the benchmark JSON in `docs/bench/`, never edited by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from charter.bench.report import main, render, rows_of

ROOT = Path(__file__).resolve().parents[1]


def test_results_md_is_what_the_bench_json_renders() -> None:
    bench = ROOT / "docs" / "bench"
    results = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in bench.glob("*.json")}
    assert results, "docs/bench holds no benchmark JSON"
    assert (ROOT / "docs" / "results.md").read_text(encoding="utf-8") == render(results), (
        "docs/results.md differs from its bench JSON: run `python -m charter.bench.report`"
    )


def test_every_committed_benchmark_gives_rows_with_its_own_figures() -> None:
    for path in (ROOT / "docs" / "bench").glob("*.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        if result.get("kind") == "run":
            assert result["stages"] and result["machine"]["commit"], path.name
            continue
        if result.get("kind") == "rl":
            # Online RL: held-out figures before and after, and the command that made them.
            assert result["command"].startswith("charter train "), path.name
            assert set(result["before"]["rewards"]) == set(result["after"]["rewards"])
            assert result["steps"] and result["step_seconds"]["scoring"] is not None
            continue
        if result.get("kind") == "ablation":
            # A recipe ablation: a `charter run` command, a base and trained models judged by
            # the goal checks.
            assert result["command"].startswith("charter run "), path.name
            trained = [m for m in result["models"] if m != result["base"]]
            assert trained and all("verdict" in result["models"][m] for m in trained)
            continue
        if result.get("kind") == "judge_formats":
            assert result["rows"] and all(r["n"] and r["accuracy"] for r in result["rows"])
            continue
        if result.get("kind") == "judge_pools":
            # The pairs are those the human labels give, in each language.
            from charter.bench.judge_pools import LABELS, refusal_pairs

            labels = [json.loads(line) for line in LABELS.read_text("utf-8").splitlines()]
            for r in result["rows"]:
                mine = [x for x in labels if x["lang"] == r["lang"]]
                assert r["n"] == len(refusal_pairs(mine, {})), (path.name, r)
                assert r["ci"][0] <= r["accuracy"] <= r["ci"][1]
            continue
        if result.get("kind") == "discrimination":
            # Counted again from the builtin eval split, independently of the bench.
            from charter.data import load_prompts

            for r in result["rows"]:
                n = len(load_prompts("red-team", lang=r["lang"], split="eval"))
                assert r["n_harmful"] == n, (path.name, r)
                assert all(0 <= r[k] <= 1 for k in ("probe_auc_mid", "first_token_auc"))
            continue
        if "validation" in result and "counts" in result:  # `evaluate classify --json`
            assert result["validation"]["all"]["n"] == sum(result["counts"].values()), path.name
            continue
        rows = rows_of(result)
        assert rows, f"{path.name}: not a benchmark kind charter.bench.report knows"
        for row in rows:
            assert row.ratio > 0 and row.target is not None


def test_ratios_and_verdicts_from_a_small_set(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    label = {
        "engine": "ct2",
        "compute_type": "int8",
        "pairs": 2,
        "principles_per_pair": 2,
        "few_shot": 0,
        "stage_queries_per_s": 5.0,
        "torch_queries_per_s": 2.0,
        "ratio": 2.5,
    }
    sl = {
        "engine": "ct2",
        "n": 4,
        "rounds": 1,
        "max_new_tokens": 8,
        "sl_tokens_per_s": 10.0,
        "torch_sl_tokens_per_s": 20.0,
        "ratio_sl_torch": 0.5,
        "machine": {"date": "2026-12-06", "cpu_capability": "AVX2"},
        "note": "Measured on the slow host.",
    }
    (tmp_path / "bench" / "label.json").write_text(json.dumps(label))
    (tmp_path / "bench" / "sl.json").write_text(json.dumps(sl))
    (tmp_path / "bench" / "other.json").write_text(json.dumps({"x": 1}))
    main(["--bench-dir", str(tmp_path / "bench"), "--out", str(tmp_path / "results.md")])
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| 5.00 | 2.00 | 2.50 | ≥ 2.5 | met |" in text
    assert "| 10.0 | 20.0 | 0.50 | ≥ 2.5 | **not met** |" in text
    assert "measured 2026-12-06" in text and "`docs/bench/label.json`: machine not recorded" in text
    assert "AVX2 kernels" in text and "\nMeasured on the slow host.\n" in text


def test_write_record_gives_what_the_report_reads(tmp_path: Path) -> None:
    from charter.bench.machine import machine, write_record

    write_record(tmp_path / "d.json", "discrimination", [{"lang": "en"}], models=["m"], note="n")
    record = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
    assert record["kind"] == "discrimination" and record["models"] == ["m"]
    assert record["rows"] == [{"lang": "en"}] and record["note"] == "n"
    assert record["machine"]["cpu_capability"] == machine(None)["cpu_capability"] != ""
    write_record(tmp_path / "e.json", "judge_pools", [], judge="j")
    assert "note" not in json.loads((tmp_path / "e.json").read_text(encoding="utf-8"))


def test_a_run_folder_becomes_a_section_of_results(tmp_path: Path) -> None:
    """`--add-run`: a real (fake-backend) run's stages and metrics, recorded and rendered."""
    from charter.config import load_config
    from charter.pipeline import run_pipeline
    from conftest import FAKE_RUN

    sets = [*FAKE_RUN, "evaluate.limit=2", f"runs_dir={tmp_path / 'runs'}", "name=tiny"]
    run_pipeline(load_config("quick", None, sets), progress=False)
    bench = tmp_path / "bench"
    bench.mkdir()
    out = tmp_path / "results.md"
    main(["--bench-dir", str(bench), "--out", str(out), "--add-run", str(tmp_path / "runs/tiny")])
    record = json.loads((bench / "run-tiny.json").read_text(encoding="utf-8"))
    metrics = json.loads((tmp_path / "runs/tiny/eval/metrics.json").read_text(encoding="utf-8"))
    hc = metrics["models"]["base"]["harmful_compliance"]
    assert record["models"]["base"]["harmful_compliance"] == hc
    assert record["stages"]["sl"]["status"] == "complete"
    text = out.read_text(encoding="utf-8")
    assert "## `charter run`: `tiny`" in text
    assert (
        f"| `base` | {hc['rate']:.2f} [{hc['ci_low']:.2f}, {hc['ci_high']:.2f}] (n={hc['n']})"
        in text
    )
    assert "| `label/pairs` | complete |" in text


def test_ablation_rows_from_a_run_folder(tmp_path: Path) -> None:
    """`--add-ablation`: a run's goal figures become rows of one table. The run is a real
    fake-backend run (manifest, config); its metrics gain a trained model by hand."""
    from charter.config import load_config
    from charter.evaluate import stats
    from charter.evaluate.goal import goal
    from charter.pipeline import run_pipeline
    from conftest import FAKE_RUN

    sets = [*FAKE_RUN, "evaluate.limit=2", f"runs_dir={tmp_path / 'runs'}", "name=abl"]
    run_pipeline(load_config("quick", None, sets), progress=False)
    run_dir = tmp_path / "runs/abl"
    path = run_dir / "eval/metrics.json"
    metrics = json.loads(path.read_text(encoding="utf-8"))
    trained = dict(metrics["models"]["base"])
    trained["harmful_compliance"] = stats.rate(0, 4).as_dict()
    metrics["models"]["cai"] = trained
    metrics.pop("goal")
    path.write_text(json.dumps(metrics), encoding="utf-8")
    bench = tmp_path / "bench"
    bench.mkdir()
    out = tmp_path / "results.md"
    main(["--bench-dir", str(bench), "--out", str(out), "--add-ablation", str(run_dir), "make x"])
    record = json.loads((bench / "ablation-abl.json").read_text(encoding="utf-8"))
    g = goal(metrics)["models"]["cai"]
    assert record["command"] == "make x" and record["base"] == "base"
    assert record["models"]["cai"]["verdict"] == g["verdict"]
    assert record["models"]["cai"]["checks"]["harmful_lower"] is True
    text = out.read_text(encoding="utf-8")
    assert "## Recipe ablations (issue #24)" in text
    assert "| `abl` | `make x` | base |" in text
    assert "| | | cai | 0.00 [0.00, 0.49] n=4 |" in text
    # The per-language table, from each model's by_lang (this run evaluated English only).
    assert "| run | model | harmful en | over-refusal en |" in text
    en = trained["by_lang"]["en"]["harmful_compliance"]
    assert f"|  | cai | {en['rate']:.2f} n={en['n']} |" in text


COMMITTED = sorted(p.name for p in (ROOT / "docs" / "runs").iterdir() if p.is_dir())


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_run_agrees_with_its_records(name: str) -> None:
    """docs/runs/NAME (the quick and default presets' runs): its verdicts follow from its
    metrics, and the ablation record in docs/bench carries the same figures."""
    from charter.evaluate.goal import goal

    run = ROOT / "docs" / "runs" / name
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["goal"] == goal(metrics)
    record = json.loads((ROOT / f"docs/bench/ablation-{name}.json").read_text("utf-8"))
    preset = name.split("-")[0]
    assert record["command"] == f"charter run --preset {preset}"
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert config["name"] == name and record["config"] == config
    for model, m in metrics["models"].items():
        for key in ("harmful_compliance", "over_refusal", "partial_benign"):
            assert record["models"][model][key] == m[key], (model, key)
        if model != record["base"]:
            assert record["models"][model]["verdict"] == metrics["goal"]["models"][model]["verdict"]
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert all(s["status"] == "complete" for s in manifest["stages"].values())
