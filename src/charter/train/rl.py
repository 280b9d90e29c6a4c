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
from charter.train.rl_metrics import (
    StepSplit,
    generate_texts,
    guard_rails,
    held_out_metrics,
    mean,
    peak_rss_mb,
    rl_curves,
    torch_threads,
    write_rl_plot,
)

Algorithm = Literal["grpo", "rloo"]
REFERENCES = "references.jsonl"
REWARD_LOG = "rewards.jsonl"


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


def train_rl(
    options: RLOptions,
    *,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
    pool: Any = None,
) -> TrainResult:
    """GRPO or RLOO against the constitutional rewards; write adapter, metrics and curves."""
    # long: the run's steps in order (rewards, references, held-out before, train, after, save)
    from charter.backends.pool import BackendPool
    from charter.constitution.load import load_constitution
    from charter.runs import atomic_write_text
    from charter.train.outputs import begin_training, finish_training

    train_prompts, held = check_rl_options(options)
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
        before_file = options.out / "metrics_before.json"
        measured_before = before_file.exists()  # decided before the processes synchronize
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
        if measured_before:
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
                    k.removesuffix("_s"): mean(curves[k])
                    for k in ("rollout_s", "scoring_s", "update_s")
                },
                "kl_last": next((x for x in reversed(curves["kl"]) if x is not None), None),
                "peak_rss_mb": peak_rss_mb(),
                "torch_threads": torch_threads(),
                "engine": "torch",
            },
        )
    finally:
        if own_pool:
            pool.close()


def _dataset(examples: list[dict[str, Any]]) -> Any:
    import datasets

    return datasets.Dataset.from_list(examples)


def check_rl_options(options: RLOptions) -> tuple[list[PromptRecord], list[PromptRecord]]:
    """Fail before any model loads: the policy, every judge spec, the prompts (returned: the
    training and the held-out ones)."""
    from charter.backends import check_spec

    check_trainable_spec(options.model)
    for spec in options.rewards:
        if spec.kind == "judge":
            check_spec(spec.arg)
        if spec.kind == "pm" and not Path(spec.arg).expanduser().exists():
            raise ConfigError(f"reward {spec.source}: no such folder {spec.arg}")
    return load_rl_prompts(options)
