"""`charter constitution`: list, show, validate, import and export constitutions."""

from __future__ import annotations

from pathlib import Path

import click

from charter.cli.vocabulary import CharterGroup, json_option, print_json, say


@click.group(cls=CharterGroup)
def constitution() -> None:
    """Constitutions: builtin ones, files, and the public formats."""


@constitution.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """List the builtin constitutions."""
    from charter.constitution.load import DEFAULT_CONSTITUTION, builtin_names, load_constitution

    listed = []
    for name in builtin_names():
        c = load_constitution(name)
        listed.append(
            {
                "name": name,
                "default": name == DEFAULT_CONSTITUTION,
                "principles": len(c.principles),
                "languages": list(c.languages()),
                "description": c.description.strip(),
            }
        )
        if not as_json:
            default = " (default)" if name == DEFAULT_CONSTITUTION else ""
            langs = ", ".join(c.languages())
            about = c.description.strip()[:80]
            click.echo(f"{name}{default}: {len(c.principles)} principles [{langs}] - {about}")
    if as_json:
        print_json({"constitutions": listed})


@constitution.command("show")
@click.argument("spec")
@click.option(
    "--lang", default="en", show_default=True, help="Show the texts in this language (e.g. ar)."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the constitution as JSON instead of YAML."
)
@click.option(
    "--with-sources",
    "udhr_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Folder (or file) of the UDHR XML: print each principle beside the articles it cites.",
)
def show(spec: str, lang: str, as_json: bool, udhr_path: Path | None) -> None:
    """Print a constitution (a builtin NAME or a FILE), YAML by default."""
    from charter.constitution.load import dump_constitution, load_constitution
    from charter.errors import CharterError

    if udhr_path is not None and as_json:
        raise click.UsageError("--with-sources prints text; it does not go with --json")
    c = load_constitution(spec)
    if udhr_path is not None:
        from charter.constitution.udhr import format_with_sources, load_udhr, udhr_for_lang

        udhr = load_udhr(udhr_path) if udhr_path.is_file() else udhr_for_lang(udhr_path, lang)
        click.echo(format_with_sources(c, udhr, lang=lang))
        return
    try:
        shown = c.localized(lang) if lang != "en" else c
    except KeyError as e:
        raise CharterError(f"{spec}: cannot show in `{lang}`: {e.args[0]}") from None
    click.echo(dump_constitution(shown, "json" if as_json else "yaml"), nl=False)


@constitution.command("validate")
@click.argument("files", nargs=-1, required=True)
@json_option
def validate(files: tuple[str, ...], as_json: bool) -> None:
    """Check constitution files (or builtin names) against the schema.

    Every problem of every file is listed, one per line with its line number. Exit status: 0 when
    all are valid, 1 when one is invalid, 2 when one cannot be read (missing, a folder, no
    permission).
    """
    from charter.constitution.load import load_constitution
    from charter.errors import InputError

    invalid = unreadable = 0
    results: list[dict[str, object]] = []
    for f in files:
        try:
            c = load_constitution(f)
        except InputError as e:
            readable = _readable(f)
            if readable:
                invalid += 1
            else:
                unreadable += 1
            for line, text in e.problems:
                where = f"{e.path}" if line is None else f"{e.path}, line {line}"
                click.echo(f"{where}: {text}", err=True)
            results.append(
                {
                    "file": f,
                    "status": "invalid" if readable else "unreadable",
                    "problems": [{"line": line, "text": text} for line, text in e.problems],
                }
            )
            continue
        sha256 = c.compute_sha256()
        edited = bool(c.sha256 and c.sha256 != sha256)
        stated = " (stated sha256 differs: the file was edited since export)" if edited else ""
        say(
            f"{f}: ok - {len(c.principles)} principles "
            f"({len(c.critique_principles())} critique/revision, "
            f"{len(c.comparison_principles())} comparison), languages {', '.join(c.languages())}, "
            f"sha256 {sha256[:16]}{stated}",
            as_json,
        )
        results.append(
            {
                "file": f,
                "status": "ok",
                "principles": len(c.principles),
                "critique_revision": len(c.critique_principles()),
                "comparison": len(c.comparison_principles()),
                "languages": list(c.languages()),
                "sha256": sha256,
                "stated_sha256_differs": edited,
            }
        )
    if as_json:
        print_json({"files": results, "invalid": invalid, "unreadable": unreadable})
    if invalid or unreadable:
        counts = [
            f"{n} {what}" for n, what in ((invalid, "invalid"), (unreadable, "unreadable")) if n
        ]
        click.echo(f"charter: {' and '.join(counts)} of {len(files)} file(s)", err=True)
        raise click.exceptions.Exit(2 if unreadable else 1)


def _readable(spec: str) -> bool:
    """Whether `spec` names something charter could read (a builtin, or a readable file)."""
    import os

    from charter.constitution.load import builtin_names

    if spec in builtin_names():
        return True
    path = Path(spec.removeprefix("collective:"))
    if spec.startswith("collective:"):
        path = path / "constitution.yaml"
    return path.is_file() and os.access(path, os.R_OK)


@constitution.command("import")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["anthropic", "hf"]),
    required=True,
    help="anthropic: the CAI paper's JSON files (or their folder); hf: an llm-swarm JSON file.",
)
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The constitution YAML file to write.",
)
@click.option("--name", default=None, help="Name of the imported constitution.")
@json_option
def import_cmd(
    fmt: str, sources: tuple[Path, ...], out: Path, name: str | None, as_json: bool
) -> None:
    """Import the CAI paper's JSON files (or their folder) or an llm-swarm JSON into YAML."""
    from charter.constitution.importers import import_anthropic, import_hf
    from charter.constitution.load import dump_constitution
    from charter.errors import CharterError
    from charter.runs import atomic_write_text

    if fmt == "anthropic":
        c = import_anthropic(list(sources), **({"name": name} if name else {}))
    else:
        if len(sources) != 1:
            raise CharterError("--format hf takes exactly one JSON file")
        c = import_hf(sources[0], name)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, dump_constitution(c))
    say(
        f"{out}: {len(c.critique_principles())} critique/revision and "
        f"{len(c.comparison_principles())} comparison principles, "
        f"{len(c.few_shot.critique_revision)} critique/revision and "
        f"{len(c.few_shot.labeling)} labelling examples, sha256 {c.compute_sha256()[:16]}",
        as_json,
    )
    if as_json:
        print_json(
            {
                "out": str(out),
                "name": c.name,
                "critique_revision": len(c.critique_principles()),
                "comparison": len(c.comparison_principles()),
                "few_shot_critique_revision": len(c.few_shot.critique_revision),
                "few_shot_labeling": len(c.few_shot.labeling),
                "sha256": c.compute_sha256(),
            }
        )


@constitution.command("export")
@click.argument("spec")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The file to write (default: stdout).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Write YAML or JSON.",
)
def export(spec: str, out: Path | None, fmt: str) -> None:
    """Write a constitution (builtin or file) as YAML or JSON, with its sha256.

    The constitution itself is the output (`--format json` for JSON), so there is no --json.
    """
    from charter.constitution.load import dump_constitution, load_constitution
    from charter.runs import atomic_write_text

    text = dump_constitution(load_constitution(spec), fmt)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
        click.echo(f"wrote {out}")
