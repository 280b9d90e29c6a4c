"""Losses for training a strong student on a weak supervisor's soft labels (Burns et al. 2023).

Labels and targets are `(n, 2)` probability rows (column 1 is the positive class).
- `xent`: cross-entropy on the weak model's soft labels.
- `logconf`: the auxiliary confidence loss. The target is `(1 − α)·weak + α·hardened`, where the
  hardened labels are the student's own predictions thresholded so that, within the batch, they
  keep the weak labels' class balance: with `m` the batch mean of the weak labels' class-1
  column, the threshold is the `m`-quantile of the student's class-0 probabilities (linear
  interpolation, as `torch.quantile`), and a row is hardened to class 0 when its class-0
  probability is at or above it. α rises linearly from 0 to `alpha_max` over the first
  `warmup_frac` of training, then stays. (OpenAI's reference code ramps α as `step_frac`
  itself during warm-up, i.e. to only `warmup_frac·alpha_max`, then jumps; we ramp to
  `alpha_max` as the paper describes.)
- `bootstrap` (bootstrapping through an intermediate model) is a label source, not a loss: see
  `charter.w2s.experiment`; the student then trains with `xent`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

LossName = Literal["xent", "logconf", "bootstrap"]
LOSSES: tuple[LossName, ...] = ("xent", "logconf", "bootstrap")


def default_losses() -> list[LossName]:
    return ["xent", "logconf"]


def warmup_alpha(step_frac: float, alpha_max: float, warmup_frac: float) -> float:
    """The confidence weight α at `step_frac` (0 at the start, 1 at the end) of training.

    >>> [warmup_alpha(f, 0.5, 0.2) for f in (0.0, 0.1, 0.2, 0.9)]
    [0.0, 0.25, 0.5, 0.5]
    """
    if warmup_frac <= 0.0:
        return alpha_max
    return alpha_max * min(1.0, max(0.0, step_frac) / warmup_frac)


def xent_soft(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `logits` against probability rows `targets`."""
    import torch

    logits = logits if logits.dtype == torch.float64 else logits.float()
    return -(targets * torch.log_softmax(logits, dim=-1)).sum(-1).mean()


def hardening_threshold(probs: torch.Tensor, weak_labels: torch.Tensor) -> torch.Tensor:
    """The class-0 probability above which a row is hardened to class 0 (see the module doc)."""
    import torch

    weak_pos_rate = weak_labels.to(torch.float64)[:, 1].mean()
    return torch.quantile(probs[:, 0].to(weak_pos_rate.dtype), weak_pos_rate)


def harden(probs: torch.Tensor, weak_labels: torch.Tensor) -> torch.Tensor:
    """One-hot rows of the student's predictions, keeping the weak labels' class balance."""
    import torch

    threshold = hardening_threshold(probs, weak_labels)
    is_zero = probs[:, 0] >= threshold
    return torch.stack([is_zero, ~is_zero], dim=1).float()


def logconf_loss(
    logits: torch.Tensor,
    weak_labels: torch.Tensor,
    step_frac: float,
    *,
    alpha_max: float = 0.5,
    warmup_frac: float = 0.2,
) -> torch.Tensor:
    """The auxiliary confidence loss on one batch."""
    import torch

    alpha = warmup_alpha(step_frac, alpha_max, warmup_frac)
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    probs = torch.softmax(logits.detach().to(dtype), dim=-1)
    target = (1.0 - alpha) * weak_labels.to(dtype) + alpha * harden(probs, weak_labels).to(dtype)
    return xent_soft(logits, target)
