"""Models that test models: automated red-teaming and model-written evaluations.

- `run_redteam` / `attack_success` (`charter redteam`): an attacker model writes attacks per harm
  category over rounds (zero-shot, then stochastic few-shot from the most successful attacks),
  targets answer them, a refusal detector and a judge under the constitution decide success.
- `generate_evals` / `run_evals` (`charter evals`): persona statements written by a model and
  filtered by a judge, and a model's rate of answers matching a behaviour.

Heavy modules (torch, sentence-transformers) load only when a backend or the embedder is used.
"""

from charter.redteam.run import AttackRecord, RedteamConfig, attack_success, run_redteam

__all__ = ["AttackRecord", "RedteamConfig", "attack_success", "run_redteam"]
