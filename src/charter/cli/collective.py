"""`charter collective`: ingest public votes, analyze them as Polis does, draft a constitution.

Thin commands over `charter.collective`; each imports the library only when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from charter.cli.vocabulary import CharterGroup, json_option, model_opt_option, print_json, say


@click.group(cls=CharterGroup)
def collective() -> None:
    """Collective constitutions from public statements and votes (Polis exports or our own
    long format; agree = +1, disagree = -1, pass = 0)."""


@collective.command("ingest")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder the ingested conversation is written into (statements.jsonl, votes.csv, "
    "ingest.json).",
)
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
@json_option
def ingest_cmd(
    src: Path,
    out: Path,
    statements_path: Path | None,
    toss_path: Path | None,
    lenient: bool,
    as_json: bool,
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
    say(
        f"ingested {r.n_statements} statements, {r.n_participants} participants, "
        f"{r.n_votes} votes ({r.format}) → {out}",
        as_json,
    )
    if r.n_superseded:
        say(f"  {r.n_superseded} older votes replaced by a later vote on the same pair", as_json)
    if r.n_tossed_participants:
        say(
            f"  dropped {r.n_tossed_participants} tossed participants ({r.n_tossed_votes} votes)",
            as_json,
        )
    for reason, n in r.dropped.items():
        say(f"  --lenient dropped {n} rows: {reason}", as_json)
    for reason, n in r.skipped.items():
        say(f"  skipped {n}: {reason}", as_json)
    for warning in r.warnings:
        click.echo(f"charter: warning: {warning}", err=True)
    if conv.export_groups:
        say(f"  kept the export's group ids for {len(conv.export_groups)} participants", as_json)
    if as_json:
        print_json(
            {
                "out": str(out),
                **r.model_dump(mode="json"),
                "n_export_groups": len(conv.export_groups or {}),
            }
        )


@collective.command("analyze")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    help="Folder the analysis is written into (default: SRC, which must be ingested).",
)
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
@click.option(
    "--min-votes",
    type=click.IntRange(min=1),
    help="Votes a participant needs to be grouped [default: min(7, number of statements)].",
)
@click.option(
    "--k-max",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="Most groups k-means tries (the silhouette picks k in 2..K).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the k-means initialisation."
)
@click.option("--no-figures", is_flag=True, help="Skip opinion_map.png and report.html.")
@click.option("--lenient", is_flag=True, help="When SRC is not ingested yet: drop bad rows.")
@json_option
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
    as_json: bool,
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
    say(
        f"analyzed {summary.n_votes} votes: {summary.n_in_conv} of {summary.n_participants} "
        f"participants grouped, {len(summary.groups)} groups from {how} ({sizes}) → {target}",
        as_json,
    )
    by_id = {x.statement_id: x for x in summary.statements}
    for sid in summary.top_gic[:3]:
        s = by_id[sid]
        say(f"  GIC {s.gic:.3f}  [{sid}] {' '.join(s.text.split())[:80]}", as_json)
    if as_json:
        print_json(
            {
                "out": str(target),
                "n_votes": summary.n_votes,
                "n_participants": summary.n_participants,
                "n_in_conv": summary.n_in_conv,
                "n_statements": summary.n_statements,
                "groups_from": summary.groups_from,
                "clustering": None if result.clustering is None else clustering,
                "groups": [{"id": g.id, "size": g.size} for g in summary.groups],
                "top_gic": [
                    {"statement_id": sid, "gic": by_id[sid].gic, "text": by_id[sid].text}
                    for sid in summary.top_gic
                ],
                "files": ["analysis.json", "statements.csv", "participants.csv"]
                + ([] if no_figures else ["opinion_map.png", "report.html"]),
            }
        )


@collective.command("draft")
@click.argument("analysis_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Constitution YAML file (default: ANALYSIS_DIR/constitution.yaml, which is always "
    "written).",
)
@click.option(
    "--min-gic",
    type=click.FloatRange(0, 1),
    help="Keep statements with group-informed consensus ≥ X [default: 0.7].",
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
    "--rewrite",
    type=click.Choice(["template", "llm"]),
    default="template",
    show_default=True,
    help="How each principle is worded: template (offline, fixed phrases) or llm (the --model "
    "rewrites each idea).",
)
@click.option(
    "--model",
    "model_spec",
    metavar="SPEC",
    help="Backend spec of the model that rewrites for --rewrite llm (e.g. embedded).",
)
@model_opt_option
@click.option(
    "--max-principles",
    type=click.IntRange(min=1),
    help="Keep at most N principles (the highest GIC first) [default: all].",
)
@click.option("--moderated-only", is_flag=True, help="Skip statements never moderated.")
@click.option("--name", help="The constitution's name [default: from the analysis source].")
@json_option
def draft_cmd(
    analysis_dir: Path,
    out: Path | None,
    min_gic: float | None,
    min_group_agree: float | None,
    dedup_threshold: float,
    rewrite: str,
    model_spec: str | None,
    model_opt: tuple[str, ...],
    max_principles: int | None,
    moderated_only: bool,
    name: str | None,
    as_json: bool,
) -> None:
    """Turn the statements that pass a threshold into a constitution: near-duplicates merged,
    each idea a principle ("Choose the response that …" plus critique and revision requests)
    citing its statement ids, GIC and group agree rates. `charter run --constitution
    collective:ANALYSIS_DIR` then uses it."""
    from pydantic import ValidationError

    from charter.cli.options import parse_key_values
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
            backend=model_spec,
            max_principles=max_principles,
            include_unmoderated=not moderated_only,
            name=name,
        )
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e)) from None
    options = parse_key_values(model_opt, "--model-opt")
    if rewrite == "llm" and model_spec is None:
        raise ConfigError("--rewrite llm needs --model SPEC")
    if options and rewrite != "llm":
        raise ConfigError("--model-opt goes with --rewrite llm")
    summary = read_summary(analysis_dir)
    backend = None
    if options and model_spec is not None:
        from charter.backends import load_backend

        backend = load_backend(model_spec, **options)
    constitution = draft_constitution(
        summary, config, backend=backend, analysis_sha256=analysis_sha256(analysis_dir)
    )
    written = write_constitution(
        constitution, out or analysis_dir / CONSTITUTION_FILE, analysis_dir
    )
    cited = sum(len(p.sources) for p in constitution.principles)
    say(
        f"drafted {len(constitution.principles)} principles from {cited} statements → "
        + ", ".join(str(p) for p in written),
        as_json,
    )
    if as_json:
        print_json(
            {
                "name": constitution.name,
                "principles": len(constitution.principles),
                "statements_cited": cited,
                "sha256": constitution.compute_sha256(),
                "written": [str(p) for p in written],
            }
        )
