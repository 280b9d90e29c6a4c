"""The human-readable side of an analysis: the opinion map (PNG) and `report.html`.

Every piece of statement text is public input and goes through `html.escape`; the page has no
script and loads nothing but the map image beside it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from charter.collective.analysis import Analysis, AnalysisSummary, StatementSummary
    from charter.collective.stats import Direction

PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")


def write_opinion_map(result: Analysis, path: Path) -> None:
    """Participants in the PCA plane coloured by group (grey: not grouped), and group centres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy = result.projection.participants
    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    outside = result.labels < 0
    if outside.any():
        ax.scatter(xy[outside, 0], xy[outside, 1], s=6, c="#bbbbbb", label="not grouped")
    for g, gid in enumerate(result.group_ids):
        members = result.labels == g
        color = PALETTE[g % len(PALETTE)]
        ax.scatter(
            xy[members, 0], xy[members, 1], s=9, c=color, alpha=0.7,
            label=f"group {gid} ({int(members.sum())})",
        )  # fmt: skip
        if members.any():
            cx, cy = xy[members].mean(axis=0)
            ax.scatter([cx], [cy], s=160, c=color, marker="X", edgecolors="black")
    ratio = result.projection.explained_variance_ratio
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
    source = "export groups" if result.clustering is None else f"k-means, k={result.clustering.k}"
    ax.set_title(f"Opinion map: {int(result.in_conv.sum())} participants grouped ({source})")
    ax.axhline(0, color="#dddddd", lw=0.8, zorder=0)
    ax.axvline(0, color="#dddddd", lw=0.8, zorder=0)
    ax.legend(loc="best", fontsize=8, markerscale=1.5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _statement_row(s: StatementSummary, gids: list[str], extra: str = "") -> str:
    cells = "".join(
        f"<td>{_pct(s.groups[g].pa)} <small>({s.groups[g].na}/{s.groups[g].ns})</small></td>"
        for g in gids
    )
    return (
        f"<tr><td>{html.escape(s.statement_id)}</td><td>{html.escape(s.text)}</td>"
        f"<td>{s.gic:.3f}</td>{cells}{extra}</tr>"
    )


def render_report(summary: AnalysisSummary, map_file: str | None = "opinion_map.png") -> str:
    """The whole report as one HTML page (escaped; no scripts)."""
    by_id = {s.statement_id: s for s in summary.statements}
    gids = [str(g.id) for g in summary.groups]
    head_groups = "".join(f"<th>agree in group {html.escape(g)}</th>" for g in gids)
    head = f"<tr><th>id</th><th>statement</th><th>GIC</th>{head_groups}</tr>"

    def table(ids: list[str]) -> str:
        rows = "".join(_statement_row(by_id[i], gids) for i in ids)
        return f"<table>{head}{rows}</table>"

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>Collective constitution: analysis</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em}",
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em;"
        "vertical-align:top;text-align:left}small{color:#666}",
        "</style></head><body>",
        "<h1>Collective constitution: analysis</h1>",
        f"<p>Source: <code>{html.escape(summary.source.source)}</code>. "
        f"{summary.n_participants} participants ({summary.n_in_conv} grouped), "
        f"{summary.n_statements} statements ({summary.n_moderated_out} moderated out), "
        f"{summary.n_votes} votes. Agree = +1.</p>",
    ]
    if summary.clustering is not None:
        sil = ", ".join(f"k={k}: {v:.3f}" for k, v in summary.clustering.silhouettes.items())
        parts.append(
            f"<p>Groups: k-means ({html.escape(summary.clustering.method)}), "
            f"k = {summary.clustering.k} chosen by silhouette ({html.escape(sil)}).</p>"
        )
    else:
        parts.append("<p>Groups: the Polis export's own group ids.</p>")
    if map_file:
        parts.append(f"<img src='{html.escape(map_file)}' alt='opinion map' width='640'>")
    parts.append("<h2>Groups</h2><ul>")
    for g in summary.groups:
        parts.append(f"<li>group {g.id}: {g.size} participants</li>")
    parts.append("</ul>")
    parts.append("<h2>Highest group-informed consensus (GIC)</h2>")
    parts.append(table(summary.top_gic))
    directions: tuple[Direction, ...] = ("agree", "disagree")
    for direction in directions:
        picks = summary.consensus.get(direction, [])
        parts.append(f"<h2>Consensus ({direction}, all participants pooled)</h2>")
        parts.append(table([p.statement_id for p in picks]) if picks else "<p>none</p>")
    parts.append("<h2>Most divisive (largest gap between groups' agree rates)</h2>")
    parts.append(table(summary.divisive))
    for g in summary.groups:
        parts.append(f"<h2>Representative of group {g.id}</h2>")
        rows = "".join(
            _statement_row(
                by_id[r.statement_id],
                gids,
                f"<td>{html.escape(r.direction)}s, repness {r.repness:.2f} "
                f"(z = {r.repness_test:.2f})</td>",
            )
            for r in g.representative
        )
        parts.append(
            f"<table>{head[:-5]}<th>why</th></tr>{rows}</table>" if rows else "<p>none</p>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)
