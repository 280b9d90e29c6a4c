"""`charter oversight run|pixel-debate`: scalable-oversight experiments."""

from __future__ import annotations

from pathlib import Path

import click

from charter.cli.vocabulary import CharterGroup, json_option, print_json, progress_option, say


@click.group(cls=CharterGroup)
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
@click.option(
    "--judge", required=True, help="Backend spec of the judge (embedded, hf:…, openai:…#…)."
)
@click.option(
    "--debater",
    "debater_specs",
    multiple=True,
    help="Backend spec of a debater/consultant; repeat for cross-play and Elo.",
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
    help="Debaters speak at once each round, or one after the other (seeing the other's speech).",
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
@click.option(
    "--temperature",
    type=click.FloatRange(min=0.0),
    default=0.7,
    show_default=True,
    help="Sampling temperature of the debaters and consultants.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of sampling and answer order."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Units per batch (written together), also hf:/embedded batch size.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder the run is written into (transcripts.jsonl, metrics.json, plots).",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out, skipping finished units.")
@click.option("--overwrite", is_flag=True, help="Delete what --out holds and start again.")
@progress_option
@json_option
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
    as_json: bool,
) -> None:
    """Judge two-answer questions under each protocol; write transcripts, metrics and plots.

    Writes OUT/transcripts.jsonl (resumable), OUT/metrics.json, OUT/accuracy.png and
    OUT/calibration.png, and prints judge accuracy per protocol.
    """
    from pydantic import ValidationError

    from charter.backends import check_spec
    from charter.backends.pool import BackendPool
    from charter.errors import ConfigError
    from charter.jsonl import describe_validation_error
    from charter.oversight.protocols import PROTOCOLS, OversightConfig
    from charter.oversight.questions import load_questions
    from charter.oversight.run import OVERSIGHT, OversightInputs, format_summary
    from charter.stage import StageContext

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
    inputs = OversightInputs(
        questions=questions,
        judge=judge,
        debaters=list(debater_specs) if needs_debaters else [],
        batch_units=batch_size,
        data_spec=data_spec,
    )
    with BackendPool(batch_size) as pool:  # a spec that is judge and debater loads once
        ctx = StageContext(
            None, pool, None, progress, seed, root=out, resume=resume, overwrite=overwrite
        )
        metrics = OVERSIGHT.run(ctx, inputs, config).metrics
    say(format_summary(metrics), as_json, nl=False)
    say(f"{out}: {len(questions)} questions; metrics in {out / 'metrics.json'}", as_json)
    if as_json:
        print_json(metrics)


@oversight.command("pixel-debate")
@click.option(
    "--pixels",
    default="4,6",
    show_default=True,
    help="Comma-separated numbers k of pixels the debaters reveal.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Run seeds 0..N-1 (each a fresh judge and split).",
)
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
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder metrics.json and pixel_debate.png are written into.",
)
@progress_option
@json_option
def pixel_debate_cmd(
    pixels: str,
    seeds: int,
    lookahead: int,
    first: str,
    max_test: int | None,
    epochs: int,
    out: Path,
    progress: bool,
    as_json: bool,
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
    say(format_table(metrics), as_json, nl=False)
    say(f"{out}: {metrics['seconds']:.0f}s; metrics in {out / 'metrics.json'}", as_json)
    if as_json:
        print_json(metrics)
