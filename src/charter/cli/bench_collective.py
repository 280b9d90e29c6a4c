"""`charter bench collective`: the collective analysis at scale, next to red-dwarf, same run."""

from __future__ import annotations

import json

import click


@click.command("collective")
@click.option("--participants", type=click.IntRange(min=20), default=10_000, show_default=True)
@click.option("--statements", type=click.IntRange(min=5), default=2_000, show_default=True)
@click.option("--density", type=click.FloatRange(0.001, 1.0), default=0.05, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-reddwarf", is_flag=True, help="Time charter only.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def collective(
    participants: int,
    statements: int,
    density: float,
    seed: int,
    no_reddwarf: bool,
    as_json: bool,
) -> None:
    """Seconds to analyze a synthetic conversation (participants × statements, `density` of the
    cells voted) with charter and with red-dwarf 0.4 on the same votes, in this process."""
    from charter.collective.bench import bench_collective

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
