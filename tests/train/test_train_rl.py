"""Online RL on TRL's real trainers: one GRPO and one RLOO run on the tiny random model with a
hand-written reward change the adapter, and every loss TRL computes equals the loss written out
here from the same batch (our own log-probs, clipping and KL); `charter train grpo` end to end
with the fake judge and with the embedded model judging itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from charter.backends.fake import FakeBackend
from charter.backends.pool import BackendPool
from charter.train.rl import RLOptions, _trainer_classes, build_rl_trainer, train_rl

PROMPTS = [
    {
        "prompt": [{"role": "user", "content": f"Tell me about thing {i}."}],
        "prompt_id": f"p{i}",
        "prompt_set": "t",
        "category": "",
        "reference": "",
    }
    for i in range(8)
]


class Distinct:
    """A hand-written reward: distinct characters of the answer / 10, every call kept."""

    __name__ = "distinct"

    def __init__(self) -> None:
        self.calls: list[list[float]] = []

    def __call__(self, prompts: Any, completions: Any, **kw: Any) -> list[float]:
        values = [len(set(c[0]["content"])) / 10 for c in completions]
        self.calls.append(values)
        return values


def token_logps(model: Any, inputs: dict[str, Any], temperature: float) -> torch.Tensor:
    """Per-token log-probs of the completion, from a plain forward pass (no TRL code)."""
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    t = inputs["completion_ids"].size(1)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, -t - 1 : -1].float()
    logp = (logits / temperature).log_softmax(-1)
    out: torch.Tensor = logp.gather(-1, inputs["completion_ids"].unsqueeze(-1)).squeeze(-1)
    return out


def grpo_loss(trainer: Any, model: Any, inputs: dict[str, Any]) -> float:
    """GRPO's clipped surrogate + β·k3 KL (times the ratio, TRL's bias correction), summed over
    tokens / the batch's tokens (DAPO)."""
    lp = token_logps(model, inputs, trainer.args.temperature)
    old = inputs.get("old_per_token_logps")
    old = lp if old is None else old
    a = inputs["advantages"].unsqueeze(1)
    ratio = torch.exp(lp - old)
    clipped = torch.clamp(ratio, 1 - trainer.args.epsilon, 1 + trainer.args.epsilon)
    per_token = -torch.min(ratio * a, clipped * a)
    ref = inputs["ref_per_token_logps"]
    kl = torch.exp(ref - lp) - (ref - lp) - 1
    if trainer.args.use_bias_correction_kl:  # TRL's default: the KL weighted by the IS ratio
        kl = kl * ratio
    per_token = per_token + trainer.args.beta * kl
    m = inputs["completion_mask"]
    tokens = inputs["num_items_in_batch"] * trainer.args.gradient_accumulation_steps
    return float((per_token * m).sum() / (tokens / trainer.args.steps_per_generation))


def rloo_loss(trainer: Any, model: Any, inputs: dict[str, Any]) -> float:
    """RLOO's clipped surrogate on whole-sequence log-prob ratios, averaged over sequences."""
    lp = token_logps(model, inputs, trainer.args.temperature)
    logps = (lp * inputs["completion_mask"]).sum(1)
    coef = torch.exp(logps - inputs["old_logps"])
    a = inputs["advantages"]
    clipped = torch.clamp(coef, 1 - trainer.args.epsilon, 1 + trainer.args.epsilon)
    return float(-torch.min(coef * a, clipped * a).mean())


def capturing(algorithm: str) -> type:
    base = _trainer_classes(algorithm)  # type: ignore[arg-type]
    ours = grpo_loss if algorithm == "grpo" else rloo_loss

    class Capturing(base[1]):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.losses: list[tuple[float, float]] = []
            self.advantages: list[list[float]] = []

        def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
            loss = super()._compute_loss(model, inputs)
            with torch.no_grad():
                self.losses.append((float(loss.detach()), ours(self, model, inputs)))
            self.advantages.append(inputs["advantages"].tolist())
            return loss

    return Capturing


def expected_advantages(algorithm: str, rewards: list[float], g: int) -> list[float]:
    r = torch.tensor(rewards).view(-1, g)
    if algorithm == "grpo":
        a = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)
    else:  # leave-one-out baseline; the KL term is 0 at the first step (policy = reference)
        a = r - (r.sum(1, keepdim=True) - r) / (g - 1)
    return sorted(a.flatten().tolist())


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_one_run_changes_the_adapter_and_the_loss_is_trls(
    algorithm: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    options = RLOptions(
        algorithm=algorithm,
        model=f"hf:{tiny_model_dir}",
        out=tmp_path / "rl",
        batch_size=8,
        num_generations=4,
        max_new_tokens=12,
        max_steps=3,
        num_iterations=2,  # the second pass over a batch has ratios ≠ 1: a non-trivial loss
        beta=0.1,
        learning_rate=5e-2,
        temperature=1.0,
        save_steps=100,
    )
    reward = Distinct()
    trainer = build_rl_trainer(
        options, tiny_model_dir, PROMPTS, [reward], trainer_class=capturing(algorithm)
    )
    lora_b = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert lora_b and all(float(p.abs().sum()) == 0.0 for p in lora_b.values())
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert any(float(after[n].detach().abs().sum()) > 0.0 for n in lora_b)
    assert len(trainer.losses) == 3
    for theirs, mine in trainer.losses:
        assert mine == pytest.approx(theirs, rel=1e-4, abs=1e-6)
    # Not a vacuous check: the policy moved, so some loss is far from 0.
    assert max(abs(t) for t, _ in trainer.losses) > 1e-4
    # The advantages of the first batch follow from the hand-written reward's values.
    assert sorted(trainer.advantages[0]) == pytest.approx(
        expected_advantages(algorithm, reward.calls[0], 4), abs=1e-4
    )


def fake_pool() -> BackendPool:
    return BackendPool(given={"fake": FakeBackend()})


def test_train_grpo_writes_every_output(tmp_path: Path, tiny_model_dir: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"q{i}",
                    "prompt": f"How do I {w}?",
                    "meta": {"category": "c", "split": "eval" if i >= 4 else "train"},
                }
            )
            + "\n"
            for i, w in enumerate(["cook", "swim", "run", "sing", "draw", "fly"])
        )
    )
    options = RLOptions(
        model=f"hf:{tiny_model_dir}",
        out=tmp_path / "grpo",
        prompts=str(prompts),
        rewards=[{"source": "judge:fake"}, {"source": "length:12", "weight": 0.1}],
        batch_size=4,
        num_generations=2,
        max_new_tokens=8,
        max_steps=2,
        held_out=2,
    )
    with fake_pool() as pool:
        res = train_rl(options, progress=False, pool=pool)
    out = res.out
    for name in (
        "adapter",
        "metrics.json",
        "rl.png",
        "loss.csv",
        "rewards.jsonl",
        "references.jsonl",
        "prompts.jsonl",
        "train_config.json",
    ):
        assert (out / name).exists(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["kind"] == "grpo" and m["steps"] == 2 and m["beta"] == pytest.approx(0.04)
    assert m["reward_names"] == ["judge", "length", "refusal_monitor"]
    for when in ("before", "after"):
        assert m[when]["n"] == 2 and set(m[when]["rewards"]) == set(m["reward_names"])
        assert 0.0 <= m[when]["refusal_rate"] <= 1.0 and m[when]["mean_length"] > 0
    # The starting model's greedy answer is its own reference: the judge calls it a tie.
    assert m["before"]["rewards"]["judge"] == pytest.approx(0.5)
    assert len(m["curves"]["kl"]) == 2 and len(m["curves"]["rollout_s"]) == 2
    assert set(m["step_seconds"]) == {"rollout", "scoring", "update"}
    rows = [json.loads(x) for x in (out / "rewards.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows} == {"held-out-before", "train", "held-out-after"}
    train_rows = [r for r in rows if r["phase"] == "train" and r["reward"] == "judge"]
    # 2 steps × 4 completions; every one has both orders of every principle.
    assert len(train_rows) == 8
    assert all(len(r["votes"]) == 2 * len(r["principle_ids"]) for r in train_rows)
    refs = (out / "references.jsonl").read_text().splitlines()
    assert len(refs) == 4 + 2  # the 4 training and the 2 held-out prompts


def test_train_grpo_cli_refuses_bad_rewards_before_loading(tmp_path: Path) -> None:
    from conftest import run_cli

    out = tmp_path / "x"
    for args, match in [
        (["--reward", "judge:nope:x"], "unknown backend spec 'nope:x'"),
        (["--reward", "judge:fake; versus=sideways"], "versus"),
        (["--batch-size", "6"], "multiple of num_generations"),
        (["--prompts", "builtin:no-such-set"], "no-such-set"),
    ]:
        r = run_cli(["train", "grpo", "--out", str(out), *args])
        assert r.returncode == 2, r.stderr
        assert match in r.stderr
        assert not out.exists()


def test_grpo_with_the_embedded_model_judging_itself(tmp_path: Path, embedded_dir: Path) -> None:
    """A real model as policy and judge: one step, and the judge's reward is a probability."""
    from charter.cli.train import train

    r = CliRunner().invoke(
        train,
        [
            "grpo",
            "--model",
            "embedded",
            "--reward",
            "judge:embedded",
            "--prompts",
            "builtin:red-team",
            "--limit",
            "2",
            "--held-out",
            "1",
            "--batch-size",
            "4",
            "--num-generations",
            "2",
            "--max-new-tokens",
            "16",
            "--max-steps",
            "1",
            "--out",
            str(tmp_path / "g"),
            "--json",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "g" / "metrics.json").read_text())
    rows = [json.loads(x) for x in (tmp_path / "g" / "rewards.jsonl").read_text().splitlines()]
    judged = [x["value"] for x in rows if x["reward"] == "judge" and x["phase"] == "train"]
    assert len(judged) == 4 and all(0.0 < v < 1.0 for v in judged)
    assert m["steps"] == 1 and m["before"]["rewards"]["judge"] == pytest.approx(0.5)


def test_a_killed_grpo_run_resumes_from_its_checkpoint(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from transformers import TrainerCallback

    class Crash(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == 2:  # dies after step 2, before its checkpoint is saved
                raise KeyboardInterrupt

    options = RLOptions(
        model=f"hf:{tiny_model_dir}",
        out=tmp_path / "grpo",
        rewards=[{"source": "judge:fake"}],
        batch_size=4,
        num_generations=2,
        max_new_tokens=6,
        max_steps=3,
        save_steps=1,
        held_out=1,
        limit=6,
    )
    with fake_pool() as pool, pytest.raises(KeyboardInterrupt):
        train_rl(options, progress=False, pool=pool, callbacks=[Crash()])
    before = (tmp_path / "grpo" / "metrics_before.json").read_text()
    refs = (tmp_path / "grpo" / "references.jsonl").read_text()
    assert not (tmp_path / "grpo" / "metrics.json").exists()
    with fake_pool() as pool:
        res = train_rl(options, progress=False, pool=pool, resume=True)
    assert res.steps == 3 and res.metrics["resumed_from"].endswith("checkpoint-1")
    # Written once: the resumed run read the held-out "before" and the references back.
    assert (tmp_path / "grpo" / "metrics_before.json").read_text() == before
    assert (tmp_path / "grpo" / "references.jsonl").read_text() == refs
