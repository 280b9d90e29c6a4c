"""What `charter evaluate` compares and on what: its options (`EvalOptions`), the names of its
files, the prompt sets and judging axes, and the inputs read and checked before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from charter.constitution.schema import HELPFULNESS_TAG, Constitution, PrinciplePool
from charter.errors import CharterError, ConfigError
from charter.records import AddedFields, PromptRecord, Sampling

ANSWERS = "answers.jsonl"
COMPARISONS = "comparisons.jsonl"
RM_SCORES = "rm_scores.jsonl"
SAMPLES = "samples.jsonl"
METRICS = "metrics.json"

# What each prompt set measures: refusals of harmful requests are right, of the others wrong.
HARMFUL_SETS = ("red-team",)
BENIGN_SETS = ("borderline", "helpful")
PROMPT_SETS = (*HARMFUL_SETS, *BENIGN_SETS)
# Pairwise axes: which set each is judged on, and which principles judge it.
Axis = Literal["harmlessness", "helpfulness"]
AXES: dict[Axis, str] = {"harmlessness": "red-team", "helpfulness": "helpful"}
DEFAULT_PROMPTS = {s: f"builtin:{s}" for s in PROMPT_SETS}
JUDGE_KEY = "judge"


class EvalOptions(AddedFields):
    """What to compare, on which prompts, judged by whom."""

    ADDED: ClassVar[tuple[str, ...]] = ("principle_pool",)

    models: dict[str, str] = Field(
        min_length=1, description="Model name → backend spec; the first is the Elo anchor."
    )
    prompts: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_PROMPTS),
        description="Set (red-team, borderline, helpful) → prompt source.",
    )
    langs: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    split: Literal["train", "eval", "all"] = "eval"
    limit: int | None = Field(None, ge=1, description="First N prompts per set and language.")
    judge: str | None = Field("embedded", description="Judge backend; None skips pairwise.")
    judge_format: Literal["raw", "chat", "pointwise"] = Field(
        "chat", description="How the judge is asked (see `charter evaluate mc --format`)."
    )
    constitution: str = "udhr"
    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.0, ge=0.0, description="0: greedy answers.")
    batch_size: int = Field(16, ge=1)
    seed: int = 0
    mc: list[str] = Field(default_factory=list, description="Multiple-choice eval files.")
    rm: str | None = Field(None, description="A trained preference model's folder.")
    backend_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Backend options per model name, `judge`, or spec (a name wins over its spec).",
    )
    principles_per_pair: int = Field(4, ge=1)
    principle_pool: PrinciplePool = Field(
        "all",
        description="The judge's comparison principles per pair: all, harm or matched (those "
        "tagged with the prompt's harm category), as `charter label --principle-pool`.",
    )
    few_shot: int = Field(2, ge=0)
    n_boot: int = Field(1000, ge=0)
    pseudo_ties: float = Field(1.0, ge=0.0)

    @field_validator("models")
    @classmethod
    def _specs(cls, models: dict[str, str]) -> dict[str, str]:
        from charter.backends import check_spec

        for name, spec in models.items():
            if not name.strip() or name == JUDGE_KEY or any(c in name for c in "=/ "):
                raise ValueError(f"model name {name!r}: use letters, digits, '-' or '_'")
            check_spec(spec)
        return models

    @field_validator("prompts")
    @classmethod
    def _sets(cls, prompts: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(prompts) - set(PROMPT_SETS))
        if unknown:
            raise ValueError(
                f"unknown prompt set {unknown[0]!r}: expected {', '.join(PROMPT_SETS)}"
            )
        if not prompts:
            raise ValueError("no prompt sets")
        return prompts

    @model_validator(mode="after")
    def _options_keys(self) -> EvalOptions:
        known = {*self.models, *self.models.values(), JUDGE_KEY, self.judge}
        unknown = sorted(set(self.backend_options) - known)
        if unknown:
            raise ValueError(
                f"backend_options for {unknown[0]!r}: no such model name, spec or `judge`"
            )
        if self.judge is not None:
            from charter.backends import check_spec

            check_spec(self.judge)
        return self

    def sampling(self) -> Sampling:
        return Sampling(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=self.seed
        )

    def options_for(self, key: str) -> dict[str, Any]:
        """Backend options of a model name (or `judge`): given under the name, else its spec."""
        spec = self.judge if key == JUDGE_KEY else self.models.get(key)
        if key in self.backend_options:
            return dict(self.backend_options[key])
        return dict(self.backend_options.get(spec or "", {}))


@dataclass
class EvalPrompt:
    set: str
    lang: str
    record: PromptRecord

    @property
    def category(self) -> str | None:
        c = self.record.meta.get("category")
        return str(c) if c is not None else None


@dataclass
class Inputs:
    """Everything read and checked before any model is loaded."""

    prompts: list[EvalPrompt]
    constitution: Constitution
    judges: dict[tuple[Axis, str], Constitution]  # (axis, lang) → the judging constitution
    mc: list[tuple[str, list[Any]]]


def load_inputs(opts: EvalOptions, constitution: Constitution | None = None) -> Inputs:
    """Read prompts, constitution (unless given, already loaded) and eval files; every user
    error surfaces here, before work."""
    from charter.constitution.load import load_constitution
    from charter.data import load_prompts
    from charter.feedback.mc_eval import read_mc

    constitution = constitution or load_constitution(opts.constitution)
    split = None if opts.split == "all" else opts.split
    prompts: list[EvalPrompt] = []
    for set_name, spec in opts.prompts.items():
        seen: set[str] = set()
        for lang in opts.langs:
            # A builtin name picks its file per language; a file holding several languages is
            # read once per language and keeps that language's records.
            records = [
                r
                for r in load_prompts(spec, lang=lang, split=split)
                if str(r.meta.get("lang", "en")) == lang and r.key() not in seen
            ]
            seen.update(r.key() for r in records)
            prompts += [EvalPrompt(set_name, lang, r) for r in records[: opts.limit]]
    if not prompts:
        raise ConfigError(f"no prompts for languages {opts.langs} in split {opts.split!r}")
    judges: dict[tuple[Axis, str], Constitution] = {}
    if opts.judge is not None and len(opts.models) > 1:
        for axis, set_name in AXES.items():
            if set_name not in opts.prompts:
                continue
            for lang in opts.langs:
                try:
                    localized = constitution.localized(lang)
                except KeyError as e:
                    raise CharterError(f"constitution {constitution.name!r}: {e.args[0]}") from None
                judges[(axis, lang)] = axis_constitution(localized, axis)
    if opts.rm is not None:
        rm = Path(opts.rm)
        if not any((f / "config.json").exists() for f in (rm / "merged", rm)):
            raise ConfigError(
                f"--rm {rm}: no preference model there (expected OUT/merged of `charter train rm` "
                "or a model folder with config.json)"
            )
    mc = [(path, read_mc(path)) for path in opts.mc]
    return Inputs(prompts, constitution, judges, mc)


def axis_constitution(constitution: Constitution, axis: Axis) -> Constitution:
    """The constitution reduced to the comparison principles that judge `axis`: those tagged
    `helpfulness` for helpfulness, the others for harmlessness (all when that leaves none)."""
    comparison = constitution.comparison_principles()
    if not comparison:
        raise CharterError(f"constitution {constitution.name!r} has no `comparison` questions")
    helpful = [p for p in comparison if HELPFULNESS_TAG in p.tags]
    chosen = helpful if axis == "helpfulness" else [p for p in comparison if p not in helpful]
    return constitution.model_copy(update={"principles": chosen or comparison, "sha256": None})
