"""`charter evaluate`: evaluations of models; `evaluate mc` for multiple-choice labelling evals."""

from __future__ import annotations

import json
from pathlib import Path

import click

from charter.cli.options import parse_key_values


@click.group()
def evaluate() -> None:
    """Evaluate models (multiple-choice labelling evals: `evaluate mc`)."""


@evaluate.command("mc")
@click.option("--backend", "backend_spec", default="embedded", show_default=True)
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
    help="Folder for metrics.json and reliability.png.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--backend-opt", multiple=True, metavar="KEY=VALUE")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def mc(
    backend_spec: str,
    data: Path,
    swap: bool,
    limit: int | None,
    out: Path | None,
    batch_size: int,
    backend_opt: tuple[str, ...],
    as_json: bool,
    progress: bool,
) -> None:
    """Accuracy (Wilson 95% CI), letter bias and calibration of a backend as a labeller."""
    from charter.backends import check_spec, load_backend
    from charter.feedback.mc_eval import evaluate_mc, read_mc, reliability_plot

    check_spec(backend_spec)
    items = read_mc(data)[:limit]
    if swap:
        from charter.feedback.mc_eval import swap_options

        for item in items:
            swap_options(item)  # fail on a bad item before loading any model
    options = parse_key_values(backend_opt, "--backend-opt")
    backend = load_backend(backend_spec, defaults={"batch_size": batch_size}, **options)
    result = evaluate_mc(items, backend, swap=swap, progress=progress and not as_json)
    result["data"] = str(data)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        result["plot"] = str(reliability_plot(result, out / "reliability.png"))
        (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
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
