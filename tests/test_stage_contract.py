"""The stage contract: `charter run` and each single-stage command call the same `Stage.run`,
one `BackendPool` is the only backend cache, and every stage option is settable with `--set`."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from charter.cli import cli
from charter.config import RunConfig, load_config
from charter.errors import CharterError, ConfigError
from charter.pipeline import run_pipeline, train_options
from charter.stage import Stage, stages
from conftest import FAKE_RUN

SRC = Path(__file__).resolve().parents[1] / "src" / "charter"
FAST = FAKE_RUN


class Reached(Exception):
    """Raised by a spy to stop a path once it reached a stage."""


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Callable[..., Any]]]]:
    """Every stage's `run` wrapped: each call records (stage name, the function it ran)."""
    calls: list[tuple[str, Callable[..., Any]]] = []
    for name, stage in stages().items():

        def spy(ctx: Any, inputs: Any, cfg: Any, _f: Any = stage.run, _n: str = name) -> Any:
            calls.append((_n, _f))
            if _n.startswith("train/"):
                raise Reached(_n)  # training needs real weights; reaching it is the point
            return _f(ctx, inputs, cfg)

        monkeypatch.setattr(stage, "run", spy)
    yield calls


def _invoke(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 or isinstance(result.exception, Reached), (
        result.output,
        result.exception,
    )


def test_run_and_single_commands_call_the_same_stage_functions(
    tmp_path: Path, spied: list[tuple[str, Callable[..., Any]]]
) -> None:
    cfg = load_config(
        "quick", None, [*FAST, "train.enabled=true", "train.model=embedded", f"runs_dir={tmp_path}"]
    )
    with pytest.raises(Reached):  # the run stops at train/sft, after generate and sl
        run_pipeline(cfg, progress=False)
    # Without training, `label` follows `sl` (with it, the SFT model samples its pairs).
    untrained = [*FAST, "evaluate.enabled=false", f"runs_dir={tmp_path / 'u'}"]
    run_pipeline(load_config("quick", None, untrained), progress=False)
    from_run = list(spied)
    spied.clear()
    quiet = ["--no-progress", "--limit", "1"]
    _invoke(["generate", "--model", "fake", "--prompts", "demo", "--out", str(tmp_path / "g")])
    # --no-topic-check: the fake revisions share no word with the request, and SFT needs rows.
    sl_args = ["--rounds", "1", "--no-topic-check", "--out", str(tmp_path / "s"), *quiet]
    _invoke(["sl", "--model", "fake", *sl_args])
    _invoke(
        ["label", "--policy", "fake", "--feedback", "fake", "--out", str(tmp_path / "l"), *quiet]
    )
    sft = tmp_path / "s" / "sft.jsonl"
    _invoke(["train", "sft", "--data", str(sft), "--out", str(tmp_path / "t"), "--no-progress"])
    prefs = tmp_path / "l" / "prefs.jsonl"
    _invoke(["train", "dpo", "--data", str(prefs), "--out", str(tmp_path / "d"), "--no-progress"])
    _invoke(
        [
            "evaluate",
            "--models",
            "base=fake",
            "--judge",
            "fake",
            "--out",
            str(tmp_path / "e"),
            *quiet,
        ]
    )
    from_commands = list(spied)
    assert [n for n, _ in from_run] == ["generate", "sl", "train/sft", "generate", "sl", "label"]
    assert [n for n, _ in from_commands] == [
        "generate", "sl", "label", "train/sft", "train/dpo", "evaluate",
    ]  # fmt: skip
    originals = {name: f for name, f in from_commands}
    for name, f in from_run:
        assert f is originals[name], name  # the same function object, not a copy


def test_evaluate_through_the_run_uses_the_stage(
    tmp_path: Path, spied: list[tuple[str, Callable[..., Any]]]
) -> None:
    cfg = load_config("quick", None, [*FAST, f"runs_dir={tmp_path}"])
    result = run_pipeline(cfg, progress=False)
    assert [n for n, _ in spied] == ["generate", "sl", "label", "evaluate"]
    assert result.metrics is not None and set(result.metrics["models"]) == {"base"}
    assert (tmp_path / "quick" / "report.html").exists()


def test_one_backend_pool_and_no_other_backend_cache() -> None:
    """`load_backend` is called by the pool only (and by the commands that load exactly one
    model for a measurement, which cache nothing); no module defines another cache class."""
    callers = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name != "BackendPool":
                assert not node.name.endswith(("Backends", "LazyBackend")), (path, node.name)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "load_backend"
            ):
                callers.append(path.relative_to(SRC).as_posix())
    stage_modules = {"sl/__init__.py", "feedback/stage.py", "generate.py", "pipeline.py"}
    stage_modules |= {"evaluate/compare.py", "redteam/run.py", "cli/oversight.py"}
    assert not stage_modules & set(callers), callers


# -- every stage option is settable with --set, under its CLI name ------------------------------


def _candidates(name: str, annotation: Any, default: Any) -> list[Any]:
    """Valid-looking values of a field other than its default, to try in order (its bounds
    decide which one is accepted); empty for mappings, which are set by key below."""
    if name == "clamp":
        return [[0.3, 0.7]]
    if name == "target_modules":
        return [["q_proj"]]
    args = [a for a in get_args(annotation) if a is not type(None)]
    if type(None) in get_args(annotation) and len(args) == 1:
        annotation = args[0]
    origin = get_origin(annotation)
    if annotation is bool:
        return [not default]
    if annotation is int:
        return [(default or 1) + 1]
    if annotation is float:
        base = default or 1.0
        return [x for x in (base * 2, base / 2, 0.5) if x != default]
    if origin is Literal:
        return [a for a in get_args(annotation) if a != default][:1]
    if annotation is str:
        return ["somewhere", "fake"]
    if annotation is Path:
        return ["elsewhere.jsonl"]
    if origin is list:
        return [["en"] if default != ["en"] else ["ar"]]
    return []


def _sections(cfg: RunConfig) -> dict[str, BaseModel]:
    return {
        "generation": cfg.generation,
        "sl": cfg.sl,
        "label": cfg.label,
        "train.sft": cfg.train.sft,
        "train.dpo": cfg.train.dpo,
        "evaluate": cfg.evaluate,
    }


def test_every_stage_option_is_settable_with_set() -> None:
    base = load_config("quick")
    checked = 0
    for section, model in _sections(base).items():
        for name, info in type(model).model_fields.items():
            tried = _candidates(name, info.annotation, getattr(model, name))
            for value in tried:
                try:
                    got = load_config("quick", None, [f"{section}.{name}={json.dumps(value)}"])
                except CharterError:
                    continue  # outside the field's bounds: the next candidate
                landed = getattr(_sections(got)[section], name)
                expected = tuple(value) if name == "clamp" else value
                if info.annotation is Path:
                    expected = Path(value)
                assert landed == expected, (section, name, landed)
                checked += 1
                break
            else:
                assert not tried, f"{section}.{name}: none of {tried} was accepted"
    assert checked > 60, checked
    # Mappings by key, and the names of `charter train sft` (learning_rate, not lr).
    got = load_config(
        "quick",
        None,
        [
            "evaluate.prompts.red-team=my.jsonl",
            "generation.model_options.threads=2",
            "train.sft.learning_rate=1e-4",
            "sl.rounds=3",
        ],
    )
    assert got.evaluate.prompts["red-team"] == "my.jsonl"
    assert got.generation.model_options == {"threads": 2}
    assert got.sl.rounds == 3
    sft, dpo = train_options(got, Path("runs/quick"))
    assert sft.learning_rate == 1e-4 and sft.data == Path("runs/quick/sl/sft.jsonl")
    assert dpo.model == "hf:runs/quick/train/sft/merged"


def test_options_the_run_sets_itself_are_refused() -> None:
    from charter.evaluate.stage import eval_options

    cfg = load_config("quick", None, ["train.sft.data=mine.jsonl"])
    with pytest.raises(ConfigError, match=r"train\.sft\.data"):
        train_options(cfg, Path("r"))
    cfg = load_config("quick", None, ["evaluate.judge=fake"])
    with pytest.raises(ConfigError, match=r"evaluate\.judge.*set by the run"):
        eval_options(cfg, Path("r"))


def test_old_key_names_still_load() -> None:
    """A config.yaml of the previous release (`generation.backend`, manifest `sl/sl`)."""
    from charter.runs import Manifest

    cfg = load_config("quick", None, ["generation.backend=fake", "judge.backend_options.x=1"])
    assert cfg.generation.model == "fake" and cfg.judge.model_options == {"x": 1}
    m = Manifest.model_validate(
        {
            "name": "r",
            "created_at": "t",
            "config_sha256": "x",
            "packages": {},
            "stages": {
                k: {"status": "complete", "input_hash": "h", "started_at": "t"}
                for k in ("sl/sl", "sl/sl-helpful", "label/label", "label/pairs")
            },
        }
    )
    assert list(m.stages) == ["sl", "sl/helpful", "label", "label/pairs"]


def test_stage_registry_is_typed() -> None:
    for name, stage in stages().items():
        assert isinstance(stage, Stage) and stage.name == name
        assert issubclass(stage.config, BaseModel) and stage.summary
