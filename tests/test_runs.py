from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from charter.errors import RunFolderError
from charter.records import Record
from charter.runs import JsonlWriter, RunFolder


class Row(Record):
    id: str
    value: int


def test_writer_appends_skips_done_and_is_durable(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    w = JsonlWriter(path)
    assert not path.exists()  # created on first write only
    assert w.write([Row(id="a", value=1), Row(id="b", value=2)]) == 2
    assert w.write([Row(id="a", value=9), Row(id="c", value=3)]) == 1
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in lines] == ["a", "b", "c"]
    assert lines[0]["value"] == 1


def test_writer_resume_cuts_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    JsonlWriter(path).write([Row(id="a", value=1)])
    with path.open("a") as f:
        f.write('{"id": "b", "val')  # what a kill in the middle of a write leaves
    with pytest.raises(RunFolderError):
        JsonlWriter(path)  # without resume, an existing file is never appended to
    w = JsonlWriter(path, resume=True)
    assert w.done == {"a"}
    assert w.pending(["a", "b"]) == ["b"]
    w.write([Row(id="b", value=2)])
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["a", "b"]


def test_writer_rejects_foreign_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"no_id": 1}\n')
    with pytest.raises(RunFolderError, match="line 1"):
        JsonlWriter(path, resume=True)


def test_run_folder_stages_and_invalidation(tmp_path: Path) -> None:
    run = RunFolder.open(tmp_path / "r", {"a": 1})
    assert (tmp_path / "r" / "config.yaml").read_text().startswith("a: 1")
    assert run.begin_stage("one", "h1", ["one.jsonl"])
    (tmp_path / "r" / "one.jsonl").write_text("x\n")
    run.finish_stage("one", 1)
    assert run.begin_stage("two", "h2", ["two.jsonl"])
    (tmp_path / "r" / "two.jsonl").write_text("y\n")
    run.finish_stage("two", 1)

    with pytest.raises(RunFolderError, match="--resume"):
        RunFolder.open(tmp_path / "r", {"a": 1})
    again = RunFolder.open(tmp_path / "r", {"a": 2}, resume=True)
    assert not again.begin_stage("one", "h1", ["one.jsonl"])  # same inputs: complete, skipped
    assert again.outcomes["one"] == ("skipped", 1)
    # Changed options would throw work away: refused, nothing deleted, until --redo says so.
    with pytest.raises(RunFolderError, match="--redo one"):
        again.begin_stage("one", "h1-changed", ["one.jsonl"])
    assert (tmp_path / "r" / "one.jsonl").exists()
    again.close()
    redo = RunFolder.open(tmp_path / "r", {"a": 2}, resume=True, redo=["one"])
    assert redo.begin_stage("one", "h1-changed", ["one.jsonl"])
    # Only this stage's outputs go; a later stage is redone only if its own inputs change.
    assert redo.discarded == ["one"]
    assert not (tmp_path / "r" / "one.jsonl").exists()
    assert (tmp_path / "r" / "two.jsonl").exists()
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert sorted(manifest["stages"]) == ["one", "two"]
    assert manifest["stages"]["one"]["status"] == "running"
    assert "python" in manifest["packages"] and "torch" in manifest["packages"]
    # The code that made the run: charter's commit, when it runs from a git checkout.
    if (Path(__file__).parents[1] / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{7,40}(\+dirty)?", manifest["packages"]["charter_commit"])
    # Cheap stages (ask=False) are redone without asking.
    assert redo.begin_stage("two", "h2-changed", ["two.jsonl"], ask=False)
    assert not (tmp_path / "r" / "two.jsonl").exists()


def test_options_hashed_as_an_earlier_release_did_resume(tmp_path: Path) -> None:
    """A stage recorded under `earlier_hashes` (the same options, hashed the old way) is the
    same stage: skipped when complete, and recorded under today's hash from then on."""
    run = RunFolder.open(tmp_path / "r", {})
    assert run.begin_stage("sl", "old", ["sl.jsonl"])
    (tmp_path / "r" / "sl.jsonl").write_text('{"id": "a"}\n')
    run.finish_stage("sl", 1)
    with pytest.raises(RunFolderError, match="other options"):
        run.begin_stage("sl", "new", ["sl.jsonl"])
    assert not run.begin_stage("sl", "new", ["sl.jsonl"], earlier_hashes=("old",))
    assert run.manifest.stages["sl"].input_hash == "new"
    assert not run.begin_stage("sl", "new", ["sl.jsonl"])


def test_changed_records_keep_finished_work(tmp_path: Path) -> None:
    """A per-record stage whose input records changed keeps its outputs and runs again (to
    compute the new records); any other stage is redone."""
    run = RunFolder.open(tmp_path / "r", {})
    assert run.begin_stage("gen", "opts", ["gen.jsonl"], records_hash="r1", per_record=True)
    (tmp_path / "r" / "gen.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n')
    run.finish_stage("gen", 2)
    assert run.begin_stage("train", "opts", ["train"], records_hash="r1")
    (tmp_path / "r" / "train").mkdir()
    run.finish_stage("train", 1)
    assert not run.begin_stage("gen", "opts", ["gen.jsonl"], records_hash="r1", per_record=True)
    assert run.begin_stage("gen", "opts", ["gen.jsonl"], records_hash="r2", per_record=True)
    assert run.outcomes["gen"] == ("resumed", 2)
    assert (tmp_path / "r" / "gen.jsonl").exists() and "kept" in run.notes[-1]
    assert run.begin_stage("train", "opts", ["train"], records_hash="r2")
    assert not (tmp_path / "r" / "train").exists() and "data changed" in run.notes[-1]
    (tmp_path / "r" / "train").mkdir()
    run.finish_stage("train", 1)
    # Options changed too (a moved folder's old path in them): the new records redo the stage
    # whatever the options say, so there is nothing to ask; options alone are still asked.
    with pytest.raises(RunFolderError, match="other options"):
        run.begin_stage("train", "opts2", ["train"], records_hash="r2")
    assert run.begin_stage("train", "opts2", ["train"], records_hash="r3")
    assert not (tmp_path / "r" / "train").exists()


def test_retain_drops_only_records_no_longer_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": "a", "v": 1}\n{"id": "b", "v": 2}\n{"id": "c", "v": 3}\n')
    w = JsonlWriter(path, resume=True)
    assert w.retain(["a", "c", "new"]) == 1
    assert path.read_text() == '{"id": "a", "v": 1}\n{"id": "c", "v": 3}\n'
    assert w.done == {"a", "c"} and w.retain(["a", "c"]) == 0


def test_failed_empty_run_folder_is_reusable(tmp_path: Path) -> None:
    run = RunFolder.open(tmp_path / "r", {"a": 1})
    run.begin_stage("one", "h", ["one.jsonl"])
    run.fail_stage("one", 0, "boom")
    RunFolder.open(tmp_path / "r", {"a": 1})  # nothing but config + manifest: no --resume needed


def test_run_stage_runs_once_and_records_failures(tmp_path: Path) -> None:
    run = RunFolder.open(tmp_path / "r", {"a": 1})
    calls: list[str] = []

    def work() -> int:
        calls.append("one")
        (tmp_path / "r" / "one.jsonl").write_text("x\ny\n")
        return 2

    assert run.run_stage("one", "h", ["one.jsonl"], work) == 2
    assert run.run_stage("one", "h", ["one.jsonl"], work) is None  # complete: not run again
    assert calls == ["one"]

    def boom() -> list[str]:
        raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):
        run.run_stage("two", "h", ["two.jsonl"], boom, records=len)
    stages = json.loads((tmp_path / "r" / "manifest.json").read_text())["stages"]
    assert stages["one"]["status"] == "complete" and stages["one"]["records"] == 2
    assert stages["two"]["status"] == "failed" and stages["two"]["error"] == "disk full"
    assert run.run_stage("three", "h", [], lambda: ["a", "b", "c"], records=len) == ["a", "b", "c"]
    assert (
        json.loads((tmp_path / "r" / "manifest.json").read_text())["stages"]["three"]["records"]
        == 3
    )
