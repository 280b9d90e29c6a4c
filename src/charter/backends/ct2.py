"""The CTranslate2 backend (`ct2:<folder>`, `ct2:embedded`): fast CPU inference, int8 by default.

The transformers folder is converted once (`charter.backends.ct2_convert`); chats are rendered
and encoded with the model's own tokenizer exactly as the torch backend does, so both engines
see the same tokens. Two properties of CTranslate2's generator shape how requests are batched:

- a batch's prompts are computed in one pass only up to the shortest prompt; every further
  prompt token of the longer rows costs a decoding step of the whole batch. Each call's rows are
  therefore sorted by length and cut into sub-batches by dynamic programming, weighing batched
  decoding (cheap per row) against those forced steps (see `partition`);
- a batch may share a `static_prompt`, computed once (and, if asked, kept for later calls). Rows
  that share a prefix (the chat template's system turn, few-shot examples, one conversation
  asked about under several principles) are grouped and their prefix given that way.

Sub-batches run on `workers` independent replicas in parallel (see `charter.backends.threads`).

Sampling is seeded per process, not per batch: CTranslate2 draws from one random generator per
worker thread, seeded when the thread first samples. The generator is re-created when a call
asks for a different seed, so a run with one seed is reproducible in a fresh process when the
sub-batches reach the workers in the same order (always with `workers=1`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charter.backends.chat import ChatTokens, eos_ids
from charter.backends.ct2_convert import STORAGE
from charter.backends.hf import _flag, prefix_groups
from charter.backends.threads import physical_cores, split_threads
from charter.errors import BackendError
from charter.records import Completion, Message, OptionQuery, Sampling

log = logging.getLogger(__name__)

COMPUTE_TYPES = ("auto", *sorted(STORAGE))


def resolve_compute_type(compute_type: str, device: str) -> str:
    """`auto` → int8 on CPU, bfloat16 (else float16) on CUDA; anything else is checked against
    what this CTranslate2 build supports on `device`."""
    import ctranslate2

    wanted = str(compute_type).strip().lower()
    supported = set(ctranslate2.get_supported_compute_types(device))
    if wanted == "auto":
        if device == "cpu":
            return "int8"
        return "bfloat16" if "bfloat16" in supported else "float16"
    if wanted not in STORAGE:
        raise BackendError(
            f"unknown compute_type {compute_type!r} for the ct2 backend: expected auto or one of "
            f"{', '.join(sorted(STORAGE))} (on {device} this build supports "
            f"{', '.join(sorted(supported))})"
        )
    if wanted not in supported:
        raise BackendError(
            f"compute_type {wanted} is not supported by CTranslate2 on {device} here; supported: "
            f"{', '.join(sorted(supported))}"
        )
    return wanted


@dataclass(frozen=True)
class Costs:
    """The batching cost model, in units of one prompt token computed in a batched pass.

    A decoding step of a sub-batch of k rows costs `step + per_row * k`. Measured on a 2-core
    AMD EPYC with the 135M model in int8 (one thread per worker): a prompt token ~1.7 ms, a
    decoding step ~25 ms alone and ~75 ms for 8 rows.
    """

    step: float = 16.0
    per_row: float = 4.0


def partition(
    lengths: Sequence[int], new_tokens: int, max_rows: int, costs: Costs = Costs(), prefix: int = 0
) -> list[list[int]]:
    """Sub-batches (lists of indices into `lengths`) that minimise the modelled cost.

    Rows are taken shortest first; a sub-batch of rows with lengths l_1 ≤ … ≤ l_k costs its
    batched prompt pass (k · (l_1 − 1) tokens), plus (l_k − l_1 + 1 + new_tokens) decoding steps
    of k rows, plus `prefix` tokens (a static prompt computed once per sub-batch).

    >>> partition([10, 10, 10, 10], 8, 16)
    [[0, 1, 2, 3]]
    >>> partition([5, 400], 1, 16)
    [[0], [1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ls = [lengths[i] for i in order]
    n = len(ls)
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - max_rows), j):
            k = j - i
            steps = ls[j - 1] - ls[i] + 1 + new_tokens
            cost = k * (ls[i] - 1) + steps * (costs.step + costs.per_row * k) + prefix
            if best[i] + cost < best[j]:
                best[j], cut[j] = best[i] + cost, i
    batches: list[list[int]] = []
    j = n
    while j > 0:
        batches.append(order[cut[j] : j])
        j = cut[j]
    return batches[::-1]


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Give torch back its thread count after CTranslate2 ran.

    CTranslate2 sets the OpenMP thread count of the thread that submits work to its own
    `intra_threads` (1 per worker on 2 cores), and torch in the same process reads that count:
    measured here, torch fp32 generation after a ct2 call ran on 1 thread instead of 2, at 66
    instead of ~170 tokens/s. A stage that trains (torch) and evaluates (ct2) in one process
    must not slow either down, so the count torch had before is restored.
    """
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if torch is not None and before is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)


@dataclass
class _Job:
    """One sub-batch submitted to the generator: which rows, and its pending results."""

    rows: list[int]
    results: list[Any]


class CT2Backend(ChatTokens):
    """A causal LM run by CTranslate2. Options: `compute_type` (`auto`: int8 on CPU),
    `batch_size` (most rows in one sub-batch, 16), `threads` (all physical cores), `workers`
    (replicas decoding sub-batches in parallel; default min(threads, 4)), `device` (cpu/cuda),
    `prefix_cache` (true: shared prompt prefixes computed once) and `kv_store_mb` (2048: memory
    for prefixes kept between calls)."""

    min_shared_prefix = 16
    # `score_batch` computes the log-softmax over the whole vocabulary at every position of a
    # batch, so a batch's cost grows with rows x its longest row and soon leaves the caches:
    # 96 HHH prompts + options (~250 tokens) scored at 547 tokens/s in batches of 16, 963 in
    # batches of 8 and 2,015 in batches of 2 (embedded model, int8, 2 workers x 1 thread).
    score_positions = 512

    def __init__(
        self,
        path: str,
        *,
        compute_type: str = "auto",
        batch_size: int = 16,
        threads: int | None = None,
        workers: int | None = None,
        device: str | None = None,
        prefix_cache: bool | str = True,
        kv_store_mb: int = 2048,
        spec: str | None = None,
    ) -> None:
        import ctranslate2
        import transformers
        from transformers import AutoTokenizer, GenerationConfig

        from charter.backends.ct2_convert import HF_DIR, ensure_converted

        transformers.logging.set_verbosity_error()
        if int(batch_size) < 1:
            raise BackendError(f"batch_size must be at least 1, got {batch_size}")
        if threads is not None and int(threads) < 1:
            raise BackendError(f"threads must be at least 1, got {threads}")
        if workers is not None and int(workers) < 1:
            raise BackendError(f"workers must be at least 1, got {workers}")
        if int(kv_store_mb) < 0:
            raise BackendError(f"kv_store_mb must be 0 or more, got {kv_store_mb}")
        self.spec = spec or f"ct2:{path}"
        self.batch_size = int(batch_size)
        self.prefix_cache = _flag(prefix_cache, "prefix_cache")
        self.kv_store_bytes = int(kv_store_mb) * 2**20
        self.device = (device or ("cuda" if ctranslate2.get_cuda_device_count() else "cpu")).lower()
        if self.device not in ("cpu", "cuda"):
            raise BackendError(f"the ct2 backend runs on cpu or cuda, not {device!r}")
        self.compute_type = resolve_compute_type(compute_type, self.device)
        source = _source_folder(path)
        self.source = source
        self.model_dir, self.converted_now = ensure_converted(source, self.compute_type)
        total = int(threads) if threads is not None else physical_cores()
        if self.device == "cuda":
            self.workers, self.threads_per_worker = 1, 1
        else:
            self.workers, self.threads_per_worker = split_threads(total, workers)
        hf = self.model_dir / HF_DIR
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(hf))
        except (OSError, ValueError) as e:
            raise BackendError(f"could not load the tokenizer of {path!r}: {e}") from None
        try:
            generation_config = GenerationConfig.from_pretrained(str(hf))
        except (OSError, ValueError):
            generation_config = None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_ids = eos_ids(self.tokenizer, generation_config)
        if not self.eos_ids:
            raise BackendError(f"{path}: the tokenizer names no end-of-text token")
        vocabulary = json.loads((self.model_dir / "vocabulary.json").read_text(encoding="utf-8"))
        self._vocab: list[str] = list(vocabulary)
        self._kv_per_token = _kv_bytes_per_token(hf / "config.json")
        self._cached_prefixes: set[tuple[int, ...]] = set()
        self._cached_bytes = 0
        self._seen_prefixes: set[tuple[int, ...]] = set()
        self._generator: Any = None
        self._seed: int | None = None
        self._ctranslate2 = ctranslate2

    # -- engine ------------------------------------------------------------------------------
    def _engine(self, seed: int | None = None) -> Any:
        """The generator, re-created (with fresh worker threads) for a new sampling seed."""
        ct2 = self._ctranslate2
        if self._generator is not None and (seed is None or seed == self._seed):
            return self._generator
        if seed is not None:
            ct2.set_random_seed(int(seed) % 2**32)
        self._generator = None  # free the old replicas before loading new ones
        self._generator = ct2.Generator(
            str(self.model_dir),
            device=self.device,
            compute_type=self.compute_type,
            inter_threads=self.workers,
            intra_threads=self.threads_per_worker,
        )
        self._seed = seed
        # The static-prompt cache lived in the old generator.
        self._cached_prefixes, self._cached_bytes = set(), 0
        return self._generator

    def describe(self) -> dict[str, Any]:
        """What produced this backend's outputs: for manifests and benchmarks."""
        return {
            "spec": self.spec,
            "engine": "ct2",
            "compute_type": self.compute_type,
            "device": self.device,
            "workers": self.workers,
            "threads_per_worker": self.threads_per_worker,
            "ctranslate2": str(self._ctranslate2.__version__),
            "model": str(self.model_dir),
        }

    def forget(self) -> None:
        """Nothing is kept between calls that a benchmark's warm-up could hand on, except the
        static prompts the generator caches; a new generator drops them."""
        if self._cached_prefixes:
            self._generator = None
            self._engine(self._seed)

    def _tokens(self, ids: Sequence[int]) -> list[str]:
        vocab = self._vocab
        return [vocab[i] for i in ids]

    def _static(self, prefix: tuple[int, ...], jobs: int) -> tuple[list[str] | None, bool]:
        """The static prompt for a group's sub-batches and whether the generator should keep
        its state: kept when several sub-batches or an earlier call share it, within
        `kv_store_bytes`."""
        if not prefix:
            return None, False
        keep = prefix in self._cached_prefixes
        if not keep and (jobs > 1 or prefix in self._seen_prefixes):
            size = len(prefix) * self._kv_per_token
            if self._cached_bytes + size <= self.kv_store_bytes:
                self._cached_prefixes.add(prefix)
                self._cached_bytes += size
                keep = True
        self._seen_prefixes.add(prefix)
        return self._tokens(prefix), keep

    def _groups(self, rows: Sequence[Sequence[int]]) -> list[tuple[tuple[int, ...], list[int]]]:
        """Rows by shared prefix: `(prefix, row indices)`; rows sharing none have prefix ()."""
        if not self.prefix_cache or len(rows) < 2:
            return [((), list(range(len(rows))))]
        order, shared = prefix_groups(rows, self.min_shared_prefix)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i in order:
            # Every row keeps at least one token of its own: decoding starts from it.
            n = min(shared[i], len(rows[i]) - 1)
            key = tuple(rows[i][:n]) if n >= self.min_shared_prefix else ()
            groups.setdefault(key, []).append(i)
        return list(groups.items())

    def _submit(
        self,
        rows: Sequence[Sequence[int]],
        new_tokens: int,
        options: dict[str, Any],
        generator: Any,
    ) -> list[_Job]:
        """Every row submitted in sub-batches, asynchronously, grouped by shared prefix.

        A sub-batch holds at most `batch_size` rows and at most a `workers`-th of the call's
        rows, so that every worker gets a share (32 rows on 2 workers: two sub-batches of 16).
        """
        jobs: list[_Job] = []
        max_rows = max(1, min(self.batch_size, math.ceil(len(rows) / self.workers)))
        for prefix, members in self._groups(rows):
            rests = [list(rows[i][len(prefix) :]) for i in members]
            batches = partition([len(r) for r in rests], new_tokens, max_rows, prefix=len(prefix))
            static, keep = self._static(prefix, len(batches))
            for batch in batches:
                kwargs = dict(options)
                if static is not None:
                    kwargs.update(static_prompt=static, cache_static_prompt=keep)
                results = generator.generate_batch(
                    [self._tokens(rests[b]) for b in batch], asynchronous=True, **kwargs
                )
                jobs.append(_Job([members[b] for b in batch], list(results)))
        return jobs

    # -- generation ----------------------------------------------------------------------------
    def generate(self, requests: Sequence[Sequence[Message]], params: Sampling) -> list[Completion]:
        with keep_torch_threads():
            return self._generate(requests, params)

    def _generate(
        self, requests: Sequence[Sequence[Message]], params: Sampling
    ) -> list[Completion]:
        if not requests:
            return []
        encoded = [self.encode_chat(chat) for chat in requests]
        sampled = params.temperature > 0
        options: dict[str, Any] = {
            "max_length": params.max_new_tokens,
            "min_length": params.min_new_tokens,
            "end_token": list(self.eos_ids),
            "return_end_token": True,
            "include_prompt_in_result": False,
        }
        if sampled:
            options.update(
                sampling_topk=params.top_k,
                sampling_topp=params.top_p,
                sampling_temperature=params.temperature,
            )
        else:
            options.update(sampling_topk=1)
        generator = self._engine(params.seed if sampled else None)
        out: list[Completion | None] = [None] * len(encoded)
        for job in self._submit(encoded, params.max_new_tokens, options, generator):
            for i, pending in zip(job.rows, job.results, strict=True):
                ids = list(pending.result().sequences_ids[0])
                out[i] = self._completion(ids, len(encoded[i]), params)
        return [c for c in out if c is not None]

    # -- option scoring ------------------------------------------------------------------------
    def option_logprobs(self, requests: Sequence[OptionQuery]) -> list[dict[str, float]]:
        with keep_torch_threads():
            return self._option_logprobs(requests)

    def _option_logprobs(self, requests: Sequence[OptionQuery]) -> list[dict[str, float]]:
        import numpy as np

        # As in the torch backend: a query whose options are all one token long needs one row,
        # its context, whose next-token distribution gives every option; the rest are scored as
        # context + option. Identical rows are computed once.
        nexts: dict[tuple[int, ...], list[tuple[int, str, int]]] = {}
        full: dict[tuple[int, ...], list[tuple[int, str, int]]] = {}
        for qi, q in enumerate(requests):
            split = [(option, *self._split_context(q, option)) for option in q.options]
            if all(len(cont) == 1 for _, _, cont in split):
                for option, context, cont in split:
                    nexts.setdefault(tuple(context), []).append((qi, option, cont[0]))
            else:
                for option, context, cont in split:
                    full.setdefault(tuple(context + cont), []).append((qi, option, len(cont)))
        out: list[dict[str, float]] = [{} for _ in requests]
        generator = self._engine(self._seed)
        if nexts:
            keys = list(nexts)
            options = {
                "max_length": 1,
                "sampling_topk": 1,
                "return_logits_vocab": True,
                "include_prompt_in_result": False,
            }
            for job in self._submit(keys, 1, options, generator):
                for i, pending in zip(job.rows, job.results, strict=True):
                    # One row per decoding step: the longer prompts' forced steps, then the
                    # step after the whole prompt, whose distribution is the one asked for.
                    steps = np.asarray(pending.result().logits[0], dtype=np.float64)
                    logits = steps.reshape(-1, steps.shape[-1])[-1]
                    top = logits.max()
                    logz = top + np.log(np.exp(logits - top).sum())
                    for qi, option, token in nexts[keys[i]]:
                        out[qi][option] = float(logits[token] - logz)
        if full:
            keys = list(full)
            order = sorted(range(len(keys)), key=lambda i: len(keys[i]))
            size = max(1, min(self.batch_size, math.ceil(len(order) / self.workers)))
            batches = score_batches([len(keys[i]) for i in order], size, self.score_positions)
            pending = [
                (batch, generator.score_batch([self._tokens(keys[i]) for i in batch],
                                              asynchronous=True))
                for batch in ([order[j] for j in b] for b in batches)
            ]  # fmt: skip
            for batch, scored in pending:
                for i, result in zip(batch, scored, strict=True):
                    logp = list(result.result().log_probs)
                    for qi, option, n in full[keys[i]]:
                        out[qi][option] = float(sum(logp[-n:]))
        return [{o: out[qi][o] for o in q.options} for qi, q in enumerate(requests)]


def score_batches(lengths: Sequence[int], max_rows: int, max_positions: int) -> list[list[int]]:
    """Consecutive runs of `lengths` (indices) with at most `max_rows` rows and at most
    `max_positions` padded positions (rows x longest row) each; a longer row goes alone.

    >>> score_batches([100, 100, 150, 300, 900], max_rows=16, max_positions=512)
    [[0, 1, 2], [3], [4]]
    >>> score_batches([10] * 5, max_rows=2, max_positions=512)
    [[0, 1], [2, 3], [4]]
    """
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i, n in enumerate(lengths):
        wider = (len(current) + 1) * max(longest, n)
        if current and (len(current) >= max_rows or wider > max_positions):
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def _source_folder(path: str) -> Path:
    """The transformers folder a `ct2:` spec names: `embedded` or a local folder."""
    if path.strip() == "embedded":
        from charter.backends.gguf_convert import ensure_embedded_model

        return ensure_embedded_model()
    local = Path(path).expanduser()
    if not local.exists():
        raise BackendError(
            f"model folder {path} not found: the ct2 backend converts local transformers folders "
            "(a hub model must be downloaded first, e.g. with `hf download`)"
        )
    return local


def _kv_bytes_per_token(config_path: Path) -> int:
    """Bytes of keys and values per token (float32), from the transformers config."""
    try:
        c = json.loads(config_path.read_text(encoding="utf-8"))
        layers = int(c["num_hidden_layers"])
        heads = int(c.get("num_key_value_heads") or c["num_attention_heads"])
        head_dim = int(c.get("head_dim") or int(c["hidden_size"]) // int(c["num_attention_heads"]))
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return 64 * 1024  # unknown: assume a large model's size per token
    return 2 * layers * heads * head_dim * 4
