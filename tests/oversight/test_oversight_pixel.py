"""Pixel debate on scikit-learn's 8×8 digits: masks, the agents' search, the whole experiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from charter.errors import ConfigError
from charter.oversight.pixel import (
    PixelConfig,
    _margins,
    load_digit_images,
    play_debates,
    random_nonzero_masks,
    run_pixel_debate,
)
from conftest import run_cli


def test_random_masks_reveal_exactly_k_nonzero_pixels() -> None:
    x, _ = load_digit_images()
    assert x.shape == (1797, 64) and x.min() >= 0 and x.max() == 1
    mask = random_nonzero_masks(x, 6, np.random.default_rng(0))
    assert (mask.sum(1) == 6).all()
    assert (x[mask] > 0).all()


def linear_judge(weights: dict[tuple[int, int], float]) -> torch.nn.Module:
    """logit[c] = Σ w[c, p] · pixel p (revealed); the mask half of the input is ignored."""
    net = torch.nn.Linear(128, 10, bias=False)
    with torch.no_grad():
        net.weight.zero_()
        for (c, p), w in weights.items():
            net.weight[c, p] = w
    return net


def test_greedy_agents_reveal_their_best_pixel_in_turn() -> None:
    x = np.zeros((1, 64), dtype=np.float32)
    x[0, [0, 1, 2, 3, 9]] = 1.0
    # Pixel 0 favours class 0 by 3, pixel 3 favours class 1 by 5, pixel 1 favours 1 by 2,
    # pixel 2 favours 0 by 1; pixel 9 favours class 7, which neither agent claims.
    net = linear_judge({(0, 0): 3, (1, 3): 5, (1, 1): 2, (0, 2): 1, (7, 9): 9})
    won, moves = play_debates(net, x, np.array([0]), np.array([1]), 4)
    assert moves.tolist() == [[0, 3, 2, 1]]  # honest 0, liar 3, honest 2, liar 1
    assert not won[0]  # 3 + 1 − 5 − 2 < 0
    won, moves = play_debates(net, x, np.array([0]), np.array([1]), 4, first="liar")
    assert moves.tolist() == [[3, 0, 1, 2]]


def test_pixels_without_ink_are_never_revealed() -> None:
    x = np.zeros((1, 64), dtype=np.float32)
    x[0, [5, 6]] = 1.0
    net = linear_judge({(0, 40): 100, (1, 41): 100, (0, 5): 1, (1, 6): 1})
    won, moves = play_debates(net, x, np.array([0]), np.array([1]), 3)
    assert moves.tolist() == [[5, 6, -1]]  # out of ink: the last turn is passed
    assert not won[0]  # a tie goes to the liar


def test_two_ply_search_is_exact_minimax_for_two_pixels() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(128, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    x, y = load_digit_images()
    rows = x[:12]
    honest, liar = y[:12], (y[:12] + 3) % 10
    won, moves = play_debates(net, rows, honest, liar, 2, lookahead=2)
    for i in range(len(rows)):
        ink = np.flatnonzero(rows[i] > 0)
        best = -np.inf
        for p in ink:
            replies = []
            for q in ink:
                if q == p:
                    continue
                mask = torch.zeros(1, 64, dtype=torch.bool)
                mask[0, [p, q]] = True
                with torch.inference_mode():
                    m = _margins(net, torch.from_numpy(rows[i : i + 1]), mask,
                                 torch.tensor([honest[i]]), torch.tensor([liar[i]]))  # fmt: skip
                replies.append(float(m[0]))
            best = max(best, min(replies))
        assert won[i] == (best > 0)
        assert moves[i, 0] in ink and moves[i, 1] in ink and moves[i, 0] != moves[i, 1]


def test_small_experiment_debate_beats_the_judge_alone(tmp_path: Path) -> None:
    config = PixelConfig(pixels=(4,), seeds=1, epochs=80, max_test=80)
    metrics = run_pixel_debate(config, tmp_path, progress=False)
    row = metrics["pixels"]["4"]
    assert row["debate_acc"]["n"] == 80 and row["random_acc"]["n"] == 540
    assert row["debate_acc"]["value"] > row["random_acc"]["value"] + 0.15
    # Winning all nine games is stricter than winning a game.
    assert row["game_win_rate"]["value"] >= row["debate_acc"]["value"]
    assert row["paper_mnist"] == {"random_acc": 0.482, "debate_acc": 0.852}
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["pixels"]["4"]["debate_acc"]["low"] <= row["debate_acc"]["value"]
    assert (tmp_path / "pixel_debate.png").stat().st_size > 0


def test_bad_pixel_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="k=40"):
        PixelConfig(pixels=(40,)).check()


def test_cli_pixel_debate(tmp_path: Path) -> None:
    args = ["--pixels", "3", "--seeds", "1", "--max-test", "20", "--epochs", "30"]
    done = run_cli(["oversight", "pixel-debate", *args, "--out", str(tmp_path), "--no-progress"])
    assert done.returncode == 0, done.stderr
    assert "| 3 |" in done.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["pixels"]["3"]) >= {"random_acc", "debate_acc"}
    bad = run_cli(["oversight", "pixel-debate", "--pixels", "four", "--out", str(tmp_path)])
    assert bad.returncode == 2 and "--pixels" in bad.stderr
