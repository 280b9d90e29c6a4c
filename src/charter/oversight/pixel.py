"""Pixel debate (Irving, Christiano and Amodei 2018, "AI safety via debate", section 3.1) on the
8×8 handwritten digits that scikit-learn ships (`load_digits`), so it runs offline on a CPU.

A judge is a small network that sees only `k` revealed pixels: its input is the masked image and
the mask itself, and it is trained with `k` random nonzero (ink) pixels revealed per image,
fresh masks every epoch. With the judge fixed, a debate is a game: an honest agent (committed to
the true label) and a liar (committed to one wrong label) take turns revealing one nonzero pixel
each, `k` in all, and the judge then picks whichever of the two claimed labels has the higher
logit. Each agent picks its pixel by search over the judge's outputs: with `lookahead=1` the
pixel that most improves `logit(own) − logit(other)` right away; with `lookahead=2` the pixel
whose worst case after the opponent's best reply is best (minimax, two plies).

As in the paper's pre-commit setting, each test image is debated once per wrong label (nine
liars) and the honest agent is credited with the image only if it wins all nine games. The
baseline is the same judge with `k` random nonzero pixels and the argmax over all ten classes
(the paper's "judge alone"); note that "the true label beats each of the nine others" is exactly
"the true label is the argmax", so the two numbers are measured by the same criterion.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from charter.errors import ConfigError
from charter.oversight.metrics import Interval, wilson_interval

if TYPE_CHECKING:
    import torch

# Irving et al. (2018), MNIST, pre-commit: sparse judge alone vs after debate.
PAPER_MNIST = {
    4: {"random_acc": 0.482, "debate_acc": 0.852},
    6: {"random_acc": 0.594, "debate_acc": 0.889},
}
N_PIXELS = 64
N_CLASSES = 10


@dataclass(frozen=True)
class PixelConfig:
    """One pixel-debate experiment: which `k`, how many seeds, how the judge and agents work."""

    pixels: tuple[int, ...] = (4, 6)
    seeds: int = 3
    test_size: float = 0.3
    hidden: int = 128
    epochs: int = 250
    batch_size: int = 512
    lr: float = 3e-3
    random_masks: int = 20  # random masks per test image for the judge-alone accuracy
    lookahead: Literal[1, 2] = 1
    first: Literal["honest", "liar"] = "honest"
    max_test: int | None = None  # debate only the first N test images (quick runs)

    def check(self) -> None:
        if not self.pixels:
            raise ConfigError("pixel debate: give at least one pixel count")
        for k in self.pixels:
            if not 1 <= k <= 16:
                raise ConfigError(f"pixel debate: k={k} pixels is out of range 1..16")
        if self.seeds < 1:
            raise ConfigError("pixel debate: --seeds must be at least 1")
        if not 0.05 <= self.test_size <= 0.9:
            raise ConfigError("pixel debate: test_size must be in 0.05..0.9")
        if self.lookahead not in (1, 2):
            raise ConfigError("pixel debate: lookahead must be 1 or 2")


@dataclass
class SeedResult:
    """One (k, seed): the judge alone on random pixels, and the debates on the same test split."""

    k: int
    seed: int
    n_test: int
    random_correct: float  # expected number correct, averaged over `random_masks` masks per image
    n_debated: int
    debate_wins: int  # images whose honest agent beat all nine liars
    game_wins: int  # single (image, liar) games the honest agent won
    games: int
    seconds: float
    examples: list[dict[str, Any]] = field(default_factory=list)


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits (1,797 images, offline) as floats in [0, 1]."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    digits = load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


def random_nonzero_masks(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask per row revealing `k` random nonzero pixels (zero ones only if too few)."""
    scores = rng.random(x.shape) + (x > 0)  # nonzero pixels rank above every zero pixel
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    mask = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=1)
    return mask


def judge_input(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What the judge sees: the revealed pixel values and where they are (0 is also a value)."""
    import torch

    m = mask.to(x.dtype)
    return torch.cat([x * m, m], dim=-1)


def train_judge(
    x: np.ndarray, y: np.ndarray, k: int, config: PixelConfig, seed: int
) -> torch.nn.Module:
    """An MLP on (masked image, mask), trained with `k` fresh random nonzero pixels per epoch."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(2 * N_PIXELS, config.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(config.hidden, config.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(config.hidden, N_CLASSES),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(config.epochs):
        mask = torch.from_numpy(random_nonzero_masks(x, k, rng))
        order = torch.from_numpy(rng.permutation(len(x)))
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            loss = torch.nn.functional.cross_entropy(net(judge_input(xt[idx], mask[idx])), yt[idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
        sched.step()
    return net.eval()


def random_pixel_accuracy(
    net: torch.nn.Module, x: np.ndarray, y: np.ndarray, k: int, masks: int, seed: int
) -> float:
    """Expected number of test images the judge gets right (10-way argmax), `k` random pixels."""
    import torch

    rng = np.random.default_rng(seed + 1_000_003)
    xt, hits = torch.from_numpy(x), np.zeros(len(x))
    with torch.inference_mode():
        for _ in range(masks):
            mask = torch.from_numpy(random_nonzero_masks(x, k, rng))
            hits += (net(judge_input(xt, mask)).argmax(-1).numpy() == y).astype(float)
    return float(hits.sum() / masks)


def _margins(
    net: torch.nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    honest: torch.Tensor,
    liar: torch.Tensor,
) -> torch.Tensor:
    """`logit(honest) − logit(liar)` per row: positive means the honest agent is ahead."""
    logits: torch.Tensor = net(judge_input(x, mask))
    return logits.gather(1, honest[:, None])[:, 0] - logits.gather(1, liar[:, None])[:, 0]


def _move_values(
    net: torch.nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    honest: torch.Tensor,
    liar: torch.Tensor,
    sign: torch.Tensor,
    depth: int,
) -> torch.Tensor:
    """[games, 64]: the margin (from the honest agent's side) after revealing each pixel and
    letting the players search `depth − 1` further plies; illegal pixels get ∓inf for the mover.

    `sign` is +1 where the honest agent moves and −1 where the liar does."""
    import torch

    games = x.shape[0]
    legal = (x > 0) & ~mask
    child = mask[:, None, :] | torch.eye(N_PIXELS, dtype=torch.bool)[None]  # [games, 64, 64]
    flat = child.reshape(-1, N_PIXELS)

    def rep(t: torch.Tensor) -> torch.Tensor:
        return t.repeat_interleave(N_PIXELS, dim=0)

    if depth <= 1:
        values = _margins(net, rep(x), flat, rep(honest), rep(liar)).reshape(games, N_PIXELS)
    else:
        # The opponent replies with its own best move, searched one ply shallower.
        reply = _move_values(net, rep(x), flat, rep(honest), rep(liar), -rep(sign), depth - 1)
        best_reply = torch.where(rep(sign) > 0, reply.min(1).values, reply.max(1).values)
        # With no legal reply (the image ran out of ink) the position stands as it is.
        stand = _margins(net, rep(x), flat, rep(honest), rep(liar))
        values = torch.where(torch.isfinite(best_reply), best_reply, stand).reshape(games, N_PIXELS)
    worst = torch.where(sign[:, None] > 0, -math.inf, math.inf)
    return torch.where(legal, values, worst.expand_as(values))


def play_debates(
    net: torch.nn.Module,
    x: np.ndarray,
    honest: np.ndarray,
    liar: np.ndarray,
    k: int,
    *,
    lookahead: int = 1,
    first: str = "honest",
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Play one debate per row; return (honest won, revealed pixels in order [rows, k]).

    The judge decides between the two claimed labels only; a tie goes to the liar."""
    import torch

    chunk = max(1, chunk // (N_PIXELS ** (lookahead - 1)))
    won = np.zeros(len(x), dtype=bool)
    moves = np.full((len(x), k), -1, dtype=np.int64)
    with torch.inference_mode():
        for start in range(0, len(x), chunk):
            sl = slice(start, start + chunk)
            xs = torch.from_numpy(x[sl])
            h, li = torch.from_numpy(honest[sl]), torch.from_numpy(liar[sl])
            mask = torch.zeros_like(xs, dtype=torch.bool)
            for turn in range(k):
                honest_moves = (turn % 2 == 0) == (first == "honest")
                sign = torch.full((len(xs),), 1.0 if honest_moves else -1.0)
                depth = min(lookahead, k - turn)
                values = _move_values(net, xs, mask, h, li, sign, depth)
                pick = values.argmax(1) if honest_moves else values.argmin(1)
                playable = torch.isfinite(values.gather(1, pick[:, None])[:, 0])
                mask[torch.arange(len(xs))[playable], pick[playable]] = True
                moves[sl, turn] = torch.where(playable, pick, -1).numpy()
            won[sl] = (_margins(net, xs, mask, h, li) > 0).numpy()
    return won, moves


def run_seed(x: np.ndarray, y: np.ndarray, k: int, seed: int, config: PixelConfig) -> SeedResult:
    """Train a k-pixel judge on one split, then measure it alone and under debate."""
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    started = time.perf_counter()
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=config.test_size, random_state=seed, stratify=y
    )
    net = train_judge(x_tr, y_tr, k, config, seed)
    random_correct = random_pixel_accuracy(net, x_te, y_te, k, config.random_masks, seed)
    debated_x, debated_y = x_te[: config.max_test], y_te[: config.max_test]
    n = len(debated_x)
    # Nine games per image, one per wrong label (the paper's pre-commit setting).
    liars = np.array([[c for c in range(N_CLASSES) if c != t] for t in debated_y])
    games_x = np.repeat(debated_x, N_CLASSES - 1, axis=0)
    games_h = np.repeat(debated_y, N_CLASSES - 1)
    won, moves = play_debates(
        net, games_x, games_h, liars.reshape(-1), k, lookahead=config.lookahead, first=config.first
    )
    per_image = won.reshape(n, N_CLASSES - 1)
    examples = []
    for i in range(min(n, 4)):
        j = int(np.argmin(per_image[i])) if not per_image[i].all() else 0
        examples.append(
            {
                "label": int(debated_y[i]),
                "liar": int(liars[i, j]),
                "honest_won": bool(per_image[i, j]),
                "pixels": [int(p) for p in moves[i * (N_CLASSES - 1) + j]],
                "image": [round(float(v), 4) for v in debated_x[i]],
            }
        )
    return SeedResult(
        k=k,
        seed=seed,
        n_test=len(x_te),
        random_correct=random_correct,
        n_debated=n,
        debate_wins=int(per_image.all(axis=1).sum()),
        game_wins=int(won.sum()),
        games=int(won.size),
        seconds=round(time.perf_counter() - started, 2),
        examples=examples,
    )


def summarize(results: list[SeedResult]) -> dict[str, Any]:
    """Per k: judge-alone and debate accuracy pooled over seeds, with Wilson 95% intervals."""
    out: dict[str, Any] = {}
    for k in sorted({r.k for r in results}):
        rows = [r for r in results if r.k == k]
        n_random = sum(r.n_test for r in rows)
        n_debate = sum(r.n_debated for r in rows)
        random_acc = wilson_interval(sum(r.random_correct for r in rows), n_random)
        debate_acc = wilson_interval(sum(r.debate_wins for r in rows), n_debate)
        games = wilson_interval(sum(r.game_wins for r in rows), sum(r.games for r in rows))
        out[str(k)] = {
            "random_acc": _interval_dict(random_acc, [r.random_correct / r.n_test for r in rows]),
            "debate_acc": _interval_dict(debate_acc, [r.debate_wins / r.n_debated for r in rows]),
            "game_win_rate": _interval_dict(games, [r.game_wins / r.games for r in rows]),
            "paper_mnist": PAPER_MNIST.get(k),
        }
    return out


def _interval_dict(interval: Interval, per_seed: list[float]) -> dict[str, Any]:
    return interval.as_dict() | {"per_seed": [round(v, 4) for v in per_seed]}


def run_pixel_debate(
    config: PixelConfig, out: Path | None = None, *, progress: bool = True
) -> dict[str, Any]:
    """Every (k, seed) of `config`; write `metrics.json` and `pixel_debate.png` into `out`."""
    import torch
    from tqdm.auto import tqdm

    config.check()
    started = time.perf_counter()
    # One thread: these nets are tiny, and on a busy 2-core machine a second OpenMP thread
    # spin-waits for a core (training ran 5x slower with two threads at load 16).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y = load_digit_images()
        jobs = [(k, s) for k in config.pixels for s in range(config.seeds)]
        results = []
        for k, seed in tqdm(jobs, desc="pixel debate", unit="judge", disable=not progress):
            results.append(run_seed(x, y, k, seed, config))
    finally:
        torch.set_num_threads(threads)
    metrics = {
        "dataset": "sklearn load_digits (8x8, 1797 images)",
        "random_acc_means": "judge alone: k random nonzero pixels, argmax over 10 classes",
        "debate_acc_means": "honest agent beats all 9 pre-committed liars (judge: 1 of 2 labels)",
        "config": asdict(config),
        "pixels": summarize(results),
        "runs": [asdict(r) for r in results],
        "seconds": round(time.perf_counter() - started, 1),
    }
    if out is not None:
        from charter.oversight.plots import plot_pixel_debate
        from charter.records import canonical_json
        from charter.runs import atomic_write_text

        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "metrics.json", _pretty(canonical_json(metrics)))
        plot_pixel_debate(metrics, out / "pixel_debate.png")
    return metrics


def _pretty(text: str) -> str:
    import json

    return json.dumps(json.loads(text), indent=2) + "\n"


def format_table(metrics: dict[str, Any]) -> str:
    """The docs/oversight.md table: ours (8×8 digits) next to the paper's MNIST numbers."""
    lines = [
        "| k | judge alone (random pixels) | after debate | paper MNIST: alone → debate |",
        "|---|---|---|---|",
    ]
    for k, row in metrics["pixels"].items():
        paper = row["paper_mnist"]
        ref = f"{paper['random_acc']:.1%} → {paper['debate_acc']:.1%}" if paper else "–"
        lines.append(f"| {k} | {_pct(row['random_acc'])} | {_pct(row['debate_acc'])} | {ref} |")
    return "\n".join(lines) + "\n"


def _pct(d: dict[str, Any]) -> str:
    return f"{d['value']:.1%} [{d['low']:.1%}, {d['high']:.1%}]"
