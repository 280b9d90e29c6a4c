"""Losses and the hardening threshold against values computed by hand (plain `math`)."""

from __future__ import annotations

import math

import pytest
import torch

from charter.w2s.losses import harden, hardening_threshold, logconf_loss, warmup_alpha, xent_soft

# Student class-0 probabilities for four rows; logits [0, ln(p1/p0)] give exactly these.
P0 = [0.9, 0.6, 0.3, 0.2]


def _logits(p0: list[float]) -> torch.Tensor:
    return torch.tensor([[0.0, math.log((1 - p) / p)] for p in p0], dtype=torch.float64)


def _xent(targets: list[list[float]], p0: list[float]) -> float:
    rows = [
        -(t[0] * math.log(p) + t[1] * math.log(1 - p)) for t, p in zip(targets, p0, strict=True)
    ]
    return sum(rows) / len(rows)


@pytest.mark.parametrize(
    ("step_frac", "expected"),
    [(0.0, 0.0), (0.1, 0.25), (0.2, 0.5), (0.6, 0.5), (1.0, 0.5)],
    ids=["start", "middle-of-warmup", "end-of-warmup", "after", "end"],
)
def test_warmup_is_linear_to_alpha_max(step_frac: float, expected: float) -> None:
    assert warmup_alpha(step_frac, alpha_max=0.5, warmup_frac=0.2) == pytest.approx(expected)


def test_no_warmup_means_alpha_max_from_the_start() -> None:
    assert warmup_alpha(0.0, alpha_max=0.75, warmup_frac=0.0) == 0.75


def test_xent_on_soft_labels() -> None:
    weak = [[0.8, 0.2], [0.4, 0.6], [0.7, 0.3], [0.1, 0.9]]
    got = xent_soft(_logits(P0), torch.tensor(weak, dtype=torch.float64))
    assert float(got) == pytest.approx(_xent(weak, P0), abs=1e-12)


def test_threshold_keeps_the_weak_class_balance() -> None:
    probs = torch.tensor([[p, 1 - p] for p in P0], dtype=torch.float64)
    # Weak class-1 mean 0.5: the 0.5-quantile of [0.2, 0.3, 0.6, 0.9] is 0.3 + 0.5 * 0.3 = 0.45.
    weak = torch.tensor([[0.8, 0.2], [0.4, 0.6], [0.7, 0.3], [0.1, 0.9]], dtype=torch.float64)
    assert float(hardening_threshold(probs, weak)) == pytest.approx(0.45)
    assert harden(probs, weak).tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]
    # Weak class-1 mean 0.25: position 0.75 → 0.2 + 0.75 * 0.1 = 0.275; one row of four is 1.
    weak = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]], dtype=torch.float64)
    assert float(hardening_threshold(probs, weak)) == pytest.approx(0.275)
    assert harden(probs, weak).tolist() == [[1, 0], [1, 0], [1, 0], [0, 1]]


@pytest.mark.parametrize(("step_frac", "alpha"), [(0.0, 0.0), (0.1, 0.25), (0.5, 0.5)])
def test_logconf_mixes_weak_and_hardened_labels(step_frac: float, alpha: float) -> None:
    weak = [[0.8, 0.2], [0.4, 0.6], [0.7, 0.3], [0.1, 0.9]]
    hard = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    target = [
        [(1 - alpha) * w + alpha * h for w, h in zip(wr, hr, strict=True)]
        for wr, hr in zip(weak, hard, strict=True)
    ]
    got = logconf_loss(
        _logits(P0),
        torch.tensor(weak, dtype=torch.float64),
        step_frac,
        alpha_max=0.5,
        warmup_frac=0.2,
    )
    assert float(got) == pytest.approx(_xent(target, P0), abs=1e-12)


def test_logconf_at_alpha_zero_is_xent() -> None:
    weak = torch.tensor([[0.8, 0.2], [0.4, 0.6], [0.7, 0.3], [0.1, 0.9]], dtype=torch.float64)
    a = logconf_loss(_logits(P0), weak, 0.0, alpha_max=0.5, warmup_frac=0.2)
    assert float(a) == pytest.approx(float(xent_soft(_logits(P0), weak)))


def test_logconf_gradient_does_not_flow_through_the_hardened_target() -> None:
    logits = _logits(P0).requires_grad_(True)
    weak = torch.tensor([[0.8, 0.2], [0.4, 0.6], [0.7, 0.3], [0.1, 0.9]], dtype=torch.float64)
    logconf_loss(logits, weak, 1.0, alpha_max=1.0, warmup_frac=0.2).backward()  # type: ignore[no-untyped-call]
    # α = 1: the target is the hardened one-hot rows; d(xent)/d(logits) = (softmax − target) / n.
    hard = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    expected = (torch.softmax(_logits(P0), -1) - hard) / 4
    assert logits.grad is not None
    assert torch.allclose(logits.grad, expected)
