"""`charter collective`: ingest public votes, analyze them as Polis does, draft a constitution.

Thin commands over `charter.collective`; each imports the library only when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def collective() -> None:
    """Collective constitutions from public statements and votes (Polis exports or our own
    long format; agree = +1, disagree = -1, pass = 0)."""


@collective.command("ingest")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Folder.")
@click.option(
    "--statements",
    "statements_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Statements file (comments.csv, statements.csv or .jsonl) when SRC is a votes file.",
)
@click.option(
    "--toss",
    "toss_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Participant ids to drop, one per line (default: SRC/ids-to-toss.csv if present).",
)
@click.option("--lenient", is_flag=True, help="Drop bad rows (and count them) instead of failing.")
def ingest_cmd(
    src: Path, out: Path, statements_path: Path | None, toss_path: Path | None, lenient: bool
) -> None:
    """Read a Polis export folder (comments.csv + votes.csv or participants-votes.csv), or a
    votes file in our long format (participant_id, statement_id, vote[, timestamp]) as CSV or
    JSONL, validate it, and write OUT/statements.jsonl, OUT/votes.csv and OUT/ingest.json.
    Statements with empty text are skipped (with a warning unless moderated out), with the votes
    on them. OUT may not be SRC, nor a folder where an input file would be overwritten."""
    from charter.collective.ingestion import ingest, write_conversation

    conv = ingest(src, statements_path=statements_path, lenient=lenient, toss_path=toss_path)
    write_conversation(conv, out)
    r = conv.report
    click.echo(
        f"ingested {r.n_statements} statements, {r.n_participants} participants, "
        f"{r.n_votes} votes ({r.format}) → {out}"
    )
    if r.n_superseded:
        click.echo(f"  {r.n_superseded} older votes replaced by a later vote on the same pair")
    if r.n_tossed_participants:
        click.echo(
            f"  dropped {r.n_tossed_participants} tossed participants ({r.n_tossed_votes} votes)"
        )
    for reason, n in r.dropped.items():
        click.echo(f"  --lenient dropped {n} rows: {reason}")
    for reason, n in r.skipped.items():
        click.echo(f"  skipped {n}: {reason}")
    for warning in r.warnings:
        click.echo(f"charter: warning: {warning}", err=True)
    if conv.export_groups:
        click.echo(f"  kept the export's group ids for {len(conv.export_groups)} participants")


@collective.command("analyze")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), help="Folder (default: SRC).")
@click.option(
    "--groups-from-export",
    "groups_file",
    is_flag=False,
    flag_value="-",
    default=None,
    metavar="[PARTICIPANTS_VOTES_CSV]",
    help="Use the group ids of a Polis participants-votes.csv (by default the one ingested) "
    "instead of clustering, to reproduce Polis's own report.",
)
@click.option(
    "--clustering",
    type=click.Choice(["polis", "direct"]),
    default="polis",
    show_default=True,
    help="polis: base clusters then groups (as Polis); direct: k-means on participants.",
)
@click.option("--min-votes", type=click.IntRange(min=1), help="Default: min(7, #statements).")
@click.option("--k-max", type=click.IntRange(min=2), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-figures", is_flag=True, help="Skip opinion_map.png and report.html.")
@click.option("--lenient", is_flag=True, help="When SRC is not ingested yet: drop bad rows.")
def analyze_cmd(
    src: Path,
    out: Path | None,
    groups_file: str | None,
    clustering: str,
    min_votes: int | None,
    k_max: int,
    seed: int,
    no_figures: bool,
    lenient: bool,
) -> None:
    """Analyze an ingested folder (or a Polis export directly): vote matrix, participant filter,
    PCA, groups, per-group statistics, GIC, consensus and representative statements. Writes
    analysis.json, statements.csv, participants.csv, opinion_map.png and report.html."""
    from charter.collective.analysis import AnalysisConfig, analyze, write_analysis
    from charter.collective.ingestion import INGEST_REPORT, ingest
    from charter.collective.votes import read_export_groups
    from charter.errors import ConfigError

    if out is None and not (src / INGEST_REPORT).is_file():
        raise ConfigError(f"{src} is not an ingested folder: pass --out DIR for the results")
    conv = ingest(src, lenient=lenient)
    export_groups = None
    if groups_file not in (None, "-"):
        export_groups = read_export_groups(Path(str(groups_file)))
    config = AnalysisConfig.model_validate(
        {
            "groups": "clustering" if groups_file is None else "export",
            "clustering": clustering,
            "min_votes": min_votes,
            "k_max": k_max,
            "seed": seed,
        }
    )
    result = analyze(conv, config, export_groups=export_groups)
    target = out or src
    summary = write_analysis(result, target, figures=not no_figures)
    sizes = ", ".join(f"{g.id}: {g.size}" for g in summary.groups)
    how = "export" if result.clustering is None else f"k-means ({clustering}), silhouette"
    click.echo(
        f"analyzed {summary.n_votes} votes: {summary.n_in_conv} of {summary.n_participants} "
        f"participants grouped, {len(summary.groups)} groups from {how} ({sizes}) → {target}"
    )
    for sid in summary.top_gic[:3]:
        s = next(x for x in summary.statements if x.statement_id == sid)
        click.echo(f"  GIC {s.gic:.3f}  [{sid}] {' '.join(s.text.split())[:80]}")


@collective.command("draft")
@click.argument("analysis_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Constitution YAML (default: ANALYSIS_DIR/constitution.yaml, which is always written).",
)
@click.option(
    "--min-gic", type=click.FloatRange(0, 1), help="Keep statements with GIC ≥ X (default 0.7)."
)
@click.option(
    "--min-group-agree",
    type=click.FloatRange(0, 1),
    help="Instead: keep statements every group agrees with at a rate ≥ X.",
)
@click.option(
    "--dedup-threshold",
    type=click.FloatRange(0, 1),
    default=0.85,
    show_default=True,
    help="Merge statements whose embeddings' cosine similarity is ≥ S (1 merges only copies).",
)
@click.option(
    "--rewrite", type=click.Choice(["template", "llm"]), default="template", show_default=True
)
@click.option("--backend", "backend_spec", help="Backend for --rewrite llm (e.g. embedded).")
@click.option("--max-principles", type=click.IntRange(min=1))
@click.option("--moderated-only", is_flag=True, help="Skip statements never moderated.")
@click.option("--name", help="The constitution's name.")
def draft_cmd(
    analysis_dir: Path,
    out: Path | None,
    min_gic: float | None,
    min_group_agree: float | None,
    dedup_threshold: float,
    rewrite: str,
    backend_spec: str | None,
    max_principles: int | None,
    moderated_only: bool,
    name: str | None,
) -> None:
    """Turn the statements that pass a threshold into a constitution: near-duplicates merged,
    each idea a principle ("Choose the response that …" plus critique and revision requests)
    citing its statement ids, GIC and group agree rates. `charter run --constitution
    collective:ANALYSIS_DIR` then uses it."""
    from pydantic import ValidationError

    from charter.collective.analysis import read_summary
    from charter.collective.draft import (
        CONSTITUTION_FILE,
        DraftConfig,
        analysis_sha256,
        draft_constitution,
        write_constitution,
    )
    from charter.errors import ConfigError
    from charter.jsonl import describe_validation_error

    try:
        config = DraftConfig(
            min_gic=min_gic,
            min_group_agree=min_group_agree,
            dedup_threshold=dedup_threshold,
            rewrite="llm" if rewrite == "llm" else "template",
            backend=backend_spec,
            max_principles=max_principles,
            include_unmoderated=not moderated_only,
            name=name,
        )
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e)) from None
    summary = read_summary(analysis_dir)
    constitution = draft_constitution(
        summary, config, analysis_sha256=analysis_sha256(analysis_dir)
    )
    written = write_constitution(
        constitution, out or analysis_dir / CONSTITUTION_FILE, analysis_dir
    )
    cited = sum(len(p.sources) for p in constitution.principles)
    click.echo(
        f"drafted {len(constitution.principles)} principles from {cited} statements → "
        + ", ".join(str(p) for p in written)
    )
