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
    """List backend specs and the embedded model's state."""
    from charter.backends import BACKENDS
    from charter.backends.gguf_convert import embedded_gguf, embedded_model_dir, is_converted
    from charter.errors import BackendError

    try:
        gguf: str = str(embedded_gguf())
    except BackendError as e:
        gguf = f"missing ({e})"
    target = embedded_model_dir()
    if as_json:
        print_json(
            {
                "backends": [
                    {"name": name, "spec": shape, "about": about}
                    for name, (_, _, shape, about) in BACKENDS.items()
                ],
                "embedded": {
                    "model": "SmolLM2-135M-Instruct",
                    "source": gguf,
                    "trainable_copy": str(target),
                    "converted": is_converted(target),
                },
            }
        )
        return
    click.echo("backends:")
    for _, _, shape, about in BACKENDS.values():
        click.echo(f"  {shape:<28} {about}")
    state = "converted" if is_converted(target) else "not converted yet (done on first use)"
    click.echo("embedded model: SmolLM2-135M-Instruct")
    click.echo(f"  source: {gguf}")
    click.echo(f"  trainable copy: {target} [{state}]")


@models.command("pull")
@click.argument("name", required=False, type=click.Choice(["embedded"]))
@click.option("--force", is_flag=True, help="Convert again even if a copy exists.")
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
def pull(name: str | None, force: bool, tiny_random: Path | None, seed: int, as_json: bool) -> None:
    """Prepare a model: `pull embedded` converts the embedded GGUF into a trainable copy;
    `pull --tiny-random DIR` builds a small random model (for GPU checks and tests)."""
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
    if name is None:
        raise CharterError("name a model to pull (embedded) or give --tiny-random DIR")
    from charter.backends.gguf_convert import ensure_embedded_model

    ready = ensure_embedded_model(force=force)
    if as_json:
        print_json({"model": "embedded", "path": str(ready)})
    else:
        click.echo(f"embedded model ready at {ready}")
