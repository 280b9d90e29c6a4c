"""`charter label`: the RL-CAI AI-feedback stage on its own (pairs → soft preference labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from charter.cli.options import parse_key_values, prompt_run_options, select_prompts
from charter.cli.sl import _record_selection


@click.command()
@click.option("--policy", default="embedded", show_default=True, help="Backend that answers.")
@click.option("--feedback", default="embedded", show_default=True, help="Backend that labels.")
@click.option(
    "--constitution", "constitution_spec", default="udhr", show_default=True, help="NAME or FILE."
)
@click.option(
    "--prompts",
    "prompts_spec",
    default="builtin:red-team",
    show_default=True,
    help="builtin:NAME, a JSONL file, hh-rlhf:PATH or hf-dataset:ID.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--pairs-from",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Label these prompt/chosen/rejected rows instead of sampling pairs from --policy.",
)
@click.option(
    "--principles-per-pair", "k", type=click.IntRange(min=1), default=4, show_default=True
)
@click.option(
    "--few-shot",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Labelling examples of the constitution prepended to every question.",
)
@click.option("--cot", is_flag=True, help="Chain of thought: reasoning first, then the letter.")
@click.option(
    "--clamp",
    "band",
    type=(float, float),
    default=(0.4, 0.6),
    show_default=True,
    help="With --cot, the band each vote is clamped to.",
)
@click.option("--cot-max-new-tokens", type=click.IntRange(min=1), default=128, show_default=True)
@prompt_run_options
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Pairs whose questions are scored in one call (and written together).",
)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=128, show_default=True)
@click.option(
    "--temperature", type=click.FloatRange(min=0.0, min_open=True), default=0.8, show_default=True
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--policy-opt", multiple=True, metavar="KEY=VALUE")
@click.option("--feedback-opt", multiple=True, metavar="KEY=VALUE")
@click.option("--progress/--no-progress", default=True, show_default=True)
def label(
    policy: str,
    feedback: str,
    constitution_spec: str,
    prompts_spec: str,
    out: Path,
    pairs_from: Path | None,
    k: int,
    few_shot: int,
    cot: bool,
    band: tuple[float, float],
    cot_max_new_tokens: int,
    lang: str,
    limit: int | None,
    split: str | None,
    resume: bool,
    overwrite: bool,
    redo: tuple[str, ...],
    batch_size: int,
    chunk_size: int,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    policy_opt: tuple[str, ...],
    feedback_opt: tuple[str, ...],
    progress: bool,
) -> None:
    """RL-CAI feedback: sample two answers per prompt from --policy (or read --pairs-from),
    and label each pair with --feedback under K sampled principles, both option orders.

    Writes OUT/label/pairs.jsonl, OUT/label/prefs.jsonl (TRL prompt/chosen/rejected rows with
    the soft label p_chosen and every vote) and OUT/label/summary.json. Resumable with --resume.
    """
    from pydantic import ValidationError

    from charter.backends import check_spec
    from charter.constitution.load import load_constitution
    from charter.errors import ConfigError
    from charter.feedback import LabelConfig, label_stage, read_pairs
    from charter.records import Sampling
    from charter.runs import RunFolder

    check_spec(feedback)
    if pairs_from is None:
        check_spec(policy)
    try:
        cfg = LabelConfig(
            principles_per_pair=k,
            few_shot=few_shot,
            cot=cot,
            clamp=band,
            cot_max_new_tokens=cot_max_new_tokens,
            lang=lang,
            seed=seed,
            chunk_size=chunk_size,
        )
    except ValidationError as e:
        raise ConfigError(f"--clamp {band[0]} {band[1]}: {e.errors()[0]['msg']}") from None
    constitution = load_constitution(constitution_spec)
    pairs = read_pairs(pairs_from)[:limit] if pairs_from is not None else None
    selection: dict[str, object] = {"source": str(pairs_from), "used": len(pairs or [])}
    prompts: list[Any] = []
    if pairs is None:
        prompts, selection = select_prompts(prompts_spec, lang=lang, split=split, limit=limit)
    split = str(selection.get("split", split))
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    policy_options = parse_key_values(policy_opt, "--policy-opt")
    feedback_options = parse_key_values(feedback_opt, "--feedback-opt")
    config = {
        "command": "label",
        "policy": None if pairs_from else policy,
        "policy_options": policy_options,
        "feedback": feedback,
        "feedback_options": feedback_options,
        "pairs_from": str(pairs_from) if pairs_from else None,
        "constitution": constitution_spec,
        "constitution_sha256": constitution.compute_sha256(),
        "prompts": None if pairs_from else prompts_spec,
        "split": split,
        "limit": limit,
        "batch_size": batch_size,
        "label": cfg.model_dump(mode="json"),
        "sampling": sampling.model_dump(mode="json"),
    }
    folder = RunFolder.open(out, config, resume=resume, overwrite=overwrite, redo=redo)
    summary = label_stage(
        folder,
        prompts,
        constitution,
        cfg,
        feedback=feedback,
        policy=None if pairs is not None else policy,
        sampling=sampling,
        pairs=pairs,
        policy_options=policy_options,
        feedback_options=feedback_options,
        batch_size=batch_size,
        progress=progress,
    )
    _record_selection(out / "label" / "summary.json", selection)
    qps = summary["queries_per_s"]
    bias = summary["letter_bias"]
    agreement = summary["order_agreement"]
    click.echo(
        f"{out / 'label' / 'prefs.jsonl'}: {summary['n_pairs']} pairs, {summary['n_votes']} votes, "
        f"mean p_chosen {summary['p_chosen_mean']}"
        + (f", letter bias {bias:+.3f}" if bias is not None else "")
        + (f", orders agree {agreement:.0%}" if agreement is not None else "")
        + (f", {qps:.1f} queries/s" if qps else "")
    )
