"""PNG plots for oversight runs: judge accuracy per protocol, calibration, and pixel debate.

matplotlib is imported inside each function (Agg backend), and every file is written to a
temporary name first, so a crash never leaves half a PNG behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _save(fig: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_protocol_accuracy(metrics: dict[str, Any], path: Path) -> None:
    """Bars of judge accuracy per protocol with 95% intervals, and a chance line."""
    plt = _pyplot()
    names = list(metrics["protocols"])
    accs = [metrics["protocols"][n]["accuracy"] for n in names]
    values = [a["value"] for a in accs]
    errs = [[v - a["low"] for v, a in zip(values, accs, strict=True)],
            [a["high"] - v for v, a in zip(values, accs, strict=True)]]  # fmt: skip
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.bar(names, values, yerr=errs, capsize=4, color="#7570b3")
    ax.axhline(0.5, color="#999999", ls="--", lw=1, label="chance")
    ax.set_ylim(0, 1)
    ax.set_ylabel("judge accuracy (95% CI)")
    ax.set_title(f"judge {metrics['judge']}  ({metrics['n_questions']} questions)", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def plot_calibration(metrics: dict[str, Any], path: Path) -> None:
    """Reliability diagram: judge confidence against accuracy, one line per protocol."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    ax.plot([0.5, 1], [0.5, 1], color="#999999", ls="--", lw=1, label="perfect")
    for name, row in metrics["protocols"].items():
        bins = row["calibration"]["bins"]
        if bins:
            ax.plot(
                [b["confidence"] for b in bins],
                [b["accuracy"] for b in bins],
                marker="o",
                label=f"{name} (ECE {row['calibration']['ece']:.2f})",
            )
    ax.set_xlim(0.5, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("judge confidence")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_pixel_debate(metrics: dict[str, Any], path: Path) -> None:
    """Judge alone vs after debate per k, with the paper's MNIST numbers as hollow markers."""
    plt = _pyplot()
    ks = list(metrics["pixels"])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    width = 0.35
    for offset, key, label, color in (
        (-width / 2, "random_acc", "judge alone (random pixels)", "#d95f02"),
        (width / 2, "debate_acc", "after debate", "#1b9e77"),
    ):
        rows = [metrics["pixels"][k][key] for k in ks]
        xs = [i + offset for i in range(len(ks))]
        vals = [r["value"] for r in rows]
        err = [[v - r["low"] for v, r in zip(vals, rows, strict=True)],
               [r["high"] - v for v, r in zip(vals, rows, strict=True)]]  # fmt: skip
        ax.bar(xs, vals, width, yerr=err, capsize=4, color=color, label=label)
        paper = [metrics["pixels"][k]["paper_mnist"] for k in ks]
        px = [x for x, p in zip(xs, paper, strict=True) if p]
        py = [p[key] for p in paper if p]
        if px:
            ax.scatter(px, py, marker="D", facecolors="none", edgecolors="black", zorder=3)
    ax.scatter([], [], marker="D", facecolors="none", edgecolors="black", label="paper (MNIST)")
    ax.set_xticks(range(len(ks)), [f"k = {k} pixels" for k in ks])
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title("Pixel debate on 8×8 digits", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)
