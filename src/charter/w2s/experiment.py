"""The weak-to-strong procedure for one task and one (weak, strong) model pair, over seeds.

Per seed: split the task's train rows into halves A and B by near-duplicate group (seeded);
train the weak head on A's ground truth; it labels B with soft labels; train the strong student
on B's weak labels with each loss; train the strong ceiling on B's ground truth; score all three
on the fixed test split. Each (loss, seed) writes
`runs/<task>__<weak>__<strong>__<loss>__seed<k>.json` in the output folder as soon as it is
done; a rerun skips runs whose JSON exists with the same config hash (resumable), and redoes
those whose config changed.

`bootstrap` labels B through an intermediate model: two intermediate heads, each trained on
one half of B's weak labels, label the other half (cross-fitting, so no head labels rows it was
trained on); the student trains on those labels with cross-entropy.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from charter.errors import ConfigError
from charter.records import Strict, stable_id
from charter.runs import atomic_write_text
from charter.w2s.features import Features, check_model_spec, features_for_many
from charter.w2s.finetune import FinetuneConfig, is_finetunable
from charter.w2s.heads import HeadConfig, LinearHead, one_hot, train_head
from charter.w2s.losses import LOSSES, LossName, default_losses
from charter.w2s.pgr import exclusion_reason, performance_gap_recovered
from charter.w2s.tasks import Task, load_task

RUNS = "runs"


class W2SConfig(Strict):
    """One task × one model pair × losses × seeds."""

    task: str = Field(description="Task spec, e.g. persona:PATH or synthetic:2000.")
    weak: str = Field(description="Weak supervisor's model spec.")
    strong: str = Field(description="Strong student's (and ceiling's) model spec.")
    losses: list[LossName] = Field(default_factory=default_losses, min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    mode: Literal["probe", "finetune"] = "probe"
    head: HeadConfig = Field(default_factory=HeadConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    weak_train_limit: int | None = Field(
        None, ge=2, description="Train the weak model on at most this many rows of half A."
    )
    intermediate: str | None = Field(None, description="Model spec for the `bootstrap` loss.")

    def check(self) -> None:
        """Fail before any heavy work on an unusable combination."""
        for spec in (self.weak, self.strong, self.intermediate):
            if spec is not None:
                check_model_spec(spec)
        if "bootstrap" in self.losses and self.intermediate is None:
            raise ConfigError("loss `bootstrap` needs an intermediate model (--intermediate SPEC)")
        if self.mode == "finetune":
            if not is_finetunable(self.strong):
                raise ConfigError(
                    f"finetune mode trains the strong model with LoRA, so it must be `embedded` "
                    f"or `hf:PATH`, not {self.strong!r} (use --mode probe)"
                )
            if "bootstrap" in self.losses:
                raise ConfigError("the bootstrap loss is available in probe mode only")

    def finetuned(self, spec: str) -> bool:
        """Whether `spec` is trained end to end here (finetune mode, a transformer model)."""
        return self.mode == "finetune" and is_finetunable(spec)


def parse_losses(text: str) -> list[LossName]:
    """`"xent,logconf"` → `["xent", "logconf"]`, rejecting unknown names."""
    out: list[LossName] = []
    for name in filter(None, (p.strip() for p in text.split(","))):
        if name not in LOSSES:
            raise ConfigError(f"unknown loss {name!r}: expected one of {', '.join(LOSSES)}")
        out.append(name)
    if not out:
        raise ConfigError("no loss given")
    return out


def safe_name(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", spec)[:60]


def run_path(out: Path, task: Task, config: W2SConfig, loss: str, seed: int) -> Path:
    weak = safe_name(config.weak) + (
        f"_n{config.weak_train_limit}" if config.weak_train_limit is not None else ""
    )
    name = f"{task.name}__{weak}__{safe_name(config.strong)}__{loss}__seed{seed}"
    return out / RUNS / f"{name}.json"


def config_hash(task: Task, config: W2SConfig, loss: str, seed: int) -> str:
    return stable_id(
        task.texts_hash,
        config.task,
        config.weak,
        config.strong,
        loss,
        seed,
        config.mode,
        config.head.model_dump() if config.mode == "probe" else config.finetune.model_dump(),
        config.weak_train_limit,
        config.intermediate if loss == "bootstrap" else None,
    )


def split_halves(task: Task, seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Train rows → (A, B), whole near-duplicate groups at a time, about half each."""
    train = task.train_idx
    groups: dict[str, list[int]] = {}
    for i in train:
        groups.setdefault(task.groups[i], []).append(int(i))
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    a: list[int] = []
    b: list[int] = []
    for k in order:
        members = groups[keys[k]]
        (a if len(a) <= len(b) else b).extend(members)
    return np.array(sorted(a), dtype=np.int64), np.array(sorted(b), dtype=np.int64)


def _cross_fit_labels(
    x: Features, labels: NDArray[np.float32], seed: int, head: HeadConfig
) -> tuple[NDArray[np.float32], list[LinearHead]]:
    """Soft labels for every row from heads that never saw that row (2 folds)."""
    n = x.shape[0]
    fold = np.random.default_rng(seed + 7919).permutation(n) % 2
    out = np.zeros((n, 2), dtype=np.float32)
    heads = []
    for f in (0, 1):
        fit, pred = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        h = train_head(x[fit], labels[fit], loss="xent", seed=seed, config=head)
        out[pred] = h.predict_proba(x[pred])
        heads.append(h)
    return out, heads


Predict = Callable[[NDArray[np.int64]], NDArray[np.float64]]


def _fit(
    config: W2SConfig,
    task: Task,
    features: dict[str, Features],
    spec: str,
    rows: NDArray[np.int64],
    targets: NDArray[np.float32],
    *,
    loss: str,
    seed: int,
    progress: bool,
    desc: str,
) -> Predict:
    """Train `spec` on `rows` → a function giving class probabilities for other rows."""
    if config.finetuned(spec):
        from charter.w2s.finetune import finetune_classifier

        clf = finetune_classifier(
            spec,
            [task.texts[i] for i in rows],
            targets,
            loss=loss,
            seed=seed,
            config=config.finetune,
            progress=progress,
            desc=desc,
        )
        return lambda idx: clf.predict_proba([task.texts[i] for i in idx])
    x = features[spec]
    head = train_head(x[rows], targets, loss=loss, seed=seed, config=config.head)
    return lambda idx: head.predict_proba(x[idx])


def _correct(
    predict: Predict, idx: NDArray[np.int64], labels: NDArray[np.int64]
) -> NDArray[np.bool_]:
    pred = (predict(idx)[:, 1] > 0.5).astype(np.int64)
    return np.asarray(pred == labels, dtype=bool)


def _bits(correct: NDArray[np.bool_]) -> str:
    return "".join("1" if c else "0" for c in correct)


def run_experiment(
    config: W2SConfig,
    out: Path,
    *,
    task: Task | None = None,
    features: dict[str, Features] | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every (loss, seed) run of `config`, loaded from `out` when already done."""
    config.check()
    task = task or load_task(config.task)
    specs = [config.weak, config.strong] + (
        [config.intermediate] if config.intermediate and "bootstrap" in config.losses else []
    )
    specs = [s for s in specs if not config.finetuned(s)]  # probes need cached features
    results: list[dict[str, Any]] = []
    for seed in config.seeds:
        pending: list[str] = []
        for loss in config.losses:
            path = run_path(out, task, config, loss, seed)
            done = _load_done(path, config_hash(task, config, loss, seed))
            if done is None:
                pending.append(loss)
            else:
                results.append(done)
                if on_run:
                    on_run(done)
        if not pending:
            continue
        if features is None or any(s not in features for s in specs):
            features = {
                **(features or {}),
                **features_for_many(specs, task, cache_dir, progress=progress),
            }
        for record in _run_seed(config, task, features, seed, pending, progress):
            path = run_path(out, task, config, record["loss"], seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(record, indent=1) + "\n")
            results.append(record)
            if on_run:
                on_run(record)
    return results


def _load_done(path: Path, expected_hash: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # a torn file from a crash: redo the run
    return record if record.get("config_hash") == expected_hash else None


def _run_seed(
    config: W2SConfig,
    task: Task,
    features: dict[str, Features],
    seed: int,
    losses: list[str],
    progress: bool = False,
) -> list[dict[str, Any]]:
    # long: one seed's experiment, weak → strong → ceiling, whose steps share the split and the
    # features
    started = time.perf_counter()
    a, b = split_halves(task, seed)
    if config.weak_train_limit is not None and len(a) > config.weak_train_limit:
        a = np.sort(np.random.default_rng(seed).choice(a, config.weak_train_limit, replace=False))
    test = task.test_idx
    y = task.labels

    def fit(
        spec: str, rows: NDArray[np.int64], targets: NDArray[np.float32], loss: str, desc: str
    ) -> Predict:
        return _fit(
            config,
            task,
            features,
            spec,
            rows,
            targets,
            loss=loss,
            seed=seed,
            progress=progress,
            desc=f"{desc} seed {seed}",
        )

    weak = fit(config.weak, a, one_hot(y[a]), "xent", "weak")
    weak_soft = weak(b).astype(np.float32)
    weak_label_acc = float(np.mean((weak_soft[:, 1] > 0.5) == (y[b] == 1)))
    ceiling = fit(config.strong, b, one_hot(y[b]), "xent", "ceiling")
    weak_ok = _correct(weak, test, y[test])
    ceiling_ok = _correct(ceiling, test, y[test])
    base_seconds = time.perf_counter() - started
    records = []
    for loss in losses:
        t0 = time.perf_counter()
        extra: dict[str, Any] = {}
        if loss == "bootstrap":
            assert config.intermediate is not None  # checked by config.check()
            xm = features[config.intermediate]
            labels, mids = _cross_fit_labels(xm[b], weak_soft, seed, config.head)
            extra["intermediate"] = config.intermediate
            accs = []
            for m in mids:
                pred = (m.predict_proba(xm[test])[:, 1] > 0.5).astype(np.int64)
                accs.append(float(np.mean(pred == y[test])))
            extra["intermediate_acc"] = float(np.mean(accs))
            student = fit(config.strong, b, labels, "xent", "student bootstrap")
        else:
            student = fit(config.strong, b, weak_soft, loss, f"student {loss}")
        student_ok = _correct(student, test, y[test])
        w, s, c = float(weak_ok.mean()), float(student_ok.mean()), float(ceiling_ok.mean())
        reason = exclusion_reason(w, c)
        records.append(
            {
                "task": config.task,
                "task_name": task.name,
                "weak": config.weak,
                "strong": config.strong,
                "loss": loss,
                "seed": seed,
                "mode": config.mode,
                "weak_acc": w,
                "student_acc": s,
                "ceiling_acc": c,
                "pgr": None if c == w else performance_gap_recovered(w, s, c),
                "excluded": reason,
                "n_test": len(test),
                "n_a": len(a),
                "n_b": len(b),
                "weak_label_acc": weak_label_acc,
                **extra,
                "head": config.head.model_dump(),
                **({"finetune": config.finetune.model_dump()} if config.mode == "finetune" else {}),
                "weak_train_limit": config.weak_train_limit,
                "seconds": round(base_seconds + time.perf_counter() - t0, 3),
                "config_hash": config_hash(task, config, loss, seed),
                # Per-item correctness on the test split, for bootstrap intervals across seeds.
                "test_correct": {
                    "weak": _bits(weak_ok),
                    "student": _bits(student_ok),
                    "ceiling": _bits(ceiling_ok),
                },
            }
        )
    return records
