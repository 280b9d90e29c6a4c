"""`charter run`: the whole pipeline in one run folder, its stage bookkeeping, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charter.config import load_config
from charter.errors import CharterError, ConfigError
from charter.pipeline import check_config, train_options, trainable_model
from conftest import run_cli

# The fake policy answers instantly (or with a delay per call); training needs real weights, so
# these runs stop before it; the slow test below runs every stage on the embedded model.
FAST = [
    "generation.model=fake",
    "train.enabled=false",
    "sl.limit=4",
    "label.limit=4",
    "label.principles_per_pair=1",
    "evaluate.limit=2",
    "evaluate.max_new_tokens=16",
]


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def _manifest(root: Path) -> dict[str, dict[str, object]]:
    stages: dict[str, dict[str, object]] = json.loads((root / "manifest.json").read_text())[
        "stages"
    ]
    return stages


def test_roles_and_training_model_are_checked_before_anything_runs(tmp_path: Path) -> None:
    cfg = load_config("quick", None, ["generation.model=openai:http://127.0.0.1:9/v1#m"])
    with pytest.raises(ConfigError, match=r"train\.model"):
        trainable_model(cfg)
    ok = load_config(
        "quick",
        None,
        ["generation.model=openai:http://127.0.0.1:9/v1#m", "train.model=embedded"],
    )
    assert trainable_model(ok) == "embedded"
    assert ok.role("judge")[0].startswith("openai:")  # judge and feedback default to the policy
    with pytest.raises(CharterError, match=r"unknown backend spec"):
        check_config(load_config("quick", None, ["judge.model=nonsense:x"]))
    with pytest.raises(ConfigError, match=r"train\.sft\.learning_rate"):
        check_config(load_config("quick", None, ["train.sft.learning_rate=-1"]))
    r = run_cli(["run", "--preset", "quick", "--runs-dir", str(tmp_path), "--judge", "nonsense:x"])
    assert r.returncode == 2 and not (tmp_path / "quick").exists(), r.stderr


def test_fake_pipeline_writes_every_stage_and_resumes_without_redoing(tmp_path: Path) -> None:
    args = ["run", "--preset", "quick", "--runs-dir", str(tmp_path), "--no-progress"]
    r = run_cli([*args, *_sets(FAST)], timeout=600)
    assert r.returncode == 0, r.stderr
    root = tmp_path / "quick"
    for name in ("constitution.yaml", "prompts.jsonl", "generations.jsonl", "report.html"):
        assert (root / name).exists(), name
    assert (root / "sl" / "sft.jsonl").exists() and (root / "label" / "prefs.jsonl").exists()
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"base"}
    # Without training, the pairs come from the policy itself.
    pair = json.loads((root / "label" / "pairs.jsonl").read_text().splitlines()[0])
    assert pair["policy"] == "fake"
    stages = _manifest(root)
    assert all(s["status"] == "complete" for s in stages.values()), stages
    assert {
        "constitution",
        "prompts",
        "generate",
        "sl",
        "label/pairs",
        "label",
        "evaluate",
    } <= set(stages)
    assert "harmful compliance" in r.stdout and "evaluate" in r.stdout
    # Resuming by name alone reuses the run's config: nothing is redone.
    again = run_cli(["run", "--resume", "--name", "quick", "--runs-dir", str(tmp_path)])
    assert again.returncode == 0, again.stderr
    assert _manifest(root) == stages
    assert again.stdout.count("skipped (complete)") >= 6


def test_kill_mid_stage_then_resume_finishes_without_redoing_finished_stages(
    tmp_path: Path,
) -> None:
    # One prompt per SL chunk, so samples land one by one while the stage is still running.
    sets = [*FAST, "generation.model_options.delay=0.4", "generation.batch_size=1"]
    sets += ["sl.chunk_size=1"]
    cmd = [sys.executable, "-m", "charter", "run", "--preset", "quick"]
    cmd += ["--runs-dir", str(tmp_path), "--no-progress", *_sets(sets)]
    proc = subprocess.Popen(
        cmd, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    root = tmp_path / "quick"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (root / "manifest.json").exists():
            stage = _manifest(root).get("sl", {})
            if stage.get("status") == "running" and (root / "sl" / "samples.jsonl").exists():
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _manifest(root)
    assert before["sl"]["status"] == "running", before
    assert before["generate"]["status"] == "complete"
    r = run_cli(["run", "--resume", "--name", "quick", "--runs-dir", str(tmp_path)], timeout=600)
    assert r.returncode == 0, r.stderr
    after = _manifest(root)
    assert after["generate"] == before["generate"]  # finished before the kill: not redone
    assert all(s["status"] == "complete" for s in after.values())
    samples = (root / "sl" / "samples.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in samples]
    assert len(ids) == len(set(ids)) == 4
    # #25.3: the stages finished before the kill were reported as "ran" in "0 s".
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "skipped (complete)" in lines["generate"], r.stdout
    assert "resumed (" in lines["sl"] and "records already there)" in lines["sl"], r.stdout
    assert lines["evaluate"].split()[1] == "ran"
    assert (root / "report.html").exists()


def test_changed_option_asks_for_redo_then_redoes_only_that_stage(tmp_path: Path) -> None:
    args = ["run", "--preset", "quick", "--runs-dir", str(tmp_path), "--no-progress"]
    assert run_cli([*args, *_sets(FAST)], timeout=600).returncode == 0
    changed = [*args, "--resume", *_sets([*FAST, "label.principles_per_pair=2"])]
    refused = run_cli(changed, timeout=600)
    assert refused.returncode == 2 and "--redo label" in refused.stderr, refused.stderr
    r = run_cli([*changed, "--redo", "label"], timeout=600)
    assert r.returncode == 0, r.stderr
    assert "label: redone as asked" in r.stdout
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "skipped (complete)" in lines["sl"] and "skipped (complete)" in lines["generate"]
    assert lines["label"].split()[1] == "ran"


def test_appended_prompt_computes_only_the_new_record(tmp_path: Path) -> None:
    """Resuming after one prompt was added to the file keeps every finished sample."""
    from test_cli_generate import write_prompts

    prompts = write_prompts(tmp_path / "p.jsonl", 5)
    args = ["run", "--preset", "quick", "--runs-dir", str(tmp_path), "--no-progress"]
    sets = [*FAST, f"sl.prompts={prompts}", "sl.split=all", "sl.limit=16", "label.enabled=false"]
    sets += ["train.enabled=false", "evaluate.enabled=false"]
    assert run_cli([*args, *_sets(sets)], timeout=600).returncode == 0
    samples = tmp_path / "quick" / "sl" / "samples.jsonl"
    first = samples.read_text().splitlines()
    write_prompts(prompts, 6)
    r = run_cli([*args, "--resume", *_sets(sets)], timeout=600)
    assert r.returncode == 0, r.stderr
    after = samples.read_text().splitlines()
    assert after[:5] == first and len(after) == 6  # the five finished samples kept as they were
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "resumed (5 records already there)" in lines["sl"]


@pytest.mark.slow
def test_whole_pipeline_on_the_embedded_model(tmp_path: Path) -> None:
    """What `make run` does, smaller: every stage, training included, on SmolLM2-135M."""
    small = [
        "sl.limit=4",
        "label.limit=4",
        "label.principles_per_pair=1",
        "train.sft.max_steps=2",
        "train.dpo.max_steps=2",
        "evaluate.limit=1",
        "evaluate.max_new_tokens=16",
        "generation.max_new_tokens=24",
    ]
    r = run_cli(
        ["run", "--preset", "quick", "--runs-dir", str(tmp_path), "--no-progress", *_sets(small)],
        timeout=1800,
    )
    assert r.returncode == 0, r.stderr
    root = tmp_path / "quick"
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "sl-cai", "rl-cai"}
    for m in metrics["models"].values():
        assert {"harmful_compliance", "over_refusal", "elo"} <= set(m)
    assert (root / "train" / "dpo" / "merged").is_dir()
    report = (root / "report.html").read_text(encoding="utf-8")
    assert "<html" in report.lower()
    # The verdict lines follow from the metrics alone: recomputed here, shown in the report.
    from html import escape

    from charter.evaluate.goal import CHECKS, goal

    recomputed = goal(metrics)
    assert metrics["goal"] == recomputed
    for entry in recomputed["models"].values():
        checks = {c["name"]: c["ok"] for c in entry["checks"]}
        assert entry["pareto"] == all(checks[name] for name in CHECKS)
        assert escape(entry["verdict"]) in report
        assert entry["verdict"].startswith(
            "Pareto improvement: " + ("yes" if entry["pareto"] else "")
        )


def test_online_rl_in_the_pipeline_beside_dpo(tmp_path: Path, tiny_model_dir: Path) -> None:
    """`train.rl=dpo+grpo`: SFT, then DPO and GRPO from it on the tiny model; the evaluation
    compares all four models and the report shows the online run's curves and figures."""
    items = [
        *[x for x in FAST if x != "train.enabled=false"],
        f"train.model=hf:{tiny_model_dir}",
        # The fake policy's revisions share no word with the request: the semantic check would
        # reject them all and leave SFT nothing to train on.
        "sl.topic_check=false",
        "train.rl=dpo+grpo",
        "train.sft.max_steps=1",
        "train.dpo.max_steps=1",
        "train.online.max_steps=1",
        "train.online.batch_size=4",
        "train.online.num_generations=2",
        "train.online.max_new_tokens=8",
        "train.online.held_out=2",
        "evaluate.langs=[en]",
        "evaluate.limit=1",
    ]
    r = run_cli(["run", "--preset", "quick", "--runs-dir", str(tmp_path), "--no-progress",
                 "--name", "rl", *_sets(items)], timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr
    root = tmp_path / "rl"
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "sl-cai", "rl-cai", "rl-cai-grpo"}
    grpo = json.loads((root / "train" / "grpo" / "metrics.json").read_text())
    # The run's own judge (the feedback role, here the fake policy) scored the samples.
    assert grpo["rewards"][0]["source"] == "judge:fake" and grpo["steps"] == 1
    assert (root / "train" / "grpo" / "merged").is_dir()
    html = (root / "report.html").read_text(encoding="utf-8")
    assert "Online RL-CAI (GRPO)" in html and "train/grpo/rewards.jsonl" in html
    stages = _manifest(root)
    assert {"train/sft", "train/dpo", "train/grpo"} <= set(stages)
    # RL-CAI's pairs are the SL-CAI model's answers (the paper's order: SFT, label, DPO).
    pairs = [json.loads(x) for x in (root / "label" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and {p["policy"] for p in pairs} == {f"hf:{root / 'train' / 'sft' / 'merged'}"}
    order = sorted(stages, key=lambda n: str(stages[n]["started_at"]))
    assert order.index("train/sft") < order.index("label/pairs") < order.index("train/dpo")
    # A retrained SFT model samples new pairs; the labels and DPO follow.
    ids = {p["id"] for p in pairs}
    r = run_cli(["run", "--preset", "quick", "--resume", "--name", "rl", "--runs-dir",
                 str(tmp_path), "--no-progress", *_sets([*items, "train.sft.max_steps=2"]),
                 "--redo", "train/sft"], timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr
    again = [json.loads(x) for x in (root / "label" / "pairs.jsonl").read_text().splitlines()]
    assert len(again) == len(pairs) and not ids & {p["id"] for p in again}
    after = _manifest(root)
    for name in ("label", "train/dpo"):
        assert after[name]["finished_at"] != stages[name]["finished_at"], name


def test_online_rl_options_the_run_sets_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"train\.online\.prompts"):
        check_config(load_config("quick", None, ["train.rl=grpo", "train.online.prompts=x"]))
    # Online RL alone does not need the label stage; DPO does.
    check_config(load_config("quick", None, ["train.rl=rloo", "label.enabled=false"]))
    with pytest.raises(ConfigError, match=r"DPO \(train\.rl\) needs the label stage"):
        check_config(load_config("quick", None, ["label.enabled=false"]))
    # DPO on SL-CAI's own pairs does not either, and trains on the SL stage's pairs.jsonl.
    own = load_config("quick", None, ["label.enabled=false", "train.pairs=sl"])
    check_config(own)
    assert train_options(own, Path("r"))[1].data == Path("r") / "sl" / "pairs.jsonl"


def test_redteam_stage_added_to_a_finished_run_measures_every_model(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """`redteam.enabled=true` on a finished run: the attacks are put to the base and both
    trained models, the evaluation is not redone, and the report gains the section; the run
    folder, moved elsewhere, then resumes with nothing redone."""
    items = [
        *[x for x in FAST if x != "train.enabled=false"],
        f"train.model=hf:{tiny_model_dir}",
        "sl.topic_check=false",  # the fake policy's revisions share no word with the request
        "train.sft.max_steps=1",
        "train.dpo.max_steps=1",
        "evaluate.langs=[en]",
        "evaluate.limit=1",
    ]
    base = ["run", "--preset", "quick", "--runs-dir", str(tmp_path), "--no-progress"]
    r = run_cli([*base, *_sets(items)], timeout=900)
    assert r.returncode == 0, r.stderr
    root = tmp_path / "quick"
    assert "Red-team attacks" not in (root / "report.html").read_text(encoding="utf-8")
    red = ["redteam.enabled=true", "redteam.per_round=3", "redteam.target_max_new_tokens=8"]
    r = run_cli([*base, "--resume", *_sets([*items, *red])], timeout=900)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((root / "redteam" / "metrics.json").read_text())
    specs = json.loads((root / "eval" / "metrics.json").read_text())["config"]["models"]
    assert set(metrics["targets"]) == set(specs.values())
    assert {t["attack_success"]["n"] for t in metrics["targets"].values()} == {metrics["n_attacks"]}
    assert metrics["config"]["judge"] == metrics["config"]["attacker"] == "fake"
    stages = _manifest(root)
    assert stages["redteam"]["status"] == "complete"
    html = (root / "report.html").read_text(encoding="utf-8")
    assert "Red-team attacks, before and after" in html
    for name in ("base", "sl-cai", "rl-cai"):
        assert f"<tr><td><b>{name}</b></td>" in html
    # A setting the run decides itself is refused before anything runs.
    r = run_cli([*base, "--resume", *_sets([*items, *red, "redteam.judge=fake"])])
    assert r.returncode != 0 and "redteam.judge" in r.stderr
    # A moved run folder resumes with nothing redone: no stage hash holds its absolute path.
    done = {k: v["finished_at"] for k, v in stages.items()}
    moved = tmp_path / "moved"
    moved.mkdir()
    root.rename(moved / "quick")
    again = ["run", "--preset", "quick", "--runs-dir", str(moved), "--no-progress", "--resume"]
    r = run_cli([*again, *_sets([*items, *red])], timeout=900)
    assert r.returncode == 0, r.stderr
    after = _manifest(moved / "quick")
    for name in ("sl", "label", "train/sft", "train/dpo", "redteam", "evaluate"):
        assert after[name]["finished_at"] == done[name], name
