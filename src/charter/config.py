"""The typed run configuration: named presets, overlaid by a YAML file, then by `--set key=value`.

Unknown keys and bad values are errors that name the key and where it came from (the file and
line, or the `--set`). YAML is read by `charter.userinput.parse_yaml`: safe (a config can never
execute code), at most 2 MB, and without anchors or aliases (a few hundred bytes of nested
aliases once made a 21 MB config.yaml).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from charter.backends.executor import ExecutorConfig
from charter.errors import ConfigError, InputError, validation_problems
from charter.evaluate.options import EvalOptions
from charter.feedback.labeler import LabelConfig
from charter.generate import MODEL_RENAMES, GenerationConfig, renamed_keys
from charter.records import Strict
from charter.redteam.config import RedteamConfig
from charter.sl.revise import SLConfig
from charter.train import DPOOptions, SFTOptions
from charter.train.rewards import RewardSpec
from charter.train.rl import RLOptions
from charter.userinput import Lines, line_of, parse_yaml, read_text


class RunSLConfig(SLConfig):
    """The SL-CAI stage of `charter run`: which prompts, and the stage's own settings."""

    enabled: bool = Field(True, description="Run this stage.")
    prompts: str = Field("builtin:red-team", description="Red-team prompts to critique and revise.")
    split: Literal["train", "eval", "all"] = Field("train", description="Which split of them.")
    limit: int | None = Field(None, ge=1, description="Use only the first N prompts.")


class RoleConfig(Strict):
    """A model role other than the policy: `None` means the policy's model and options."""

    model: str | None = Field(None, description="Backend spec; empty = the policy's.")
    model_options: dict[str, Any] = Field(default_factory=dict, description="Backend options.")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        return renamed_keys(data, MODEL_RENAMES)


class RunLabelConfig(LabelConfig):
    """The RL-CAI labelling stage of `charter run`: pairs of the SL-CAI model (or the policy,
    `sample_from`) labelled by `feedback`.

    `seed` defaults to the run's seed; the model samples its pairs with this section's
    `max_new_tokens` and `temperature`.
    """

    enabled: bool = Field(True, description="Run this stage.")
    prompts: str = Field("builtin:red-team", description="Prompts whose answer pairs are labelled.")
    split: Literal["train", "eval", "all"] = Field("train", description="Which split of them.")
    limit: int | None = Field(None, ge=1, description="Use only the first N prompts.")
    lang: Literal["en", "ar"] = Field("en", description="Language of prompts and constitution.")
    max_new_tokens: int = Field(128, ge=1, description="Most tokens per sampled answer.")
    temperature: float = Field(0.8, gt=0.0, description="Sampling temperature of the pairs.")
    sample_from: Literal["sl-cai", "policy"] = Field(
        "sl-cai",
        description="The model that samples the pairs: sl-cai, the run's SFT model, as in the "
        "paper (its pairs hold the refusals SL-CAI taught; the base policy when `train` is off); "
        "policy, the base policy.",
    )


class RunSFTOptions(SFTOptions):
    """`charter train sft`'s options; the run fills in `model`, `data` and `out`."""

    data: Path = Field(Path("sl/sft.jsonl"), description="Set by the run: sl/sft.jsonl.")
    out: Path = Field(Path("train/sft"), description="Set by the run: train/sft.")
    merge: bool = Field(True, description="Also write merged weights (the next stages load them).")


class RunDPOOptions(DPOOptions):
    """`charter train dpo`'s options; the run fills in `model` (the SFT model), `data`, `out`."""

    data: Path = Field(Path("label/prefs.jsonl"), description="Set by the run: label/prefs.jsonl.")
    out: Path = Field(Path("train/dpo"), description="Set by the run: train/dpo.")
    merge: bool = Field(True, description="Also write merged weights (evaluate loads them).")


class RunRLOptions(RLOptions):
    """`charter train grpo|rloo`'s options; the run fills in `model` (the SFT model), `out`,
    the prompts (the label stage's), the constitution and, unless given, the rewards (the
    feedback role judging against the SFT model's own answers)."""

    out: Path = Field(Path("train/grpo"), description="Set by the run: train/grpo or train/rloo.")
    rewards: list[RewardSpec] = Field(
        default_factory=list, description="The rewards; empty: the feedback role as judge."
    )
    merge: bool = Field(True, description="Also write merged weights (evaluate loads them).")


RL_CHOICES = ("dpo", "grpo", "rloo", "dpo+grpo", "dpo+rloo")


class RunTrainConfig(Strict):
    """The training stage: SFT on the SL-CAI revisions, then RL-CAI: offline DPO on the AI
    labels, online GRPO/RLOO against the constitution, or both (`rl`).

    `sft`, `dpo` and `online` are `charter train sft|dpo|grpo` options under the same names
    (`--set train.sft.learning_rate=1e-4`); data, output folders and the model are filled in by
    the run.
    """

    enabled: bool = Field(True, description="Run this stage.")
    model: str | None = Field(
        None, description="Trainable base model (embedded or hf:PATH); empty = the policy."
    )
    rl: Literal["dpo", "grpo", "rloo", "dpo+grpo", "dpo+rloo"] = Field(
        "dpo",
        description="RL-CAI after SFT: dpo (offline, on the label stage's soft labels), grpo or "
        "rloo (online, the feedback model judging samples), or dpo+grpo / dpo+rloo (both).",
    )
    pairs: Literal["label", "sl"] = Field(
        "label",
        description="What DPO trains on: label (the label stage's AI-labelled pairs, the "
        "paper's RL-CAI) or sl (SL-CAI's own pairs, sl/pairs.jsonl: each accepted revision over "
        "the answer it revised, each helpful answer of the mix over a decline).",
    )
    sft: RunSFTOptions = Field(default_factory=RunSFTOptions)
    dpo: RunDPOOptions = Field(default_factory=RunDPOOptions)
    online: RunRLOptions = Field(default_factory=RunRLOptions)

    @property
    def dpo_enabled(self) -> bool:
        return "dpo" in self.rl.split("+")

    @property
    def online_algorithm(self) -> str | None:
        """grpo, rloo or None."""
        return next((x for x in self.rl.split("+") if x != "dpo"), None)


EVAL_LANGS: tuple[str, ...] = ("en", "ar")


class RunEvalConfig(EvalOptions):
    """The evaluation stage: base vs SL-CAI vs RL-CAI models on held-out prompts.

    `charter evaluate`'s options under the same names; the run sets `models` (base, and the
    trained sl-cai and rl-cai), `judge` and `backend_options` (the judge role), `constitution`,
    `batch_size` and `seed`.
    """

    enabled: bool = Field(True, description="Run this stage.")
    models: dict[str, str] = Field(default_factory=dict, description="Set by the run.")
    judge: str | None = Field(None, description="Set by the run: the judge role's model.")
    langs: list[str] = Field(
        default_factory=lambda: list(EVAL_LANGS), min_length=1, description="Languages to test."
    )
    max_new_tokens: int = Field(128, ge=1, description="Most tokens per answer.")


class RunRedteamConfig(RedteamConfig):
    """Automated red-teaming before and after training (`charter redteam`'s options under the
    same names): the feedback role writes attacks in `rounds` rounds, every evaluated model (the
    base and the trained ones) answers them, the judge role decides which complied, and the
    report shows each model's attack success. The run sets `attacker`, `targets`, `judge`,
    `constitution`, `batch_size` and `seed`."""

    enabled: bool = Field(False, description="Run this stage (after train, before evaluate).")
    rounds: int = Field(1, ge=1, description="Attacker rounds (the first is zero-shot).")


class RunConfig(Strict):
    """Everything a `charter run` depends on; written resolved to the run folder's config.yaml."""

    name: str = Field("default", description="Run folder name under runs_dir.")
    runs_dir: str = "runs"
    seed: int = 0
    prompts: str = Field("demo", description="A builtin prompt set name or a JSONL file.")
    limit: int | None = Field(None, ge=1, description="Use only the first N prompts.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    constitution: str = Field(
        "udhr", description="Builtin name, YAML/JSON file, or collective:DIR."
    )
    sl: RunSLConfig = Field(default_factory=RunSLConfig)
    reviser: RoleConfig = Field(
        default_factory=RoleConfig,
        description="SL-CAI's critic and reviser; empty: the policy; `teacher`: the strongest "
        "installed offline model for a local policy (as feedback), else the policy.",
    )
    feedback: RoleConfig = Field(
        default_factory=RoleConfig,
        description="The AI labeller; empty: the strongest installed offline model for a local "
        "policy (`charter models list`), else the policy.",
    )
    judge: RoleConfig = Field(
        default_factory=RoleConfig,
        description="The evaluation judge; empty: as for feedback.",
    )
    label: RunLabelConfig = Field(default_factory=RunLabelConfig)
    train: RunTrainConfig = Field(default_factory=RunTrainConfig)
    redteam: RunRedteamConfig = Field(default_factory=RunRedteamConfig)
    evaluate: RunEvalConfig = Field(default_factory=RunEvalConfig)
    executor: ExecutorConfig = Field(
        default_factory=ExecutorConfig, description="Where the model calls run (local, ray)."
    )

    def role(
        self, name: Literal["policy", "reviser", "feedback", "judge"]
    ) -> tuple[str, dict[str, Any]]:
        """The backend spec and options of a role. The reviser defaults to the policy (as in the
        paper); feedback and judge to the strongest installed offline model when the policy is
        a local model, else to the policy (a served model is usually the stronger)."""
        policy = self.generation.model, dict(self.generation.model_options)
        if name == "policy":
            return policy
        role: RoleConfig = getattr(self, name)
        if name == "reviser" and role.model == TEACHER:
            # The stronger offline teacher: what feedback and judge default to.
            return default_role(*policy)
        if role.model:
            return role.model, dict(role.model_options)
        if name == "reviser":
            return policy
        return default_role(*policy)


# `reviser.model: teacher`: the model feedback and judge default to.
TEACHER = "teacher"
# Policies whose feedback and judge default to the strongest installed offline model.
LOCAL_SPECS = ("embedded", "model:", "hf:", "ct2:")


def default_role(spec: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The feedback or judge model of a run whose policy is `spec`: the strongest installed
    catalog model for a local policy, else the policy itself."""
    if not spec.startswith(LOCAL_SPECS):
        return spec, options
    from charter.backends.catalog import strongest_installed

    best = strongest_installed().spec
    return (spec, options) if best == spec else (best, {})


PRESETS: dict[str, dict[str, Any]] = {
    # Minutes on a 2-core CPU (`make run`, about 14): small stages, short answers, a few
    # training steps. The recipe is issue #24's best measured within that budget
    # (docs/results.md, "Recipe ablations"): the stronger offline teacher critiques and revises,
    # critiques draw principles of the prompt's harm category, revisions that refuse benign
    # requests or drift off topic are rejected, and as many helpful answers as revised samples,
    # English and Arabic in turn, are mixed into SFT. It moves harmful compliance a little
    # without over-refusal; too little data to halve it.
    "quick": {
        "name": "quick",
        "generation": {"max_new_tokens": 64, "batch_size": 8},
        "reviser": {"model": TEACHER},
        "sl": {
            "limit": 32,
            "rounds": 1,
            "few_shot": 1,
            "chunk_size": 16,
            "principle_pool": "matched",
            "helpful_ratio": 1.0,
            # English SFT rows alone taught deflections of Arabic prompts (3 of 11 benign).
            "helpful_langs": ["en", "ar"],
        },
        "label": {
            "limit": 16,
            "principles_per_pair": 2,
            "few_shot": 1,
            "chunk_size": 16,
            "max_new_tokens": 64,
        },
        "train": {
            "sft": {"max_steps": 24, "batch_size": 4, "max_length": 384},
            "dpo": {"max_steps": 8, "batch_size": 2, "max_length": 384},
            # Only with train.rl=grpo|rloo: 4 steps of 2 prompts × 2 samples.
            "online": {
                "max_steps": 4,
                "batch_size": 4,
                "num_generations": 2,
                "max_new_tokens": 48,
                "held_out": 4,
            },
        },
        "evaluate": {
            # 6 per set and language: 12 red-team, 24 benign prompts (one over-refusal is
            # 4 points, within the goal's 5).
            "limit": 6,
            # 64 tokens cut 23 of 24 base answers, and the judge then compared cut-off texts.
            "max_new_tokens": 160,
            "principles_per_pair": 1,
            "few_shot": 1,
            # Harmlessness judged under a principle of the prompt's harm category: on pairs of a
            # human-labelled refusal and compliance the judge picks the refusal 0.72 of the time,
            # 0.49 under a principle drawn from all (docs/results.md, "principle pools").
            "principle_pool": "matched",
        },
    },
    # Issue #24's recipe at the scale of a 2-hour budget on a 2-core CPU (about an hour measured:
    # docs/runs/default-recipe): 160 train-split red-team prompts, English and Arabic in turn
    # (every Arabic one), each critiqued and revised by the stronger offline teacher under a
    # principle of its harm category and the constitution in its own language; revisions that do
    # not decline a harmful request, refuse a benign one, drift off topic or barely change are
    # rejected; two helpful answers (up to 160 tokens, both languages) per revised sample are
    # mixed into SFT (4 epochs); then DPO on 64 labelled pairs, red-team attacks on every model,
    # and the whole eval split in English and Arabic.
    "default": {
        "name": "default",
        "generation": {"max_new_tokens": 96, "batch_size": 16},
        "reviser": {"model": TEACHER},
        "sl": {
            "limit": 160,
            "langs": ["en", "ar"],
            "rounds": 1,
            "few_shot": 1,
            "chunk_size": 32,
            "principle_pool": "matched",
            "decline_check": True,
            "helpful_ratio": 2.0,
            "helpful_max_new_tokens": 160,
        },
        "label": {"limit": 64, "principles_per_pair": 2, "few_shot": 1},
        "train": {"sft": {"epochs": 4}, "dpo": {"epochs": 1}},
        "redteam": {"enabled": True, "per_round": 16},
        "evaluate": {
            "max_new_tokens": 160,
            "principles_per_pair": 1,
            "few_shot": 1,
            "principle_pool": "matched",
        },
    },
}


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` on top of `base`, recursing into mappings.

    >>> deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}})
    {'a': {'b': 1, 'c': 3}}
    """
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_value(raw: str, source: str) -> Any:
    """A command-line value read as YAML (`0.2`, `null`, `[a, b]`, text); blank is `""`.

    >>> parse_value("[1, 2]", "--set x"), parse_value("2024-01-01", "--set x")
    ([1, 2], '2024-01-01')
    """
    if not raw.strip():
        return ""
    try:
        value, _ = parse_yaml(raw, source)
    except InputError as e:
        raise ConfigError(f"{source}: {e.problem}") from None
    return value


def parse_override(text: str) -> dict[str, Any]:
    """`"generation.temperature=0.2"` → `{"generation": {"temperature": 0.2}}` (value as YAML)."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. generation.temperature=0.2")
    value: Any = parse_value(raw, f"--set {text!r}")
    for part in reversed(parts):
        value = {part.strip(): value}
    return value  # type: ignore[no-any-return]


# Where each part of a merged config came from: (label, data, lines of a file).
Sources = list[tuple[str, dict[str, Any], Lines | None]]


def load_config(
    preset: str = "default",
    file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> RunConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
    sources: Sources = [(f"preset {preset!r}", PRESETS[preset], None)]
    if file is not None:
        path = Path(file)
        try:
            loaded, lines = parse_yaml(read_text(path, what="config file"), path)
        except InputError as e:
            raise ConfigError(str(e)) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"{path}: expected a mapping of config keys, got {type(loaded).__name__}"
            )
        sources.append((str(path), loaded, lines))
    return overlay_config(copy.deepcopy(PRESETS[preset]), overrides, sources)


def overlay_config(
    base: dict[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    sources: Sources | None = None,
) -> RunConfig:
    """`base` (a resolved config or a preset) with the `sources` after the first and the
    `--set` overrides merged on top, validated; errors name where each bad key came from."""
    sources = list(sources or [("config", base, None)])
    data = base
    for _, overlay, _ in sources[1:]:
        data = deep_merge(data, overlay)
    for text in overrides:
        overlay = parse_override(text)
        # One line, whatever the value holds: error messages name their source in one paragraph.
        shown = text.replace("\r", "\\r").replace("\n", "\\n")
        sources.append((f"--set {shown}", overlay, None))
        data = deep_merge(data, overlay)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        problems = [f"{_origin(p.loc, sources)}: {p.text('key')}" for p in validation_problems(e)]
        raise ConfigError("invalid config: " + "; ".join(problems)) from None


def _origin(loc: tuple[str | int, ...], sources: Sources) -> str:
    """The last source that sets the value at `loc` (or, failing that, its enclosing value)."""
    for depth in range(len(loc), 0, -1):
        for label, data, lines in reversed(sources):
            if _holds(data, loc[:depth]):
                line = line_of(lines, loc[:depth]) if lines is not None else None
                return label if line is None else f"{label}, line {line}"
    return sources[-1][0]


def _holds(data: Any, loc: tuple[str | int, ...]) -> bool:
    for part in loc:
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not in_list and not (isinstance(data, dict) and part in data):
            return False
        data = data[part]
    return True
