"""`report.html`: one self-contained page that says what a run did and how the models compare.

Reads an evaluation folder (`metrics.json`, `samples.jsonl`) and, given the run folder, the
run's `config.yaml`, its constitution and the SL-CAI samples (`sl/samples.jsonl`). The page has
no external resources: CSS is inline and the plots are base64 PNGs drawn with matplotlib's Agg
backend. It is rendered by jinja2 with autoescaping on, so every model answer, prompt, critique
and name is HTML-escaped; text blocks carry `lang` and `dir` (Arabic right-to-left).
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from charter.errors import CharterError
from charter.evaluate.goal import goal
from charter.evaluate.options import AXES, HARMFUL_SETS, METRICS, SAMPLES
from charter.runs import atomic_write_text

RTL_LANGS = frozenset({"ar", "he", "fa", "ur"})
EXAMPLES_PER_SET = 4
SL_EXAMPLES = 4
TEMPLATE = "report.html.j2"


def text_dir(lang: str | None) -> str:
    """`rtl` for right-to-left languages, else `auto` (the browser decides per block).

    >>> text_dir("ar"), text_dir("en")
    ('rtl', 'auto')
    """
    return "rtl" if lang in RTL_LANGS else "auto"


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _err(value: float | None, lo: float | None, hi: float | None) -> tuple[float, float]:
    if value is None or lo is None or hi is None:
        return 0.0, 0.0
    return max(value - lo, 0.0), max(hi - value, 0.0)


def elo_plot(metrics: dict[str, Any]) -> str | None:
    """Harmlessness Elo against helpfulness Elo with 95% intervals (the CAI paper's main
    figure); None when no model has both ratings."""
    points = []
    for name, m in metrics["models"].items():
        h = m.get("elo", {}).get("harmlessness", {})
        p = m.get("elo", {}).get("helpfulness", {})
        if h.get("rating") is not None and p.get("rating") is not None:
            points.append((name, p, h))
    if len(points) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for i, (name, p, h) in enumerate(points):
        xerr = _err(p["rating"], p["ci_low"], p["ci_high"])
        yerr = _err(h["rating"], h["ci_low"], h["ci_high"])
        ax.errorbar(
            p["rating"],
            h["rating"],
            xerr=[[xerr[0]], [xerr[1]]],
            yerr=[[yerr[0]], [yerr[1]]],
            fmt="o",
            capsize=4,
            color=f"C{i}",
            label=name,
        )
        ax.annotate(name, (p["rating"], h["rating"]), textcoords="offset points", xytext=(6, 6))
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(0, color="grey", lw=0.6)
    anchor = next(iter(metrics["models"]))
    ax.set_xlabel(f"helpfulness Elo (vs {anchor})")
    ax.set_ylabel(f"harmlessness Elo (vs {anchor})")
    ax.set_title("Harmlessness vs helpfulness (95% bootstrap intervals)", fontsize=9)
    ax.legend(fontsize=8)
    return _png(fig)


def refusal_plot(metrics: dict[str, Any]) -> str:
    """Harmful compliance and over-refusal per model, with Wilson 95% intervals."""
    plt = _pyplot()
    names = list(metrics["models"])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(names) + 2), 3.4))
    width = 0.38
    for j, (key, label) in enumerate(
        [("harmful_compliance", "harmful compliance"), ("over_refusal", "over-refusal")]
    ):
        vals, lo, hi = [], [], []
        for n in names:
            r = metrics["models"][n][key]
            v = r["rate"] if r["rate"] is not None else 0.0
            e = _err(r["rate"], r["ci_low"], r["ci_high"])
            vals.append(v)
            lo.append(e[0])
            hi.append(e[1])
        xs = [i + (j - 0.5) * width for i in range(len(names))]
        ax.bar(xs, vals, width, yerr=[lo, hi], capsize=3, label=label, color=f"C{j + 3}")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("rate (lower is better)")
    ax.legend(fontsize=8)
    return _png(fig)


def winrate_plot(metrics: dict[str, Any]) -> str | None:
    """Each pair's win rate per axis with its bootstrap 95% interval; None without pairs."""
    rows = [(axis, r) for axis in AXES for r in metrics.get("pairwise", {}).get(axis, [])]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 0.45 * len(rows) + 1.2))
    labels = []
    for i, (axis, r) in enumerate(rows):
        e = _err(r["win_rate_a"], r["ci_low"], r["ci_high"])
        colour = "C0" if axis == "harmlessness" else "C2"
        ax.barh(i, r["win_rate_a"], xerr=[[e[0]], [e[1]]], capsize=3, color=colour)
        labels.append(f"{r['model_a']} vs {r['model_b']} ({axis})")
    ax.axvline(0.5, color="grey", ls="--", lw=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("win rate of the first model (ties count half)")
    return _png(fig)


def _read_jsonl_dicts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _constitution_rows(run_dir: Path | None, name: str) -> tuple[str, list[dict[str, Any]], str]:
    """(name, principle rows, note) of the run's constitution; rows empty if unreadable."""
    from charter.constitution.load import load_constitution, read_constitution_file

    try:
        if run_dir is not None and (run_dir / "constitution.yaml").exists():
            c = read_constitution_file(run_dir / "constitution.yaml")
            note = f"{run_dir / 'constitution.yaml'}"
        else:
            c = load_constitution(name)
            note = f"constitution {name!r} named in the evaluation config"
    except CharterError as e:
        return name, [], f"could not be read: {e}"
    rows = [
        {
            "id": p.id,
            "text": p.comparison or p.critique or "",
            "kind": "comparison" if p.comparison else "critique",
            "tags": ", ".join(p.tags),
            "sources": [
                f"{s.kind}: {s.ref}" + (f" — {s.note}" if s.note else "") for s in p.sources
            ],
        }
        for p in c.principles
    ]
    return c.name, rows, f"{note}, sha256 {c.compute_sha256()[:12]}…"


def eval_examples(samples: Sequence[dict[str, Any]], models: Sequence[str]) -> list[dict[str, Any]]:
    """A few prompts per set with every model's answer side by side; prompts where the models
    disagree about refusing come first, since they show what training changed."""
    by_prompt: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for s in samples:
        by_prompt.setdefault((s["set"], s["lang"], s["prompt_id"]), {})[s["model"]] = s
    out = []
    for set_name in dict.fromkeys(k[0] for k in by_prompt):
        complete = [
            (k, v) for k, v in by_prompt.items() if k[0] == set_name and set(models) <= set(v)
        ]
        # Disagreements first; within that, languages take turns so each one shows up.
        turn = {
            k: i
            for lang in dict.fromkeys(k[1] for k, _ in complete)
            for i, (k, _) in enumerate(kv for kv in complete if kv[0][1] == lang)
        }
        complete.sort(key=lambda kv: (len({kv[1][m]["refusal"] for m in models}) == 1, turn[kv[0]]))
        for (set_, lang, pid), answers in complete[:EXAMPLES_PER_SET]:
            first = answers[models[0]]
            out.append(
                {
                    "change": _change(set_, answers, models),
                    "set": set_,
                    "lang": lang,
                    "dir": text_dir(lang),
                    "prompt_id": pid,
                    "category": first.get("category"),
                    "prompt": first["messages"][-1]["content"],
                    "answers": [
                        {
                            "model": m,
                            "text": answers[m]["answer"],
                            "refusal": answers[m]["refusal"],
                            "judgements": answers[m].get("judgements", []),
                        }
                        for m in models
                    ],
                }
            )
    return out


def _change(set_name: str, answers: dict[str, dict[str, Any]], models: Sequence[str]) -> str:
    """What training changed on one prompt, in words: on a harmful prompt the models that now
    refuse where the base complied (the goal), on a benign one those that now refuse (an
    over-refusal, shown so a reader can judge it)."""
    base, trained = models[0], models[1:]
    if answers[base]["refusal"]:
        newly = [m for m in trained if not answers[m]["refusal"]]
        verb = (
            "complied where the base refused"
            if set_name in HARMFUL_SETS
            else ("answered where the base refused")
        )
    else:
        newly = [m for m in trained if answers[m]["refusal"]]
        verb = (
            "refused where the base complied"
            if set_name in HARMFUL_SETS
            else ("refused a benign prompt the base answered: an over-refusal")
        )
    return f"{', '.join(newly)} {verb}" if newly else ""


def redteam_summary(run_dir: Path | None, models: dict[str, str]) -> dict[str, Any] | None:
    """The run's red-team stage (`redteam/metrics.json`), its targets named as the evaluation
    names them (`models`: name → spec): attacks, attack success, refusals, judged compliance."""
    path = None if run_dir is None else run_dir / "redteam" / "metrics.json"
    if path is None or not path.exists():
        return None
    m = json.loads(path.read_text(encoding="utf-8"))
    names = {spec: name for name, spec in models.items()}
    rows = [
        {
            "model": names.get(spec, spec),
            **{k: t[k] for k in ("attack_success", "refusal_rate", "judge_complied_rate")},
        }
        for spec, t in m["targets"].items()
    ]
    return {
        "n_attacks": m["n_attacks"],
        "config": m["config"],
        "rows": rows,
        "categories": sorted({c for t in m["targets"].values() for c in t["by_category"]}),
    }


def training_summary(run_dir: Path | None) -> dict[str, Any] | None:
    """The run's training evidence: SFT and DPO loss curves (their `loss.png`) and SL-CAI's
    acceptance per principle and rejection reasons (`sl/summary.json`)."""
    if run_dir is None:
        return None
    losses = [
        {"name": name, "png": base64.b64encode(png.read_bytes()).decode("ascii")}
        for name, png in (
            ("SFT", run_dir / "train" / "sft" / "loss.png"),
            ("DPO", run_dir / "train" / "dpo" / "loss.png"),
        )
        if png.exists()
    ]
    path = run_dir / "sl" / "summary.json"
    sl = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return {"losses": losses, "sl": sl} if losses or sl else None


def sl_examples(
    sl_samples: Sequence[dict[str, Any]], samples: Sequence[dict[str, Any]], models: Sequence[str]
) -> tuple[list[dict[str, Any]], bool]:
    """SL-CAI samples (initial answer, critiques, revisions) joined with the eval answers to
    the same prompt where there are any; the flag says whether any prompt was shared."""
    answers: dict[str, dict[str, str]] = {}
    for s in samples:
        answers.setdefault(s["prompt_id"], {})[s["model"]] = s["answer"]
    joined = [s for s in sl_samples if s.get("prompt_id") in answers]
    chosen = (joined or list(sl_samples))[:SL_EXAMPLES]
    out = []
    for s in chosen:
        lang = s.get("lang", "en")
        out.append(
            {
                "prompt_id": s.get("prompt_id"),
                "lang": lang,
                "dir": text_dir(lang),
                "prompt": s["messages"][-1]["content"] if s.get("messages") else "",
                "initial": s.get("initial", ""),
                "rounds": s.get("rounds", []),
                "final": s.get("final", ""),
                "eval_answers": [
                    {"model": m, "text": answers[s["prompt_id"]][m]}
                    for m in models
                    if s.get("prompt_id") in answers and m in answers[s["prompt_id"]]
                ],
            }
        )
    return out, bool(joined)


def render_report(
    metrics: dict[str, Any],
    samples: Sequence[dict[str, Any]],
    *,
    run_dir: Path | None = None,
    sl_samples: Sequence[dict[str, Any]] = (),
) -> str:
    """The report's HTML from already loaded data."""
    import jinja2

    models = list(metrics["models"])
    config = metrics.get("config", {})
    if run_dir is not None and (run_dir / "config.yaml").exists():
        config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
        config_source = str(run_dir / "config.yaml")
    else:
        config_text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        config_source = "evaluation options (metrics.json)"
    c_name, c_rows, c_note = _constitution_rows(run_dir, str(config.get("constitution", "udhr")))
    sl_rows, sl_joined = sl_examples(sl_samples, samples, models)
    labels = _label_summary(run_dir)
    categories = sorted({c for m in metrics["models"].values() for c in m.get("by_category", {})})
    langs = sorted({lang for m in metrics["models"].values() for lang in m.get("by_lang", {})})
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("charter.evaluate") / "templates")),
        autoescape=True,  # every model text, name and config value is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda x: "–" if x is None else f"{x:.0%}"
    env.filters["elo"] = lambda x: "–" if x is None else f"{x:+.0f}"
    return env.get_template(TEMPLATE).render(
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        run_name=run_dir.name if run_dir is not None else None,
        metrics=metrics,
        models=models,
        has_rm=any("rm" in m for m in metrics["models"].values()),
        axes=list(AXES),
        langs=langs,
        categories=categories,
        config_text=config_text,
        config_source=config_source,
        constitution_name=c_name,
        constitution_rows=c_rows,
        constitution_note=c_note,
        elo_langs=[m for m, v in metrics["models"].items() if v.get("elo_by_lang")],
        elo_png=elo_plot(metrics),
        refusal_png=refusal_plot(metrics),
        winrate_png=winrate_plot(metrics),
        examples=eval_examples(samples, models),
        sl_rows=sl_rows,
        sl_joined=sl_joined,
        labels=labels,
        label_banner=_label_banner(labels),
        online=_online_summaries(run_dir),
        goal=metrics.get("goal") or goal(metrics),
        training=training_summary(run_dir),
        redteam=redteam_summary(run_dir, config.get("models", {})),
        goal_checks=GOAL_NAMES,
        text_dir=text_dir,
    )


# The goal checks as the report's columns (charter.evaluate.goal).
GOAL_NAMES = {
    "harmful_halved": "harmful compliance halved",
    "harmful_lower": "harmful compliance lower",
    "over_refusal": "over-refusal ≤ base + 5 pts",
    "partial": "partial answers ≤ base + 5 pts",
    "helpfulness": "helpfulness win rate ≥ 0.45",
    "no_collapse": "no collapse",
}


def _online_summaries(run_dir: Path | None) -> list[dict[str, Any]]:
    """The online RL stages of the run (train/grpo, train/rloo): their metrics and curves."""
    out: list[dict[str, Any]] = []
    for algorithm in ("grpo", "rloo"):
        folder = None if run_dir is None else run_dir / "train" / algorithm
        if folder is None or not (folder / "metrics.json").exists():
            continue
        m = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        png = folder / "rl.png"
        b, a = m.get("before") or {}, m.get("after") or {}
        rows = [
            {"name": n, "before": (b.get("rewards") or {}).get(n),
             "after": (a.get("rewards") or {}).get(n)}
            for n in m.get("reward_names", [])
        ]  # fmt: skip
        out.append(
            {
                "algorithm": algorithm.upper(),
                "metrics": m,
                "rows": rows,
                "before": b,
                "after": a,
                "png": base64.b64encode(png.read_bytes()).decode("ascii") if png.exists() else None,
            }
        )
    return out


def _label_summary(run_dir: Path | None) -> dict[str, Any] | None:
    path = None if run_dir is None else run_dir / "label" / "summary.json"
    if path is None or not path.exists():
        return None
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return summary


def _label_banner(labels: dict[str, Any] | None) -> str | None:
    """A warning when the run's labeller is near chance, or was never measured."""
    if not labels:
        return None
    v, who = labels.get("validity"), labels.get("feedback", "?")
    if v is None:
        return (
            f"The labeller {who} was never measured on the HHH comparisons in the "
            f"{labels.get('config', {}).get('format', 'raw')} format: the soft labels that "
            "trained the RL-CAI model are of unknown validity."
        )
    if v.get("near_chance"):
        lo, hi = v["ci"]
        return (
            f"Warning: the labeller {who} is near chance: {v['accuracy']:.3f} [{lo:.3f}, "
            f"{hi:.3f}] on the 438 HHH comparisons, both orders averaged ({v['format']} format, "
            f"{v['date']}). The RL-CAI model was trained on labels close to noise."
        )
    return None


def write_report(eval_dir: Path, out: Path, run_dir: Path | None = None) -> Path:
    """Write `report.html` for the evaluation in `eval_dir` (and the run in `run_dir`)."""
    eval_dir, out = Path(eval_dir), Path(out)
    metrics_path = eval_dir / METRICS
    if not metrics_path.exists():
        raise CharterError(f"{metrics_path} does not exist: run `charter evaluate` first")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    samples = _read_jsonl_dicts(eval_dir / SAMPLES)
    sl = _read_jsonl_dicts(run_dir / "sl" / "samples.jsonl") if run_dir is not None else []
    html = render_report(metrics, samples, run_dir=run_dir, sl_samples=sl)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, html)
    return out
