"""`charter bench`: speed, always against a baseline measured in the same run."""

from __future__ import annotations

import json

import click

from charter.cli.options import parse_key_values

BACKEND_OPT = click.option(
    "--backend-opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="Backend option, e.g. dtype=bfloat16 or static_cache=false.",
)


@click.group()
def bench() -> None:
    """Speed benchmarks (each against baselines measured in the same process)."""


@bench.command("generate")
@click.option("--backend", "backend_spec", default="embedded", show_default=True)
@click.option("--n", type=click.IntRange(min=1), default=32, show_default=True, help="Prompts.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.7, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@BACKEND_OPT
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_generate_cmd(
    backend_spec: str,
    n: int,
    max_new_tokens: int,
    batch_size: int,
    temperature: float,
    seed: int,
    backend_opt: tuple[str, ...],
    as_json: bool,
) -> None:
    """Tokens/s of (a) charter's generate path, (b) raw model.generate at the same batch size,
    (c) a naive one-prompt-at-a-time loop, with the ratios a/b and a/c."""
    from charter.bench import bench_generate

    result = bench_generate(
        backend_spec,
        n=n,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
        seed=seed,
        backend_options=parse_key_values(backend_opt, "--backend-opt"),
    )
    if as_json:
        click.echo(json.dumps(result))
        return
    m = result["machine"]
    click.echo(
        f"bench generate: {result['backend']}, {n} prompts, {max_new_tokens} new tokens each, "
        f"batch {batch_size}, on {m['device']} ({m['cpus']} cpus, {m['torch_threads']} threads)"
    )
    click.echo(f"  (a) charter generate   {result['charter_tokens_per_s']:8.1f} tokens/s")
    click.echo(f"  (b) raw model.generate {result['raw_tokens_per_s']:8.1f} tokens/s")
    click.echo(f"  (c) naive one-by-one   {result['naive_tokens_per_s']:8.1f} tokens/s")
    click.echo(
        f"  a/b = {result['ratio_charter_raw']:.3f}   a/c = {result['ratio_charter_naive']:.2f}"
    )


@bench.command("sl")
@click.option("--backend", "backend_spec", default="embedded", show_default=True)
@click.option("--constitution", default="udhr", show_default=True)
@click.option("--prompts", default="builtin:red-team", show_default=True)
@click.option("--n", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--few-shot", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--lang", type=click.Choice(["en", "ar"]), default="en", show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--prefix-cache/--no-prefix-cache",
    default=True,
    show_default=True,
    help="Compute each shared prompt prefix once (the hf: backend's default).",
)
@BACKEND_OPT
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Measure the stage and the generate figure alternately N times; report medians.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_sl_cmd(
    backend_spec: str,
    constitution: str,
    prompts: str,
    n: int,
    rounds: int,
    few_shot: int,
    lang: str,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    prefix_cache: bool,
    backend_opt: tuple[str, ...],
    repeats: int,
    as_json: bool,
) -> None:
    """Tokens/s of the SL-CAI stage against raw batched model.generate on the same requests
    and against `bench generate`'s batched figure at the same batch size and length."""
    from charter.bench import bench_sl

    r = bench_sl(
        backend_spec,
        constitution=constitution,
        prompts=prompts,
        n=n,
        rounds=rounds,
        few_shot=few_shot,
        lang=lang,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        prefix_cache=prefix_cache,
        backend_options=parse_key_values(backend_opt, "--backend-opt"),
        repeats=repeats,
    )
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(
        f"bench sl: {r['backend']}, {n} prompts, {rounds} rounds, "
        f"{r['generate_calls']} batched calls, mean prompt {r['mean_prompt_tokens']} tokens, "
        f"batch {batch_size}, {max_new_tokens} new tokens"
    )
    if repeats > 1:
        click.echo(f"  medians of {repeats} alternating runs of the stage and the generate figure")
    click.echo(f"  SL-CAI stage             {r['sl_tokens_per_s']:8.1f} tokens/s")
    click.echo(f"  raw model.generate, same {r['raw_tokens_per_s']:8.1f} tokens/s")
    click.echo(f"  bench generate, batched  {r['generate_tokens_per_s']:8.1f} tokens/s")
    click.echo(
        f"  SL/raw = {r['ratio_sl_raw']:.3f}   SL/generate = {r['ratio_sl_generate']:.3f}"
        f"   (prefix cache {'on' if prefix_cache else 'off'})"
    )
