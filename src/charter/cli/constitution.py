"""`charter constitution`: list, show, validate, import and export constitutions."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def constitution() -> None:
    """Constitutions: builtin ones, files, and the public formats."""


@constitution.command("list")
def list_cmd() -> None:
    """List the builtin constitutions."""
    from charter.constitution.load import DEFAULT_CONSTITUTION, builtin_names, load_constitution

    for name in builtin_names():
        c = load_constitution(name)
        default = " (default)" if name == DEFAULT_CONSTITUTION else ""
        langs = ", ".join(c.languages())
        about = c.description.strip()[:80]
        click.echo(f"{name}{default}: {len(c.principles)} principles [{langs}] - {about}")


@constitution.command("show")
@click.argument("spec")
@click.option(
    "--lang", default="en", show_default=True, help="Show the texts in this language (e.g. ar)."
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
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
def validate(files: tuple[str, ...]) -> None:
    """Check constitution files (or builtin names) against the schema.

    Every problem of every file is listed, one per line with its line number. Exit status: 0 when
    all are valid, 1 when one is invalid, 2 when one cannot be read (missing, a folder, no
    permission).
    """
    from charter.constitution.load import load_constitution
    from charter.errors import InputError

    invalid = unreadable = 0
    for f in files:
        try:
            c = load_constitution(f)
        except InputError as e:
            if _readable(f):
                invalid += 1
            else:
                unreadable += 1
            for line, text in e.problems:
                where = f"{e.path}" if line is None else f"{e.path}, line {line}"
                click.echo(f"{where}: {text}", err=True)
            continue
        stated = (
            " (stated sha256 differs: the file was edited since export)"
            if c.sha256 and c.sha256 != c.compute_sha256()
            else ""
        )
        click.echo(
            f"{f}: ok - {len(c.principles)} principles "
            f"({len(c.critique_principles())} critique/revision, "
            f"{len(c.comparison_principles())} comparison), languages {', '.join(c.languages())}, "
            f"sha256 {c.compute_sha256()[:16]}{stated}"
        )
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
@click.option("--format", "fmt", type=click.Choice(["anthropic", "hf"]), required=True)
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--name", default=None, help="Name of the imported constitution.")
def import_cmd(fmt: str, sources: tuple[Path, ...], out: Path, name: str | None) -> None:
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
    click.echo(
        f"{out}: {len(c.critique_principles())} critique/revision and "
        f"{len(c.comparison_principles())} comparison principles, "
        f"{len(c.few_shot.critique_revision)} critique/revision and "
        f"{len(c.few_shot.labeling)} labelling examples, sha256 {c.compute_sha256()[:16]}"
    )


@constitution.command("export")
@click.argument("spec")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File (default: stdout).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
def export(spec: str, out: Path | None, fmt: str) -> None:
    """Write a constitution (builtin or file) as YAML or JSON, with its sha256."""
    from charter.constitution.load import dump_constitution, load_constitution
    from charter.runs import atomic_write_text

    text = dump_constitution(load_constitution(spec), fmt)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
        click.echo(f"wrote {out}")
