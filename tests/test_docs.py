"""The documentation keeps up with the code: README.md and docs/*.md.

What is checked (docs/testing.md, "The documentation test"):

(a) README.md is the entry point, not a lab notebook: at most 15,360 bytes.
(b) Every relative link in README.md and docs/*.md points to a file that exists, and a
    `#anchor` to a heading of that file (GitHub's heading slugs).
(c) Every command line that starts with `charter ` in a fenced code block tagged `bash`, `sh`,
    `shell`, `console` or untagged is a real command whose arguments click accepts: the
    command path exists in `charter.cli.cli`, every option is known, every choice and number is
    valid. It is parsed, not run; paths that must exist may be missing (`--data FILE`). Lines
    are joined across trailing `\\`, comment lines are skipped, a `$ ` prompt and leading
    `VAR=value` words are dropped, and shell syntax after the command (`# comment`, `|`, `&`,
    `;`, `>`) is ignored. Synopses with `[OPTIONAL]` parts and placeholders belong in ```text
    blocks, which are not checked.
(d) The rule for running commands: a fenced block right after the line
    `<!-- docs-test: run -->` (invisible on GitHub) is run as written, every `charter` line in
    order, through `click.testing.CliRunner` on `charter.cli.cli`, in a fresh temporary folder
    per block (so later lines see what earlier ones wrote), with HF_HUB_OFFLINE=1 and
    CHARTER_HOME in that folder; each must exit 0. Such a block may hold only `charter` lines
    and comments, and only cheap commands: the `fake` backend, tiny random models, `--help`,
    `constitution list|show|validate|export`. A command that names the `fake` backend must be
    in such a block, so that the fake examples the docs promise cannot go stale.
(e) README's command table names every top-level `charter` command, and every
    `python -m MODULE` the docs mention is an importable module.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import time
import traceback
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from charter.cli import cli
from charter.errors import CharterError

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_MAX_BYTES = 15_360

CHECKED_LANGS = {"", "bash", "sh", "shell", "console"}
RUN_MARKER = "<!-- docs-test: run -->"
SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", "2>&1"}

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    lines: tuple[tuple[int, str], ...]  # (line number, text)
    run: bool


@dataclass(frozen=True)
class Command:
    page: Path
    line: int
    text: str
    argv: tuple[str, ...]  # without the leading `charter`
    run: bool

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: {self.text}"


def fenced_blocks(page: Path) -> Iterator[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m["fence"], i
        previous = next((t.strip() for t in reversed(lines[:start]) if t.strip()), "")
        body: list[tuple[int, str]] = []
        i += 1
        while i < len(lines) and not lines[i].lstrip().startswith(fence):
            body.append((i + 1, lines[i]))
            i += 1
        i += 1
        yield Block(page, start + 1, m["info"].lower(), tuple(body), previous == RUN_MARKER)


def logical_lines(block: Block) -> Iterator[tuple[int, str]]:
    """Lines with `\\` continuations joined; blank and comment lines dropped."""
    buffer, first = "", 0
    for number, raw in block.lines:
        text = raw.strip()
        if block.lang == "console" and text.startswith("$ "):
            text = text[2:]
        if not buffer:
            first = number
            if not text or text.startswith("#"):
                continue
        if text.endswith("\\"):
            buffer += text[:-1] + " "
            continue
        yield first, buffer + text
        buffer = ""
    if buffer:
        yield first, buffer


def strip_comment(line: str) -> str:
    """The line up to a shell comment: `#` at the start of a word, outside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def split_command(line: str) -> list[str]:
    """The words of the first command of a shell line (up to a pipe, `&`, `;`, a redirect)."""
    lexer = shlex.shlex(strip_comment(line), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    for word in lexer:
        if word in SHELL_OPERATORS or set(word) <= set("|&;<>"):
            break
        words.append(word)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words.pop(0)  # VAR=value before the command
    return words


CHARTER_LINE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*charter(?:\s|$)")
UNBALANCED = ("<unbalanced quotes>",)


def commands(pages: list[Path] = PAGES) -> list[Command]:
    found = []
    for page in pages:
        for block in fenced_blocks(page):
            if block.lang not in CHECKED_LANGS:
                continue
            for number, line in logical_lines(block):
                if not CHARTER_LINE.match(line):
                    continue
                try:
                    argv = tuple(split_command(line)[1:])
                except ValueError:  # shlex: no closing quotation
                    argv = UNBALANCED
                found.append(Command(page, number, line, argv, block.run))
    return found


def run_blocks() -> list[Block]:
    return [b for page in PAGES for b in fenced_blocks(page) if b.run]


ALL_COMMANDS = commands()


# (a) ---------------------------------------------------------------------------------------


def test_readme_is_at_most_15_kib() -> None:
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, (
        f"README.md is {size:,} bytes; the limit is {README_MAX_BYTES:,}: move reference and "
        "measurements into docs/"
    )


# (b) ---------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
HTML_ID = re.compile(r"""<a\s+(?:name|id)=["']([^"']+)["']""")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    kept, fence = [], ""
    for line in text.splitlines():
        m = FENCE.match(line)
        if fence:
            if line.lstrip().startswith(fence):
                fence = ""
            continue
        if m:
            fence = m["fence"]
            continue
        kept.append(line)
    return kept


def outside_code(text: str) -> str:
    """The Markdown without code blocks and inline code spans (links there are examples)."""
    return "\n".join(re.sub(r"`[^`]*`", "", line) for line in prose_lines(text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = []
    for ch in text:
        if ch in "-_ " or unicodedata.category(ch)[0] in "LNM":
            kept.append("-" if ch == " " else ch)
    return "".join(kept)


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    text = page.read_text(encoding="utf-8")
    for line in prose_lines(text):  # inline code stays: it is part of the slug
        m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m[1])
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    found.update(HTML_ID.findall(text))
    return found


def links(page: Path) -> list[str]:
    text = outside_code(page.read_text(encoding="utf-8"))
    return LINK.findall(text) + REFERENCE.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files_and_headings(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def test_the_slugs_follow_github() -> None:
    assert slug("`charter generate`") == "charter-generate"
    assert slug("SL-CAI: `charter sl`") == "sl-cai-charter-sl"
    assert slug("Pixel debate (Irving et al. 2018) on 8×8 digits") == (
        "pixel-debate-irving-et-al-2018-on-88-digits"
    )
    assert slug("Engines: `engine=auto|torch|ct2`") == "engines-engineautotorchct2"


# (c) ---------------------------------------------------------------------------------------


def relax_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let `click.Path(exists=True)` accept missing files: the docs name files the reader has
    (`../shared/data/...`) or that an earlier command writes."""

    def walk(command: click.Command) -> None:
        for param in command.params:
            if isinstance(param.type, click.Path) and param.type.exists:
                monkeypatch.setattr(param.type, "exists", False)
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                walk(sub)

    walk(cli)


def parse(argv: tuple[str, ...]) -> None:
    """Resolve the command path in `cli` and let click parse every argument; raise on error."""
    command: click.Command = cli
    parent: click.Context | None = None
    name = "charter"
    args = list(argv)
    while True:
        if not isinstance(command, click.Group):
            command.make_context(name, args, parent=parent)
            return
        ctx = click.Context(command, info_name=name, parent=parent)
        rest = click.Command.parse_args(command, ctx, args)
        if not rest:
            if not command.invoke_without_command:
                raise click.UsageError(f"`{ctx.command_path}` needs a subcommand", ctx)
            return
        # The group's own resolution: an unknown name raises, and a group that rewrites
        # arguments for its commands (deprecated flag spellings) does so here too.
        sub_name, sub, sub_args = command.resolve_command(ctx, rest)
        if sub is None or sub_name is None:
            raise click.UsageError(f"no command {rest[0]!r} in `{ctx.command_path}`", ctx)
        command, parent, name, args = sub, ctx, sub_name, list(sub_args)


def test_the_docs_have_commands_to_check() -> None:
    assert len(ALL_COMMANDS) > 50
    assert sum(c.run for c in ALL_COMMANDS) >= 10


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_documented_command_parses(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relax_paths(monkeypatch)
    monkeypatch.chdir(tmp_path)  # `--out` paths that exist here would change what click checks
    assert command.argv != UNBALANCED, f"{command}: unbalanced quotes"
    try:
        parse(command.argv)
    except click.exceptions.Exit:
        pass  # --help, --version
    except click.ClickException as e:
        pytest.fail(f"{command}\n  click: {e.format_message()}")


def test_the_parser_check_catches_mistakes(monkeypatch: pytest.MonkeyPatch) -> None:
    relax_paths(monkeypatch)
    for bad in (
        ("nosuch",),
        ("constitution",),
        ("generate", "--backend", "fake", "--prompts", "demo", "--out", "x", "--nosuch"),
        ("sl", "--lang", "fr", "--out", "x"),
        ("train", "dpo", "--data", "d", "--out", "o", "--loss", "hinge"),
        ("evaluate", "mc", "--data", "d", "--limit", "0"),
    ):
        with pytest.raises(click.ClickException):
            parse(bad)
    parse(("evaluate", "mc", "--data", "missing.jsonl"))  # a missing file is fine here


def test_shell_syntax_around_a_command_is_ignored() -> None:
    assert split_command("charter x --a 'b c' # note") == ["charter", "x", "--a", "b c"]
    assert split_command("charter assembly serve &   # http://127.0.0.1:8000") == [
        "charter",
        "assembly",
        "serve",
    ]
    assert split_command("HF_HUB_OFFLINE=1 charter run | tee log") == ["charter", "run"]
    assert split_command("charter run --judge openai:http://h/v1#judge") == [
        "charter",
        "run",
        "--judge",
        "openai:http://h/v1#judge",
    ]


# (d) ---------------------------------------------------------------------------------------


def names_fake_backend(argv: tuple[str, ...]) -> bool:
    return any(
        word == "fake" or word.startswith("fake:") or word.endswith("=fake") for word in argv
    )


def test_fake_backend_examples_are_run() -> None:
    not_run = [str(c) for c in ALL_COMMANDS if names_fake_backend(c.argv) and not c.run]
    assert not not_run, (
        f"commands with the fake backend outside a `{RUN_MARKER}` block:\n" + "\n".join(not_run)
    )


def test_run_blocks_hold_only_charter_commands() -> None:
    for block in run_blocks():
        assert block.lang in CHECKED_LANGS, f"{block.page.name}:{block.line}: {block.lang}"
        for number, line in logical_lines(block):
            assert CHARTER_LINE.match(line), f"{block.page.name}:{number}: {line}"


RUN_BLOCKS = run_blocks()


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=lambda b: f"{b.page.name}:{b.line}")
def test_runnable_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"HF_HUB_OFFLINE": "1", "CHARTER_HOME": str(tmp_path / "charter-home")}
    runner = CliRunner()
    started = time.monotonic()
    for number, line in logical_lines(block):
        argv = split_command(line)[1:]
        result = runner.invoke(cli, argv, env=env, catch_exceptions=True)
        if result.exit_code != 0:
            error = result.exception
            if error is None or isinstance(error, SystemExit):
                trace = ""
            elif isinstance(error, CharterError):  # what `charter` prints: one paragraph
                trace = f"charter: error: {error}"
            else:  # a bug: the traceback
                trace = "".join(traceback.format_exception(error))
            pytest.fail(
                f"{block.page.relative_to(ROOT)}:{number}: `{line}` exited {result.exit_code}\n"
                f"{result.output[-3000:]}\n{trace}"
            )
    assert time.monotonic() - started < 120, "a runnable docs block should take seconds"


# (e) ---------------------------------------------------------------------------------------


def test_readme_command_table_names_every_command() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [name for name in cli.commands if f"`charter {name}" not in text]
    assert not missing, f"README.md's command table lacks: {missing}"


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a parent that is a module, not a package
        return False


def test_python_m_modules_exist() -> None:
    mentioned = {
        m
        for page in PAGES
        for m in re.findall(r"python3? -m ([A-Za-z_][\w.]*)", page.read_text(encoding="utf-8"))
        if m.startswith("charter")
    }
    missing = sorted(m for m in mentioned if not module_exists(m))
    assert not missing, f"`python -m` modules named in the docs that do not exist: {missing}"
