"""RL-CAI online: GRPO or RLOO (TRL) against constitutional rewards, with a KL anchor.

The CAI paper's RL phase samples from the policy, scores the samples with a preference model
or the feedback model, and updates the policy with a KL penalty to the SL-CAI model. Here:

1. The prompts (`--prompts`, train split) are read, and `held_out` eval-split prompts are kept
   apart. For judges that compare against a reference, the starting model's greedy answer to
   every prompt is written once to OUT/references.jsonl (a resumed run reads it back).
2. Held-out metrics before training: the starting model's greedy answers to the held-out
   prompts, scored by every reward (the judge against the same references), their mean length
   and refusal rate.
3. TRL's `GRPOTrainer` or `RLOOTrainer` with a LoRA adapter and β > 0: the reference model is
   the adapter-free base (PEFT), so no second copy is loaded. Every reward call is logged to
   OUT/rewards.jsonl (`charter.train.rewards`).
4. The same held-out metrics after training, the curves of reward, KL, length and refusal rate
   (OUT/rl.png, OUT/loss.csv) and the guard rails: a warning when the training reward rose while
   the held-out reward did not, or when refusals or length moved sharply.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from charter.errors import ConfigError
from charter.records import PromptRecord, stable_id
from charter.train.common import (
    TrainOptions,
    TrainResult,
    check_trainable_spec,
    lora_config,
    prepare_out,
    quiet,
    resolve_model_dir,
    training_args,
)
from charter.train.rewards import RewardLog, RewardSpec, build_rewards, reference_mode_needed

Algorithm = Literal["grpo", "rloo"]
REFERENCES = "references.jsonl"
REWARD_LOG = "rewards.jsonl"
HELD_OUT = "held_out.jsonl"
RL_PNG = "rl.png"
# A training-reward rise smaller than this (last third of steps over the first) is noise.
RISE = 0.02


class RLOptions(TrainOptions):
    """Options for `charter train grpo|rloo`; `data` is written by the run (the prompts with
    their reference answers), the prompts come from `prompts`."""

    algorithm: Algorithm = Field("grpo", description="grpo or rloo (TRL's trainers).")
    data: Path = Field(Path("prompts.jsonl"), description="Set by the trainer: OUT/prompts.jsonl.")
    prompts: str = Field(
        "builtin:red-team", description="Prompts to sample from: builtin:NAME or a JSONL file."
    )
    split: Literal["train", "eval", "all"] = Field("train", description="Which split to train on.")
    limit: int | None = Field(None, ge=1, description="Train on the first N prompts only.")
    held_out: int = Field(
        8, ge=0, description="Eval-split prompts scored before and after training (0: none)."
    )
    lang: Literal["en", "ar"] = Field("en", description="Language of prompts and constitution.")
    constitution: str = Field("udhr", description="The judge's constitution.")
    rewards: list[RewardSpec] = Field(
        default_factory=lambda: [RewardSpec(source="judge:embedded")],
        min_length=1,
        description="The rewards (see charter.train.rewards).",
    )
    learning_rate: float = Field(5e-5, gt=0.0, description="Peak learning rate.")
    batch_size: int = Field(
        8, ge=1, description="Completions per step (a multiple of num_generations)."
    )
    num_generations: int = Field(4, ge=2, description="Samples per prompt (the group size).")
    max_new_tokens: int = Field(64, ge=1, description="Most tokens per sampled answer.")
    temperature: float = Field(0.9, gt=0.0, description="Sampling temperature of the rollouts.")
    beta: float = Field(
        0.04,
        ge=0.0,
        description="KL coefficient to the starting model (0 turns the anchor off; GRPO adds it "
        "to the loss, RLOO subtracts it from the reward).",
    )
    num_iterations: int = Field(1, ge=1, description="Updates per generation batch (GRPO's μ).")
    save_steps: int = Field(4, ge=1, description="Checkpoint every N steps (for --resume).")
    use_vllm: bool = Field(
        False,
        description="GPU: sample the rollouts with vLLM in the training process (TRL's "
        "use_vllm, colocate mode; needs vllm installed). Never run on a CPU.",
    )

    @model_validator(mode="after")
    def _group(self) -> RLOptions:
        if self.batch_size % self.num_generations:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of num_generations "
                f"({self.num_generations}): each step takes whole groups"
            )
        return self


def load_rl_prompts(options: RLOptions) -> tuple[list[PromptRecord], list[PromptRecord]]:
    """The training prompts and the held-out ones (eval split, never trained on)."""
    from charter.data import load_prompts

    split = None if options.split == "all" else options.split
    train = load_prompts(options.prompts, lang=options.lang, split=split)
    if options.limit is not None:
        train = train[: options.limit]
    held: list[PromptRecord] = []
    if options.held_out:
        trained = {p.id for p in train}
        evals = load_prompts(options.prompts, lang=options.lang, split="eval")
        held = [p for p in evals if p.id not in trained][: options.held_out]
    return train, held


def prompts_hash(options: RLOptions) -> str:
    """What the RL stage's data is: the training and held-out prompts as read."""
    train, held = load_rl_prompts(options)
    return stable_id([p.model_dump(mode="json") for p in (*train, *held)], length=64)


def _chat(p: PromptRecord) -> list[dict[str, str]]:
    if p.messages is not None:
        return [m.model_dump() for m in p.messages]
    return [{"role": "user", "content": str(p.prompt)}]


def _set_name(source: str) -> str:
    """`builtin:red-team` → red-team (the name a reward's `on` matches)."""
    return Path(source.removeprefix("builtin:")).stem


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


def _examples(
    prompts: Sequence[PromptRecord], set_name: str, refs: dict[str, str]
) -> list[dict[str, Any]]:
    return [
        {
            "prompt": _chat(p),
            "prompt_id": str(p.id),
            "prompt_set": str(p.meta.get("set", set_name)),
            "category": str(p.meta.get("category", "")),
            "reference": refs.get(str(p.id), ""),
        }
        for p in prompts
    ]


def _references(
    out: Path, model: Any, tokenizer: Any, prompts: Sequence[PromptRecord], max_new_tokens: int
) -> dict[str, str]:
    """The starting model's greedy answer per prompt, written once to OUT/references.jsonl."""
    from charter.runs import atomic_write_text

    path = out / REFERENCES
    refs: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            refs[row["prompt_id"]] = row["text"]
    todo = [p for p in prompts if str(p.id) not in refs]
    if todo:
        answers = generate_texts(
            model, tokenizer, [_chat(p) for p in todo], max_new_tokens=max_new_tokens
        )
        for p, (text, _) in zip(todo, answers, strict=True):
            refs[str(p.id)] = text
        atomic_write_text(
            path,
            "".join(
                json.dumps({"prompt_id": k, "text": v}, ensure_ascii=False) + "\n"
                for k, v in refs.items()
            ),
        )
    return refs


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


def _trainer_classes(algorithm: Algorithm) -> tuple[Any, Any]:
    if algorithm == "grpo":
        from trl.trainer.grpo_config import GRPOConfig
        from trl.trainer.grpo_trainer import GRPOTrainer

        return GRPOConfig, GRPOTrainer
    from trl.trainer.rloo_config import RLOOConfig
    from trl.trainer.rloo_trainer import RLOOTrainer

    return RLOOConfig, RLOOTrainer


def rl_config(options: RLOptions, *, progress: bool) -> Any:
    """TRL's GRPOConfig or RLOOConfig from our options."""
    config_class, _ = _trainer_classes(options.algorithm)
    args = training_args(options, progress=progress)
    for key in ("max_length", "dataset_num_proc", "per_device_eval_batch_size"):
        args.pop(key, None)
    return config_class(
        **args,
        num_generations=options.num_generations,
        max_completion_length=options.max_new_tokens,
        temperature=options.temperature,
        beta=options.beta,
        num_iterations=options.num_iterations,
        reward_weights=None,  # set by the trainer builder from the rewards
        remove_unused_columns=False,
        use_vllm=options.use_vllm,
        vllm_mode="colocate",
    )


def build_rl_trainer(
    options: RLOptions,
    model_dir: Path,
    examples: list[dict[str, Any]],
    rewards: Sequence[Any],
    *,
    progress: bool = False,
    callbacks: list[Any] | None = None,
    trainer_class: Any = None,
) -> Any:
    """TRL's GRPOTrainer or RLOOTrainer on the prompt dicts (exposed for tests)."""
    import datasets  # type: ignore[import-untyped]
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    args = rl_config(options, progress=progress)
    # charter's rewards carry their weight; a plain function weighs 1.
    args.reward_weights = [float(getattr(getattr(r, "spec", None), "weight", 1.0)) for r in rewards]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype="bfloat16" if options.bf16 else "float32"
    )
    cls = trainer_class or _trainer_classes(options.algorithm)[1]
    trainer = cls(
        model=model,
        reward_funcs=list(rewards),
        args=args,
        train_dataset=datasets.Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=lora_config(options, "CAUSAL_LM"),
        callbacks=callbacks,
    )
    return quiet(trainer, progress=progress)


def _unique_names(rewards: Sequence[Any]) -> None:
    seen: dict[str, int] = {}
    for r in rewards:
        n = seen.get(r.__name__, 0)
        seen[r.__name__] = n + 1
        if n:
            r.__name__ = f"{r.__name__}#{n + 1}"


def train_rl(  # long: the run's steps in order, each a call
    options: RLOptions,
    *,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
    pool: Any = None,
) -> TrainResult:
    """GRPO or RLOO against the constitutional rewards; write adapter, metrics and curves."""
    from charter.backends.pool import BackendPool
    from charter.constitution.load import load_constitution
    from charter.runs import atomic_write_text
    from charter.train.outputs import begin_training, finish_training

    check_trainable_spec(options.model)
    for spec in options.rewards:
        if spec.kind == "judge":
            from charter.backends import check_spec

            check_spec(spec.arg)
    train_prompts, held = load_rl_prompts(options)
    constitution = load_constitution(options.constitution)
    if options.lang != "en":
        constitution = constitution.localized(options.lang)
    prepare_out(options.out, resume=resume, overwrite=overwrite)
    model_dir = resolve_model_dir(options.model)
    started = time.perf_counter()
    own_pool = pool is None
    pool = pool if pool is not None else BackendPool()
    try:
        log = RewardLog(options.out / REWARD_LOG)
        rewards = build_rewards(
            options.rewards, log, pool=pool, constitution=constitution, seed=options.seed
        )
        _unique_names(rewards)
        data_file = options.out / "prompts.jsonl"
        set_name = _set_name(options.prompts)
        # The trainer's model and tokenizer write the references (the starting model's answers).
        trainer = build_rl_trainer(
            options,
            model_dir,
            _examples(train_prompts, set_name, {}),
            rewards,
            progress=progress,
            callbacks=callbacks,
        )
        tok = trainer.processing_class
        refs: dict[str, str] = {}
        if reference_mode_needed(options.rewards):
            refs = _references(
                options.out,
                trainer.model,
                tok,
                [*train_prompts, *held],
                options.max_new_tokens,
            )
        examples = _examples(train_prompts, set_name, refs)
        trainer.train_dataset = _dataset(examples)
        atomic_write_text(
            data_file, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)
        )
        options = options.model_copy(update={"data": data_file})
        held_examples = _examples(held, set_name, refs)
        before_file = options.out / "metrics_before.json"
        if before_file.exists():
            before = json.loads(before_file.read_text(encoding="utf-8"))
        else:
            log.phase = "held-out-before"
            before = held_out_metrics(
                trainer.model, tok, held_examples, rewards, options.max_new_tokens
            )
            atomic_write_text(before_file, json.dumps(before, indent=2, ensure_ascii=False) + "\n")
        checkpoint = begin_training(
            trainer, options, options.algorithm, model_dir, len(examples), resume=resume
        )
        split = StepSplit(log)
        split.attach(trainer)
        log.phase = "train"
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        log.phase = "held-out-after"
        after = held_out_metrics(trainer.model, tok, held_examples, rewards, options.max_new_tokens)
        history = list(trainer.state.log_history)
        curves = rl_curves(history, [r.__name__ for r in rewards])
        curves.update(split.curves(curves["step"]))
        write_rl_plot(options.out, curves, f"{options.algorithm.upper()} on {options.prompts}")
        return finish_training(
            trainer,
            options,
            output,
            kind=options.algorithm,
            title=f"{options.algorithm.upper()} on {options.prompts}",
            model_dir=model_dir,
            rows=len(examples),
            started=started,
            checkpoint=checkpoint,
            extra={
                "beta": options.beta,
                "rewards": [r.model_dump(mode="json") for r in options.rewards],
                "reward_names": [r.__name__ for r in rewards],
                "before": before,
                "after": after,
                "curves": curves,
                "warnings": guard_rails(curves, before, after),
                "step_seconds": {
                    k.removesuffix("_s"): _mean(curves[k])
                    for k in ("rollout_s", "scoring_s", "update_s")
                },
                "kl_last": next((x for x in reversed(curves["kl"]) if x is not None), None),
                "peak_rss_mb": _peak_rss_mb(),
                "torch_threads": _torch_threads(),
                "engine": "torch",
            },
        )
    finally:
        if own_pool:
            pool.close()


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


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dataset(examples: list[dict[str, Any]]) -> Any:
    import datasets

    return datasets.Dataset.from_list(examples)


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


def _mean(xs: Sequence[Any]) -> float | None:
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
    first, last = _mean(rewards[:third]), _mean(rewards[-third:])
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
        a0, a1 = _mean(xs[:t]), _mean(xs[-t:])
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


def check_rl_options(options: RLOptions) -> None:
    """Fail before any model loads: the policy, every judge spec, the prompts."""
    from charter.backends import check_spec

    check_trainable_spec(options.model)
    for spec in options.rewards:
        if spec.kind == "judge":
            check_spec(spec.arg)
        if spec.kind == "pm" and not Path(spec.arg).expanduser().exists():
            raise ConfigError(f"reward {spec.source}: no such folder {spec.arg}")
    load_rl_prompts(options)
