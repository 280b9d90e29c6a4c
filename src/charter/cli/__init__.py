"""The `charter` command line: thin commands over library functions.

Only click and light modules are imported here; each command imports what it needs when it
runs, so `charter --help` does not load torch.
"""

from __future__ import annotations

import sys

import click

from charter import __version__
from charter.cli.assembly import assembly
from charter.cli.bench import bench
from charter.cli.bench_collective import collective as bench_collective
from charter.cli.bench_label import bench_label_cmd
from charter.cli.collective import collective
from charter.cli.constitution import constitution
from charter.cli.evaluate import evaluate
from charter.cli.generate import generate, run
from charter.cli.label import label
from charter.cli.models import models
from charter.cli.oversight import oversight
from charter.cli.redteam import evals, redteam
from charter.cli.sl import sl
from charter.cli.train import score, train
from charter.cli.w2s import w2s
from charter.errors import CharterError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="charter")
def cli() -> None:
    """charter: Constitutional AI and the alignment research around it.

    Start with `charter run --preset quick` (the pipeline on the embedded model, offline) or
    `charter generate --backend embedded --prompts FILE.jsonl --out DIR`.
    """


cli.add_command(run)
cli.add_command(generate)
cli.add_command(sl)
cli.add_command(label)
cli.add_command(evaluate)
cli.add_command(models)
cli.add_command(constitution)
cli.add_command(bench)
cli.add_command(collective)
cli.add_command(w2s)
cli.add_command(train)
cli.add_command(score)
cli.add_command(oversight)
cli.add_command(redteam)
cli.add_command(evals)
cli.add_command(assembly)
bench.add_command(bench_collective)
bench.add_command(bench_label_cmd)


def main() -> None:
    """Entry point: user errors print one paragraph and exit 2; bugs keep their traceback."""
    try:
        code = cli.main(prog_name="charter", standalone_mode=False)
    except CharterError as e:
        click.echo(f"charter: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("charter: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("charter: interrupted; rerun with --resume to continue", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
