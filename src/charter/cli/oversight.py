"""`charter oversight run|pixel-debate`: scalable-oversight experiments."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def oversight() -> None:
    """Scalable oversight: debate, consultancy, blind and oracle judges; pixel debate."""


@oversight.command("run")
@click.option(
    "--protocol",
    "protocols",
    default="debate",
    show_default=True,
    help="Comma-separated: blind, consultancy, debate, oracle (or `all`).",
)
@click.option(
    "--data",
    "data_spec",
    required=True,
    help="synthetic:N[@seed=S], or a JSONL file (our format or QuALITY-style).",
)
@click.option("--judge", required=True, help="Judge backend spec (embedded, hf:…, openai:…#…).")
@click.option(
    "--debater",
    "debater_specs",
    multiple=True,
    help="Debater/consultant backend spec; repeat for cross-play and Elo.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 10),
    default=2,
    show_default=True,
    help="Debate rounds (each debater speaks once per round); consultant turns.",
)
@click.option(
    "--order",
    type=click.Choice(["simultaneous", "sequential"]),
    default="simultaneous",
    show_default=True,
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Only the first N questions."
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=8),
    default=96,
    show_default=True,
    help="Longest speech, in tokens.",
)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.7, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Units per batch (written together), also hf:/embedded batch size.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out, skipping finished units.")
@click.option("--overwrite", is_flag=True, help="Delete what --out holds and start again.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def run_cmd(
    protocols: str,
    data_spec: str,
    judge: str,
    debater_specs: tuple[str, ...],
    rounds: int,
    order: str,
    limit: int | None,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    batch_size: int,
    out: Path,
    resume: bool,
    overwrite: bool,
    progress: bool,
) -> None:
    """Judge two-answer questions under each protocol; write transcripts, metrics and plots.

    Writes OUT/transcripts.jsonl (resumable), OUT/metrics.json, OUT/accuracy.png and
    OUT/calibration.png, and prints judge accuracy per protocol.
    """
    from pydantic import ValidationError

    from charter.backends import check_spec, load_backend
    from charter.errors import ConfigError
    from charter.jsonl import describe_validation_error
    from charter.oversight.protocols import PROTOCOLS, OversightConfig
    from charter.oversight.questions import load_questions
    from charter.oversight.run import format_summary, run_oversight

    names = [p.strip() for p in protocols.split(",") if p.strip()]
    if names == ["all"]:
        names = list(PROTOCOLS)
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown or not names:
        raise ConfigError(
            f"--protocol {protocols!r}: expected a comma-separated list of "
            f"{', '.join(PROTOCOLS)}, or all"
        )
    try:
        config = OversightConfig.model_validate(
            {
                "protocols": names,
                "rounds": rounds,
                "order": order,
                "max_new_tokens": max_new_tokens,
                "temperature": temperature,
                "seed": seed,
            }
        )
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e)) from None
    needs_debaters = {"consultancy", "debate"} & set(names)
    if needs_debaters and not debater_specs:
        raise ConfigError(f"--protocol {', '.join(sorted(needs_debaters))} needs --debater SPEC")
    if len(set(debater_specs)) != len(debater_specs):
        raise ConfigError("--debater: each spec may be given only once")
    for spec in (judge, *debater_specs):
        check_spec(spec)
    questions = load_questions(data_spec, limit=limit)  # input errors before any model loads
    cache: dict[str, object] = {}

    def backend(spec: str):  # type: ignore[no-untyped-def]
        if spec not in cache:
            cache[spec] = load_backend(spec, defaults={"batch_size": batch_size})
        return cache[spec]

    judge_backend = backend(judge)
    debaters = {spec: backend(spec) for spec in debater_specs} if needs_debaters else {}
    metrics = run_oversight(
        questions,
        config,
        judge_backend,
        debaters,
        out,
        resume=resume,
        overwrite=overwrite,
        batch_units=batch_size,
        progress=progress,
        data_spec=data_spec,
    )
    click.echo(format_summary(metrics), nl=False)
    click.echo(f"{out}: {len(questions)} questions; metrics in {out / 'metrics.json'}")


@oversight.command("pixel-debate")
@click.option("--pixels", default="4,6", show_default=True, help="Comma-separated pixel counts k.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--lookahead",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="Search depth of the agents: 1 greedy, 2 minimax over the opponent's reply (slow).",
)
@click.option(
    "--first",
    type=click.Choice(["honest", "liar"]),
    default="honest",
    show_default=True,
    help="Who reveals the first pixel.",
)
@click.option(
    "--max-test",
    type=click.IntRange(min=1),
    default=None,
    help="Debate only the first N test images per seed.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=250,
    show_default=True,
    help="Judge training epochs (fresh random masks each).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def pixel_debate_cmd(
    pixels: str,
    seeds: int,
    lookahead: int,
    first: str,
    max_test: int | None,
    epochs: int,
    out: Path,
    progress: bool,
) -> None:
    """Irving et al.'s MNIST debate on scikit-learn's 8×8 digits, offline on a CPU.

    Writes OUT/metrics.json (per k: random_acc and debate_acc with Wilson 95% intervals) and
    OUT/pixel_debate.png, and prints the table next to the paper's MNIST numbers.
    """
    from charter.errors import ConfigError
    from charter.oversight.pixel import PixelConfig, format_table, run_pixel_debate

    try:
        ks = tuple(int(p) for p in pixels.split(",") if p.strip())
    except ValueError:
        raise ConfigError(
            f"--pixels {pixels!r}: expected comma-separated integers such as 4,6"
        ) from None
    config = PixelConfig(
        pixels=ks,
        seeds=seeds,
        lookahead=lookahead,  # type: ignore[arg-type]
        first=first,  # type: ignore[arg-type]
        max_test=max_test,
        epochs=epochs,
    )
    metrics = run_pixel_debate(config, out, progress=progress)
    click.echo(format_table(metrics), nl=False)
    click.echo(f"{out}: {metrics['seconds']:.0f}s; metrics in {out / 'metrics.json'}")
