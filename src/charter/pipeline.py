"""`charter run`: the whole CAI pipeline in one run folder, stage by stage, resumable.

constitution → prompts → generate → sl → label → train (sft, dpo) → evaluate → report.

Each stage is recorded in the run's manifest with a hash of its inputs; `--resume` skips the
stages already complete for the same inputs, and a changed input redoes that stage and every
stage after it. Long stages are resumable inside too (JSONL keyed by ids, training checkpoints).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charter.config import RunConfig
from charter.errors import CharterError, ConfigError
from charter.records import PromptRecord, stable_id
from charter.runs import RunFolder, atomic_write_text, check_run_name, file_sha256

TRAINABLE_PREFIXES = ("embedded", "hf:")


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


def trainable_model(cfg: RunConfig) -> str:
    """The base model the train stage fine-tunes: `train.model`, else the policy if trainable."""
    spec = cfg.train.model or cfg.generation.backend
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

    for role in ("policy", "feedback", "judge"):
        check_spec(cfg.role(role)[0])
    if cfg.train.enabled:
        if not (cfg.sl.enabled and cfg.label.enabled):
            raise ConfigError("the train stage needs the sl and label stages (enable them)")
        trainable_model(cfg)
        _train_options(cfg, Path("."))  # validates the sft/dpo option keys


def _train_options(cfg: RunConfig, root: Path) -> tuple[Any, Any]:
    from pydantic import ValidationError

    from charter.train import DPOOptions, SFTOptions

    model = trainable_model(cfg)
    sft_fixed = {"model": model, "data": root / "sl" / "sft.jsonl", "out": root / "train" / "sft"}
    dpo_fixed = {
        "model": f"hf:{root / 'train' / 'sft' / 'merged'}",
        "data": root / "label" / "prefs.jsonl",
        "out": root / "train" / "dpo",
    }
    result = []
    for key, cls, fixed in (("sft", SFTOptions, sft_fixed), ("dpo", DPOOptions, dpo_fixed)):
        given: dict[str, Any] = getattr(cfg.train, key)
        clash = sorted(set(given) & set(fixed))
        if clash:
            raise ConfigError(f"`train.{key}.{clash[0]}` is set by the run; remove it")
        try:
            result.append(cls.model_validate({"merge": True, **given, **fixed}))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"invalid config: `train.{key}.{where}`: {err['msg']}") from None
    return result[0], result[1]


def collect_prompts(cfg: RunConfig) -> dict[str, list[PromptRecord]]:
    """Every prompt set the run uses, by role; raises on bad files before anything runs."""
    from charter.data import load_prompts

    def split(s: str) -> str | None:
        return None if s == "all" else s

    sets: dict[str, list[PromptRecord]] = {
        "generate": load_prompts(cfg.prompts)[: cfg.limit],
    }
    if cfg.sl.enabled:
        sets["sl"] = load_prompts(cfg.sl.prompts, lang=cfg.sl.lang, split=split(cfg.sl.split))[
            : cfg.sl.limit
        ]
        sets["sl-helpful"] = (
            load_prompts(cfg.sl.helpful_prompts, lang=cfg.sl.lang, split=split(cfg.sl.split))
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
        return _run_stages(cfg, run, constitution, prompt_sets, progress)
    finally:
        run.close()


def _run_stages(
    cfg: RunConfig,
    run: RunFolder,
    constitution: Any,
    prompt_sets: dict[str, list[PromptRecord]],
    progress: bool,
) -> PipelineResult:
    from charter.constitution.load import dump_constitution

    root = run.path
    result = PipelineResult(path=root)
    stages: list[tuple[str, bool, Callable[[], str]]] = []
    policy, policy_opts = cfg.role("policy")
    gen = cfg.generation
    sha = constitution.compute_sha256()

    # -- constitution and prompts: the resolved inputs, written once -------------------------
    def constitution_stage() -> str:
        def write() -> int:
            atomic_write_text(root / "constitution.yaml", dump_constitution(constitution))
            return len(constitution.principles)

        ran = (
            run.run_stage("constitution", sha, ["constitution.yaml"], write, ask=False) is not None
        )
        return _ran(ran, f"{constitution.name} ({len(constitution.principles)} principles)")

    def prompts_stage() -> str:
        rows = []
        for role, records in prompt_sets.items():
            for p in records:
                data = p.model_dump(mode="json")
                data["meta"] = {**data.get("meta", {}), "role": role}
                data["id"] = f"{role}:{p.key()}"
                rows.append(data)
        digest = stable_id(rows, length=64)

        def write() -> int:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            atomic_write_text(root / "prompts.jsonl", text)
            return len(rows)

        ran = run.run_stage("prompts", digest, ["prompts.jsonl"], write, ask=False) is not None
        counts = ", ".join(f"{k} {len(v)}" for k, v in prompt_sets.items() if v)
        return _ran(ran, counts)

    stages.append(("constitution", True, constitution_stage))
    stages.append(("prompts", True, prompts_stage))

    # -- generate: the policy's answers to the demo prompts ----------------------------------
    def generate_stage_() -> str:
        from charter.generate import generate_stage

        summary = generate_stage(
            run,
            prompt_sets["generate"],
            policy,
            policy_opts,
            gen.sampling(cfg.seed),
            batch_size=gen.batch_size,
            progress=progress,
        )
        if summary is None:
            return "already complete"
        return f"{summary.written} answers, {summary.tokens_per_s:.0f} tokens/s"

    stages.append(("generate", True, generate_stage_))

    # -- sl: critique → revision ------------------------------------------------------------
    def sl_stage_() -> str:
        from charter.sl import SLConfig, sl_stage

        sl_cfg = SLConfig.model_validate(cfg.sl.model_dump(include=set(SLConfig.model_fields)))
        s = sl_stage(
            run,
            prompt_sets["sl"],
            prompt_sets["sl-helpful"],
            policy,
            policy_opts,
            constitution,
            sl_cfg,
            gen.sampling(cfg.seed),
            batch_size=gen.batch_size,
            progress=progress,
            prefix="sl/",
        )
        return (
            f"{s['n_samples']} samples, {s['n_revised']} revised (acceptance "
            f"{s['acceptance_rate']:.2f}), {s['n_sft']} SFT rows"
        )

    stages.append(("sl", cfg.sl.enabled, sl_stage_))

    # -- label: pairs from the policy, AI-feedback soft labels -------------------------------
    def label_stage_() -> str:
        from charter.feedback import LabelConfig, label_stage
        from charter.records import Sampling

        lc = cfg.label
        feedback, feedback_opts = cfg.role("feedback")
        s = label_stage(
            run,
            prompt_sets["label"],
            constitution,
            LabelConfig(
                principles_per_pair=lc.principles_per_pair,
                few_shot=lc.few_shot,
                lang=lc.lang,
                seed=cfg.seed,
                chunk_size=lc.chunk_size,
            ),
            feedback=feedback,
            policy=policy,
            sampling=Sampling(
                max_new_tokens=lc.max_new_tokens, temperature=lc.temperature, seed=cfg.seed
            ),
            policy_options=policy_opts,
            feedback_options=feedback_opts,
            batch_size=gen.batch_size,
            progress=progress,
        )
        return f"{s['n_pairs']} pairs, mean p_chosen {s['p_chosen_mean']}"

    stages.append(("label", cfg.label.enabled, label_stage_))

    # -- train: SFT on revisions, then DPO (soft labels) from the SFT model -------------------
    def train_stage_() -> str:
        from charter.train import train_dpo, train_sft

        sft_opts, dpo_opts = _train_options(cfg, root)
        details = []
        for name, opts, fn, data in (
            ("train/sft", sft_opts, train_sft, root / "sl" / "sft.jsonl"),
            ("train/dpo", dpo_opts, train_dpo, root / "label" / "prefs.jsonl"),
        ):
            digest = stable_id(opts.model_dump(mode="json"), length=64)
            data_hash = file_sha256(data)
            if name == "train/dpo":  # the DPO base is the SFT model: its weights are an input
                data_hash = stable_id(data_hash, _stage_hash(run, "train/sft"), length=64)
            out = Path(opts.out)
            holder: dict[str, Any] = {}

            def work(
                opts: Any = opts, fn: Any = fn, out: Path = out, holder: dict[str, Any] = holder
            ) -> int:
                # A stage that was killed resumes from its last checkpoint.
                res = fn(opts, progress=progress, resume=out.exists())
                holder["res"] = res
                return int(res.steps)

            ran = (
                run.run_stage(
                    name, digest, [str(out.relative_to(root))], work, records_hash=data_hash
                )
                is not None
            )
            if ran:
                res = holder["res"]
                details.append(f"{name.split('/')[1]} {res.steps} steps in {res.seconds:.0f} s")
            else:
                details.append(f"{name.split('/')[1]} already complete")
        return "; ".join(details)

    stages.append(("train", cfg.train.enabled, train_stage_))

    # -- evaluate and report -----------------------------------------------------------------
    def evaluate_stage_() -> str:
        from charter.evaluate.compare import EvalOptions, evaluate_models
        from charter.evaluate.report import write_report

        ec = cfg.evaluate
        judge, judge_opts = cfg.role("judge")
        models = {"base": policy}
        if cfg.train.enabled:
            models["sl-cai"] = f"hf:{root / 'train' / 'sft' / 'merged'}"
            models["rl-cai"] = f"hf:{root / 'train' / 'dpo' / 'merged'}"
        opts = EvalOptions(
            models=models,
            prompts=ec.prompts,
            langs=list(ec.langs),
            split=ec.split,
            limit=ec.limit,
            judge=judge,
            constitution=cfg.constitution,
            max_new_tokens=ec.max_new_tokens,
            batch_size=gen.batch_size,
            seed=cfg.seed,
            mc=list(ec.mc),
            principles_per_pair=ec.principles_per_pair,
            few_shot=ec.few_shot,
            backend_options={"base": policy_opts, "judge": judge_opts},
        )
        digest = stable_id(opts.model_dump(mode="json"), sha, length=64)
        # The trained models are its data: retrained models are evaluated again.
        models_hash = stable_id(
            _stage_hash(run, "train/dpo"), _stage_hash(run, "train/sft"), length=64
        )
        holder: dict[str, Any] = {}

        def work() -> int:
            holder["metrics"] = evaluate_models(
                opts, out=root / "eval", progress=progress, resume=True
            )
            write_report(eval_dir=root / "eval", out=root / "report.html", run_dir=root)
            return len(models)

        ran = (
            run.run_stage(
                "evaluate", digest, ["eval", "report.html"], work, records_hash=models_hash
            )
            is not None
        )
        metrics_path = root / "eval" / "metrics.json"
        if metrics_path.exists():
            result.metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        return _ran(ran, f"{len(models)} models → {root / 'report.html'}")

    stages.append(("evaluate", cfg.evaluate.enabled, evaluate_stage_))

    enabled = [name for name, on, _ in stages if on]
    with _stage_bar(enabled, progress) as bar:
        for name, on, fn in stages:
            if not on:
                result.stages.append(StageResult(name, "disabled"))
                continue
            bar.set_description_str(f"charter run: {name}")
            before = set(run.outcomes)
            t0 = time.perf_counter()
            detail = fn()
            seconds = time.perf_counter() - t0
            detail = detail.removeprefix("already complete: ").removeprefix("already complete")
            status = _status([v for k, v in run.outcomes.items() if k not in before])
            result.stages.append(StageResult(name, status, seconds, detail))
            bar.update(1)
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


def summary_table(result: PipelineResult) -> str:
    """The terminal summary: one line per stage, then the models' headline metrics."""
    lines = [f"run folder: {result.path}", "", f"{'stage':<13}{'status':<34}{'time':>8}  detail"]
    for s in result.stages:
        t = f"{s.seconds:.0f} s" if s.status.startswith(("ran", "resumed")) else ""
        lines.append(f"{s.name:<13}{s.status:<34}{t:>8}  {s.detail}")
    models = (result.metrics or {}).get("models", {})
    if models:
        lines += [
            "",
            f"{'model':<10}{'harmful compliance':>24}{'over-refusal':>24}"
            f"{'Elo harmless':>14}{'Elo helpful':>13}",
        ]
        for name, m in models.items():
            lines.append(
                f"{name:<10}{_rate(m.get('harmful_compliance')):>24}"
                f"{_rate(m.get('over_refusal')):>24}"
                f"{_elo(m, 'harmlessness'):>14}{_elo(m, 'helpfulness'):>13}"
            )
    return "\n".join(lines)


def _rate(r: dict[str, Any] | None) -> str:
    if not r or r.get("rate") is None:
        return "-"
    return f"{r['rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] n={r['n']}"


def _elo(m: dict[str, Any], axis: str) -> str:
    e = (m.get("elo") or {}).get(axis)
    return f"{e['rating']:.0f}" if e and e.get("rating") is not None else "-"


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
