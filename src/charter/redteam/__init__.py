"""Models that test models: automated red-teaming and model-written evaluations.

- `run_redteam` / `attack_success` (`charter redteam`): an attacker model writes attacks per harm
  category over rounds (zero-shot, then stochastic few-shot from the most successful attacks),
  targets answer them, a refusal detector and a judge under the constitution decide success.
- `generate_evals` / `run_evals` (`charter evals`): persona statements written by a model and
  filtered by a judge, and a model's rate of answers matching a behaviour.

Heavy modules (torch, sentence-transformers) load only when a backend or the embedder is used.
"""

from __future__ import annotations

from typing import Any

from charter.redteam.config import RedteamConfig

__all__ = ["AttackRecord", "RedteamConfig", "attack_success", "run_redteam"]


def __getattr__(name: str) -> Any:
    # The run module loads numpy: only when it is asked for (`charter run`'s config imports the
    # settings alone).
    if name in ("AttackRecord", "attack_success", "run_redteam"):
        from charter.redteam import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
