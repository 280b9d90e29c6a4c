"""The `evaluate` stage under the stage contract (`charter evaluate` and `charter run`).

It answers, detects refusals, judges pairwise and writes `metrics.json` into the stage's
folder (`ctx.out`), then `report.html` where `inputs.report` says; the manifest records its
options, the constitution and what the models were (retrained models are evaluated again).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from charter.errors import ConfigError
from charter.evaluate.options import ANSWERS, COMPARISONS, METRICS, RM_SCORES, SAMPLES, EvalOptions
from charter.stage import Stage, StageContext

if TYPE_CHECKING:
    from charter.config import RunConfig

OUTPUTS = (ANSWERS, COMPARISONS, SAMPLES, METRICS, RM_SCORES, "mc")


class EvalInputs(BaseModel):
    """Besides the options: a hash of what the models are when they are outputs of the run
    (`models_hash`), and where to write the HTML report (`report`; None: no report)."""

    models_hash: str | None = None
    report: Path | None = None


class EvalResult(BaseModel):
    """The metrics `metrics.json` holds; `complete` when the stage was already done."""

    metrics: dict[str, Any]
    complete: bool = False


def run_evaluate(ctx: StageContext, inputs: EvalInputs, cfg: EvalOptions) -> EvalResult:
    """Evaluate `cfg.models` into `ctx.out` (see `charter.evaluate.compare`)."""
    import json

    from charter.evaluate.compare import evaluate_models
    from charter.evaluate.report import write_report

    constitution = ctx.constitution
    sha = constitution.compute_sha256() if constitution is not None else cfg.constitution
    dumped = cfg.model_dump(mode="json")
    digest, earlier = ctx.runfolder.options_hashes(dumped, sha)
    out = ctx.out
    outputs = [ctx.file(name) for name in OUTPUTS]
    if inputs.report is not None:
        outputs.append(str(inputs.report.relative_to(ctx.runfolder.path)))

    def work() -> int:
        evaluate_models(
            cfg, out, progress=ctx.progress, resume=True, pool=ctx.pool, constitution=constitution
        )
        if inputs.report is not None:
            run_dir = ctx.runfolder.path if ctx.folder else None  # the run around the stage
            write_report(eval_dir=out, out=inputs.report, run_dir=run_dir)
        return len(cfg.models)

    ran = ctx.runfolder.run_stage(
        "evaluate",
        digest,
        outputs,
        work,
        records_hash=inputs.models_hash,
        earlier_hashes=earlier,
    )
    path = out / METRICS
    metrics = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return EvalResult(metrics=metrics, complete=ran is None)


EVALUATE: Stage[EvalInputs, EvalOptions, EvalResult] = Stage(
    "evaluate", EvalOptions, run_evaluate, "compare models: refusals, judged win rates, Elo"
)

# What `charter run` sets in its `evaluate` section itself.
RUN_SETS = ("models", "judge", "constitution", "backend_options", "batch_size", "seed")


def eval_options(cfg: RunConfig, root: Path) -> EvalOptions:
    """The `evaluate` options of a run in `root`: the config's `evaluate` section with the
    models (base, and the trained ones), judge, constitution, batch size and seed of the run."""
    ec = cfg.evaluate
    from charter.pipeline import changed_fields

    clash = changed_fields(ec, RUN_SETS)
    if clash:
        raise ConfigError(f"`evaluate.{clash[0]}` is set by the run; remove it")
    policy, policy_opts = cfg.role("policy")
    judge, judge_opts = cfg.role("judge")
    models = {"base": policy}
    if cfg.train.enabled:
        models["sl-cai"] = f"hf:{root / 'train' / 'sft' / 'merged'}"
        if cfg.train.dpo_enabled:
            models["rl-cai"] = f"hf:{root / 'train' / 'dpo' / 'merged'}"
        online = cfg.train.online_algorithm
        if online:
            # Online RL-CAI: named by its algorithm beside DPO's rl-cai.
            models[f"rl-cai-{online}"] = f"hf:{root / 'train' / online / 'merged'}"
    data = ec.model_dump(include=set(EvalOptions.model_fields) - set(RUN_SETS))
    return EvalOptions.model_validate(
        {
            **data,
            "models": models,
            "judge": judge,
            "constitution": cfg.constitution,
            "batch_size": cfg.generation.batch_size,
            "seed": cfg.seed,
            "backend_options": {"base": policy_opts, "judge": judge_opts},
        }
    )
