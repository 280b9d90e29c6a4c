"""The reward model: soft-target cross-entropy (TRL's loss at p = 1), training, `charter score`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from charter.train.rm import RMOptions, build_rm_trainer


def rows(p: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{i}",
            "prompt": [{"role": "user", "content": f"Question {i}?"}],
            "chosen": [{"role": "assistant", "content": f"A careful, kind answer to {i}."}],
            "rejected": [{"role": "assistant", "content": f"Go away {i}!!"}],
            "p_chosen": p[i],
        }
        for i in range(len(p))
    ]


def loss_and_rewards(trainer: Any, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch = trainer._prepare_inputs(
        trainer.data_collator([trainer.train_dataset[i] for i in range(n)])
    )
    loss, outputs = trainer.compute_loss(trainer.model, batch, return_outputs=True)
    chosen, rejected = outputs.logits.squeeze(-1).chunk(2)
    return loss, chosen, rejected


def test_soft_targets_are_cross_entropy_and_trl_loss_at_p_one(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from trl.trainer.reward_trainer import RewardTrainer

    p = [0.6, 0.9, 0.75, 1.0]
    opts = RMOptions(
        model=f"hf:{tiny_model_dir}", data=tmp_path / "x", out=tmp_path / "o", full=True
    )
    soft = build_rm_trainer(opts, tiny_model_dir, rows(p))
    loss, chosen, rejected = loss_and_rewards(soft, 4)
    bce = F.binary_cross_entropy_with_logits((chosen - rejected).detach(), torch.tensor(p))
    assert float(loss) == pytest.approx(float(bce), rel=1e-5)
    # With every p = 1 the loss is TRL's own −log σ(r_c − r_r), gradients included.
    ones = build_rm_trainer(opts, tiny_model_dir, rows([1.0] * 4))
    trl = RewardTrainer(
        model=str(tiny_model_dir), args=ones.args, train_dataset=ones.train_dataset,
        processing_class=ones.processing_class,
    )  # fmt: skip
    grads = []
    for trainer in (ones, trl):
        trainer.model.zero_grad()
        batch = trainer._prepare_inputs(
            trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
        )
        value = trainer.compute_loss(trainer.model, batch)
        value.backward()
        grads.append(
            (float(value), {n: q.grad.clone() for n, q in trainer.model.named_parameters()})
        )
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    for name, g in grads[1][1].items():
        torch.testing.assert_close(grads[0][1][name], g, rtol=1e-5, atol=1e-7)


def test_train_rm_then_score(tmp_path: Path, tiny_model_dir: Path) -> None:
    from charter.cli.train import score, train
    from charter.train.rm import score_rows

    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows([0.9, 0.8, 1.0, 0.7] * 2)))
    out = tmp_path / "rm"
    args = [
        "rm", "--model", f"hf:{tiny_model_dir}", "--data", str(data), "--out", str(out),
        "--max-steps", "8", "--learning-rate", "2e-3", "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(train, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["last_loss"] < metrics["first_loss"]
    scored = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(
        score, ["--rm", str(out), "--data", str(data), "--out", str(scored)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["pairs"] == 8 and summary["accuracy"] >= 0.75 and summary["mean_margin"] > 0
    scores = [json.loads(line) for line in scored.read_text().splitlines()]
    assert all(0 < s["p_chosen_rm"] < 1 for s in scores)
    # A reward does not depend on what else is in the batch (padding is never read).
    one, _ = score_rows(out, data, batch_size=1)
    many, _ = score_rows(out, data, batch_size=16)
    for a, b in zip(one, many, strict=True):
        assert a["reward_chosen"] == pytest.approx(b["reward_chosen"], abs=1e-4)
        assert a["reward_rejected"] == pytest.approx(b["reward_rejected"], abs=1e-4)
    # Chats (messages ending with an answer) get one reward each.
    chats = tmp_path / "chats.jsonl"
    chats.write_text(
        json.dumps({"id": "c", "messages": rows([1.0])[0]["prompt"] + rows([1.0])[0]["chosen"]})
        + "\n"
    )
    result = CliRunner().invoke(score, ["--rm", str(out), "--data", str(chats)])
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout.splitlines()[0])
    assert first["id"] == "c" and first["reward"] == pytest.approx(
        scores[0]["reward_chosen"], abs=1e-4
    )


def test_the_pm_reward_scores_completions_as_charter_score_does(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """`--reward pm:OUT` of online RL: the preference model's score of prompt + completion,
    the same as `charter score` gives that chat."""
    from charter.train.rewards import PMReward, RewardLog, RewardSpec
    from charter.train.rm import score_rows, train_rm

    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows([0.9, 0.8, 1.0, 0.7])))
    out = tmp_path / "rm"
    train_rm(RMOptions(model=f"hf:{tiny_model_dir}", data=data, out=out, max_steps=2),
             progress=False)  # fmt: skip
    reward = PMReward(RewardSpec(source=f"pm:{out}"), RewardLog(None))
    prompts = [[{"role": "user", "content": "Question 0?"}]] * 2
    texts = ["A careful, kind answer to 0.", "Go away 0!!"]
    got = reward(prompts, [[{"role": "assistant", "content": t}] for t in texts])
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(
        json.dumps({"messages": [*prompts[0], {"role": "assistant", "content": t}]}) + "\n"
        for t in texts))  # fmt: skip
    want, _ = score_rows(out, chats, batch_size=1)
    assert got == pytest.approx([r["reward"] for r in want], abs=1e-5)
