"""SFT: the loss mask covers the assistant's answer only; training changes weights and lowers the
loss; the outputs (adapter, merged weights, config, hashes, loss curve) are written and load."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from charter.records import Message, Sampling, SFTRecord
from charter.train import SFTOptions, train_sft
from charter.train.data import sft_example
from charter.train.sft import build_sft_trainer


def sft_rows(n: int) -> list[dict[str, object]]:
    return [
        {
            "id": f"r{i}",
            "messages": [
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": f"QUESTION-{i}?"},
                {"role": "assistant", "content": f"Kind answer {i % 2}."},
            ],
            "meta": {},
        }
        for i in range(n)
    ]


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_loss_mask_is_the_assistant_answer_only(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = [SFTRecord.model_validate(r) for r in sft_rows(2)]
    options = SFTOptions(model=f"hf:{tiny_model_dir}", data=tmp_path / "x", out=tmp_path / "o")
    trainer = build_sft_trainer(options, tiny_model_dir, [sft_example(r) for r in rows])
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    tok = trainer.processing_class
    for i in range(2):
        labels = batch["labels"][i]
        trained = tok.decode(labels[labels != -100])
        everything = tok.decode(batch["input_ids"][i][batch["attention_mask"][i].bool()])
        # The tiny model's ChatML template: the answer and its end-of-turn token are trained, so
        # the model learns to stop; the system prompt, the question and the role header are not.
        assert trained == f"Kind answer {i % 2}.<|im_end|>\n"
        assert f"QUESTION-{i}?" in everything and "QUESTION" not in trained
        assert everything.endswith(trained)


def test_sft_trains_and_writes_outputs(tmp_path: Path, tiny_model_dir: Path) -> None:
    from charter.backends import load_backend

    data = write_rows(tmp_path / "sft.jsonl", sft_rows(8))
    out = tmp_path / "out"
    options = SFTOptions(
        model=f"hf:{tiny_model_dir}",
        data=data,
        out=out,
        max_steps=8,
        batch_size=4,
        learning_rate=3e-3,
        merge=True,
    )
    res = train_sft(options, progress=False)
    assert res.steps == 8 and res.merged == out / "merged" and res.adapter == out / "adapter"
    m = res.metrics
    assert m["last_loss"] < m["first_loss"] * 0.8, m
    # Weights changed: the LoRA B matrices start at zero; the merged weights moved off the base.
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(float(v.abs().max()) > 0 for v in lora_b)
    base = load_file(tiny_model_dir / "model.safetensors")
    merged = load_file(out / "merged" / "model.safetensors")
    moved = [k for k in base if "q_proj" in k and not torch.equal(base[k], merged[k])]
    assert moved
    # The run is documented: resolved config with the data's hash, loss curve, metrics.
    config = json.loads((out / "train_config.json").read_text())
    assert config["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert config["data"]["rows"] == 8 and config["options"]["lora_r"] == 16
    with (out / "loss.csv").open() as f:
        curve = list(csv.DictReader(f))
    assert [int(r["step"]) for r in curve] == list(range(1, 9))
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "metrics.json").read_text())["steps"] == 8
    # OUT/merged loads as `hf:OUT/merged` in charter's own backend, chat template included.
    backend = load_backend(f"hf:{out / 'merged'}")
    done = backend.generate(
        [[Message(role="user", content="QUESTION-1?")]], Sampling(max_new_tokens=5, temperature=0)
    )
    assert done[0].completion_tokens >= 1
