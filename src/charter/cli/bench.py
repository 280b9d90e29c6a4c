"""`charter bench generate|sl|mc|label|collective`: speed, always against a baseline measured in
the same run (the benchmarks themselves are `charter.bench`)."""

from __future__ import annotations

import json

import click

from charter.cli.options import JSON, SEED, parse_key_values
from charter.cli.vocabulary import CharterGroup

BACKEND_OPT = click.option(
    "--model-opt",
    "backend_opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="Backend option for the measured engine, e.g. compute_type=float32 or engine=torch.",
)
MODEL = click.option(
    "--model",
    "backend_spec",
    default="embedded",
    show_default=True,
    help="The model measured: a backend spec (embedded, hf:PATH, ct2:PATH, ...).",
)


@click.group(cls=CharterGroup)
def bench() -> None:
    """Speed benchmarks (each against baselines measured in the same process)."""


@bench.command("generate")
@MODEL
@click.option("--n", type=click.IntRange(min=1), default=32, show_default=True, help="Prompts.")
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Most tokens per answer.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Prompts per backend call.",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0.0),
    default=0.7,
    show_default=True,
    help="Sampling temperature (0 = greedy).",
)
@SEED
@BACKEND_OPT
@JSON
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
    from charter.bench.generate import bench_generate

    result = bench_generate(
        backend_spec,
        n=n,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
        seed=seed,
        backend_options=parse_key_values(backend_opt, "--model-opt"),
    )
    if as_json:
        click.echo(json.dumps(result))
        return
    m = result["machine"]
    click.echo(
        f"bench generate: {result['backend']} on {result['engine']} ({result['compute_type']}), "
        f"{n} prompts, {max_new_tokens} new tokens each, batch {batch_size}, on {m['device']} "
        f"({m['cpus']} cpus, {m['physical_cores']} cores)"
    )
    click.echo(f"  (a)  charter generate        {result['charter_tokens_per_s']:8.1f} tokens/s")
    click.echo(f"  (b)  raw model.generate fp32 {result['raw_tokens_per_s']:8.1f} tokens/s")
    click.echo(f"  (b2) raw model.generate bf16 {result['raw_bf16_tokens_per_s']:8.1f} tokens/s")
    click.echo(f"  (c)  naive one-by-one fp32   {result['naive_tokens_per_s']:8.1f} tokens/s")
    click.echo(
        f"  a/b = {result['ratio_charter_raw']:.3f}   a/b2 = {result['ratio_charter_raw_bf16']:.3f}"
        f"   a/c = {result['ratio_charter_naive']:.2f}"
    )
    click.echo(f"  peak memory (MB): {_memory(result)}")


def _memory(result: dict[str, object]) -> str:
    peaks = result.get("peak_rss_mb") or {}
    assert isinstance(peaks, dict)
    return ", ".join(f"{k} {v:.0f}" for k, v in peaks.items())


@bench.command("sl")
@MODEL
@click.option(
    "--constitution",
    default="udhr",
    show_default=True,
    help="The constitution: builtin NAME, a YAML/JSON FILE or collective:DIR.",
)
@click.option(
    "--prompts",
    default="builtin:red-team",
    show_default=True,
    help="The prompts: builtin:NAME or a JSONL file.",
)
@click.option("--n", type=click.IntRange(min=1), default=16, show_default=True, help="Prompts.")
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Critique → revision rounds.",
)
@click.option(
    "--few-shot",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Worked examples prepended to each critique.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "ar"]),
    default="en",
    show_default=True,
    help="Language of the prompts and the constitution.",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Most tokens per answer.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Prompts (or questions) per backend call.",
)
@SEED
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
@JSON
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
    """Tokens/s of the SL-CAI stage on the default engine against the same stage on
    transformers fp32 and against `bench generate`'s batched figure, same batch and length."""
    from charter.bench.sl import bench_sl

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
        backend_options=parse_key_values(backend_opt, "--model-opt"),
        repeats=repeats,
    )
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(
        f"bench sl: {r['backend']} on {r['engine']} ({r['compute_type']}), {n} prompts, "
        f"{rounds} rounds, {r['generate_calls']} batched calls, batch {batch_size}, "
        f"{max_new_tokens} new tokens"
    )
    if repeats > 1:
        click.echo(f"  medians of {repeats} runs of each")
    click.echo(f"  SL-CAI stage             {r['sl_tokens_per_s']:8.1f} tokens/s")
    click.echo(f"  same stage, torch fp32   {r['torch_sl_tokens_per_s']:8.1f} tokens/s")
    click.echo(f"  bench generate, batched  {r['generate_tokens_per_s']:8.1f} tokens/s")
    click.echo(
        f"  SL/torch = {r['ratio_sl_torch']:.3f}   SL/generate = {r['ratio_sl_generate']:.3f}"
        f"   (prefix cache {'on' if prefix_cache else 'off'})"
    )
    click.echo(f"  peak memory (MB): {_memory(r)}")


@bench.command("mc")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Multiple-choice JSONL in the CAI paper's format (e.g. 438HHHEvaluations.jsonl).",
)
@MODEL
@click.option(
    "--swap/--no-swap",
    default=True,
    show_default=True,
    help="Also ask every item with (A) and (B) swapped.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N items.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Prompts (or questions) per backend call.",
)
@BACKEND_OPT
@JSON
def bench_mc_cmd(
    data: str,
    backend_spec: str,
    swap: bool,
    limit: int | None,
    batch_size: int,
    backend_opt: tuple[str, ...],
    as_json: bool,
) -> None:
    """`charter evaluate mc` on the default engine and on transformers fp32, same run: seconds
    and accuracy of each."""
    from charter.bench.mc import bench_mc

    r = bench_mc(
        data,
        backend_spec,
        swap=swap,
        limit=limit,
        batch_size=batch_size,
        backend_options=parse_key_values(backend_opt, "--model-opt"),
    )
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(
        f"bench mc: {r['backend']} on {r['engine']} ({r['compute_type']}), {r['n']} items"
        f"{', both orders' if swap else ''}"
    )
    click.echo(f"  charter  {r['charter_seconds']:8.1f} s   accuracy {r['charter_accuracy']:.3f}")
    click.echo(f"  torch    {r['torch_seconds']:8.1f} s   accuracy {r['torch_accuracy']:.3f}")
    click.echo(f"  torch/charter time = {r['ratio_torch_charter']:.2f}")
    click.echo(f"  peak memory (MB): {_memory(r)}")


@bench.command("label")
@click.option(
    "--feedback",
    default="embedded",
    show_default=True,
    help="The model that labels: a backend spec.",
)
@click.option("--policy", default=None, help="Backend for the pairs (default: --feedback).")
@click.option(
    "--constitution",
    default="udhr",
    show_default=True,
    help="The constitution: builtin NAME, a YAML/JSON FILE or collective:DIR.",
)
@click.option(
    "--prompts",
    default="builtin:red-team",
    show_default=True,
    help="The prompts: builtin:NAME or a JSONL file.",
)
@click.option("--n", type=click.IntRange(min=1), default=16, show_default=True, help="Pairs.")
@click.option(
    "--principles-per-pair",
    "k",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Principles asked per pair.",
)
@click.option(
    "--few-shot",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Labelling examples prepended to every question.",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    default=48,
    show_default=True,
    help="Most tokens per sampled answer.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Prompts (or questions) per backend call.",
)
@SEED
@JSON
def bench_label_cmd(
    feedback: str,
    policy: str | None,
    constitution: str,
    prompts: str,
    n: int,
    k: int,
    few_shot: int,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    as_json: bool,
) -> None:
    """Queries/s of the label stage's scoring on the default engine and on transformers fp32."""
    from charter.bench.label import bench_label

    r = bench_label(
        feedback,
        policy=policy,
        constitution=constitution,
        prompts=prompts,
        n=n,
        principles_per_pair=k,
        few_shot=few_shot,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
    )
    if as_json:
        click.echo(json.dumps(r))
        return
    m = r["machine"]
    click.echo(
        f"bench label: {r['feedback']}, {r['pairs']} pairs × {k} principles × 2 orders = "
        f"{r['queries']} queries, {few_shot} few-shot examples, batch {batch_size}, "
        f"on {m['device']} ({m['cpus']} cpus)"
    )
    click.echo(
        f"  label stage, {r['engine']} ({r['compute_type']}) {r['stage_queries_per_s']:8.2f} "
        "queries/s"
    )
    click.echo(f"  label stage, torch fp32 {r['torch_queries_per_s']:8.2f} queries/s")
    click.echo(
        f"  ratio = {r['ratio']:.2f}   (|Δp_A| between them: max {r['max_abs_diff_p_a']:.3f}, "
        f"mean {r['mean_abs_diff_p_a']:.3f})"
    )


@bench.command("collective")
@click.option(
    "--participants",
    type=click.IntRange(min=20),
    default=10_000,
    show_default=True,
    help="Synthetic participants.",
)
@click.option(
    "--statements",
    type=click.IntRange(min=5),
    default=2_000,
    show_default=True,
    help="Synthetic statements.",
)
@click.option(
    "--density",
    type=click.FloatRange(0.001, 1.0),
    default=0.05,
    show_default=True,
    help="Share of (participant, statement) cells with a vote.",
)
@SEED
@click.option("--no-reddwarf", is_flag=True, help="Time charter only.")
@JSON
def bench_collective_cmd(
    participants: int,
    statements: int,
    density: float,
    seed: int,
    no_reddwarf: bool,
    as_json: bool,
) -> None:
    """Seconds to analyze a synthetic conversation (participants × statements, `density` of the
    cells voted) with charter and with red-dwarf 0.4 on the same votes, in this process."""
    from charter.bench.collective import bench_collective

    result = bench_collective(
        n_participants=participants,
        n_statements=statements,
        density=density,
        seed=seed,
        reddwarf=not no_reddwarf,
    )
    if as_json:
        click.echo(json.dumps(result))
        return
    m, inp = result["machine"], result["input"]
    click.echo(
        f"bench collective: {inp['participants']} participants × {inp['statements']} statements, "
        f"{inp['votes']} votes ({inp['density']:.0%} seen), seed {inp['seed']}, on {m['cpu']} "
        f"({m['cpus']} cpus)"
    )
    stages = ", ".join(f"{k} {v:.2f}" for k, v in result["charter_stages"].items())
    click.echo(
        f"  charter analyze      {result['charter_seconds']:8.2f} s  (k = {result['charter_k']}; "
        f"{stages})"
    )
    if result["reddwarf_seconds"] is None:
        click.echo(
            f"  red-dwarf            not run ({result['reddwarf_error'] or '--no-reddwarf'})"
        )
        return
    click.echo(
        f"  red-dwarf 0.4        {result['reddwarf_seconds']:8.2f} s  (k = {result['reddwarf_k']})"
    )
    click.echo(
        f"  red-dwarf / charter = {result['ratio_reddwarf_charter']:.2f}   "
        f"ARI(charter, red-dwarf) = {result['ari_charter_reddwarf']:.3f}"
    )
