"""`charter evaluate`: compare models on held-out prompts (`--models ...`), or evaluate a
labeller on multiple-choice evals (`evaluate mc`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import click

from charter.cli.options import (
    JSON,
    MODEL,
    MODEL_OPT,
    PROGRESS,
    REDO,
    SEED,
    executor_options,
    parse_key_values,
)
from charter.cli.vocabulary import CharterGroup
from charter.constitution.schema import PrinciplePool
from charter.evaluate.options import EvalOptions


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    """`("base=embedded",)` → `{"base": "embedded"}`, in the order given."""
    from charter.errors import ConfigError

    out: dict[str, str] = {}
    for value in values:
        name, sep, spec = value.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ConfigError(f"{flag} {value!r}: expected NAME=SPEC")
        if name.strip() in out:
            raise ConfigError(f"{flag}: {name.strip()!r} is given twice")
        out[name.strip()] = spec.strip()
    return out


@click.group(cls=CharterGroup, invoke_without_command=True)
@click.option(
    "--models",
    "model_args",
    multiple=True,
    metavar="NAME=SPEC",
    help="A model to compare (repeat; the first is the Elo anchor), e.g. base=embedded.",
)
@click.option(
    "--prompts",
    "prompt_args",
    multiple=True,
    metavar="SET=SPEC",
    help="red-team, borderline or helpful = builtin:NAME or a JSONL file (repeat). "
    "Default: the three builtin sets.",
)
@click.option(
    "--judge",
    default=None,
    help="Backend that judges pairs ('none' skips win rates and Elo). Default: the strongest "
    "installed offline model (`charter models list`).",
)
@click.option(
    "--judge-format",
    type=click.Choice(["raw", "chat", "pointwise"]),
    default=None,
    help="How the judge is asked (as `charter evaluate mc --format`). Default: "
    + EvalOptions.model_fields["judge_format"].get_default(),
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (required with --models): answers, judgements, metrics, report.",
)
@click.option(
    "--lang", "langs", multiple=True, type=click.Choice(["en", "ar"]), help="Repeat; default en."
)
@click.option(
    "--split",
    type=click.Choice(["train", "eval", "all"]),
    default="eval",
    show_default=True,
    help="Which split of the prompts (eval: held out from sl and label).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="N prompts per set/lang.")
@click.option(
    "--constitution",
    "constitution_spec",
    default="udhr",
    show_default=True,
    help="The constitution the judge uses: builtin NAME, a YAML/JSON FILE or collective:DIR.",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Most tokens per answer.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Prompts per backend call.",
)
@click.option(
    "--principles-per-pair",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Judge: principles asked per pair of answers.",
)
@click.option(
    "--principle-pool",
    type=click.Choice(get_args(PrinciplePool)),
    default="all",
    show_default=True,
    help="Judge: the principles drawn per pair: all, harm (none tagged helpfulness) or matched "
    "(tagged with the prompt's harm category).",
)
@click.option(
    "--bootstrap",
    "n_boot",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples of the Elo and win-rate intervals.",
)
@SEED
@click.option(
    "--mc",
    "mc_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A multiple-choice eval file (format of `evaluate mc`); each model's accuracy.",
)
@click.option(
    "--rm",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A reward model folder (`charter train rm`'s OUT): its reward of every answer.",
)
@click.option(
    "--model-opt",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="An option for one model's backend (or judge.KEY=VALUE), value read as YAML.",
)
@click.option("--resume", is_flag=True, help="Continue the evaluation in --out.")
@REDO
@click.option(
    "--inspect-log",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write one Inspect AI log per model (DIR/NAME.eval) that `inspect view` opens "
    "(needs charter[inspect]).",
)
@click.option("--report/--no-report", default=True, show_default=True, help="Write report.html.")
@JSON
@PROGRESS
@executor_options
@click.pass_context
def evaluate(
    ctx: click.Context,
    model_args: tuple[str, ...],
    prompt_args: tuple[str, ...],
    judge: str | None,
    judge_format: str | None,
    out: Path | None,
    langs: tuple[str, ...],
    split: str,
    limit: int | None,
    constitution_spec: str,
    max_new_tokens: int,
    batch_size: int,
    principles_per_pair: int,
    principle_pool: str,
    n_boot: int,
    seed: int,
    mc_files: tuple[Path, ...],
    rm: Path | None,
    model_opt: tuple[str, ...],
    resume: bool,
    redo: tuple[str, ...],
    inspect_log: Path | None,
    report: bool,
    as_json: bool,
    progress: bool,
) -> None:
    """Compare models: harmful compliance, over-refusal, pairwise win rates and Elo.

    \b
    charter evaluate --models base=embedded --models sl=hf:runs/x/train/sft/merged \\
        --judge embedded --out runs/x/eval
    writes answers, judgements, metrics.json, samples.jsonl and report.html into --out.
    `charter evaluate mc --data FILE` evaluates a labeller on multiple-choice evals.
    """
    # long: a command: its options become the EvalOptions, the run folder and the stage call
    if ctx.invoked_subcommand is not None:
        return
    from charter.errors import ConfigError

    if not model_args:
        raise click.UsageError(
            "give --models NAME=SPEC (at least one) and --out DIR, or a subcommand (mc)"
        )
    if out is None:
        raise click.UsageError("--out DIR is required with --models")
    from pydantic import ValidationError

    from charter.backends.pool import BackendPool
    from charter.evaluate.options import DEFAULT_PROMPTS
    from charter.evaluate.stage import EVALUATE, EvalInputs
    from charter.jsonl import describe_validation_error
    from charter.runs import RunFolder
    from charter.stage import StageContext

    options: dict[str, dict[str, Any]] = {}
    for key, value in parse_key_values(model_opt, "--model-opt").items():
        name, dot, opt = key.partition(".")
        if not dot or not opt:
            raise ConfigError(f"--model-opt {key!r}: expected NAME.KEY=VALUE")
        options.setdefault(name, {})[opt] = value
    try:
        opts = EvalOptions(
            models=_pairs(model_args, "--models"),
            prompts=_pairs(prompt_args, "--prompts") if prompt_args else dict(DEFAULT_PROMPTS),
            langs=list(langs) or ["en"],
            split=split,
            limit=limit,
            judge=_judge_or_default(judge),
            constitution=constitution_spec,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            seed=seed,
            mc=[str(p) for p in mc_files],
            rm=str(rm) if rm is not None else None,
            backend_options=options,
            principles_per_pair=principles_per_pair,
            principle_pool=principle_pool,
            n_boot=n_boot,
            **({"judge_format": judge_format} if judge_format else {}),
        )
    except ValidationError as e:
        raise ConfigError(f"charter evaluate: {describe_validation_error(e)}") from None
    config = {"command": "evaluate", "evaluate": opts.model_dump(mode="json")}
    folder = RunFolder.open(out, config, resume=resume, redo=redo)
    inputs = EvalInputs(report=out / "report.html" if report else None)
    with folder, BackendPool(opts.batch_size) as pool:
        stage_ctx = StageContext(folder, pool, None, progress and not as_json, seed)
        metrics = EVALUATE.run(stage_ctx, inputs, opts).metrics
    if inspect_log is not None:
        from charter.inspectai.logs import write_inspect_logs

        for path in write_inspect_logs(out, inspect_log):
            click.echo(f"wrote {path}", err=True)
    if as_json:
        click.echo(json.dumps({"out": str(out), "models": metrics["models"]}))
        return
    click.echo(summary_table(metrics))
    click.echo(f"{out / 'metrics.json'}" + (f", {out / 'report.html'}" if report else ""))


def _judge_or_default(judge: str | None) -> str | None:
    """`None` for 'none'; the strongest installed offline model when not given."""
    if judge is None:
        from charter.backends.catalog import strongest_installed

        return strongest_installed().spec
    return None if judge.strip().lower() == "none" else judge


def _fmt(x: dict[str, Any] | None) -> str:
    if not x or x.get("rate", x.get("rating")) is None:
        return "–"
    if "rate" in x:
        return f"{x['rate']:.0%} [{x['ci_low']:.0%}, {x['ci_high']:.0%}] n={x['n']}"
    return f"{x['rating']:+.0f} [{x['ci_low']:+.0f}, {x['ci_high']:+.0f}]"


def summary_table(metrics: dict[str, Any]) -> str:
    """The terminal summary: one row per model."""
    head = ("model", "harmful compliance", "over-refusal", "Elo harmless", "Elo helpful")
    rows = [head]
    for name, m in metrics["models"].items():
        elo = m.get("elo", {})
        rows.append(
            (
                name,
                _fmt(m["harmful_compliance"]),
                _fmt(m["over_refusal"]),
                _fmt(elo.get("harmlessness")),
                _fmt(elo.get("helpfulness")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


@evaluate.command("mc")
@MODEL
@MODEL_OPT
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSONL of {prompt, corrects, incorrects}, e.g. the CAI paper's 438HHHEvaluations.jsonl.",
)
@click.option("--swap", is_flag=True, help="Also ask with (A)/(B) swapped and average.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N items.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["raw", "chat", "pointwise"]),
    default="raw",
    show_default=True,
    help="raw: the file's prompt as text; chat: as a user turn of the model's chat template; "
    "pointwise: each answer judged alone (yes/no), the two judgements compared.",
)
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Labelling examples of --constitution shown first as chat turns (needs --format chat).",
)
@click.option(
    "--principles",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Ask each item under the first N comparison principles of --constitution instead of "
    "its own question, and average (an ensemble; N times the cost). 0: the item's question.",
)
@click.option(
    "--constitution",
    default="udhr",
    show_default=True,
    help="Where --examples and --principles come from: a built-in name or a file.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for metrics.json and reliability.png (none: print only).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Questions per backend call.",
)
@JSON
@PROGRESS
def mc(
    model: str,
    model_opt: tuple[str, ...],
    data: Path,
    swap: bool,
    limit: int | None,
    fmt: str,
    examples: int,
    principles: int,
    constitution: str,
    out: Path | None,
    batch_size: int,
    as_json: bool,
    progress: bool,
) -> None:
    """Accuracy (Wilson 95% CI), letter bias and calibration of a backend as a labeller."""
    from charter.backends import check_spec
    from charter.backends.pool import BackendPool
    from charter.feedback.mc_eval import evaluate_mc, mc_format, read_mc, write_mc_result

    check_spec(model)
    items = read_mc(data)[:limit]
    form = mc_format(fmt, examples=examples, principles=principles, constitution=constitution)
    if swap:
        from charter.feedback.mc_eval import swap_options

        for item in items:
            swap_options(item)  # fail on a bad item before loading any model
    options = parse_key_values(model_opt, "--model-opt")
    with BackendPool(batch_size) as pool:
        backend = pool.get(model, options)
        result = evaluate_mc(items, backend, swap=swap, progress=progress and not as_json, fmt=form)
        from charter.evaluate import validity
        from charter.feedback.labeler import model_fingerprint

        kept = validity.record(
            result, model_sha256=model_fingerprint(backend), data=data, spec=model
        )
    result["data"] = str(data)
    result["validity_record"] = str(kept) if kept else None
    if out is not None:
        write_mc_result(result, out)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{data.name}: n={result['n']}, accuracy {result['accuracy']:.3f} "
        f"(95% CI {result['ci_low']:.3f}–{result['ci_high']:.3f}; chance {result['chance']:.2f}), "
        f"ECE {result['ece']:.3f}"
        + (
            f", letter bias {result['letter_bias']:+.3f}"
            if result["letter_bias"] is not None
            else ""
        )
    )
    if swap:
        s = result["swap"]
        click.echo(
            f"  both orders averaged: accuracy {s['accuracy']:.3f} "
            f"(95% CI {s['ci_low']:.3f}–{s['ci_high']:.3f}), ECE {s['ece']:.3f}, "
            f"orders agree {s['order_agreement']:.0%}"
        )
    if out is not None:
        click.echo(f"  {out / 'metrics.json'}, {result['plot']}")


@evaluate.command("classify")
@click.option(
    "--answers",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help='JSONL of {"id", "prompt", "answer", "lang"?}; rows that also carry a "label" '
    "(refusal, partial, harmful, compliance) are scored against it.",
)
@click.option(
    "--judge",
    default=None,
    help="Backend spec of the harm judge (default: the strongest installed offline model, "
    "see `charter models list`); 'none': no harm judge, so no answer is called harmful.",
)
@click.option("--judge-opt", multiple=True, metavar="KEY=VALUE", help="Option of the judge.")
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="The harm judge's probability from which an answer is harmful.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write one verdict per row here (JSONL), atomically.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Answers per judge call.",
)
@JSON
@PROGRESS
def classify(
    answers: Path,
    judge: str | None,
    judge_opt: tuple[str, ...],
    threshold: float,
    out: Path | None,
    batch_size: int,
    as_json: bool,
    progress: bool,
) -> None:
    """One verdict per answer: refusal, partial (refuses in part, lectures or deflects),
    harmful (materially helps a harmful request) or compliance, each with its probability and
    the method that decided (pattern, classifier, judge)."""
    from collections import Counter

    from charter.backends import check_spec
    from charter.backends.pool import BackendPool
    from charter.evaluate.graders import VERDICTS, HarmJudge, grade, read_answers, write_grades
    from charter.evaluate.refusal import load_detector
    from charter.jsonl import iter_jsonl_lines

    rows = read_answers(answers)
    judge = _judge_or_default(judge)
    if judge is not None:
        check_spec(judge)
    labels = [
        obj.get("label") if isinstance(obj, dict) else None for _, obj in iter_jsonl_lines(answers)
    ]
    with BackendPool(batch_size) as pool:
        harm = None
        if judge is not None:
            harm = HarmJudge(pool.get(judge, parse_key_values(judge_opt, "--judge-opt"), "judge"))
        detector = load_detector()
        grades = grade(
            rows,
            detector,
            harm,
            threshold=threshold,
            chunk=batch_size,
            progress=progress and not as_json,
        )
    if out is not None:
        write_grades(grades, out)
    counts = Counter(g.verdict for g in grades)
    result: dict[str, Any] = {
        "answers": str(answers),
        "n": len(grades),
        "judge": judge,
        "threshold": threshold,
        "counts": {v: counts.get(v, 0) for v in VERDICTS},
        "out": str(out) if out else None,
    }
    if all(label in VERDICTS for label in labels):
        result["validation"] = _validation(answers, grades, detector)
    if as_json:
        from charter.bench.machine import machine

        result["machine"] = machine(None)
        result["grades"] = [g.model_dump(mode="json") for g in grades]
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.echo(
        f"{answers.name}: {len(grades)} answers: "
        + ", ".join(f"{v} {counts.get(v, 0)}" for v in VERDICTS)
        + (f" (harm judge {judge})" if judge else " (no harm judge)")
    )
    for name, v in result.get("validation", {}).items():
        if name == "labellers":
            continue
        shown = {k: _f1_text(v[k]) for k in ("refusal", "harmful", "partial", "detector_refusal")}
        click.echo(
            f"  {name} (n {v['n']}): refusal F1 {shown['refusal']}, harmful F1 "
            f"{shown['harmful']}, partial F1 {shown['partial']}; the refusal detector alone: "
            f"refusal F1 {shown['detector_refusal']}"
        )
    if out is not None:
        click.echo(f"  verdicts: {out}")


def _f1_text(s: dict[str, Any]) -> str:
    if s["f1"] is None:
        return "n/a (no positives)"
    lo, hi = s["f1_ci"]
    return f"{s['f1']:.3f} [{lo:.3f}, {hi:.3f}]"


def _validation(answers: Path, grades: list[Any], detector: Any) -> dict[str, Any]:
    """The graders' figures against the rows' labels (the published set has two labels)."""
    from charter.evaluate.graders import LabelledAnswer, validate
    from charter.jsonl import iter_jsonl_lines

    objs = [obj for _, obj in iter_jsonl_lines(answers)]
    labelled = [
        LabelledAnswer.model_validate(
            {
                "prompt_id": o.get("prompt_id", o["id"]),
                "lang": o.get("lang") or "en",
                "source_model": o.get("source_model", "?"),
                "set": o.get("set", "?"),
                "first_label": o.get("first_label", o["label"]),
                "second_label": o.get("second_label", o["label"]),
                **{k: o[k] for k in ("id", "prompt", "answer", "label", "note") if k in o},
            }
        )
        for o in objs
    ]
    refusals = [v.refusal for v in detector.predict([a.answer for a in labelled])]
    result = validate(labelled, grades, refusals)
    if not all("first_label" in o and "second_label" in o for o in objs):
        result.pop("labellers", None)  # one labelling only: no agreement to report
    return result
