"""Linear heads on frozen features, trained with torch on soft labels (probe mode).

Dense features are standardised with the training rows' mean and spread; sparse tf-idf rows are
scaled by one constant (the root of the mean number of non-zeros per row) so their entries are
of order one too, keeping them sparse. Weights start at zero and batches are shuffled by a
generator seeded from the run's seed: the same seed gives the same head, bit for bit, on one
machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from charter.records import Strict
from charter.w2s.losses import logconf_loss, xent_soft


class HeadConfig(Strict):
    """How a linear head is trained."""

    epochs: int = Field(20, ge=1, description="Passes over the training rows.")
    batch_size: int = Field(64, ge=2, description="Rows per step (logconf thresholds per batch).")
    lr: float = Field(3e-3, gt=0.0, description="Adam learning rate.")
    weight_decay: float = Field(1e-2, ge=0.0, description="AdamW decoupled weight decay.")
    alpha_max: float = Field(0.5, ge=0.0, le=1.0, description="logconf: final weight α.")
    warmup_frac: float = Field(
        0.2, ge=0.0, le=1.0, description="logconf: fraction of steps over which α ramps up."
    )


def _is_sparse(x: Any) -> bool:
    return hasattr(x, "tocsr")


@dataclass
class LinearHead:
    weight: NDArray[np.float32]  # (d, 2)
    bias: NDArray[np.float32]  # (2,)
    shift: NDArray[np.float32] | None
    scale: NDArray[np.float32] | float

    def _prep(self, x: Any) -> NDArray[np.float32]:
        if _is_sparse(x):
            return np.asarray(x.toarray(), dtype=np.float32) * np.float32(self.scale)
        assert self.shift is not None
        return np.asarray((np.asarray(x, dtype=np.float32) - self.shift) * self.scale)

    def logits(self, x: Any, batch: int = 4096) -> NDArray[np.float32]:
        rows = [
            self._prep(x[i : i + batch]) @ self.weight + self.bias
            for i in range(0, x.shape[0], batch)
        ]
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 2), np.float32)

    def predict_proba(self, x: Any) -> NDArray[np.float64]:
        z = self.logits(x).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))


def one_hot(labels: NDArray[np.int64]) -> NDArray[np.float32]:
    out = np.zeros((len(labels), 2), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def train_head(
    x: Any, targets: NDArray[np.float32], *, loss: str, seed: int, config: HeadConfig
) -> LinearHead:
    """Fit a linear head on features `x` to probability rows `targets` (n, 2)."""
    import torch

    # The matrices are tiny: one thread is fastest, and on a busy machine extra OpenMP threads
    # spin-wait for cores (we measured a 20x slowdown at load 10 on 2 cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_head(x, targets, loss=loss, seed=seed, config=config)
    finally:
        torch.set_num_threads(threads)


def _train_head(
    x: Any, targets: NDArray[np.float32], *, loss: str, seed: int, config: HeadConfig
) -> LinearHead:
    import torch

    n, d = x.shape
    if _is_sparse(x):
        nnz = max(float(x.getnnz()) / max(n, 1), 1.0)
        shift: NDArray[np.float32] | None = None
        scale: NDArray[np.float32] | float = float(np.sqrt(nnz))
    else:
        dense = np.asarray(x, dtype=np.float32)
        shift = dense.mean(axis=0)
        scale = (1.0 / (dense.std(axis=0) + 1e-6)).astype(np.float32)
    head = LinearHead(np.zeros((d, 2), np.float32), np.zeros(2, np.float32), shift, scale)
    prepped = None if _is_sparse(x) else torch.from_numpy(head._prep(x))
    y = torch.from_numpy(np.asarray(targets, dtype=np.float32))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(d, 2)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    opt = torch.optim.AdamW(linear.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, -(-n // config.batch_size))
    total = steps_per_epoch * config.epochs
    step = 0
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            if len(idx) < 2:
                continue
            xb = torch.from_numpy(head._prep(x[idx.numpy()])) if prepped is None else prepped[idx]
            logits = linear(xb)
            if loss == "logconf":
                value = logconf_loss(
                    logits,
                    y[idx],
                    step / total,
                    alpha_max=config.alpha_max,
                    warmup_frac=config.warmup_frac,
                )
            else:
                value = xent_soft(logits, y[idx])
            opt.zero_grad()
            value.backward()  # type: ignore[no-untyped-call]
            opt.step()
            step += 1
    head.weight = linear.weight.detach().numpy().T.copy()
    head.bias = linear.bias.detach().numpy().copy()
    return head
