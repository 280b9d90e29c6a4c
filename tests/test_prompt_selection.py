"""A user's own prompt file is used whole (#25 item 1): `charter sl` and `charter label` cut an
8-prompt file to its 6-prompt train split without a word. Now a file is used whole unless
`--split` is given, and whenever a split or `--limit` drops prompts, stderr and summary.json
say how many and why."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from test_cli_generate import write_prompts

SL = ["sl", "--model", "fake", "--constitution", "udhr", "--rounds", "1", "--no-progress"]
LABEL = ["label", "--policy", "fake", "--feedback", "fake", "--constitution", "udhr",
         "--principles-per-pair", "1", "--few-shot", "0", "--no-progress"]  # fmt: skip


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_sl_and_label_use_a_users_file_whole(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "mine.jsonl", 8)
    sl = run_cli([*SL, "--prompts", str(prompts), "--out", str(tmp_path / "sl")])
    assert sl.returncode == 0, sl.stderr
    assert lines(tmp_path / "sl" / "samples.jsonl") == 8
    assert "using" not in sl.stderr  # nothing dropped, nothing to say
    selection = json.loads((tmp_path / "sl" / "summary.json").read_text())["prompt_selection"]
    assert selection == {"source": str(prompts), "split": "all", "limit": None, "total": 8,
                         "dropped_by_split": 0, "dropped_by_limit": 0, "used": 8}  # fmt: skip
    label = run_cli([*LABEL, "--prompts", str(prompts), "--out", str(tmp_path / "label")])
    assert label.returncode == 0, label.stderr
    assert lines(tmp_path / "label" / "prefs.jsonl") == 8


def test_a_split_or_limit_that_drops_prompts_says_so(tmp_path: Path) -> None:
    prompts = write_prompts(tmp_path / "mine.jsonl", 8)
    out = tmp_path / "sl"
    r = run_cli([*SL, "--prompts", str(prompts), "--split", "train", "--limit", "4",
                 "--out", str(out)])  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert lines(out / "samples.jsonl") == 4
    selection = json.loads((out / "summary.json").read_text())["prompt_selection"]
    assert selection["split"] == "train" and selection["total"] == 8
    kept = 8 - selection["dropped_by_split"]
    assert 0 < kept < 8 and selection["dropped_by_limit"] == kept - 4 and selection["used"] == 4
    assert f"using 4 of 8 prompts of {prompts}" in r.stderr
    assert f"{8 - kept} are not in the train split" in r.stderr
    assert f"{kept - 4} are past --limit 4" in r.stderr


def test_a_builtin_set_keeps_its_train_split_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "label"
    r = run_cli([*LABEL, "--prompts", "builtin:red-team", "--limit", "3", "--out", str(out)])
    assert r.returncode == 0, r.stderr
    assert lines(out / "prefs.jsonl") == 3
    assert "not in the train split (the default for a builtin set)" in r.stderr
    selection = json.loads((out / "summary.json").read_text())["prompt_selection"]
    assert selection["split"] == "train" and selection["used"] == 3
