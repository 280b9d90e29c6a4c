"""What online RL measures around TRL's loop: greedy answers and their rewards on the held-out
prompts, the per-step curves (reward, KL, length, refusal rate) and where a step's time goes,
the reward-hacking guard rails, and the curves' plot (`OUT/rl.png`)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from charter.train.rewards import RewardLog

RL_PNG = "rl.png"
# A training-reward rise smaller than this (last third of steps over the first) is noise.
RISE = 0.02


def generate_texts(
    model: Any,
    tokenizer: Any,
    chats: Sequence[list[dict[str, str]]],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
) -> list[tuple[str, int]]:
    """Greedy answers of `model` to `chats` (left-padded batches): text and token count."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out: list[tuple[str, int]] = []
    was_training = model.training
    model.eval()
    for start in range(0, len(chats), batch_size):
        texts = [
            tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
            for c in chats[start : start + batch_size]
        ]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        with torch.no_grad():
            ids = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        for row in ids[:, enc["input_ids"].shape[1] :].tolist():
            eos = tokenizer.eos_token_id
            n = (
                row.index(eos) + 1
                if eos in row
                else len([t for t in row if t != tokenizer.pad_token_id])
            )
            out.append((tokenizer.decode(row[:n], skip_special_tokens=True).strip(), n))
    if was_training:
        model.train()
    return out


def held_out_metrics(
    model: Any,
    tokenizer: Any,
    examples: Sequence[dict[str, Any]],
    rewards: Sequence[Any],
    max_new_tokens: int,
) -> dict[str, Any] | None:
    """Greedy answers to the held-out prompts, scored by every reward: mean of each reward,
    mean length (tokens) and refusal rate."""
    if not examples:
        return None
    from charter.evaluate.refusal import load_detector

    answers = generate_texts(
        model, tokenizer, [e["prompt"] for e in examples], max_new_tokens=max_new_tokens
    )
    prompts = [e["prompt"] for e in examples]
    completions = [[{"role": "assistant", "content": t}] for t, _ in answers]
    columns = {
        k: [e[k] for e in examples] for k in ("prompt_id", "prompt_set", "category", "reference")
    }
    means: dict[str, float | None] = {}
    for r in rewards:
        values = [v for v in r(prompts, completions, **columns) if v is not None]
        means[r.__name__] = sum(values) / len(values) if values else None
    verdicts = load_detector().predict([t for t, _ in answers], None)
    return {
        "n": len(examples),
        "rewards": means,
        "mean_length": sum(n for _, n in answers) / len(answers),
        "refusal_rate": sum(v.refusal for v in verdicts) / len(verdicts),
        "answers": [
            {"prompt_id": e["prompt_id"], "text": t}
            for e, (t, _) in zip(examples, answers, strict=True)
        ],
    }


class StepSplit:
    """Where a step's time goes: rollout (the policy's `generate`), scoring (the rewards) and
    the rest (log-probs of policy and reference, backward, optimizer), per step."""

    def __init__(self, log: RewardLog) -> None:
        self.log = log
        self.rollout = 0.0
        self.steps: dict[int, tuple[float, float, float]] = {}
        self._start = time.perf_counter()

    def attach(self, trainer: Any) -> None:
        from transformers import TrainerCallback

        model = trainer.model
        inner = model.generate
        split = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                split.rollout += time.perf_counter() - t0

        model.generate = timed

        class _Callback(TrainerCallback):  # type: ignore[misc]
            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                split._start = time.perf_counter()
                split.rollout = 0.0
                split.log.take_seconds()

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                total = time.perf_counter() - split._start
                split.steps[int(state.global_step)] = (
                    split.rollout,
                    split.log.take_seconds(),
                    total,
                )

        trainer.add_callback(_Callback())

    def curves(self, steps: Sequence[int]) -> dict[str, list[Any]]:
        rows = [self.steps.get(int(s)) for s in steps]
        return {
            "rollout_s": [r[0] if r else None for r in rows],
            "scoring_s": [r[1] if r else None for r in rows],
            "update_s": [r[2] - r[0] - r[1] if r else None for r in rows],
        }


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rl_curves(history: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Per logged step: the summed reward, each reward's mean, KL, mean length and refusal rate.

    >>> row = {"step": 1, "reward": 0.5, "kl": 0.0, "completions/mean_length": 9.0,
    ...        "rewards/refusal_monitor/mean": 0.25, "loss": 0.1}
    >>> rl_curves([row], ["refusal_monitor"])["refusal"]
    [0.25]
    """
    rows = [h for h in history if "reward" in h and "step" in h]
    refusal_name = next((n for n in names if n.startswith("refusal")), None)
    curves: dict[str, list[Any]] = {
        "step": [h["step"] for h in rows],
        "reward": [h.get("reward") for h in rows],
        "kl": [h.get("kl") for h in rows],
        "mean_length": [h.get("completions/mean_length") for h in rows],
        "refusal": [h.get(f"rewards/{refusal_name}/mean") for h in rows] if refusal_name else [],
    }
    for n in names:
        curves[f"rewards/{n}"] = [h.get(f"rewards/{n}/mean") for h in rows]
    return curves


def mean(xs: Sequence[Any]) -> float | None:
    vals = [float(x) for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def guard_rails(
    curves: dict[str, list[Any]], before: dict[str, Any] | None, after: dict[str, Any] | None
) -> list[str]:
    """Warnings of reward hacking: the training reward rose (mean of the last third of steps
    above the first third) while the held-out reward did not; refusals or length moved sharply.

    >>> c = {"reward": [0.1, 0.2, 0.5], "mean_length": [50, 50, 50], "refusal": [0, 0, 0]}
    >>> b = {"rewards": {"judge": 0.5}, "refusal_rate": 0.0}
    >>> a = {"rewards": {"judge": 0.4}, "refusal_rate": 0.0}
    >>> guard_rails(c, b, a)[0][:40]
    'the training reward rose (0.100 → 0.500)'
    """
    out: list[str] = []
    rewards = curves.get("reward") or []
    third = max(1, len(rewards) // 3)
    first, last = mean(rewards[:third]), mean(rewards[-third:])
    if before and after and first is not None and last is not None and last > first + RISE:
        for name, b in (before.get("rewards") or {}).items():
            a = (after.get("rewards") or {}).get(name)
            if b is not None and a is not None and a <= b and not name.startswith("refusal"):
                out.append(
                    f"the training reward rose ({first:.3f} → {last:.3f}) while the held-out "
                    f"reward {name} did not ({b:.3f} → {a:.3f}): the policy may be fitting the "
                    "training prompts or the judge's quirks rather than the constitution"
                )
    for key, label in (("refusal", "refusal rate"), ("mean_length", "mean length")):
        xs = curves.get(key) or []
        t = max(1, len(xs) // 3)
        a0, a1 = mean(xs[:t]), mean(xs[-t:])
        if a0 is None or a1 is None:
            continue
        if key == "refusal" and a1 - a0 > 0.25:
            out.append(f"the {label} over training rose from {a0:.2f} to {a1:.2f}: evasiveness?")
        if key == "mean_length" and a0 > 0 and (a1 < 0.5 * a0 or a1 > 2 * a0):
            out.append(f"the {label} over training went from {a0:.1f} to {a1:.1f} tokens")
    if before and after and after["refusal_rate"] - before["refusal_rate"] > 0.25:
        out.append(
            f"held-out refusal rate rose from {before['refusal_rate']:.2f} to "
            f"{after['refusal_rate']:.2f}"
        )
    return out


def write_rl_plot(out: Path, curves: dict[str, list[Any]], title: str) -> None:
    """OUT/rl.png: reward, KL, mean length and refusal rate against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("reward", "reward (weighted sum)"),
        ("kl", "KL to the start"),
        ("mean_length", "mean length (tokens)"),
        ("refusal", "refusal rate"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3))
    for ax, (key, label) in zip(axes, panels, strict=True):
        pts = [
            (s, v)
            for s, v in zip(curves["step"], curves.get(key) or [], strict=False)
            if v is not None
        ]
        ax.plot([s for s, _ in pts], [v for _, v in pts], marker=".")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = out / f".{RL_PNG}.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, out / RL_PNG)
