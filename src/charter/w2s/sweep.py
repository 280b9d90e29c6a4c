"""A sweep: tasks × (weak, strong) model pairs × losses × seeds, from a YAML file, resumable.

```yaml
out: runs/w2s-sweep          # relative paths are taken from the YAML file's folder
tasks: [persona:../shared/data/model-written-evals/persona@limit=4000, synthetic:3000]
pairs:
  - {weak: tfidf, strong: embedded}
  - {weak: embedded@layer=2, strong: embedded}
losses: [xent, logconf]
seeds: 5                     # or a list: [0, 1, 2, 3, 4]
head: {epochs: 20}           # charter.w2s.heads.HeadConfig
```

Each task is loaded, and all its features computed (or read from the cache), once; every run
writes its JSON as soon as it finishes, and a rerun skips runs already on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from charter.errors import ConfigError, InputError
from charter.jsonl import describe_validation_error
from charter.records import Strict
from charter.w2s.experiment import W2SConfig, run_experiment
from charter.w2s.features import features_for_many
from charter.w2s.finetune import FinetuneConfig
from charter.w2s.heads import HeadConfig
from charter.w2s.losses import LossName, default_losses
from charter.w2s.report import write_report
from charter.w2s.tasks import load_task


class ModelPair(Strict):
    weak: str
    strong: str
    weak_train_limit: int | None = Field(None, ge=2)


class SweepConfig(Strict):
    out: str = "runs/w2s-sweep"
    tasks: list[str] = Field(min_length=1)
    pairs: list[ModelPair] = Field(min_length=1)
    losses: list[LossName] = Field(default_factory=default_losses, min_length=1)
    seeds: int | list[int] = 5
    mode: Literal["probe", "finetune"] = "probe"
    head: HeadConfig = Field(default_factory=HeadConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    intermediate: str | None = None
    cache_dir: str | None = None

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def experiments(self) -> list[W2SConfig]:
        return [
            W2SConfig(
                task=task,
                weak=pair.weak,
                strong=pair.strong,
                losses=self.losses,
                seeds=self.seed_list(),
                mode=self.mode,
                head=self.head,
                finetune=self.finetune,
                weak_train_limit=pair.weak_train_limit,
                intermediate=self.intermediate,
            )
            for task in self.tasks
            for pair in self.pairs
        ]


def load_sweep_config(path: Path) -> SweepConfig:
    if not path.exists():
        raise InputError(path, None, "file not found")
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(
            path, None if mark is None else mark.line + 1, f"invalid YAML: {e}"
        ) from None
    if not isinstance(raw, dict):
        raise InputError(path, None, "expected a mapping with `tasks` and `pairs`")
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as e:
        raise InputError(path, None, describe_validation_error(e)) from None
    # Relative paths in the file are relative to the file, not to wherever charter runs.
    base = path.resolve().parent
    config.out = str(base / Path(config.out).expanduser())
    if config.cache_dir:
        config.cache_dir = str(base / Path(config.cache_dir).expanduser())
    config.tasks = [_resolve_task(t, base) for t in config.tasks]
    return config


def _resolve_task(spec: str, base: Path) -> str:
    kind, sep, rest = spec.partition(":")
    if kind in ("persona", "ai-risk", "advanced-ai-risk", "prefs") and sep:
        arg, at, opts = rest.partition("@")
        arg = str((base / Path(arg).expanduser()).resolve())
        return f"{kind}:{arg}{at}{opts}"
    return spec


def run_sweep(config: SweepConfig, *, progress: bool = True) -> tuple[list[dict[str, Any]], str]:
    """Run (or resume) every run of the sweep; write the report; return summary rows and table."""
    from tqdm.auto import tqdm

    experiments = config.experiments()
    for e in experiments:
        e.check()
    out = Path(config.out)
    cache = Path(config.cache_dir) if config.cache_dir else None
    total = sum(len(e.losses) * len(e.seeds) for e in experiments)
    results: list[dict[str, Any]] = []
    with tqdm(total=total, desc="w2s sweep", unit="run", disable=not progress) as bar:
        for task_spec in config.tasks:
            task = load_task(task_spec)
            mine = [e for e in experiments if e.task == task_spec]
            specs = sorted(
                {s for e in mine for s in (e.weak, e.strong)}
                | (
                    {config.intermediate}
                    if config.intermediate and "bootstrap" in config.losses
                    else set()
                )
            )
            specs = [s for s in specs if not mine[0].finetuned(s)] if mine else specs
            features = features_for_many(specs, task, cache, progress=progress)
            for e in mine:
                results += run_experiment(
                    e, out, task=task, features=features, on_run=lambda _r: _tick(bar)
                )
    if not results:
        raise ConfigError("the sweep has no runs")
    rows, table = write_report(results, out)
    return rows, table


def _tick(bar: Any) -> None:
    bar.update(1)
