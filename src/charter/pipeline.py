"""`charter run`: the whole CAI pipeline in one run folder, stage by stage, resumable.

constitution → prompts → generate → sl → sft → label (pairs from the SFT model) → train (dpo
and/or grpo/rloo) → redteam (optional: attacks on the base and trained models) → evaluate → report.

Each stage is recorded in the run's manifest with a hash of its inputs; `--resume` skips the
stages already complete for the same inputs, and a changed input redoes that stage and every
stage after it. Long stages are resumable inside too (JSONL keyed by ids, training checkpoints).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from charter.backends.pool import BackendPool
from charter.config import TEACHER, RunConfig
from charter.errors import CharterError, ConfigError, RunFolderError
from charter.records import PromptRecord, stable_id
from charter.redteam.config import RedteamConfig
from charter.runs import RunFolder, atomic_write_text, check_run_name, list_runs
from charter.stage import StageContext, stages
from charter.train import DPOOptions, SFTOptions
from charter.train.rewards import RewardSpec
from charter.train.rl import RLOptions

TRAINABLE_PREFIXES = ("embedded", "hf:")
STAGES = stages()


@dataclass
class StageResult:
    """One line of the final summary table."""

    name: str
    status: str  # "ran", "resumed (N records already there)", "skipped (complete)", "disabled"
    seconds: float = 0.0
    detail: str = ""


@dataclass
class PipelineResult:
    path: Path
    stages: list[StageResult] = field(default_factory=list)
    metrics: dict[str, Any] | None = None
    discarded: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON data (`charter run --json`)."""
        return {
            "path": str(self.path),
            "stages": [vars(s) for s in self.stages],
            "metrics": self.metrics,
            "discarded": self.discarded,
            "notes": self.notes,
        }


def resolve_config(
    preset: str | None,
    file: Path | None,
    overrides: Sequence[str],
    sets: dict[str, str],
    *,
    resume: bool = False,
) -> RunConfig:
    """The config a `charter run` uses: `preset` (default `quick`), `file` and `overrides`, then
    `sets` (the role, constitution and folder flags). With `resume` and a run name but no preset,
    file or override, the run folder's own resolved config (a run that does not exist is an error
    that lists those that do)."""
    from charter.config import load_config, overlay_config

    role_sets = [f"{key}={value}" for key, value in sets.items()]
    name = sets.get("name")
    if resume and name and preset is None and file is None and not overrides:
        folder = Path(sets.get("runs_dir") or "runs") / name
        if (folder / "config.yaml").exists():
            return overlay_config(load_run_config(folder).model_dump(mode="json"), role_sets)
        check_run_name(name)
        parent = folder.parent
        found = [r["name"] for r in list_runs(parent)]
        raise RunFolderError(
            f"there is no run {name!r} in {parent} to resume; "
            + (f"runs there: {', '.join(found)}" if found else "it holds no runs")
            + " (without --resume, a new run starts)"
        )
    return load_config(preset or "quick", file, (*overrides, *role_sets))


def trainable_model(cfg: RunConfig) -> str:
    """The base model the train stage fine-tunes: `train.model`, else the policy if trainable."""
    spec = cfg.train.model or cfg.generation.model
    if not spec.startswith(TRAINABLE_PREFIXES):
        raise ConfigError(
            f"the train stage needs local weights, but the policy is {spec!r}; set "
            "`train.model` to `embedded` or `hf:PATH` (the same model's weights), or "
            "`train.enabled=false`"
        )
    return spec


def check_config(cfg: RunConfig) -> None:
    """Fail before any model loads: every backend spec, the training model and options."""
    from charter.backends import check_spec

    for role in ("policy", "reviser", "feedback", "judge"):
        check_spec(cfg.role(role)[0])
    if cfg.train.enabled:
        if not cfg.sl.enabled:
            raise ConfigError("the train stage needs the sl stage (enable it)")
        if cfg.train.dpo_enabled and cfg.train.pairs == "label" and not cfg.label.enabled:
            raise ConfigError(
                "DPO (train.rl) needs the label stage: enable it, set train.pairs=sl, or set "
                "train.rl=grpo or rloo"
            )
        trainable_model(cfg)
        train_options(cfg, Path("."))  # refuses options the run sets itself
        online_options(cfg, Path("."))
    if cfg.redteam.enabled:
        redteam_options(cfg, Path("."))  # refuses options the run sets itself


def changed_fields(config: BaseModel, names: Iterable[str]) -> list[str]:
    """Which of `names` the user set in `config` to something other than their default (the
    fields a run sets itself; a resolved config.yaml holds them all at their defaults)."""
    fields = type(config).model_fields
    return sorted(
        n for n in names if getattr(config, n) != fields[n].get_default(call_default_factory=True)
    )


def train_options(cfg: RunConfig, root: Path) -> tuple[SFTOptions, DPOOptions]:
    """The `train/sft` and `train/dpo` options of a run in `root`: the config's `train.sft` and
    `train.dpo` with the model, data and output folders the run decides."""
    model = trainable_model(cfg)
    fixed: dict[str, dict[str, Any]] = {
        "sft": {"model": model, "data": root / "sl" / "sft.jsonl", "out": root / "train" / "sft"},
        "dpo": {
            "model": f"hf:{root / 'train' / 'sft' / 'merged'}",
            "data": root / "label" / "prefs.jsonl"
            if cfg.train.pairs == "label"
            else root / "sl" / "pairs.jsonl",
            "out": root / "train" / "dpo",
        },
    }
    result: list[Any] = []
    for key, cls in (("sft", SFTOptions), ("dpo", DPOOptions)):
        given = getattr(cfg.train, key)
        clash = changed_fields(given, fixed[key])
        if clash:
            raise ConfigError(f"`train.{key}.{clash[0]}` is set by the run; remove it")
        data = given.model_dump(exclude=set(fixed[key]))
        result.append(cls.model_validate({**data, **fixed[key]}))
    return result[0], result[1]


# What the run sets in `train.online` itself (`rewards` only when left empty).
ONLINE_SETS = ("model", "out", "prompts", "split", "limit", "lang", "constitution", "seed")


def online_options(cfg: RunConfig, root: Path) -> RLOptions | None:
    """The online RL stage's options (None when `train.rl` has no grpo/rloo): `train.online`
    starting from the SFT model, on the label stage's prompts, with the run's constitution and
    seed; without rewards of its own, the feedback role judges against the SFT model's answers."""
    algorithm = cfg.train.online_algorithm
    if algorithm is None:
        return None
    given = cfg.train.online
    fields = type(given).model_fields
    clash = [
        n
        for n in ONLINE_SETS
        if getattr(given, n) != fields[n].get_default(call_default_factory=True)
    ]
    if clash:
        raise ConfigError(f"`train.online.{clash[0]}` is set by the run; remove it")
    rewards = list(given.rewards)
    if not rewards:
        spec, options = cfg.role("feedback")
        rewards = [RewardSpec(source=f"judge:{spec}", model_options=options)]
    data = given.model_dump(exclude={*ONLINE_SETS, "rewards", "algorithm"})
    return RLOptions.model_validate(
        {
            **data,
            "algorithm": algorithm,
            "model": f"hf:{root / 'train' / 'sft' / 'merged'}",
            "out": root / "train" / algorithm,
            "prompts": cfg.label.prompts,
            "split": cfg.label.split,
            "limit": cfg.label.limit,
            "lang": cfg.label.lang,
            "constitution": cfg.constitution,
            "seed": cfg.seed,
            "rewards": rewards,
        }
    )


def collect_prompts(cfg: RunConfig) -> dict[str, list[PromptRecord]]:
    """Every prompt set the run uses, by role; raises on bad files before anything runs."""
    from charter.data import load_prompts, mixed, multilingual

    def split(s: str) -> str | None:
        return None if s == "all" else s

    sets: dict[str, list[PromptRecord]] = {
        "generate": load_prompts(cfg.prompts)[: cfg.limit],
    }
    if cfg.sl.enabled:
        sets["sl"] = multilingual(cfg.sl.prompts, cfg.sl.languages(), split(cfg.sl.split))[
            : cfg.sl.limit
        ]
        sets["sl-helpful"] = (
            mixed(
                cfg.sl.helpful_sources(),
                cfg.sl.helpful_langs or cfg.sl.languages(),
                split(cfg.sl.split),
            )
            if cfg.sl.helpful_ratio > 0
            else []
        )
    if cfg.label.enabled:
        sets["label"] = load_prompts(
            cfg.label.prompts, lang=cfg.label.lang, split=split(cfg.label.split)
        )[: cfg.label.limit]
    if cfg.evaluate.enabled:
        for name, spec in cfg.evaluate.prompts.items():
            for lang in cfg.evaluate.langs:
                sets[f"evaluate/{name}/{lang}"] = load_prompts(
                    spec, lang=lang, split=split(cfg.evaluate.split)
                )[: cfg.evaluate.limit]
    return sets


@contextmanager
def _stage_bar(names: list[str], enabled: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    with tqdm(
        total=len(names), desc="charter run", unit="stage", disable=not enabled, position=0
    ) as bar:
        yield bar


def run_pipeline(
    cfg: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    redo: Sequence[str] = (),
) -> PipelineResult:
    """Run every enabled stage of `cfg` into `runs_dir/name`; see the module docstring.

    `redo` names manifest stages (`sl`, `label`, `train/sft`, `evaluate`, ...) to recompute
    although finished; a stage whose options changed refuses to run without it.
    """
    from charter.constitution.load import load_constitution

    check_run_name(cfg.name)
    check_config(cfg)
    constitution = load_constitution(cfg.constitution)
    prompt_sets = collect_prompts(cfg)
    root = Path(cfg.runs_dir) / cfg.name
    run = RunFolder.open(
        root, cfg.model_dump(mode="json"), resume=resume, overwrite=overwrite, redo=redo
    )
    try:
        with BackendPool(cfg.generation.batch_size, executor=cfg.executor) as pool:
            ctx = StageContext(run, pool, constitution, progress, cfg.seed)
            return _run_steps(cfg, ctx, prompt_sets)
    finally:
        run.close()


Step = Callable[[RunConfig, StageContext, dict[str, list[PromptRecord]]], str]


def _constitution_step(cfg: RunConfig, ctx: StageContext, sets: PromptSets) -> str:
    from charter.constitution.load import dump_constitution

    constitution = ctx.need_constitution()

    def write() -> int:
        atomic_write_text(ctx.runfolder.path / "constitution.yaml", dump_constitution(constitution))
        return len(constitution.principles)

    sha = constitution.compute_sha256()
    ran = ctx.runfolder.run_stage("constitution", sha, ["constitution.yaml"], write, ask=False)
    return _ran(ran is not None, f"{constitution.name} ({len(constitution.principles)} principles)")


def _prompts_step(cfg: RunConfig, ctx: StageContext, sets: PromptSets) -> str:
    rows = []
    for role, records in sets.items():
        for p in records:
            data = p.model_dump(mode="json")
            data["meta"] = {**data.get("meta", {}), "role": role}
            data["id"] = f"{role}:{p.key()}"
            rows.append(data)

    def write() -> int:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        atomic_write_text(ctx.runfolder.path / "prompts.jsonl", text)
        return len(rows)

    digest = stable_id(rows, length=64)
    ran = ctx.runfolder.run_stage("prompts", digest, ["prompts.jsonl"], write, ask=False)
    return _ran(ran is not None, ", ".join(f"{k} {len(v)}" for k, v in sets.items() if v))


def _generate_step(cfg: RunConfig, ctx: StageContext, sets: PromptSets) -> str:
    r = STAGES["generate"].run(ctx, sets["generate"], cfg.generation)
    if r.complete:
        return "already complete"
    return f"{r.written} answers, {r.tokens_per_s:.0f} tokens/s"


def _sl_step(cfg: RunConfig, ctx: StageContext, sets: PromptSets) -> str:
    from charter.feedback import ModelRole
    from charter.sl import SLConfig, SLInputs

    sl_cfg = SLConfig.model_validate(cfg.sl.model_dump(include=set(SLConfig.model_fields)))
    reviser = None
    if cfg.reviser.model:
        spec, options = cfg.role("reviser")
        # `teacher` with an embedded-only install resolves to the policy: the paper's reviser.
        if cfg.reviser.model != TEACHER or (spec, options) != cfg.role("policy"):
            reviser = ModelRole(model=spec, model_options=options)
    inputs = SLInputs(
        prompts=sets["sl"], helpful=sets["sl-helpful"], policy=cfg.generation, reviser=reviser
    )
    r = STAGES["sl"].run(ctx.inside("sl"), inputs, sl_cfg)
    return (
        f"{r.n_samples} samples, {r.n_revised} revised (acceptance {r.acceptance_rate:.2f}), "
        f"{r.n_sft} SFT rows"
    )


def _label_step(cfg: RunConfig, ctx: StageContext, sets: PromptSets) -> str:
    from charter.feedback import LabelConfig, LabelInputs, ModelRole

    lc = cfg.label
    data = lc.model_dump(include=set(LabelConfig.model_fields))
    if "seed" not in lc.model_fields_set:
        data["seed"] = cfg.seed
    feedback, feedback_opts = cfg.role("feedback")
    sampling = {"max_new_tokens": lc.max_new_tokens, "temperature": lc.temperature, "top_p": 1.0}
    policy, name, weights = cfg.generation.model_copy(update=sampling), None, None
    if lc.sample_from == "sl-cai" and cfg.train.enabled:
        # The paper's RL-CAI: pairs from the SL-CAI model.
        sft = ctx.runfolder.path / "train" / "sft" / "merged"
        policy = policy.model_copy(update={"model": f"hf:{sft}", "model_options": {}})
        name, weights = "sl-cai", _stage_hash(ctx.runfolder, "train/sft")
    inputs = LabelInputs(
        prompts=sets["label"],
        policy=policy,
        policy_name=name,
        policy_hash=weights,
        feedback=ModelRole(model=feedback, model_options=feedback_opts),
    )
    r = STAGES["label"].run(ctx.inside("label"), inputs, LabelConfig.model_validate(data))
    return f"{r.n_pairs} pairs, mean p_chosen {r.p_chosen_mean}"


def _sft_step(cfg: RunConfig, ctx: StageContext, sets: PromptSets) -> str:
    # Before `label`: the SL-CAI model samples the pairs RL-CAI's labels are about.
    return _train(ctx, [("train/sft", train_options(cfg, ctx.runfolder.path)[0])])


def _train_step(cfg: RunConfig, ctx: StageContext, sets: PromptSets) -> str:
    dpo_opts = train_options(cfg, ctx.runfolder.path)[1]
    online = online_options(cfg, ctx.runfolder.path)
    todo: list[tuple[str, Any]] = []
    if cfg.train.dpo_enabled:
        todo.append(("train/dpo", dpo_opts))
    if online is not None:
        todo.append((f"train/{online.algorithm}", online))
    return _train(ctx, todo)


def _train(ctx: StageContext, todo: list[tuple[str, Any]]) -> str:
    from charter.train.stage import TrainInputs

    details = []
    for name, opts in todo:
        # DPO and online RL start from the SFT model: its weights are an input.
        base = _stage_hash(ctx.runfolder, "train/sft") if name != "train/sft" else None
        before = set(ctx.runfolder.outcomes)
        res = STAGES[name].run(ctx.inside(name), TrainInputs(base_hash=base), opts)
        skipped = all(
            ctx.runfolder.outcomes[k][0] == "skipped" for k in set(ctx.runfolder.outcomes) - before
        )
        kind = name.split("/")[1]
        details.append(
            f"{kind} already complete"
            if skipped
            else f"{kind} {res.steps} steps in {res.seconds:.0f} s"
        )
    return "; ".join(details)


# What `charter run` sets in its `redteam` section itself.
REDTEAM_RUN_SETS = ("attacker", "targets", "judge", "constitution", "batch_size", "seed")


def redteam_options(cfg: RunConfig, root: Path) -> RedteamConfig:
    """The `redteam` options of a run in `root`: the config's `redteam` section with the feedback
    role as attacker, every evaluated model as a target, the judge role as judge."""
    from charter.evaluate.stage import eval_options

    clash = changed_fields(cfg.redteam, REDTEAM_RUN_SETS)
    if clash:
        raise ConfigError(f"`redteam.{clash[0]}` is set by the run; remove it")
    data = cfg.redteam.model_dump(include=set(RedteamConfig.model_fields) - set(REDTEAM_RUN_SETS))
    return RedteamConfig.model_validate(
        {
            **data,
            "attacker": cfg.role("feedback")[0],
            "targets": list(eval_options(cfg, root).models.values()),
            "judge": cfg.role("judge")[0],
            "constitution": cfg.constitution,
            "batch_size": cfg.generation.batch_size,
            "seed": cfg.seed,
        }
    )


def _trained_hash(cfg: RunConfig, ctx: StageContext) -> str:
    """The trained models' stage hashes: retrained models are measured again."""
    trained = ["train/dpo", "train/sft"]
    if cfg.train.online_algorithm:
        trained.append(f"train/{cfg.train.online_algorithm}")
    return stable_id(*(_stage_hash(ctx.runfolder, n) for n in trained), length=64)


def _redteam_step(cfg: RunConfig, ctx: StageContext, sets: PromptSets) -> str:
    from charter.redteam.run import ATTACKS, METRICS, PROMPTS, STATE, run_redteam

    opts = redteam_options(cfg, ctx.runfolder.path)
    inner = ctx.inside("redteam")
    from charter.evaluate.stage import eval_options

    models = eval_options(cfg, ctx.runfolder.path).models
    names = {spec: name for name, spec in models.items()}

    def work() -> int:
        # The stage's state.json resumes a killed run; a redone stage starts without it.
        metrics = run_redteam(opts, inner.out, progress=ctx.progress, resume=True, pool=ctx.pool)
        return int(metrics["n_attacks"])

    outputs = [inner.file(n) for n in (ATTACKS, PROMPTS, METRICS, STATE)]
    dumped = opts.model_dump(mode="json")
    digest, earlier = ctx.runfolder.options_hashes(dumped)
    ran = ctx.runfolder.run_stage(
        "redteam",
        digest,
        outputs,
        work,
        records_hash=_trained_hash(cfg, ctx),
        earlier_hashes=earlier,
    )
    metrics = json.loads((inner.out / METRICS).read_text(encoding="utf-8"))
    rates = ", ".join(
        f"{names.get(spec, spec)} {t['attack_success']['rate']:.2f}"
        for spec, t in metrics["targets"].items()
    )
    return _ran(ran is not None, f"{metrics['n_attacks']} attacks; attack success {rates}")


def _evaluate_step(cfg: RunConfig, ctx: StageContext, sets: PromptSets) -> str:
    from charter.evaluate.stage import EvalInputs, eval_options

    opts = eval_options(cfg, ctx.runfolder.path)
    # The trained models are its data: retrained models are evaluated again.
    report = ctx.runfolder.path / "report.html"
    inputs = EvalInputs(models_hash=_trained_hash(cfg, ctx), report=report)
    r = STAGES["evaluate"].run(ctx.inside("eval"), inputs, opts)
    if r.complete and ctx.runfolder.outcomes.get("redteam", ("skipped", 0))[0] != "skipped":
        # A red-team stage added to (or redone in) a finished run: the report shows it.
        from charter.evaluate.report import write_report

        write_report(ctx.runfolder.path / "eval", report, ctx.runfolder.path)
    return _ran(not r.complete, f"{len(opts.models)} models → {ctx.runfolder.path / 'report.html'}")


PromptSets = dict[str, list[PromptRecord]]

# (name in the summary, whether the config enables it, the step): the pipeline, in order.
STEPS: list[tuple[str, Callable[[RunConfig], bool], Step]] = [
    ("constitution", lambda cfg: True, _constitution_step),
    ("prompts", lambda cfg: True, _prompts_step),
    ("generate", lambda cfg: True, _generate_step),
    ("sl", lambda cfg: cfg.sl.enabled, _sl_step),
    ("sft", lambda cfg: cfg.train.enabled, _sft_step),
    ("label", lambda cfg: cfg.label.enabled, _label_step),
    ("train", lambda cfg: cfg.train.enabled and _after_sft(cfg), _train_step),
    ("redteam", lambda cfg: cfg.redteam.enabled, _redteam_step),
    ("evaluate", lambda cfg: cfg.evaluate.enabled, _evaluate_step),
]


def _after_sft(cfg: RunConfig) -> bool:
    return cfg.train.dpo_enabled or cfg.train.online_algorithm is not None


def planned_stages(cfg: RunConfig) -> list[tuple[str, bool]]:
    """The pipeline's stages and whether `cfg` runs each (for `--dry-run`)."""
    return [(name, enabled(cfg)) for name, enabled, _ in STEPS]


def _run_steps(cfg: RunConfig, ctx: StageContext, sets: PromptSets) -> PipelineResult:
    run = ctx.runfolder
    result = PipelineResult(path=run.path)
    enabled = [name for name, on in planned_stages(cfg) if on]
    with _stage_bar(enabled, ctx.progress) as bar:
        for name, on, step in STEPS:
            if not on(cfg):
                result.stages.append(StageResult(name, "disabled"))
                continue
            bar.set_description_str(f"charter run: {name}")
            before = set(run.outcomes)
            t0 = time.perf_counter()
            detail = step(cfg, ctx, sets)
            seconds = time.perf_counter() - t0
            detail = detail.removeprefix("already complete: ").removeprefix("already complete")
            status = _status([v for k, v in run.outcomes.items() if k not in before])
            result.stages.append(StageResult(name, status, seconds, detail))
            bar.update(1)
    metrics_path = run.path / "eval" / "metrics.json"
    if cfg.evaluate.enabled and metrics_path.exists():
        result.metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    result.discarded = list(run.discarded)
    result.notes = list(run.notes)
    return result


def _status(outcomes: list[tuple[str, int]]) -> str:
    """One pipeline stage's status from the manifest stages it ran: `ran`, `resumed (N records
    already there)` or `skipped (complete)`.

    >>> _status([("skipped", 4), ("resumed", 3)])
    'resumed (3 records already there)'
    >>> _status([("skipped", 4)]), _status([])
    ('skipped (complete)', 'skipped (complete)')
    """
    if not any(kind != "skipped" for kind, _ in outcomes):
        return "skipped (complete)"
    there = sum(n for kind, n in outcomes if kind == "resumed")
    return f"resumed ({there} records already there)" if there else "ran"


def _stage_hash(run: RunFolder, name: str) -> str:
    stage = run.manifest.stages.get(name)
    if stage is None:
        return "none"
    return stable_id(stage.input_hash, stage.records_hash, length=64)


def _ran(ran: bool, detail: str) -> str:
    return detail if ran else f"already complete: {detail}"


def load_run_config(root: Path) -> RunConfig:
    """The resolved config a run folder was made with (for `charter run --resume --name`)."""
    import yaml
    from pydantic import ValidationError

    path = root / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return RunConfig.model_validate(data)
    except FileNotFoundError:
        raise CharterError(f"{root}: no run to resume (no config.yaml)") from None
    except (yaml.YAMLError, ValidationError) as e:
        raise ConfigError(f"{path}: not a charter run config ({e})") from None
