"""The soft-label DPO loss against TRL's own sigmoid DPO, on the same batch of the tiny model.

- every p = 1: loss and every gradient equal TRL's `loss_type="sigmoid"` (TRL computes both);
- any p: the loss equals −[p log σ(βh) + (1 − p) log σ(−βh)] with h from an independent forward;
- p = ½: at h = 0 every gradient vanishes (where TRL's sigmoid loss still pushes), and moving h
  either way raises the loss.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from charter.train.dpo import DPOOptions, build_dpo_trainer, soft_dpo_loss

BETA = 0.5
N = 4


def examples(p: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": [{"role": "user", "content": f"Question {i}: which is kinder?"}],
            "chosen": [{"role": "assistant", "content": f"A kind reply number {i}."}],
            "rejected": [{"role": "assistant", "content": f"Rude {i}!"}],
            "p_chosen": p[i],
        }
        for i in range(N)
    ]


def trainer_for(tmp: Path, model_dir: Path, loss: str, p: list[float]) -> Any:
    options = DPOOptions(
        model=f"hf:{model_dir}",
        data=tmp / "unused.jsonl",
        out=tmp / loss,
        full=True,  # identical starting weights in both trainers, no random LoRA init
        loss=loss,
        beta=BETA,
        batch_size=N,
        max_length=128,
    )
    return build_dpo_trainer(options, model_dir, examples(p))


def batch_of(trainer: Any, ref_shift: torch.Tensor | None = None) -> dict[str, Any]:
    rows = [trainer.train_dataset[i] for i in range(N)]
    batch: dict[str, Any] = trainer._prepare_inputs(trainer.data_collator(rows))
    if ref_shift is not None:
        # Moving the reference moves h = Δpolicy − Δref away from 0 (the untrained policy).
        batch["ref_chosen_logps"] = batch["ref_chosen_logps"] + ref_shift
    return batch


def loss_and_grads(trainer: Any, batch: dict[str, Any]) -> tuple[float, dict[str, torch.Tensor]]:
    model = trainer.model
    model.train()
    model.zero_grad()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads


def independent_h(trainer: Any, batch: dict[str, Any]) -> torch.Tensor:
    """h from a plain forward: summed log-probs of the completion tokens, minus the reference."""
    model = trainer.model
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tokens = batch["input_ids"][:, 1:]
    per_token = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) * batch["completion_mask"][:, 1:]
    chosen, rejected = per_token.sum(dim=1).chunk(2)
    h: torch.Tensor = (chosen - batch["ref_chosen_logps"]) - (
        rejected - batch["ref_rejected_logps"]
    )
    return h


SHIFT = torch.tensor([3.0, -2.0, 0.5, -6.0])


def test_p_one_equals_trl_sigmoid_loss_and_gradients(tmp_path: Path, tiny_model_dir: Path) -> None:
    soft = trainer_for(tmp_path, tiny_model_dir, "soft", [1.0] * N)
    trl = trainer_for(tmp_path, tiny_model_dir, "sigmoid", [1.0] * N)
    assert type(trl).__name__ == "DPOTrainer" and type(soft).__name__ == "SoftDPOTrainer"
    soft_loss, soft_grads = loss_and_grads(soft, batch_of(soft, SHIFT))
    trl_loss, trl_grads = loss_and_grads(trl, batch_of(trl, SHIFT))
    assert soft_loss == pytest.approx(trl_loss, rel=1e-6)
    assert abs(soft_loss - math.log(2)) > 0.01  # h ≠ 0: not the trivial value
    assert soft_grads.keys() == trl_grads.keys() and len(soft_grads) > 5
    for name, g in trl_grads.items():
        assert g.abs().max() > 0 or name.endswith("bias")
        torch.testing.assert_close(soft_grads[name], g, rtol=1e-5, atol=1e-7)


def test_soft_loss_matches_the_formula_for_any_p(tmp_path: Path, tiny_model_dir: Path) -> None:
    p = [0.6, 0.95, 0.5, 0.75]
    soft = trainer_for(tmp_path, tiny_model_dir, "soft", p)
    batch = batch_of(soft, SHIFT)
    assert batch["p_chosen"].tolist() == pytest.approx(p)
    loss, _ = loss_and_grads(soft, batch)
    h = independent_h(soft, batch)
    expected = soft_dpo_loss(h, torch.tensor(p), BETA).item()
    assert loss == pytest.approx(expected, rel=1e-5)
    trl = trainer_for(tmp_path, tiny_model_dir, "sigmoid", p)
    trl_loss, _ = loss_and_grads(trl, batch_of(trl, SHIFT))
    assert abs(loss - trl_loss) > 1e-3  # the soft labels do change the loss


def test_p_half_has_its_optimum_at_h_zero(tmp_path: Path, tiny_model_dir: Path) -> None:
    soft = trainer_for(tmp_path, tiny_model_dir, "soft", [0.5] * N)
    trl = trainer_for(tmp_path, tiny_model_dir, "sigmoid", [0.5] * N)
    batch = batch_of(soft)
    # The untrained policy is its own reference: h = 0 up to float error.
    assert independent_h(soft, batch).abs().max() < 1e-4
    loss0, grads = loss_and_grads(soft, batch)
    assert loss0 == pytest.approx(math.log(2), abs=1e-5)
    largest = max(float(g.abs().max()) for g in grads.values())
    _, trl_grads = loss_and_grads(trl, batch_of(trl))
    trl_largest = max(float(g.abs().max()) for g in trl_grads.values())
    assert trl_largest > 1e-3  # sigmoid DPO still pushes chosen over rejected here …
    assert largest < 1e-4 * trl_largest  # … the soft loss with p = ½ does not
    for delta in (-2.0, -0.5, 0.5, 2.0):
        moved, _ = loss_and_grads(soft, batch_of(soft, torch.full((N,), delta)))
        assert moved > loss0 + 1e-4
