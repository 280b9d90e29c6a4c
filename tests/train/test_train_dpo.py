"""DPO on the tiny model: reward accuracy on the training pairs rises, a killed run resumes from
its checkpoint, and the CLI runs end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from transformers import TrainerCallback

from charter.errors import RunFolderError
from charter.train import DPOOptions, train_dpo


def prefs(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"p{i}",
            "prompt": [{"role": "user", "content": f"Question {i}?"}],
            "chosen": [{"role": "assistant", "content": f"A careful, kind answer to {i}."}],
            "rejected": [{"role": "assistant", "content": f"Go away {i}!!"}],
            "p_chosen": 0.7 + 0.3 * (i % 4) / 3,
            "votes": [],  # fields charter label writes beyond TRL's are carried, not used
        }
        for i in range(n)
    ]


def write_prefs(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in prefs(n)))
    return path


class Crash(TrainerCallback):  # type: ignore[misc]
    """Stands in for a kill: the run dies right after step `at` (before any save at that step)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.at:
            raise KeyboardInterrupt


class FirstStep(TrainerCallback):  # type: ignore[misc]
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.steps.append(state.global_step)


def options(tmp: Path, model_dir: Path, **kw: Any) -> DPOOptions:
    base: dict[str, Any] = {
        "model": f"hf:{model_dir}",
        "data": write_prefs(tmp / "prefs.jsonl", 8),
        "out": tmp / "dpo",
        "batch_size": 4,
        "learning_rate": 5e-3,
        "max_length": 96,
    }
    return DPOOptions(**(base | kw))


def test_dpo_raises_implicit_reward_accuracy(tmp_path: Path, tiny_model_dir: Path) -> None:
    res = train_dpo(options(tmp_path, tiny_model_dir, max_steps=8, merge=True), progress=False)
    m = res.metrics
    # The untrained policy is its own reference: every implicit reward is 0, every pair a tie.
    assert m["before"]["reward_accuracy"] == 0.0 and m["before"]["reward_margin"] == 0.0
    assert m["after"]["reward_accuracy"] > m["before"]["reward_accuracy"]
    assert m["after"]["reward_accuracy"] >= 0.75
    assert m["after"]["reward_margin"] > 0.0
    assert m["last_loss"] < m["first_loss"]
    assert m["mean_p_chosen"] == pytest.approx(0.85)
    assert (res.out / "merged" / "model.safetensors").exists()
    assert (res.out / "adapter" / "adapter_model.safetensors").exists()


def test_killed_dpo_run_resumes_from_its_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    opts = options(tmp_path, tiny_model_dir, max_steps=6, save_steps=2, evaluate=False)
    with pytest.raises(KeyboardInterrupt):
        train_dpo(opts, progress=False, callbacks=[Crash(at=3)])
    checkpoints = sorted(p.name for p in (opts.out / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-2"]
    assert not (opts.out / "metrics.json").exists()
    with pytest.raises(RunFolderError, match="--resume"):
        train_dpo(opts, progress=False)
    seen = FirstStep()
    res = train_dpo(opts, progress=False, resume=True, callbacks=[seen])
    assert seen.steps == [3, 4, 5, 6]  # continued after step 2, not from 0
    assert res.steps == 6 and res.metrics["resumed_from"].endswith("checkpoint-2")
    with (opts.out / "loss.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]


def test_cli_dpo_sigmoid_and_ipo(tmp_path: Path, tiny_model_dir: Path) -> None:
    from charter.cli.train import train

    data = write_prefs(tmp_path / "prefs.jsonl", 4)
    for loss in ("sigmoid", "ipo"):
        out = tmp_path / loss
        args = [
            "dpo", "--model", f"hf:{tiny_model_dir}", "--data", str(data), "--out", str(out),
            "--loss", loss, "--max-steps", "2", "--batch-size", "2", "--no-progress",
            "--no-evaluate",
        ]  # fmt: skip
        result = CliRunner().invoke(train, args)
        assert result.exit_code == 0, result.output
        assert "trained dpo for 2 steps" in result.output
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["loss"] == loss and metrics["after"] is None
        config = json.loads((out / "train_config.json").read_text())
        assert config["trl_args"]["loss_type"] == [loss]
