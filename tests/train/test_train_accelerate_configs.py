"""The shipped accelerate configs parse with accelerate's own loader and say what they claim."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


@pytest.mark.parametrize(
    ("name", "kind", "zero_stage"),
    [
        ("ddp", "MULTI_GPU", None),
        ("deepspeed_zero2", "DEEPSPEED", 2),
        ("deepspeed_zero3", "DEEPSPEED", 3),
    ],
)
def test_accelerate_config(name: str, kind: str, zero_stage: int | None) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type.name == kind
    assert config.num_processes >= 2 and config.mixed_precision == "bf16"
    if zero_stage is not None:
        assert config.deepspeed_config["zero_stage"] == zero_stage
        assert config.deepspeed_config["gradient_accumulation_steps"] == "auto"


def test_cpu_ddp_config() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / "cpu_ddp.yaml"))
    # accelerate's multi-process launcher (torchrun); the processes find no GPU and use gloo.
    assert config.distributed_type.name == "MULTI_GPU" and not config.use_cpu
    assert config.num_processes == 2 and config.mixed_precision == "no"
