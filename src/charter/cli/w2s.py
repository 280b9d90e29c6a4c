"""`charter w2s`: weak-to-strong generalization experiments (probe or finetune) and sweeps."""

from __future__ import annotations

from pathlib import Path

import click

from charter.cli.vocabulary import CharterGroup, json_option, print_json, progress_option, say


@click.group(cls=CharterGroup)
def w2s() -> None:
    """Weak-to-strong generalization: weak supervisor → strong student, PGR."""


@w2s.command("run")
@click.option(
    "--task",
    "task_spec",
    required=True,
    help="persona:PATH, ai-risk:PATH, prefs:PATH, synthetic:N or hf-dataset:ID.",
)
@click.option(
    "--weak", required=True, help="Weak model spec: tfidf, minilm, embedded[@layer=K], hf:ID."
)
@click.option("--strong", required=True, help="Strong model spec (student and ceiling).")
@click.option(
    "--loss",
    "losses",
    default="xent,logconf",
    show_default=True,
    help="Comma-separated: xent, logconf, bootstrap.",
)
@click.option(
    "--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="Seeds 0..N-1."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/w2s"),
    show_default=True,
    help="Folder the runs, summary and plot are written into (reruns skip finished runs).",
)
@click.option(
    "--mode",
    type=click.Choice(["probe", "finetune"]),
    default="probe",
    show_default=True,
    help="probe: train a head on the frozen models' features; finetune: LoRA-finetune the "
    "strong model.",
)
@click.option("--intermediate", default=None, help="Model spec for the bootstrap loss.")
@click.option(
    "--weak-train-limit",
    type=click.IntRange(min=2),
    default=None,
    help="Train the weak model on at most N rows.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Training epochs [probe heads: 20; finetune: 2].",
)
@click.option(
    "--alpha-max",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="logconf: final α.",
)
@click.option(
    "--warmup-frac",
    type=click.FloatRange(0.0, 1.0),
    default=0.2,
    show_default=True,
    help="logconf: α warm-up fraction.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Feature cache (default $CHARTER_HOME/features).",
)
@click.option(
    "--strong-opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="finetune mode: a training option of the strong student, value read as YAML "
    "(repeatable): lora_r, lora_alpha, lr, batch_size, max_length, target_modules, ...",
)
@progress_option
@json_option
def run_cmd(
    task_spec: str,
    weak: str,
    strong: str,
    losses: str,
    seeds: int,
    out: Path,
    mode: str,
    intermediate: str | None,
    weak_train_limit: int | None,
    epochs: int | None,
    alpha_max: float,
    warmup_frac: float,
    cache_dir: Path | None,
    strong_opt: tuple[str, ...],
    progress: bool,
    as_json: bool,
) -> None:
    """One task, one weak → strong pair, each loss over N seeds.

    Writes OUT/runs/*.json (one per loss and seed; reruns skip finished ones), OUT/summary.json,
    OUT/summary.md and OUT/w2s.png, and prints the summary table.
    """
    import time

    from pydantic import ValidationError

    from charter.cli.options import parse_key_values
    from charter.errors import ConfigError
    from charter.w2s.experiment import W2SConfig, parse_losses, run_experiment
    from charter.w2s.finetune import FinetuneConfig
    from charter.w2s.heads import HeadConfig
    from charter.w2s.report import write_report

    started = time.perf_counter()
    ft: dict[str, object] = {"alpha_max": alpha_max, "warmup_frac": warmup_frac}
    if epochs is not None:
        ft["epochs"] = epochs
    ft.update(parse_key_values(strong_opt, "--strong-opt"))
    try:
        finetune = FinetuneConfig.model_validate(ft)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"--strong-opt {where}: {err['msg']}") from None
    config = W2SConfig(
        task=task_spec,
        weak=weak,
        strong=strong,
        losses=parse_losses(losses),
        seeds=list(range(seeds)),
        mode=mode,
        head=HeadConfig(epochs=epochs or 20, alpha_max=alpha_max, warmup_frac=warmup_frac),
        finetune=finetune,
        weak_train_limit=weak_train_limit,
        intermediate=intermediate,
    )
    config.check()
    results = run_experiment(config, out, cache_dir=cache_dir, progress=progress)
    rows, table = write_report(results, out)
    seconds = time.perf_counter() - started
    say(table, as_json, nl=False)
    say(f"{out}: {len(results)} runs in {seconds:.1f}s", as_json)
    if as_json:
        print_json(
            {"out": str(out), "runs": len(results), "seconds": round(seconds, 1), "rows": rows}
        )


@w2s.command("sweep")
@click.argument("config_path", type=click.Path(dir_okay=False, path_type=Path))
@progress_option
@json_option
def sweep_cmd(config_path: Path, progress: bool, as_json: bool) -> None:
    """Tasks × model pairs × losses × seeds from CONFIG.yaml; resumable (finished runs are kept)."""
    import time

    from charter.w2s.sweep import load_sweep_config, run_sweep

    started = time.perf_counter()
    config = load_sweep_config(config_path)
    rows, table = run_sweep(config, progress=progress)
    seconds = time.perf_counter() - started
    say(table, as_json, nl=False)
    say(f"{config.out}: summary.json, summary.md, w2s.png ({seconds:.1f}s)", as_json)
    if as_json:
        print_json({"out": str(config.out), "seconds": round(seconds, 1), "rows": rows})
