"""`charter evaluate`: compare models on held-out prompts (`--models ...`), or evaluate a
labeller on multiple-choice evals (`evaluate mc`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from charter.cli.options import JSON, MODEL, MODEL_OPT, PROGRESS, REDO, SEED, parse_key_values
from charter.cli.vocabulary import CharterGroup


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    """`("base=embedded",)` → `{"base": "embedded"}`, in the order given."""
    from charter.errors import ConfigError

    out: dict[str, str] = {}
    for value in values:
        name, sep, spec = value.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ConfigError(f"{flag} {value!r}: expected NAME=SPEC")
        if name.strip() in out:
            raise ConfigError(f"{flag}: {name.strip()!r} is given twice")
        out[name.strip()] = spec.strip()
    return out


@click.group(cls=CharterGroup, invoke_without_command=True)
@click.option(
    "--models",
    "model_args",
    multiple=True,
    metavar="NAME=SPEC",
    help="A model to compare (repeat; the first is the Elo anchor), e.g. base=embedded.",
)
@click.option(
    "--prompts",
    "prompt_args",
    multiple=True,
    metavar="SET=SPEC",
    help="red-team, borderline or helpful = builtin:NAME or a JSONL file (repeat). "
    "Default: the three builtin sets.",
)
@click.option(
    "--judge",
    default="embedded",
    show_default=True,
    help="Backend that judges pairs ('none' skips win rates and Elo).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (required with --models): answers, judgements, metrics, report.",
)
@click.option(
    "--lang", "langs", multiple=True, type=click.Choice(["en", "ar"]), help="Repeat; default en."
)
@click.option(
    "--split",
    type=click.Choice(["train", "eval", "all"]),
    default="eval",
    show_default=True,
    help="Which split of the prompts (eval: held out from sl and label).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="N prompts per set/lang.")
@click.option(
    "--constitution",
    "constitution_spec",
    default="udhr",
    show_default=True,
    help="The constitution the judge uses: builtin NAME, a YAML/JSON FILE or collective:DIR.",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Most tokens per answer.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Prompts per backend call.",
)
@click.option(
    "--principles-per-pair",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Judge: principles asked per pair of answers.",
)
@click.option(
    "--bootstrap",
    "n_boot",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples of the Elo and win-rate intervals.",
)
@SEED
@click.option(
    "--mc",
    "mc_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A multiple-choice eval file (format of `evaluate mc`); each model's accuracy.",
)
@click.option(
    "--rm",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A reward model folder (`charter train rm`'s OUT): its reward of every answer.",
)
@click.option(
    "--model-opt",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="An option for one model's backend (or judge.KEY=VALUE), value read as YAML.",
)
@click.option("--resume", is_flag=True, help="Continue the evaluation in --out.")
@REDO
@click.option(
    "--inspect-log",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write one Inspect AI log per model (DIR/NAME.eval) that `inspect view` opens "
    "(needs charter[inspect]).",
)
@click.option("--report/--no-report", default=True, show_default=True, help="Write report.html.")
@JSON
@PROGRESS
@click.pass_context
def evaluate(
    ctx: click.Context,
    model_args: tuple[str, ...],
    prompt_args: tuple[str, ...],
    judge: str,
    out: Path | None,
    langs: tuple[str, ...],
    split: str,
    limit: int | None,
    constitution_spec: str,
    max_new_tokens: int,
    batch_size: int,
    principles_per_pair: int,
    n_boot: int,
    seed: int,
    mc_files: tuple[Path, ...],
    rm: Path | None,
    model_opt: tuple[str, ...],
    resume: bool,
    redo: tuple[str, ...],
    inspect_log: Path | None,
    report: bool,
    as_json: bool,
    progress: bool,
) -> None:
    """Compare models: harmful compliance, over-refusal, pairwise win rates and Elo.

    \b
    charter evaluate --models base=embedded --models sl=hf:runs/x/train/sft/merged \\
        --judge embedded --out runs/x/eval
    writes answers, judgements, metrics.json, samples.jsonl and report.html into --out.
    `charter evaluate mc --data FILE` evaluates a labeller on multiple-choice evals.
    """
    # long: a command: its options become the EvalOptions, the run folder and the stage call
    if ctx.invoked_subcommand is not None:
        return
    from charter.errors import ConfigError

    if not model_args:
        raise click.UsageError(
            "give --models NAME=SPEC (at least one) and --out DIR, or a subcommand (mc)"
        )
    if out is None:
        raise click.UsageError("--out DIR is required with --models")
    from pydantic import ValidationError

    from charter.backends.pool import BackendPool
    from charter.evaluate.options import DEFAULT_PROMPTS, EvalOptions
    from charter.evaluate.stage import EVALUATE, EvalInputs
    from charter.jsonl import describe_validation_error
    from charter.runs import RunFolder
    from charter.stage import StageContext

    options: dict[str, dict[str, Any]] = {}
    for key, value in parse_key_values(model_opt, "--model-opt").items():
        name, dot, opt = key.partition(".")
        if not dot or not opt:
            raise ConfigError(f"--model-opt {key!r}: expected NAME.KEY=VALUE")
        options.setdefault(name, {})[opt] = value
    try:
        opts = EvalOptions(
            models=_pairs(model_args, "--models"),
            prompts=_pairs(prompt_args, "--prompts") if prompt_args else dict(DEFAULT_PROMPTS),
            langs=list(langs) or ["en"],
            split=split,
            limit=limit,
            judge=None if judge.lower() == "none" else judge,
            constitution=constitution_spec,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            seed=seed,
            mc=[str(p) for p in mc_files],
            rm=str(rm) if rm is not None else None,
            backend_options=options,
            principles_per_pair=principles_per_pair,
            n_boot=n_boot,
        )
    except ValidationError as e:
        raise ConfigError(f"charter evaluate: {describe_validation_error(e)}") from None
    config = {"command": "evaluate", "evaluate": opts.model_dump(mode="json")}
    folder = RunFolder.open(out, config, resume=resume, redo=redo)
    inputs = EvalInputs(report=out / "report.html" if report else None)
    with folder, BackendPool(opts.batch_size) as pool:
        stage_ctx = StageContext(folder, pool, None, progress and not as_json, seed)
        metrics = EVALUATE.run(stage_ctx, inputs, opts).metrics
    if inspect_log is not None:
        from charter.inspectai.logs import write_inspect_logs

        for path in write_inspect_logs(out, inspect_log):
            click.echo(f"wrote {path}", err=True)
    if as_json:
        click.echo(json.dumps({"out": str(out), "models": metrics["models"]}))
        return
    click.echo(summary_table(metrics))
    click.echo(f"{out / 'metrics.json'}" + (f", {out / 'report.html'}" if report else ""))


def _fmt(x: dict[str, Any] | None) -> str:
    if not x or x.get("rate", x.get("rating")) is None:
        return "–"
    if "rate" in x:
        return f"{x['rate']:.0%} [{x['ci_low']:.0%}, {x['ci_high']:.0%}] n={x['n']}"
    return f"{x['rating']:+.0f} [{x['ci_low']:+.0f}, {x['ci_high']:+.0f}]"


def summary_table(metrics: dict[str, Any]) -> str:
    """The terminal summary: one row per model."""
    head = ("model", "harmful compliance", "over-refusal", "Elo harmless", "Elo helpful")
    rows = [head]
    for name, m in metrics["models"].items():
        elo = m.get("elo", {})
        rows.append(
            (
                name,
                _fmt(m["harmful_compliance"]),
                _fmt(m["over_refusal"]),
                _fmt(elo.get("harmlessness")),
                _fmt(elo.get("helpfulness")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


@evaluate.command("mc")
@MODEL
@MODEL_OPT
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSONL of {prompt, corrects, incorrects}, e.g. the CAI paper's 438HHHEvaluations.jsonl.",
)
@click.option("--swap", is_flag=True, help="Also ask with (A)/(B) swapped and average.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N items.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for metrics.json and reliability.png (none: print only).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Questions per backend call.",
)
@JSON
@PROGRESS
def mc(
    model: str,
    model_opt: tuple[str, ...],
    data: Path,
    swap: bool,
    limit: int | None,
    out: Path | None,
    batch_size: int,
    as_json: bool,
    progress: bool,
) -> None:
    """Accuracy (Wilson 95% CI), letter bias and calibration of a backend as a labeller."""
    from charter.backends import check_spec
    from charter.backends.pool import BackendPool
    from charter.feedback.mc_eval import evaluate_mc, read_mc, write_mc_result

    check_spec(model)
    items = read_mc(data)[:limit]
    if swap:
        from charter.feedback.mc_eval import swap_options

        for item in items:
            swap_options(item)  # fail on a bad item before loading any model
    options = parse_key_values(model_opt, "--model-opt")
    with BackendPool(batch_size) as pool:
        backend = pool.get(model, options)
        result = evaluate_mc(items, backend, swap=swap, progress=progress and not as_json)
    result["data"] = str(data)
    if out is not None:
        write_mc_result(result, out)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{data.name}: n={result['n']}, accuracy {result['accuracy']:.3f} "
        f"(95% CI {result['ci_low']:.3f}–{result['ci_high']:.3f}; chance {result['chance']:.2f}), "
        f"ECE {result['ece']:.3f}"
        + (
            f", letter bias {result['letter_bias']:+.3f}"
            if result["letter_bias"] is not None
            else ""
        )
    )
    if swap:
        s = result["swap"]
        click.echo(
            f"  both orders averaged: accuracy {s['accuracy']:.3f} "
            f"(95% CI {s['ci_low']:.3f}–{s['ci_high']:.3f}), ECE {s['ece']:.3f}, "
            f"orders agree {s['order_agreement']:.0%}"
        )
    if out is not None:
        click.echo(f"  {out / 'metrics.json'}, {result['plot']}")
