"""`charter sl`: the SL-CAI critique → revision stage on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from charter.cli.fields import config_from, options_from
from charter.cli.options import (
    JSON,
    MODEL,
    MODEL_OPT,
    OUT,
    PROGRESS,
    SEED,
    echo_result,
    executor_options,
    parse_key_values,
    prompt_run_options,
    select_prompts,
)
from charter.generate import GenerationConfig
from charter.sl.revise import SLConfig


@click.command()
@MODEL
@MODEL_OPT
@click.option(
    "--reviser",
    default=None,
    help="Backend spec of the model that writes the critiques and revisions (default: the "
    "--model itself, as in the paper), e.g. model:qwen2.5-coder-1.5b-instruct, or `teacher`: "
    "the strongest installed offline model for a local --model.",
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
# `langs` is a run-config knob (`charter run --set sl.langs=[en,ar]`): here --lang picks one.
@options_from(SLConfig, exclude={"lang", "langs"})
@prompt_run_options
@options_from(
    GenerationConfig,
    only=["max_new_tokens", "temperature", "top_p"],
    defaults={"max_new_tokens": 128},
)
@SEED
@JSON
@PROGRESS
@executor_options
def sl(
    model: str,
    model_opt: tuple[str, ...],
    reviser: str | None,
    constitution_spec: str,
    prompts_spec: str,
    out: Path,
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
    """SL-CAI: answer, then critique and revise under sampled principles, N rounds.

    Writes OUT/samples.jsonl (every round kept), OUT/sft.jsonl (prompt → final answer) and
    OUT/summary.json. Resumable with --resume after a crash.
    """
    # long: options → stage inputs, then one Stage.run; the teacher resolution and the run
    # folder's config are spelled out here
    from charter.backends import check_spec
    from charter.backends.pool import BackendPool
    from charter.config import TEACHER, default_role
    from charter.constitution.load import load_constitution
    from charter.data import mixed
    from charter.feedback import ModelRole
    from charter.runs import RunFolder
    from charter.sl import SL, SLInputs
    from charter.stage import StageContext

    if reviser == TEACHER:
        # The stronger offline teacher for a local policy (as `charter run`'s feedback role).
        reviser = None if (t := default_role(model, {})[0]) == model else t
    for spec in (model, reviser or model):
        check_spec(spec)
    cfg = config_from(SLConfig, fields, lang=lang)
    policy = config_from(
        GenerationConfig,
        fields,
        model=model,
        model_options=parse_key_values(model_opt, "--model-opt"),
        batch_size=batch_size,
    )
    constitution = load_constitution(constitution_spec)
    prompts, selection = select_prompts(prompts_spec, lang=lang, split=split, limit=limit)
    chosen_split = None if selection["split"] == "all" else selection["split"]
    helpful = (
        mixed(cfg.helpful_sources(), cfg.helpful_langs or [lang], chosen_split)
        if cfg.helpful_ratio > 0
        else []
    )
    config = {
        "command": "sl",
        "backend": model,
        "backend_options": policy.model_options,
        **({"reviser": reviser} if reviser else {}),
        "constitution": constitution_spec,
        "constitution_sha256": constitution.compute_sha256(),
        "prompts": prompts_spec,
        "split": selection["split"],
        "limit": limit,
        "batch_size": batch_size,
        "sl": cfg.model_dump(mode="json"),
        "sampling": policy.sampling(seed).model_dump(mode="json"),
    }
    folder = RunFolder.open(out, config, resume=resume, overwrite=overwrite, redo=redo)
    with folder, BackendPool(batch_size) as pool:
        ctx = StageContext(folder, pool, constitution, progress and not as_json, seed)
        role = ModelRole(model=reviser) if reviser else None
        inputs = SLInputs(prompts=prompts, helpful=helpful, policy=policy, reviser=role)
        result = SL.run(ctx, inputs, cfg)
    summary = record_selection(out / "summary.json", selection)
    speed = result.tokens_per_s
    echo_result(
        summary,
        as_json,
        f"{out}: {result.n_samples} samples, {result.n_revised} revised, acceptance rate "
        f"{result.acceptance_rate:.2f}, {result.n_sft} SFT rows"
        + (f", {speed:.1f} tokens/s" if speed else ""),
    )


def record_selection(summary_path: Path, selection: dict[str, object]) -> dict[str, Any]:
    """Add which prompts were used (and what a split or limit dropped) to a stage summary."""
    import json

    from charter.runs import atomic_write_text

    summary: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
    summary["prompt_selection"] = selection
    atomic_write_text(summary_path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary
