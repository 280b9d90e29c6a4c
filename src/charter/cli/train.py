"""`charter train sft|dpo|rm` and `charter score`: training on stage outputs (TRL + PEFT)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from charter.cli.fields import config_from, options_from
from charter.cli.options import JSON, PROGRESS
from charter.cli.vocabulary import CharterGroup
from charter.train import DPOOptions, RMOptions, SFTOptions
from charter.train.rl import RLOptions

F = TypeVar("F", bound=Callable[..., Any])


def _common(f: F) -> F:
    """What every `charter train` command has besides its options' fields."""
    for option in reversed(
        [
            click.option(
                "--target-modules",
                default=None,
                help="Comma-separated LoRA targets, e.g. q_proj,v_proj "
                "[default: every linear layer but the head].",
            ),
            click.option(
                "--resume", is_flag=True, help="Continue from the last checkpoint in --out."
            ),
            click.option(
                "--overwrite",
                is_flag=True,
                help="Delete the training run in --out and start again (only a charter run).",
            ),
            JSON,
            PROGRESS,
        ]
    ):
        f = option(f)
    return f


def _train_options(cls: type[Any]) -> Callable[[F], F]:
    """The fields of `cls` (`SFTOptions`, `DPOOptions`, `RMOptions`) as options."""
    return options_from(
        cls,
        exclude={"target_modules"} | ({"merge"} if cls is RMOptions else set()),
        required={"data", "out"},
    )


def _run(kind: str, cls: type[Any], kw: dict[str, Any], flags: dict[str, Any]) -> None:
    """Build the options, then run the `train/KIND` stage into --out (a run folder)."""
    from charter.backends.pool import BackendPool
    from charter.runs import RunFolder
    from charter.stage import StageContext, stages
    from charter.train.common import check_trainable_spec
    from charter.train.data import load_preference_rows, load_sft_rows
    from charter.train.stage import TrainInputs

    modules = kw.pop("target_modules", None)
    fixed: dict[str, Any] = {}
    if modules is not None:
        fixed["target_modules"] = [m.strip() for m in modules.split(",") if m.strip()]
    if "reward" in kw:
        from charter.train.rewards import parse_reward

        given = kw.pop("reward")
        if given:
            fixed["rewards"] = [parse_reward(r) for r in given]
        fixed["algorithm"] = kind
    options = config_from(cls, kw, **fixed)
    check_trainable_spec(options.model)
    # The data is read (and any bad row reported) before --out is made.
    if kind in ("grpo", "rloo"):
        from charter.train.rl import check_rl_options

        check_rl_options(options)
    elif kind == "sft":
        load_sft_rows(options.data)
    else:
        load_preference_rows(options.data, need_p=getattr(options, "loss", None) == "soft")
    out = options.out
    state = _distributed()
    if state is not None and not flags["overwrite"]:
        _refuse_finished(out, kind)
    if state is not None and not state.is_main_process:
        # Another process of `accelerate launch` / torchrun: the first one owns the run folder
        # (manifest, lock); this one waits until it is open, then trains beside it.
        state.wait_for_everyone()
        _TRAINERS[kind](options, progress=False, resume=True)
        return
    config = {"command": f"train {kind}", "options": options.model_dump(mode="json")}
    folder = RunFolder.open(out, config, resume=flags["resume"], overwrite=flags["overwrite"])
    with folder, BackendPool() as pool:
        if state is not None:
            state.wait_for_everyone()
        ctx = StageContext(folder, pool, None, flags["progress"] and not flags["as_json"])
        result = stages()[f"train/{kind}"].run(ctx, TrainInputs(), options)
    if flags["as_json"]:
        click.echo(json.dumps(result.model_dump(mode="json", exclude={"log_history"}), indent=2))
    else:
        _report(result)


def _distributed() -> Any:
    """accelerate's process state when this is one of several training processes (launched by
    `accelerate launch` or torchrun: WORLD_SIZE > 1), else None."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    cpu = not torch.cuda.is_available()
    if cpu:
        # Without it transformers' TrainingArguments sets up no process group on a CPU, and
        # every process would train alone (DDP on CPUs runs over gloo).
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    return PartialState(cpu=cpu)


def _refuse_finished(out: Path, kind: str) -> None:
    """Under several processes, every process refuses an OUT whose stage is complete: the first
    would skip it while the others waited for it to train with them. Read before the first
    process opens the folder, so that all processes decide alike."""
    from charter.errors import RunFolderError

    try:
        stages = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["stages"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if (stages.get(f"train/{kind}") or {}).get("status") == "complete":
        raise RunFolderError(
            f"{out} already holds a complete train/{kind}; a multi-process launch trains again "
            "only with --overwrite (or give another --out)"
        )


def _train_sft(options: Any, **kw: Any) -> Any:
    from charter.train.sft import train_sft

    return train_sft(options, **kw)


def _train_dpo(options: Any, **kw: Any) -> Any:
    from charter.train.dpo import train_dpo

    return train_dpo(options, **kw)


def _train_rm(options: Any, **kw: Any) -> Any:
    from charter.train.rm import train_rm

    return train_rm(options, **kw)


def _train_rl(options: Any, **kw: Any) -> Any:
    from charter.train.rl import train_rl

    return train_rl(options, **kw)


_TRAINERS = {"sft": _train_sft, "dpo": _train_dpo, "rm": _train_rm, "grpo": _train_rl,
             "rloo": _train_rl}  # fmt: skip


def _report(result: Any) -> None:
    m = result.metrics
    click.echo(
        f"trained {m['kind']} for {result.steps} steps in {result.seconds:.1f} s "
        f"({m.get('steps_per_second')} steps/s); loss {m.get('first_loss')} → {m.get('last_loss')}"
    )
    if m.get("kind") in ("grpo", "rloo"):
        _report_rl(m)
    elif m.get("after"):
        b, a = m["before"], m["after"]
        click.echo(
            f"implicit reward accuracy on the training pairs {b['reward_accuracy']:.3f} → "
            f"{a['reward_accuracy']:.3f}, margin {b['reward_margin']:.4f} → "
            f"{a['reward_margin']:.4f}"
        )
    where = result.merged or result.adapter
    click.echo(f"wrote {result.out} (weights: {where})")
    if result.merged:
        click.echo(f"use it as --model hf:{result.merged}")


def _report_rl(m: dict[str, Any]) -> None:
    b, a = m.get("before"), m.get("after")
    if b and a:
        for name, before in b["rewards"].items():
            after = a["rewards"].get(name)
            if before is not None and after is not None:
                click.echo(f"held-out {name}: {before:.3f} → {after:.3f}")
        click.echo(
            f"held-out mean length {b['mean_length']:.1f} → {a['mean_length']:.1f} tokens; "
            f"refusal rate {b['refusal_rate']:.2f} → {a['refusal_rate']:.2f}"
        )
    kl = [x for x in m["curves"]["kl"] if x is not None]
    if kl:
        click.echo(f"KL to the start at the last step: {kl[-1]:.4f}")
    for warning in m.get("warnings") or []:
        click.echo(f"warning: {warning}", err=True)


@click.group(cls=CharterGroup)
def train() -> None:
    """Train models: SFT on revisions, DPO on soft AI labels, reward models, online RL.

    Each command writes OUT/adapter (LoRA) or OUT/merged (full fine-tuning, or LoRA with
    --merge), OUT/train_config.json, OUT/metrics.json, OUT/loss.csv and OUT/loss.png. Run them
    under `accelerate launch` (configs/accelerate/) for several GPUs.
    """


FLAGS = ("resume", "overwrite", "progress", "as_json")


@train.command("sft")
@_train_options(SFTOptions)
@_common
def sft_cmd(**kw: Any) -> None:
    """Supervised fine-tuning on `charter sl`'s sft.jsonl (loss on the assistant's answer)."""
    _run("sft", SFTOptions, kw, {k: kw.pop(k) for k in FLAGS})


@train.command("dpo")
@_train_options(DPOOptions)
@_common
def dpo_cmd(**kw: Any) -> None:
    """DPO on `charter label`'s prefs.jsonl (prompt/chosen/rejected, p_chosen)."""
    _run("dpo", DPOOptions, kw, {k: kw.pop(k) for k in FLAGS})


@train.command("rm")
@_train_options(RMOptions)
@_common
def rm_cmd(**kw: Any) -> None:
    """A reward model on prefs.jsonl: cross-entropy of σ(r_c − r_r) against p_chosen.

    Always writes the merged model to OUT/merged, which `charter score --rm OUT` reads.
    """
    _run("rm", RMOptions, kw, {k: kw.pop(k) for k in FLAGS})


@click.command()
@click.option(
    "--rm",
    "rm_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="`charter train rm`'s OUT (or a reward-model folder).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="Preference pairs (prompt/chosen/rejected) or chats ending with an answer (messages).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the scored rows here (JSONL) instead of to stdout.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Rows scored per forward pass.",
)
@JSON
def score(rm_dir: Path, data: Path, out: Path | None, batch_size: int, as_json: bool) -> None:
    """Score answers with a trained preference model.

    Pairs get reward_chosen, reward_rejected and p_chosen_rm = σ(r_c − r_r), and the summary gives
    the share the model ranks as the file does; chats get one reward each. With --out the rows
    go to the file and the summary (JSON) to stdout; without, the rows go to stdout.
    """
    from charter.train.rm import score_rows, write_scores

    rows, summary = score_rows(rm_dir, data, batch_size=batch_size)
    if as_json and out is None:
        raise click.UsageError("--json prints the summary: give --out FILE for the scored rows")
    if out is not None:
        write_scores(rows, out)
        click.echo(json.dumps(summary, indent=2))
    else:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        click.echo(json.dumps(summary), err=True)


def _rl_options(f: F) -> F:
    f = click.option(
        "--reward",
        multiple=True,
        help="A reward (repeat to combine): judge:SPEC, pm:DIR, length:N or refusal, then "
        "`; key=value` options: weight, on (prompt sets), tags (principles), principles, versus "
        "(reference|group), few_shot, format [default: judge:embedded].",
    )(f)
    return options_from(
        RLOptions,
        exclude={"target_modules", "algorithm", "data", "rewards", "max_length"},
        required={"out"},
    )(f)


@train.command("grpo")
@_rl_options
@_common
def grpo_cmd(**kw: Any) -> None:
    """Online GRPO (TRL) against constitutional rewards, with a KL anchor to the start model.

    Samples --num-generations answers per prompt, scores them with the rewards (by default the
    embedded model judging each answer against the start model's own answer under the
    constitution, both option orders), and updates a LoRA adapter. Writes OUT/rewards.jsonl
    (every reward with its principles and votes), OUT/rl.png (reward, KL, length, refusal rate)
    and held-out metrics before and after in OUT/metrics.json.
    """
    _run("grpo", RLOptions, kw, {k: kw.pop(k) for k in FLAGS})


@train.command("rloo")
@_rl_options
@_common
def rloo_cmd(**kw: Any) -> None:
    """Online RLOO (TRL): as `train grpo`, with leave-one-out baselines and the KL in the reward."""
    _run("rloo", RLOptions, kw, {k: kw.pop(k) for k in FLAGS})
