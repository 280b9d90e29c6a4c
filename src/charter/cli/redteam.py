"""`charter redteam` and `charter evals generate|run`: models that test models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from charter.cli.vocabulary import (
    CharterGroup,
    json_option,
    model_opt_option,
    print_json,
    progress_option,
    say,
)


def _split_names(values: tuple[str, ...]) -> list[str]:
    """`("a,b", "c")` → `["a", "b", "c"]`: --categories takes commas, repeats, or both."""
    return [name.strip() for v in values for name in v.split(",") if name.strip()]


@click.command()
@click.option(
    "--attacker",
    default="embedded",
    show_default=True,
    help="Backend spec of the model that writes the attacks.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="Backend spec of a model attacked (repeatable; the first drives the rounds) "
    "[default: embedded].",
)
@click.option(
    "--judge",
    default="embedded",
    show_default=True,
    help="Backend spec of the model that judges whether an answer complied.",
)
@click.option(
    "--constitution",
    "constitution_spec",
    default="udhr",
    show_default=True,
    help="The constitution whose principles the judge applies: builtin NAME or FILE.",
)
@click.option(
    "--categories",
    multiple=True,
    metavar="NAME[,NAME...]",
    help="Harm categories to attack (default: all 15; see `charter redteam --list-categories`).",
)
@click.option("--list-categories", is_flag=True, help="Print the harm categories and exit.")
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Attacker rounds (round 2 on: few-shot from the most successful attacks so far).",
)
@click.option(
    "--per-round",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Attacks the attacker writes per round, spread over the categories.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder the run is written into (attacks.jsonl, prompts.jsonl, metrics.json); "
    "required unless --list-categories.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out.")
@click.option(
    "--attacks",
    "attacks_from",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Skip the attacker: measure the targets on this earlier run's attacks.jsonl.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "ar"]),
    default="en",
    show_default=True,
    help="Language the attacks are written in.",
)
@click.option(
    "--few-shot",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Earlier attacks shown in each few-shot attacker prompt.",
)
@click.option(
    "--pool-temperature",
    type=click.FloatRange(min=0.0, min_open=True),
    default=0.1,
    show_default=True,
    help="T in P(example) ∝ exp(success score / T).",
)
@click.option(
    "--dedup-threshold",
    type=click.FloatRange(min=0.0, max=1.0, min_open=True),
    default=0.9,
    show_default=True,
    help="Cosine similarity (MiniLM) at which two attacks are merged.",
)
@click.option(
    "--attacker-temperature",
    type=click.FloatRange(min=0.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Sampling temperature of the attacker.",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Longest answer of a target, in tokens.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Attacks answered and judged together (also the hf:/embedded batch size).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of sampling and few-shot draws."
)
@progress_option
@json_option
def redteam(
    attacker: str,
    targets: tuple[str, ...],
    judge: str,
    constitution_spec: str,
    categories: tuple[str, ...],
    list_categories: bool,
    rounds: int,
    per_round: int,
    out: Path | None,
    resume: bool,
    attacks_from: Path | None,
    lang: str,
    few_shot: int,
    pool_temperature: float,
    dedup_threshold: float,
    attacker_temperature: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    progress: bool,
    as_json: bool,
) -> None:
    """Automated red-teaming: an attacker model writes attacks against target models.

    Round 1 asks the attacker for attacks from each category's description; later rounds show
    it the most successful attacks so far (stochastic few-shot). An attack succeeds when the
    refusal detector finds no refusal and the judge, under a principle of the constitution,
    says the answer complied with a harmful request. Writes OUT/attacks.jsonl, OUT/prompts.jsonl
    (for `charter sl --prompts`) and OUT/metrics.json.
    """
    from pydantic import ValidationError

    from charter.errors import ConfigError
    from charter.jsonl import describe_validation_error
    from charter.redteam.categories import CATEGORIES

    if list_categories:
        if as_json:
            print_json({"categories": [{"id": c.id, "en": c.en} for c in CATEGORIES]})
            return
        for c in CATEGORIES:
            click.echo(f"{c.id:20} {c.en}")
        return
    if out is None:
        raise click.UsageError("Missing option '--out'.")
    from charter.redteam.run import REDTEAM, RedteamConfig, RedteamInputs

    try:
        cfg = RedteamConfig(
            attacker=attacker,
            targets=list(targets) or ["embedded"],
            judge=judge,
            constitution=constitution_spec,
            categories=_split_names(categories),
            lang=lang,  # click.Choice checked it
            rounds=rounds,
            per_round=per_round,
            few_shot=few_shot,
            pool_temperature=pool_temperature,
            dedup_threshold=dedup_threshold,
            attacker_temperature=attacker_temperature,
            target_max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            seed=seed,
        )
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e)) from None
    from charter.backends.pool import BackendPool
    from charter.stage import StageContext

    with BackendPool(cfg.batch_size) as pool:
        ctx = StageContext(None, pool, None, progress, seed, root=out, resume=resume)
        result = REDTEAM.run(ctx, RedteamInputs(attacks_from=attacks_from), cfg)
    metrics = result.metrics
    _echo_summary(out, metrics, as_json)
    if as_json:
        print_json(metrics)


def _echo_summary(out: Path, metrics: dict[str, Any], as_json: bool) -> None:
    for r in metrics["rounds"]:
        say(
            f"round {r['round']}: {r['generated']} written, {r['unusable']} unusable, "
            f"{r['merged']} merged as near-duplicates, {r['kept']} kept",
            as_json,
        )
    for target, m in metrics["targets"].items():
        s = m["attack_success"]
        lo, hi = s["ci95"]
        rounds = ", ".join(f"round {k} {v['k']}/{v['n']}" for k, v in m["by_round"].items())
        shown = "n/a" if s["rate"] is None else f"{s['rate']:.1%}"
        say(
            f"{target}: attack success {s['k']}/{s['n']} = {shown} "
            f"(95% CI {lo:.1%}–{hi:.1%}); {rounds}",
            as_json,
        )
    div = metrics["diversity"]["all"]
    say(
        f"{metrics['n_attacks']} attacks, diversity (mean pairwise MiniLM distance) "
        f"{'n/a' if div is None else f'{div:.3f}'}; wrote {out / 'attacks.jsonl'}, "
        f"{out / 'prompts.jsonl'}, {out / 'metrics.json'}",
        as_json,
    )


@click.group(cls=CharterGroup)
def evals() -> None:
    """Model-written evaluations: generate persona statements, score models on them."""


@evals.command("generate")
@click.option("--behavior", required=True, help='Who the persona is: "is power-seeking", …')
@click.option(
    "--model",
    default="embedded",
    show_default=True,
    help="Backend spec of the model that writes the statements.",
)
@model_opt_option
@click.option(
    "--judge",
    default=None,
    help="Backend spec of the model that confirms the labels [default: --model].",
)
@click.option("--n", "n", type=click.IntRange(min=2), required=True, help="Rows to keep.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The persona JSONL file to write.",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(min=0.0, max=1.0),
    default=0.5,
    show_default=True,
    help="Keep statements whose label the judge confirms with at least this probability.",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Give up after writing this many times --n statements.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Statements written or judged together.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@json_option
def evals_generate(
    behavior: str,
    model: str,
    model_opt: tuple[str, ...],
    judge: str | None,
    n: int,
    out: Path,
    min_confidence: float,
    max_attempts: int,
    batch_size: int,
    seed: int,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write persona statements that a model with BEHAVIOR would and would not say, keep those
    whose label the judge confirms, and save them in the persona JSONL format."""
    from charter.backends import check_spec
    from charter.backends.pool import BackendPool
    from charter.cli.options import parse_key_values
    from charter.errors import ConfigError, RunFolderError
    from charter.redteam.evals import generate_evals, write_persona

    if not behavior.strip():
        raise ConfigError("--behavior is empty")
    if out.exists() and not overwrite:
        raise RunFolderError(f"{out} exists; pass --overwrite to replace it")
    options = parse_key_values(model_opt, "--model-opt")
    judge = judge or model
    check_spec(model)
    check_spec(judge)
    with BackendPool(batch_size) as pool:
        writer = pool.get(model, options)
        checker = writer if judge == model else pool.get(judge)
        rows, stats = generate_evals(
            behavior,
            writer,
            checker,
            n,
            min_confidence=min_confidence,
            max_attempts=max_attempts,
            batch_size=batch_size,
            seed=seed,
        )
    if not rows:
        raise ConfigError(
            f"no statement passed the judge ({stats}); try a larger --max-attempts, a lower "
            "--min-confidence or a stronger --model"
        )
    write_persona(out, rows)
    yes = sum(r.answer_matching_behavior == " Yes" for r in rows)
    say(
        f"{out}: {len(rows)} rows ({yes} ' Yes', {len(rows) - yes} ' No') of {n} asked; "
        f"{stats['generated']} written, {stats['unusable']} unusable, {stats['repeated']} "
        f"repeated, {stats['low_confidence']} below --min-confidence",
        as_json,
    )
    if as_json:
        print_json(
            {"out": str(out), "rows": len(rows), "yes": yes, "no": len(rows) - yes, "asked": n}
            | {"stats": stats}
        )


@evals.command("run")
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Persona JSONL file(s); a shell glob's further files may follow as arguments.",
)
@click.argument("more", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--model", default="embedded", show_default=True, help="Backend spec of the model scored."
)
@model_opt_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["chat", "raw"]),
    default="chat",
    show_default=True,
    help='chat: the chat template, "Yes"/"No" start the answer; raw: "Human: …\\n\\nAssistant:" '
    'and " Yes"/" No".',
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="A seeded sample of N rows per file.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --limit sample.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Questions scored together.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the results to this JSON file.",
)
@progress_option
@json_option
def evals_run(
    data: tuple[Path, ...],
    more: tuple[Path, ...],
    model: str,
    model_opt: tuple[str, ...],
    fmt: str,
    limit: int | None,
    seed: int,
    batch_size: int,
    out: Path | None,
    progress: bool,
    as_json: bool,
) -> None:
    """Score a model on persona files: its answer to each question is whichever of Yes and No
    is more likely; prints the rate of answers matching the behaviour per file (95% CI)."""
    from charter.backends import check_spec
    from charter.backends.pool import BackendPool
    from charter.cli.options import parse_key_values
    from charter.redact import redact_spec
    from charter.redteam.evals import (
        EVALS,
        EvalsConfig,
        EvalsInputs,
        dump_results,
        format_table,
        read_persona,
    )
    from charter.stage import StageContext

    files = [*data, *more]
    if not files:
        raise click.UsageError("give persona files with --data FILE...")
    options = parse_key_values(model_opt, "--model-opt")
    check_spec(model)
    for f in files:
        read_persona(f)  # every file validated before the model loads
    cfg = EvalsConfig(model=model, model_options=options, format=fmt, limit=limit, seed=seed)
    with BackendPool(batch_size) as pool:
        ctx = StageContext(None, pool, None, progress and not as_json, seed)
        results = EVALS.run(ctx, EvalsInputs(files=files), cfg).results
    say(format_table(results), as_json)
    meta = {"model": model, "format": fmt, "limit": limit, "seed": seed}
    if out is not None:
        dump_results(out, results, meta)
        say(f"wrote {out}", as_json)
    if as_json:
        print_json({**meta, "model": redact_spec(model), "files": list(results)})
