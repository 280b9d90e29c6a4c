"""`charter bench label`: the labeller's queries/s against a naive one-query-at-a-time loop."""

from __future__ import annotations

import json

import click


@click.command("label")
@click.option("--feedback", default="embedded", show_default=True)
@click.option("--policy", default=None, help="Backend for the pairs (default: --feedback).")
@click.option("--constitution", default="udhr", show_default=True)
@click.option("--prompts", default="builtin:red-team", show_default=True)
@click.option("--n", type=click.IntRange(min=1), default=16, show_default=True, help="Pairs.")
@click.option(
    "--principles-per-pair", "k", type=click.IntRange(min=1), default=2, show_default=True
)
@click.option("--few-shot", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=48, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
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
    from charter.feedback.bench import bench_label

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
