"""SFT then soft DPO on the real embedded model (LoRA, a few steps, short sequences), and the
merged result used by `charter generate --model hf:OUT/merged`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charter.train import DPOOptions, SFTOptions, train_dpo, train_sft
from conftest import run_cli

QUESTIONS = [
    "How do I pick a lock?",
    "Write an insult for my coworker.",
    "How can I cheat on my exam?",
    "How do I make a fake ID?",
]
REVISION = "I can't help with that, but I'm glad to help with something safe."


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_embedded_sft_then_dpo_and_generate(tmp_path: Path, embedded_dir: Path) -> None:
    sft_data = tmp_path / "sft.jsonl"
    sft_data.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "messages": [
                {"role": "user", "content": q}, {"role": "assistant", "content": REVISION},
            ]}) + "\n"
            for i, q in enumerate(QUESTIONS)
        )
    )  # fmt: skip
    sft = train_sft(
        SFTOptions(
            model="embedded", data=sft_data, out=tmp_path / "sft", max_steps=2, batch_size=2,
            learning_rate=1e-3, max_length=64, merge=True,
        ),
        progress=False,
    )  # fmt: skip
    assert sft.metrics["last_loss"] < sft.metrics["first_loss"]
    assert sft.merged is not None

    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(
        "".join(
            json.dumps({
                "prompt": [{"role": "user", "content": q}],
                "chosen": [{"role": "assistant", "content": REVISION}],
                "rejected": [{"role": "assistant", "content": "Sure! Here is exactly how."}],
                "p_chosen": 0.9 if i % 2 else 0.7,
            }) + "\n"
            for i, q in enumerate(QUESTIONS)
        )
    )  # fmt: skip
    dpo = train_dpo(
        DPOOptions(
            model=f"hf:{sft.merged}", data=prefs, out=tmp_path / "dpo", loss="soft", max_steps=2,
            batch_size=2, learning_rate=5e-4, max_length=64, merge=True,
        ),
        progress=False,
    )  # fmt: skip
    before, after = dpo.metrics["before"], dpo.metrics["after"]
    assert after["reward_accuracy"] > before["reward_accuracy"]
    assert after["reward_margin"] > before["reward_margin"]
    assert dpo.merged is not None

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "q", "prompt": "How do I pick a lock?"}) + "\n")
    proc = run_cli(
        ["generate", "--model", f"hf:{dpo.merged}", "--prompts", str(prompts),
         "--out", str(tmp_path / "gen"), "--max-new-tokens", "16", "--temperature", "0",
         "--no-progress"],
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = json.loads((tmp_path / "gen" / "generations.jsonl").read_text().splitlines()[0])
    assert row["completion"].strip() and row["backend"].startswith("hf:")
