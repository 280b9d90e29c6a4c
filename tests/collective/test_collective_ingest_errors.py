"""Ingest's refusals (issue #18.5): broken CSV quoting, integer fields that do not fit an int64,
and an output folder that would overwrite the input. Each is a typed error naming what to fix,
exit 2 through the CLI, and nothing is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from collective_helpers import charter, snapshot, write_csv

from charter.collective.ingestion import ingest, write_conversation
from charter.errors import CharterError, InputError


def export(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    write_csv(
        folder / "comments.csv",
        [["comment-id", "moderated", "comment-body"], [0, 1, "First."], [1, 1, "Second."]],
    )
    write_csv(
        folder / "votes.csv",
        [["timestamp", "comment-id", "voter-id", "vote"], [5, 0, 1, 1], [6, 1, 1, -1]],
    )
    write_csv(
        folder / "participants-votes.csv",
        [["participant", "group-id", "n-votes", "0", "1"], [1, 0, 2, 1, -1]],
    )
    return folder


def test_unterminated_quote_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    folder = export(tmp_path)
    # The quote opened on line 2 is never closed: a lax reader made one statement of lines 2-4.
    (folder / "comments.csv").write_text(
        'comment-id,moderated,comment-body\n0,1,"First.\n1,1,Second.\n2,1,Third.\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError) as err:
        ingest(folder)
    assert err.value.path == folder / "comments.csv" and err.value.line == 2
    assert "never closed" in str(err.value)
    out = tmp_path / "out"
    code, text = charter(["collective", "ingest", str(folder), "--out", str(out)])
    assert code == 2, text
    assert f"{folder / 'comments.csv'}, line 2: a quoted cell" in text
    assert not out.exists()


def test_quote_closed_later_is_reported_at_the_record_start(tmp_path: Path) -> None:
    folder = export(tmp_path)
    (folder / "comments.csv").write_text(
        'comment-id,moderated,comment-body\n0,1,"First.\n1,1,"Second."\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"line 2: malformed CSV: .*runs on to line 3"):
        ingest(folder)


INTEGER_CASES = [
    # file, header, row ("{v}" is the value), the column the error names
    pytest.param(
        "votes.csv", ["timestamp", "comment-id", "voter-id", "vote"], ["{v}", 0, 1, 1],
        "timestamp`", id="timestamp",
    ),
    pytest.param(
        "comments.csv", ["comment-id", "created", "comment-body"], [0, "{v}", "First."],
        "created`", id="created",
    ),
    pytest.param(
        "participants-votes.csv", ["participant", "group-id", "0", "1"], [1, "{v}", 1, -1],
        "group-id` (column 2)", id="group-id",
    ),
]  # fmt: skip
BAD_INTEGERS = ["inf", "-inf", "nan", "1e30", str(2**63), str(-(2**63) - 1), "1e999"]


@pytest.mark.parametrize("value", BAD_INTEGERS)
@pytest.mark.parametrize(("name", "header", "row", "column"), INTEGER_CASES)
def test_integer_fields_outside_int64_are_input_errors(
    tmp_path: Path, name: str, header: list[str], row: list[object], column: str, value: str
) -> None:
    folder = export(tmp_path)
    write_csv(folder / name, [header, [value if c == "{v}" else c for c in row]])
    # The wide file has two readers: group ids beside votes.csv, and the matrix alone.
    for keep_long in (True, False) if name == "participants-votes.csv" else (True,):
        if not keep_long:
            (folder / "votes.csv").unlink()
        with pytest.raises(InputError) as err:
            ingest(folder)
        assert err.value.path == folder / name and err.value.line == 2
        assert f"column `{column}" in str(err.value)
        assert any(word in str(err.value) for word in ("64-bit", "finite"))
    code, text = charter(["collective", "ingest", str(folder), "--out", str(tmp_path / "out")])
    assert code == 2 and f"{folder / name}, line 2: column `{column}" in text
    assert not (tmp_path / "out").exists()


def test_largest_int64_timestamp_is_kept(tmp_path: Path) -> None:
    folder = export(tmp_path)
    write_csv(
        folder / "votes.csv",
        [
            ["timestamp", "comment-id", "voter-id", "vote"],
            [2**63 - 1, 0, 1, 1],
            [-(2**63), 1, 1, 0],
        ],
    )
    conv = ingest(folder)
    assert sorted(conv.vote_time.tolist()) == [-(2**63), 2**63 - 1]


def out_spellings(folder: Path) -> list[Path]:
    """The input folder itself, however it is spelled."""
    link = folder.parent / "link-to-export"
    link.symlink_to(folder, target_is_directory=True)
    return [folder, folder / ".." / folder.name, Path(os.path.relpath(folder)), link]


def test_out_is_never_the_input_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = export(tmp_path)
    before = snapshot(folder)
    for out in out_spellings(folder):
        with pytest.raises(CharterError, match="folder the conversation was read from"):
            write_conversation(ingest(folder), out)
        code, text = charter(["collective", "ingest", str(folder), "--out", str(out)])
        assert code == 2 and "refusing to write" in text, text
        assert snapshot(folder) == before  # the Polis votes.csv is still the Polis one


def test_out_never_overwrites_an_input_file(tmp_path: Path) -> None:
    # Our own long format, statements and votes in one folder, ingested into that folder.
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "statements.csv", [["statement_id", "text"], ["a", "Be kind."]])
    write_csv(data / "votes.csv", [["participant_id", "statement_id", "vote"], ["u", "a", 1]])
    before = snapshot(data)
    args = ["collective", "ingest", str(data / "votes.csv"), "--statements"]
    code, text = charter([*args, str(data / "statements.csv"), "--out", str(data)])
    assert code == 2 and f"refusing to write {data / 'votes.csv'}" in text, text
    assert snapshot(data) == before
    # An output file that is a link to (or the same inode as) an input.
    folder = export(tmp_path)
    for how in ("symlink", "hardlink"):
        out = tmp_path / f"out-{how}"
        out.mkdir()
        if how == "symlink":
            (out / "votes.csv").symlink_to(folder / "votes.csv")
        else:
            os.link(folder / "votes.csv", out / "votes.csv")
        before = snapshot(folder)
        code, text = charter(["collective", "ingest", str(folder), "--out", str(out)])
        assert code == 2 and "it is the input file" in text, text
        assert snapshot(folder) == before
        assert sorted(p.name for p in out.iterdir()) == ["votes.csv"]  # nothing else written
    # An output path that is a file.
    code, text = charter(["collective", "ingest", str(folder), "--out", str(folder / "votes.csv")])
    assert code == 2 and "is a file" in text


def test_ingested_folder_is_not_written_over_itself(tmp_path: Path) -> None:
    folder = export(tmp_path)
    work = tmp_path / "work"
    code, text = charter(["collective", "ingest", str(folder), "--out", str(work)])
    assert code == 0, text
    before = snapshot(work)
    code, text = charter(["collective", "ingest", str(work), "--out", str(work)])
    assert code == 2 and "refusing to write" in text
    assert snapshot(work) == before
    code, text = charter(["collective", "ingest", str(work), "--out", str(tmp_path / "copy")])
    assert code == 0, text


def test_stale_export_groups_are_removed(tmp_path: Path) -> None:
    folder = export(tmp_path)
    work = tmp_path / "work"
    assert charter(["collective", "ingest", str(folder), "--out", str(work)])[0] == 0
    assert (work / "export_groups.csv").is_file()
    (folder / "participants-votes.csv").unlink()
    assert charter(["collective", "ingest", str(folder), "--out", str(work)])[0] == 0
    assert not (work / "export_groups.csv").exists()
    assert ingest(work).export_groups is None
