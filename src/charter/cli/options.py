"""Option parsing shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from charter.errors import ConfigError


def parse_key_values(pairs: tuple[str, ...], flag: str) -> dict[str, Any]:
    """`("concurrency=4",)` → `{"concurrency": 4}` (values read as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {pair!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


F = TypeVar("F", bound=Callable[..., Any])

MODEL = click.option(
    "--model",
    default="embedded",
    show_default=True,
    help="The model the command runs: a backend spec (embedded, hf:PATH, ct2:PATH, "
    "openai:URL#MODEL, vllm:MODEL, fake).",
)
MODEL_OPT = click.option(
    "--model-opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="Option of the --model backend, value read as YAML (repeatable), e.g. concurrency=4.",
)
OUT = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder: the command writes its files directly into it.",
)
SEED = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
JSON = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout."
)
PROGRESS = click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Draw progress bars."
)


def echo_result(result: Any, as_json: bool, text: str) -> None:
    """The result of a command: `result` as JSON with `--json`, else the human line `text`."""
    if as_json:
        import json

        click.echo(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(text)


REDO = click.option(
    "--redo",
    multiple=True,
    metavar="STAGE",
    help="With --resume: recompute this stage (as named in manifest.json) although finished; "
    "needed when its options changed since it produced records.",
)


def is_builtin_prompts(spec: str) -> bool:
    """Whether a prompt spec names a set shipped with charter (not the user's own file)."""
    from charter.data import BUILTIN_PREFIX, BUILTIN_PROMPTS

    return spec.startswith(BUILTIN_PREFIX) or spec in BUILTIN_PROMPTS


def select_prompts(
    spec: str, *, lang: str, split: str | None, limit: int | None
) -> tuple[list[Any], dict[str, Any]]:
    """The prompts a stage command uses, and a record of what was dropped and why.

    A file the user gives is used whole unless `--split` asks for one part; a builtin set
    defaults to its train split. Whenever a split or `--limit` drops prompts, a line on stderr
    says how many and why (the same record goes into the stage's summary).
    """
    from charter.data import load_prompts

    if split is None:
        split = "train" if is_builtin_prompts(spec) else "all"
    everything = load_prompts(spec, lang=lang)
    chosen = everything if split == "all" else load_prompts(spec, lang=lang, split=split)
    used = chosen[:limit]
    selection = {
        "source": spec,
        "split": split,
        "limit": limit,
        "total": len(everything),
        "dropped_by_split": len(everything) - len(chosen),
        "dropped_by_limit": len(chosen) - len(used),
        "used": len(used),
    }
    reasons = []
    if selection["dropped_by_split"]:
        why = " (the default for a builtin set)" if is_builtin_prompts(spec) else ""
        reasons.append(
            f"{selection['dropped_by_split']} are not in the {split} split{why}; --split all "
            "uses every prompt"
        )
    if selection["dropped_by_limit"]:
        reasons.append(f"{selection['dropped_by_limit']} are past --limit {limit}")
    if reasons:
        click.echo(
            f"charter: using {len(used)} of {len(everything)} prompts of {spec}: "
            + "; ".join(reasons),
            err=True,
        )
    return used, selection


def prompt_run_options(f: F) -> F:
    """The options every stage command shares: which prompts, and where the run stands."""
    for option in reversed(
        [
            click.option(
                "--lang",
                type=click.Choice(["en", "ar"]),
                default="en",
                show_default=True,
                help="Language of the prompts and the constitution.",
            ),
            click.option(
                "--limit",
                type=click.IntRange(min=1),
                default=None,
                help="Only the first N prompts.",
            ),
            click.option(
                "--split",
                type=click.Choice(["train", "eval", "all"]),
                default=None,
                help="Keep one split of the prompts. Default: train for a builtin set (the "
                "deterministic train/eval split `charter run` relies on), all of a file you give.",
            ),
            click.option(
                "--resume", is_flag=True, help="Continue the run in --out, skipping finished work."
            ),
            click.option(
                "--overwrite",
                is_flag=True,
                help="Delete the run in --out and start again (only a charter run folder).",
            ),
            REDO,
            click.option(
                "--batch-size",
                type=click.IntRange(min=1),
                default=16,
                show_default=True,
                help="Prompts per backend call (and per flush to disk).",
            ),
        ]
    ):
        f = option(f)
    return f


def executor_options(f: F) -> F:
    """`--executor local|ray` and Ray's connection and resources: the command's backend calls
    run where they say (`charter.backends.executor`); the options are consumed here."""
    import functools

    @functools.wraps(f)
    def wrapper(*args: Any, **kw: Any) -> Any:
        from charter.backends.executor import ExecutorConfig, using

        cfg = ExecutorConfig(
            kind=kw.pop("executor"),
            address=kw.pop("ray_address"),
            concurrency=kw.pop("concurrency"),
            num_cpus=kw.pop("num_cpus"),
            num_gpus=kw.pop("num_gpus"),
        )
        with using(cfg):
            return f(*args, **kw)

    options = [
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="Where model calls run: this process, or Ray actors (pip install "
            "'charter[ray]'), each holding a copy of the model.",
        ),
        click.option(
            "--ray-address",
            default=None,
            help="With --executor ray: auto (this machine's cluster) or ray://HOST:PORT "
            "[default: start a local Ray with this machine's CPUs].",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1),
            default=2,
            show_default=True,
            help="With --executor ray: actors per model.",
        ),
        click.option(
            "--num-cpus",
            type=click.FloatRange(min=0.0, min_open=True),
            default=1.0,
            show_default=True,
            help="With --executor ray: CPUs per actor (also its torch threads).",
        ),
        click.option(
            "--num-gpus",
            type=click.FloatRange(min=0.0),
            default=0.0,
            show_default=True,
            help="With --executor ray: GPUs per actor.",
        ),
    ]
    out: Any = wrapper
    for option in reversed(options):
        out = option(out)
    return out  # type: ignore[no-any-return]
