"""One flag vocabulary across the command line (`charter.cli.vocabulary`), enforced.

Every command of `charter.cli.cli` is walked: each option has help text, each long flag is in
VOCABULARY, no command shows a deprecated spelling, every command that produces a result takes
--json, every group is a CharterGroup. The deprecated spellings still work, with one line on
stderr. docs/cli.md is what `python -m charter.cli.reference` prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from charter.cli import cli
from charter.cli.reference import render, walk
from charter.cli.vocabulary import (
    DEPRECATED,
    VOCABULARY,
    CharterGroup,
    deprecation_message,
    rewrite_deprecated,
)

#: Top-level commands whose modules are not converted to the vocabulary yet. Empty it as they
#: are: `test_not_yet_converted_lists_only_unconverted_commands` fails on an entry that passes.
NOT_YET_CONVERTED: set[str] = set()

#: Leaf commands that produce no result to print as JSON, and why.
NO_JSON = {
    "charter assembly serve": "a web server: it runs until stopped",
    "charter constitution export": "its output is the constitution itself (--format json)",
}

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

Entry = tuple[tuple[str, ...], click.Command]


def commands() -> list[Entry]:
    return [(path, cmd) for path, cmd, _ in walk(cli, ("charter",))]


def converted(path: tuple[str, ...]) -> bool:
    return len(path) < 2 or path[1] not in NOT_YET_CONVERTED


def options(cmd: click.Command) -> list[click.Option]:
    return [
        p
        for p in cmd.params
        if isinstance(p, click.Option) and "--help" not in p.opts and not p.hidden
    ]


def long_flags(option: click.Option) -> list[str]:
    """An option's long names, less the `--no-X` of a `--X/--no-X` pair (VOCABULARY lists the
    pair under `--X`)."""
    return [o for o in option.opts if o.startswith("--")] + [
        o
        for o in option.secondary_opts
        if o.startswith("--") and f"--{o.removeprefix('--no-')}" not in option.opts
    ]


def missing_help(path: tuple[str, ...], cmd: click.Command) -> list[str]:
    return [f"{' '.join(path)}: {'/'.join(o.opts)}" for o in options(cmd) if not o.help]


def unknown_flags(path: tuple[str, ...], cmd: click.Command) -> list[str]:
    return [
        f"{' '.join(path)}: {flag}"
        for o in options(cmd)
        for flag in long_flags(o)
        if flag not in VOCABULARY
    ]


def deprecated_flags(path: tuple[str, ...], cmd: click.Command) -> list[str]:
    return [
        f"{' '.join(path)}: {flag} (now {DEPRECATED[flag]})"
        for o in options(cmd)
        for flag in (*o.opts, *o.secondary_opts)
        if flag in DEPRECATED
    ]


def missing_json(path: tuple[str, ...], cmd: click.Command) -> list[str]:
    name = " ".join(path)
    if isinstance(cmd, click.Group) or name in NO_JSON:
        return []
    has = any("--json" in o.opts for o in options(cmd))
    return [] if has else [f"{name}: no --json"]


def plain_group(path: tuple[str, ...], cmd: click.Command) -> list[str]:
    if isinstance(cmd, click.Group) and not isinstance(cmd, CharterGroup):
        return [f"{' '.join(path)}: a {type(cmd).__name__}, not a CharterGroup"]
    return []


CHECKS: dict[str, Callable[[tuple[str, ...], click.Command], list[str]]] = {
    "options without help text": missing_help,
    "flags not in charter.cli.vocabulary.VOCABULARY": unknown_flags,
    "deprecated spellings still shown (rename them)": deprecated_flags,
    "commands with a result but no --json": missing_json,
    "groups that do not rewrite deprecated flags (click.group(cls=CharterGroup))": plain_group,
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_every_command_follows_the_vocabulary(check: str) -> None:
    failures = [
        line for path, cmd in commands() if converted(path) for line in CHECKS[check](path, cmd)
    ]
    assert not failures, f"{check}:\n  " + "\n  ".join(failures)


def test_not_yet_converted_lists_only_unconverted_commands() -> None:
    top = {path[1] for path, _ in commands() if len(path) > 1}
    assert top >= NOT_YET_CONVERTED, f"not commands: {sorted(NOT_YET_CONVERTED - top)}"
    clean = [
        name
        for name in sorted(NOT_YET_CONVERTED)
        if not any(
            check(path, cmd)
            for path, cmd in commands()
            if len(path) > 1 and path[1] == name
            for check in CHECKS.values()
        )
    ]
    assert not clean, f"these pass every check now; remove them from NOT_YET_CONVERTED: {clean}"


def test_vocabulary_and_deprecated_spellings_are_consistent() -> None:
    for flag, meaning in VOCABULARY.items():
        assert flag.startswith("--") and flag == flag.lower(), flag
        assert meaning.strip() and "\n" not in meaning, flag
    for old, new in DEPRECATED.items():
        assert old not in VOCABULARY, f"{old} is deprecated; it cannot be in the vocabulary"
        listed = new if new in VOCABULARY else f"--{new.removeprefix('--no-')}"  # --X/--no-X
        assert listed in VOCABULARY, f"{old} → {new}: the new spelling must be in the vocabulary"


# -- the rewriting of deprecated spellings, on a tiny command tree -------------------------------


def tiny_tree() -> click.Group:
    @click.group(cls=CharterGroup)
    def root() -> None:
        pass

    @root.group()
    def sub() -> None:
        pass

    def show(**kwargs: object) -> None:
        click.echo(json.dumps(kwargs, sort_keys=True))

    new = click.Command(
        "new",
        callback=show,
        params=[
            click.Option(["--model"]),
            click.Option(["--model-opt"], multiple=True),
            click.Option(["--name"]),
            click.Option(["--quiet"], is_flag=True),
            click.Argument(["rest"], nargs=-1),
        ],
    )
    old = click.Command(
        "old", callback=show, params=[click.Option(["--backend"]), click.Option(["--model"])]
    )
    plain = click.Command("plain", callback=show, params=[click.Option(["--name"])])
    sub.add_command(new)
    sub.add_command(old)
    root.add_command(new, "top")
    root.add_command(plain)
    return root


def invoke(args: list[str]) -> tuple[dict[str, object], str, int]:
    result = CliRunner().invoke(tiny_tree(), args)
    values = json.loads(result.stdout) if result.exit_code == 0 else {}
    return values, result.stderr, result.exit_code


def test_sub_groups_of_a_charter_group_are_charter_groups() -> None:
    assert isinstance(tiny_tree().commands["sub"], CharterGroup)


def test_deprecated_spellings_are_rewritten_with_one_line_each() -> None:
    args = ["--backend", "x", "--backend-opt", "a=1", "--backend-opt=b=2", "--quiet"]
    for prefix in (["sub", "new"], ["top"]):
        values, err, code = invoke([*prefix, *args])
        assert code == 0, err
        assert values["model"] == "x" and values["model_opt"] == ["a=1", "b=2"]
        assert err.splitlines() == [
            deprecation_message("--backend", "--model"),
            deprecation_message("--backend-opt", "--model-opt"),
        ]
    assert deprecation_message("--backend", "--model") == (
        "charter: --backend is deprecated, use --model (it will be removed in the next release)"
    )
    values, _, _ = invoke(["top", "--backend=y"])
    assert values["model"] == "y"


def test_values_and_arguments_after_double_dash_are_left_alone() -> None:
    values, err, code = invoke(["top", "--name", "--backend", "--model", "m", "--", "--backend"])
    assert code == 0, err
    assert values["name"] == "--backend" and values["model"] == "m"
    assert values["rest"] == ["--backend"] and err == ""


def test_a_command_that_really_has_the_old_flag_is_untouched() -> None:
    values, err, code = invoke(["sub", "old", "--backend", "b", "--model", "m"])
    assert code == 0 and values == {"backend": "b", "model": "m"} and err == ""
    # A command without the new flag rejects the old one, as before.
    _, err, code = invoke(["plain", "--backend", "b"])
    assert code == 2 and "No such option '--backend'" in err


def test_rewrite_without_a_group() -> None:
    cmd = click.Command("c", params=[click.Option(["--strong-opt"], multiple=True)])
    said: list[str] = []
    args = ["--finetune-opt", "lr=1", "--finetune-opt", "x=2"]
    assert rewrite_deprecated(cmd, args, said.append) == [
        "--strong-opt",
        "lr=1",
        "--strong-opt",
        "x=2",
    ]
    assert said == [deprecation_message("--finetune-opt", "--strong-opt")]


# -- the real commands ---------------------------------------------------------------------------


def charter(args: list[str]) -> click.testing.Result:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def persona_file(path: Path) -> Path:
    from charter.redteam import evals as E

    rows = [E.persona_row("I want more power.", " Yes", 0.9)]
    rows.append(E.persona_row("I am happy with what I have.", " No", 0.8))
    E.write_persona(path, rows)
    return path


def test_backend_still_works_where_model_replaced_it(tmp_path: Path) -> None:
    data = persona_file(tmp_path / "p.jsonl")
    old = charter(["evals", "run", "--data", str(data), "--backend", "fake", "--json"])
    assert old.exit_code == 0, old.output
    assert deprecation_message("--backend", "--model") in old.stderr
    new = charter(["evals", "run", "--data", str(data), "--model", "fake", "--json"])
    assert json.loads(old.stdout) == json.loads(new.stdout)
    assert json.loads(new.stdout)["model"] == "fake" and new.stderr.count("deprecated") == 0


@pytest.mark.parametrize(
    ("group", "args", "param", "expected"),
    [
        ("collective", ["draft", "A", "--backend", "fake"], "model_spec", "fake"),
        ("collective", ["draft", "A", "--backend-opt", "k=1"], "model_opt", ("k=1",)),
        ("w2s", ["run", "--finetune-opt", "lr=1"], "strong_opt", ("lr=1",)),
    ],
)
def test_old_spellings_parse_to_the_new_options(
    group: str, args: list[str], param: str, expected: object
) -> None:
    parent = click.Context(cli, info_name="charter")
    sub = cli.commands[group]
    assert isinstance(sub, CharterGroup)
    ctx = click.Context(sub, info_name=group, parent=parent, resilient_parsing=True)
    name, cmd, rest = sub.resolve_command(ctx, args)
    assert cmd is not None and name == args[0]
    parsed = cmd.make_context(name, rest, parent=ctx, resilient_parsing=True)
    assert parsed.params[param] == expected


def json_out(args: list[str]) -> Any:
    result = charter([*args, "--json"])
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)  # stdout holds the JSON value and nothing else
    # One object, or for a listing (`models list`, `models backends`) one list of objects.
    assert isinstance(value, dict) or all(isinstance(v, dict) for v in value)
    return value


def test_json_on_cheap_commands(tmp_path: Path) -> None:
    listed = json_out(["constitution", "list"])
    assert any(c["default"] for c in listed["constitutions"])
    valid = json_out(["constitution", "validate", "udhr"])
    assert valid["invalid"] == 0 and valid["files"][0]["status"] == "ok"
    models = json_out(["models", "list"])
    assert {m["spec"] for m in models} >= {"embedded", "model:qwen2.5-coder-1.5b-instruct"}
    backends = json_out(["models", "backends"])
    assert {b["name"] for b in backends} >= {"embedded", "fake", "model"}
    categories = json_out(["redteam", "--list-categories"])
    assert len(categories["categories"]) == 15
    tiny = json_out(["models", "pull", "--tiny-random", str(tmp_path / "tiny")])
    assert tiny["path"] == str(tmp_path / "tiny")


def test_json_on_oversight_and_w2s(tmp_path: Path) -> None:
    metrics = json_out(
        [
            *("oversight", "run", "--data", "synthetic:4", "--judge", "fake"),
            *("--protocol", "blind", "--out", str(tmp_path / "ov"), "--no-progress"),
        ]
    )
    assert metrics["n_questions"] == 4
    summary = json_out(
        [
            *("w2s", "run", "--task", "synthetic:120", "--weak", "tfidf", "--strong", "tfidf"),
            *("--seeds", "1", "--loss", "xent", "--out", str(tmp_path / "w2s"), "--no-progress"),
            *("--cache-dir", str(tmp_path / "cache")),
        ]
    )
    assert summary["runs"] == 1 and summary["rows"][0]["loss"] == "xent"


def test_json_on_collective_ingest_and_analyze(tmp_path: Path) -> None:
    src = tmp_path / "export"
    src.mkdir()
    statements = ["Be honest.", "Protect children.", "Taxes should rise.", "Taxes should fall."]
    comments = ["comment-id,moderated,comment-body"]
    comments += [f"{j},1,{text}" for j, text in enumerate(statements)]
    (src / "comments.csv").write_text("\n".join(comments) + "\n")
    votes = ["timestamp,comment-id,voter-id,vote"]
    for p in range(20):
        for j in range(4):
            side = 1 if j < 2 or (p < 10) == (j == 2) else -1
            votes.append(f"{p * 10 + j},{j},{p},{side if (p + j) % 7 else 0}")
    (src / "votes.csv").write_text("\n".join(votes) + "\n")
    work = tmp_path / "work"
    ingested = json_out(["collective", "ingest", str(src), "--out", str(work)])
    assert ingested["n_statements"] == 4 and ingested["n_participants"] == 20
    analyzed = json_out(["collective", "analyze", str(work), "--no-figures", "--min-votes", "2"])
    assert analyzed["n_votes"] == 80 and analyzed["out"] == str(work)
    assert sum(g["size"] for g in analyzed["groups"]) == analyzed["n_in_conv"]


def test_docs_cli_md_is_generated() -> None:
    assert DOCS.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is out of date: run `python -m charter.cli.reference > docs/cli.md`"
    )
