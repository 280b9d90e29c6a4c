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
from charter.cli.collective import collective
from charter.cli.constitution import constitution
from charter.cli.evaluate import evaluate
from charter.cli.generate import generate
from charter.cli.label import label
from charter.cli.models import models
from charter.cli.oversight import oversight
from charter.cli.redteam import evals, redteam
from charter.cli.run import run, runs
from charter.cli.sl import sl
from charter.cli.train import score, train
from charter.cli.vocabulary import CharterGroup
from charter.cli.w2s import w2s
from charter.errors import CharterError


@click.group(
    cls=CharterGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="charter")
def cli() -> None:
    """charter: Constitutional AI and the alignment research around it.

    Start with `charter run --preset quick` (the pipeline on the embedded model, offline) or
    `charter generate --model embedded --prompts FILE.jsonl --out DIR`.
    """


cli.add_command(run)
cli.add_command(runs)
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


def main() -> None:
    """Entry point; exit status (docs/errors.md): 0 done, 1 a check failed (or a bug, with its
    traceback), 2 a usage or input error (one paragraph, no traceback), 130 interrupted.

    Everything printed here passes `redact_spec`: a backend URL's password or API key never
    reaches the terminal or a log.
    """
    from charter.redact import install_log_redaction, redact_spec

    install_log_redaction()
    try:
        code = cli.main(prog_name="charter", standalone_mode=False)
    except CharterError as e:
        _fail(f"charter: error: {redact_spec(str(e))}", e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        # Click's own errors are all about the command line (usage, a missing file): exit 2.
        e.message = redact_spec(e.message)  # type: ignore[misc]
        e.show()
        sys.exit(2)
    except click.exceptions.Abort:
        _fail("charter: interrupted; rerun with --resume to continue", 130)
    except KeyboardInterrupt:
        _fail("charter: interrupted; rerun with --resume to continue", 130)
    except BrokenPipeError:
        # `charter constitution show | head`: the reader left; say nothing more.
        _quiet_stdout()
        sys.exit(1)
    except OSError as e:
        from charter.errors import describe_os_error

        _fail(f"charter: error: {redact_spec(describe_os_error(e))}", 2)
    except Exception:
        import traceback

        # A bug: keep the traceback, without credentials.
        click.echo(redact_spec(traceback.format_exc(), pairs=False).rstrip(), err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    import contextlib

    with contextlib.suppress(OSError):  # stderr is gone too; the exit status still tells
        click.echo(message, err=True)
    sys.exit(code)


def _quiet_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
