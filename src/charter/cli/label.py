"""`charter label`: the RL-CAI AI-feedback stage on its own (pairs → soft preference labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from charter.cli.fields import config_from, options_from
from charter.cli.options import (
    JSON,
    OUT,
    PROGRESS,
    SEED,
    echo_result,
    executor_options,
    parse_key_values,
    prompt_run_options,
    select_prompts,
)
from charter.cli.sl import record_selection
from charter.feedback.labeler import LabelConfig
from charter.generate import GenerationConfig

_SPEC = "a backend spec (embedded, hf:PATH, ct2:PATH, openai:URL#MODEL, vllm:MODEL, fake)"


@click.command()
@click.option(
    "--policy", default="embedded", show_default=True, help=f"The model that answers: {_SPEC}."
)
@click.option(
    "--feedback",
    default=None,
    help=f"The model that labels: {_SPEC}. Default: the strongest installed offline model "
    "(`charter models list`).",
)
@click.option(
    "--policy-opt", multiple=True, metavar="KEY=VALUE", help="Option of the --policy backend."
)
@click.option(
    "--feedback-opt", multiple=True, metavar="KEY=VALUE", help="Option of the --feedback backend."
)
@click.option(
    "--constitution",
    "constitution_spec",
    default="udhr",
    show_default=True,
    help="The constitution: builtin NAME, a YAML/JSON FILE or collective:DIR.",
)
@click.option(
    "--prompts",
    "prompts_spec",
    default="builtin:red-team",
    show_default=True,
    help="builtin:NAME, a JSONL file, hh-rlhf:PATH or hf-dataset:ID.",
)
@OUT
@click.option(
    "--pairs-from",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Label these prompt/chosen/rejected rows instead of sampling pairs from --policy.",
)
@options_from(LabelConfig, exclude={"lang", "seed", "clamp"})
@click.option(
    "--clamp",
    type=(float, float),
    default=(0.4, 0.6),
    show_default=True,
    help="With --cot, the band each vote is clamped to.",
)
@prompt_run_options
@options_from(
    GenerationConfig,
    only=["max_new_tokens", "temperature"],
    defaults={"max_new_tokens": 128, "temperature": 0.8},
)
@SEED
@JSON
@PROGRESS
@executor_options
def label(
    policy: str,
    feedback: str | None,
    policy_opt: tuple[str, ...],
    feedback_opt: tuple[str, ...],
    constitution_spec: str,
    prompts_spec: str,
    out: Path,
    pairs_from: Path | None,
    lang: str,
    limit: int | None,
    split: str | None,
    resume: bool,
    overwrite: bool,
    redo: tuple[str, ...],
    batch_size: int,
    seed: int,
    as_json: bool,
    progress: bool,
    **fields: Any,
) -> None:
    """RL-CAI feedback: sample two answers per prompt from --policy (or read --pairs-from),
    and label each pair with --feedback under K sampled principles, both option orders.

    Writes OUT/pairs.jsonl, OUT/prefs.jsonl (TRL prompt/chosen/rejected rows with the soft label
    p_chosen and every vote) and OUT/summary.json. Resumable with --resume.
    """
    # long: a command: its options become the config, the inputs and the run folder, then the stage
    # runs
    from charter.backends import check_spec
    from charter.backends.pool import BackendPool
    from charter.constitution.load import load_constitution
    from charter.errors import ConfigError
    from charter.feedback import LABEL, LabelInputs, ModelRole, read_pairs
    from charter.runs import RunFolder
    from charter.stage import StageContext

    if feedback is None:
        from charter.backends.catalog import strongest_installed

        feedback = strongest_installed().spec
    check_spec(feedback)
    if pairs_from is None:
        check_spec(policy)
    lo, hi = fields["clamp"]
    try:
        cfg = config_from(LabelConfig, fields, lang=lang, seed=seed)
    except ConfigError as e:
        raise ConfigError(f"--clamp {lo} {hi}: {e}") if "clamp" in str(e) else e from None
    policy_cfg = config_from(
        GenerationConfig,
        fields,
        model=policy,
        model_options=parse_key_values(policy_opt, "--policy-opt"),
        batch_size=batch_size,
    )
    feedback_role = ModelRole(
        model=feedback, model_options=parse_key_values(feedback_opt, "--feedback-opt")
    )
    constitution = load_constitution(constitution_spec)
    pairs = read_pairs(pairs_from)[:limit] if pairs_from is not None else None
    selection: dict[str, object] = {"source": str(pairs_from), "used": len(pairs or [])}
    prompts: list[Any] = []
    if pairs is None:
        prompts, selection = select_prompts(prompts_spec, lang=lang, split=split, limit=limit)
    split = str(selection.get("split", split))
    sampling = policy_cfg.sampling(seed)
    config = {
        "command": "label",
        "policy": None if pairs_from else policy,
        "policy_options": policy_cfg.model_options,
        "feedback": feedback,
        "feedback_options": feedback_role.model_options,
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
    inputs = LabelInputs(
        prompts=prompts,
        pairs=pairs,
        policy=None if pairs is not None else policy_cfg,
        feedback=feedback_role,
    )
    with folder, BackendPool(batch_size) as pool:
        ctx = StageContext(folder, pool, constitution, progress and not as_json, seed)
        LABEL.run(ctx, inputs, cfg)
    summary = record_selection(out / "summary.json", selection)
    qps = summary["queries_per_s"]
    bias = summary["letter_bias"]
    agreement = summary["order_agreement"]
    echo_result(
        summary,
        as_json,
        f"{out / 'prefs.jsonl'}: {summary['n_pairs']} pairs, {summary['n_votes']} votes, "
        f"mean p_chosen {summary['p_chosen_mean']}"
        + (f", letter bias {bias:+.3f}" if bias is not None else "")
        + (f", orders agree {agreement:.0%}" if agreement is not None else "")
        + (f", {qps:.1f} queries/s" if qps else ""),
    )
