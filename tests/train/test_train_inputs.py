"""Bad inputs to `charter train` fail fast, with file, line and what was expected."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from charter.errors import BackendError, ConfigError, InputError, RunFolderError
from charter.train.common import check_trainable_spec, last_checkpoint, prepare_out
from charter.train.data import load_preference_rows, load_sft_rows
from conftest import run_cli

U = {"role": "user", "content": "Q?"}
A = {"role": "assistant", "content": "A."}
B = {"role": "assistant", "content": "B."}


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pref(p: float | None = 0.8) -> dict[str, object]:
    row: dict[str, object] = {"prompt": [U], "chosen": [A], "rejected": [B]}
    if p is not None:
        row["p_chosen"] = p
    return row


@pytest.mark.parametrize(
    ("spec", "error", "needle"),
    [
        ("openai:http://localhost:1/v1#m", ConfigError, "cannot be trained: it is a remote server"),
        ("vllm:some/model", ConfigError, "does not train"),
        ("fake", ConfigError, "no weights"),
        ("hf:/nonexistent/folder", ConfigError, "not a local model folder"),
        ("nonsense:x", BackendError, "unknown backend spec"),
    ],
)
def test_untrainable_specs_are_refused(spec: str, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        check_trainable_spec(spec)


def test_trainable_specs_pass(tiny_model_dir: Path) -> None:
    assert check_trainable_spec("embedded") == ("embedded", "")
    assert check_trainable_spec(f"hf:{tiny_model_dir}")[0] == "hf"


def test_soft_loss_needs_p_chosen_on_every_row(tmp_path: Path) -> None:
    f = write(tmp_path / "prefs.jsonl", [pref(0.9), pref(None)])
    with pytest.raises(InputError, match=r"prefs.jsonl, line 2: field `p_chosen` is missing"):
        load_preference_rows(f, need_p=True)
    assert len(load_preference_rows(f, need_p=False)) == 2  # sigmoid/ipo do without it


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "no preference pairs to train on"),
        ('{"prompt": [}\n', "line 1: invalid JSON"),
        (json.dumps(pref(1.5)) + "\n", "line 1: field `p_chosen`"),
        (json.dumps({**pref(), "chosen": [U]}) + "\n", "`chosen` must hold assistant messages"),
        (json.dumps({"prompt": [U], "chosen": [A]}) + "\n", "field `rejected`: required"),
    ],
)
def test_bad_preference_files(tmp_path: Path, content: str, needle: str) -> None:
    f = tmp_path / "prefs.jsonl"
    f.write_text(content)
    with pytest.raises(InputError, match=needle):
        load_preference_rows(f, need_p=False)


def test_bad_sft_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_sft_rows(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no rows to train on"):
        load_sft_rows(empty)
    f = write(
        tmp_path / "sft.jsonl", [{"id": "a", "messages": [U, A]}, {"id": "b", "messages": [A, U]}]
    )
    with pytest.raises(InputError, match="line 2: field `messages`: the last message must be"):
        load_sft_rows(f)


def test_out_folder_is_not_mixed_silently(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_out(out, resume=False, overwrite=False)
    write_checkpoint(out / "checkpoints" / "checkpoint-2", 2)
    write_checkpoint(out / "checkpoints" / "checkpoint-10", 10)
    with pytest.raises(RunFolderError, match="--resume"):
        prepare_out(out, resume=False, overwrite=False)
    prepare_out(out, resume=True, overwrite=False)
    assert (
        last_checkpoint(out) == out / "checkpoints" / "checkpoint-10"
    )  # numeric, not string order
    prepare_out(out, resume=False, overwrite=True)
    assert last_checkpoint(out) is None


def write_checkpoint(folder: Path, step: int) -> None:
    """What the Trainer saves, in miniature: weights, optimizer state, trainer state."""
    import numpy as np
    import torch
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    save_file({"w": np.zeros((64, 64), dtype=np.float32)}, str(folder / "model.safetensors"))
    torch.save({"state": {0: torch.zeros(256)}}, folder / "optimizer.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def truncate(file: Path, keep: float) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    "damage",
    ["no trainer_state.json", "trainer_state", "weights header", "weights data", "optimizer"],
)
def test_resume_passes_over_a_checkpoint_killed_mid_save(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kill while saving checkpoint-10 leaves it partial: resume from checkpoint-5 instead."""
    out = tmp_path / "out"
    write_checkpoint(out / "checkpoints" / "checkpoint-5", 5)
    newest = out / "checkpoints" / "checkpoint-10"
    write_checkpoint(newest, 10)
    assert last_checkpoint(out) == newest
    if damage == "no trainer_state.json":
        (newest / "trainer_state.json").unlink()
    elif damage == "trainer_state":
        truncate(newest / "trainer_state.json", 0.5)
    elif damage == "weights header":
        truncate(newest / "model.safetensors", 0.0005)
    elif damage == "weights data":
        truncate(newest / "model.safetensors", 0.9)
    else:
        truncate(newest / "optimizer.pt", 0.9)
    assert last_checkpoint(out) == out / "checkpoints" / "checkpoint-5"
    assert "skipping incomplete checkpoint" in capsys.readouterr().err
    (out / "checkpoints" / "checkpoint-5" / "model.safetensors").unlink()
    assert last_checkpoint(out) is None  # nothing whole: start from step 0


def test_cli_fails_before_any_model_loads(tmp_path: Path) -> None:
    """In-process, so a slow import or model load would show in the time."""
    from charter.cli.train import train

    prefs = write(tmp_path / "prefs.jsonl", [pref(None)])
    cases = [
        (["dpo", "--data", str(prefs), "--loss", "soft"], "p_chosen` is missing"),
        (["dpo", "--model", "openai:http://x/v1#m", "--data", str(prefs)], "cannot be trained"),
        (["sft", "--model", "fake", "--data", str(prefs)], "cannot be trained"),
        (["dpo", "--data", str(tmp_path / "none.jsonl")], "file not found"),
        (["sft", "--data", str(prefs), "--target-modules", ","], "target_modules is empty"),
    ]
    for args, needle in cases:
        out = tmp_path / "out"
        started = time.perf_counter()
        result = CliRunner().invoke(train, [*args, "--out", str(out), "--no-progress"])
        assert isinstance(result.exception, (InputError, ConfigError)), result.output
        assert needle in str(result.exception)
        assert time.perf_counter() - started < 5
        assert not out.exists()  # nothing written before the check


def test_cli_error_is_one_paragraph_and_exit_2(tmp_path: Path) -> None:
    prefs = write(tmp_path / "prefs.jsonl", [pref(None)])
    proc = run_cli(
        ["train", "dpo", "--data", str(prefs), "--out", str(tmp_path / "o"), "--no-progress"],
        timeout=120,
    )
    assert proc.returncode == 2
    assert "charter: error:" in proc.stderr and "line 1: field `p_chosen` is missing" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("on", [False, True])
def test_activation_checkpointing_follows_the_option(tmp_path: Path, on: bool) -> None:
    # TRL's configs default to checkpointing: the option must be passed either way, or every
    # run recomputes its activations whatever the user asked for.
    from trl.trainer.sft_config import SFTConfig

    from charter.train.common import training_args
    from charter.train.sft import SFTOptions

    opts = SFTOptions(data=tmp_path / "d.jsonl", out=tmp_path / "o", gradient_checkpointing=on)
    config = SFTConfig(**training_args(opts, progress=False))
    assert config.gradient_checkpointing is on
