"""The transformers backend (`hf:<path or hub id>`): any causal LM, batched, on cuda → mps → cpu.

Generation sorts each call's chats by token length and left-pads them in batches of
`batch_size`, which keeps padding (wasted compute) small. Option scoring computes each distinct
prompt once (single-token options are all read from its last position), and each batch's shared
prefix once, from whose KV cache the rest of every row is computed.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charter.backends.chat import ChatTokens, eos_ids
from charter.errors import BackendError
from charter.records import Completion, Message, OptionQuery, Sampling, stable_id

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def pick_device(preferred: str | None = None) -> str:
    """`preferred` when given, else the best available: cuda → mps → cpu."""
    import torch

    if preferred:
        return preferred
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 matmuls natively on this CPU (AVX-512 or AMX); without that,
    torch emulates them, slower than float32 (1.6× on an AVX2-only EPYC: docs/backends.md)."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def run_dtype(stored: str, device: str | None) -> str:
    """The precision a model stored in `stored` runs in when the user asks for none: `stored`,
    except bfloat16 on a CPU without native bfloat16 matmuls, where float32 is faster."""
    if stored == "bfloat16" and pick_device(device) == "cpu" and not cpu_has_native_bf16():
        return "float32"
    return stored


def _dtype_for(device: str, dtype: str | None) -> torch.dtype:
    import torch

    if dtype and dtype != "auto":
        try:
            resolved: torch.dtype = getattr(torch, dtype)
        except AttributeError:
            raise BackendError(
                f"unknown dtype {dtype!r}: expected float32, bfloat16 or float16"
            ) from None
        return resolved
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # fp32 on CPU: bf16 matmuls are slower than fp32 on most laptop CPUs.
    return torch.float32


class HFBackend(ChatTokens):
    """A causal LM loaded with `AutoModelForCausalLM`. Options: `batch_size`, `device`, `dtype`,
    `prefix_cache` (default true: shared prompt prefixes are computed once, and a request that
    continues one of the previous call's conversations starts from its keys and values) and
    `kv_store_mb` (2048: memory for those keys and values; 0 keeps none) and `static_cache`
    (`auto`: on CPU, generation writes keys and values into one buffer sized for the whole call
    instead of growing the cache by a copy at every step)."""

    # Shorter shared prefixes are not worth a separate forward pass.
    min_shared_prefix = 16

    def __init__(
        self,
        path: str,
        *,
        batch_size: int = 16,
        device: str | None = None,
        dtype: str | None = None,
        prefix_cache: bool | str = True,
        kv_store_mb: int = 2048,
        static_cache: bool | str = "auto",
        spec: str | None = None,
    ) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar per model load
        if int(batch_size) < 1:
            raise BackendError(f"batch_size must be at least 1, got {batch_size}")
        self.spec = spec or f"hf:{path}"
        self.batch_size = int(batch_size)
        self.prefix_cache = _flag(prefix_cache, "prefix_cache")
        if int(kv_store_mb) < 0:
            raise BackendError(f"kv_store_mb must be 0 or more, got {kv_store_mb}")
        self.kv_store_bytes = int(kv_store_mb) * 2**20
        # Keys and values of the previous `generate` call's rows (prompt + answer), which the
        # next call's rows continue (an SL-CAI revision continues its critique's conversation).
        self._kv_store: list[_Stored] = []
        self.device = pick_device(device)
        # A growing cache copies every row's keys and values at each step: on CPU that copy is
        # most of a long request's decoding cost (an SL-CAI critique: ~600 tokens of context).
        # On CUDA a static cache makes `generate` compile the model for every new shape.
        self.static_cache = (
            self.device == "cpu"
            if str(static_cache).strip().lower() == "auto"
            else _flag(static_cache, "static_cache")
        )
        local = Path(path).expanduser()
        source = str(local) if local.exists() else path
        if not local.exists() and path.startswith((".", "/", "~")):
            raise BackendError(f"model folder {path} not found")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForCausalLM.from_pretrained(
                source, dtype=_dtype_for(self.device, dtype)
            )
        except (OSError, ValueError) as e:
            hint = (
                " (offline: HF_HUB_OFFLINE is set, so only local folders and cached models load)"
                if os.environ.get("HF_HUB_OFFLINE")
                else ""
            )
            raise BackendError(f"could not load model {path!r}{hint}: {e}") from None
        self.model.to(self.device).eval()
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.eos_ids = eos_ids(tok, self.model.generation_config)
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self._torch = torch

    def describe(self) -> dict[str, Any]:
        """What produced this backend's outputs: for manifests and benchmarks."""
        return {
            "spec": self.spec,
            "engine": "torch",
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": self.device,
            "threads": self._torch.get_num_threads(),
            "torch": self._torch.__version__,
        }

    def _left_pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        torch = self._torch
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
                mask[i, width - len(r) :] = 1
        return ids.to(self.device), mask.to(self.device)

    # -- generation ----------------------------------------------------------------------------
    def generation_kwargs(self, params: Sampling) -> dict[str, Any]:
        """The keyword arguments charter passes to `model.generate` (shared with the benchmark)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "min_new_tokens": params.min_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.eos_ids,
        }
        if params.temperature > 0:
            # top_k=0 (the default) switches off the model's own default top-k: sampling is what was
            # asked.
            kwargs.update(
                do_sample=True,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k,
            )
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def generate(self, requests: Sequence[Sequence[Message]], params: Sampling) -> list[Completion]:
        torch = self._torch
        encoded = [self.encode_chat(chat) for chat in requests]
        previous, self._kv_store = self._kv_store, []
        if self.prefix_cache:
            order, shared = prefix_groups(encoded, self.min_shared_prefix)
            known = _continuations(encoded, previous, self.min_shared_prefix)
        else:
            order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
            shared, known = [0] * len(encoded), [None] * len(encoded)
        del previous
        store = self.prefix_cache and self.kv_store_bytes > 0
        results: list[Completion | None] = [None] * len(encoded)
        kwargs = self.generation_kwargs(params)
        if self.static_cache:
            # Each call's cache has its own length: compiling the model for it (what transformers
            # does on CUDA for a static cache) would cost more than the call.
            kwargs["disable_compile"] = True
        if store:
            kwargs["return_dict_in_generate"] = True
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            rows = [encoded[i] for i in batch]
            ids, mask, cache, _ = self._cached_inputs(
                rows, [shared[i] for i in batch], [known[i] for i in batch]
            )
            inputs = {"input_ids": ids, "attention_mask": mask}
            if self.static_cache:
                cache = self._static(cache, ids.shape[1] + params.max_new_tokens)
            if cache is not None:
                inputs[self._cache_kwarg()] = cache
            # Seeded per batch from its contents, so a rerun of the same batch samples the same.
            torch.manual_seed(int(stable_id(params.seed, rows), 16) % 2**63)
            with torch.inference_mode():
                out = self.model.generate(**inputs, **kwargs)
            sequences = out.sequences if store else out
            new = sequences[:, ids.shape[1] :].tolist()
            for row, i in zip(new, batch, strict=True):
                results[i] = self._completion(row, len(encoded[i]), params)
            if store:
                final = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
                self._keep(rows, mask, new, final)
            del out
        return [r for r in results if r is not None]

    def forget(self) -> None:
        """Drop the keys and values kept for the next call (a benchmark's untimed warm-up must
        not hand its work to the timed call)."""
        self._kv_store = []

    def _static(self, cache: Any, length: int) -> Any:
        """A static cache of `length` positions holding `cache`'s keys and values (if any), or
        `cache` itself for models whose layers are not all plain attention (sliding windows)."""
        from transformers import StaticCache
        from transformers.cache_utils import StaticLayer

        if getattr(self.model.generation_config, "cache_implementation", None) not in (
            None,
            "hybrid",  # transformers drops this default itself
        ):
            return cache  # the model asks for its own kind of cache
        static = StaticCache(config=self.model.config, max_cache_len=length)
        if any(type(layer) is not StaticLayer for layer in static.layers):
            return cache
        if cache is not None:
            for layer, old in zip(static.layers, cache.layers, strict=True):
                layer.update(old.keys, old.values)
        return static

    def _keep(
        self, rows: Sequence[Sequence[int]], mask: torch.Tensor, new: list[list[int]], cache: Any
    ) -> None:
        """Store each row's keys and values (its prompt, then its answer up to end-of-text) for
        the next call, while `kv_store_bytes` allows."""
        torch = self._torch
        layers = getattr(cache, "layers", None)
        if not layers or any(getattr(layer, "is_sliding", False) for layer in layers):
            return
        keys0 = layers[0].keys
        width = mask.shape[1]
        # Generated tokens whose keys exist (all but the last); a static cache is longer.
        fed = int(cache.get_seq_length()) - width
        per_token = sum(2 * layer.keys[0, :, 0].numel() for layer in layers)
        per_token *= keys0.element_size()
        used = sum(s.nbytes for s in self._kv_store)
        eos = set(self.eos_ids)
        for b, (row, gen) in enumerate(zip(rows, new, strict=True)):
            end = next((j + 1 for j, t in enumerate(gen) if t in eos), len(gen))
            k = max(0, min(fed, end))
            positions = torch.cat(
                [
                    mask[b].nonzero().flatten(),
                    torch.arange(width, width + k, device=mask.device),
                ]
            )
            size = len(positions) * per_token
            if used + size > self.kv_store_bytes:
                return
            kv = [
                (
                    layer.keys[b : b + 1].index_select(2, positions),
                    layer.values[b : b + 1].index_select(2, positions),
                )
                for layer in layers
            ]
            self._kv_store.append(_Stored(list(row) + gen[:k], kv, size))
            used += size

    def _cached_inputs(
        self,
        rows: Sequence[Sequence[int]],
        shared: Sequence[int],
        known: Sequence[tuple[int, list[tuple[Any, Any]]] | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Any, int]:
        """Inputs for one batch: `ids`, `attention_mask`, a KV cache (or None) and its width.

        `shared[i]` tokens of row i are a prefix it shares with other rows of the call (the
        chat template's system turn and few-shot examples: most of an SL-CAI request; one
        conversation asked about under several principles). Each distinct prefix is computed
        once; its KV cache goes to every row that has it, right-aligned, and each row's rest is
        left-padded after the cache: `pads, prefix | pads, rest`. `known[i]`, when given, is
        `(n, kv)`: keys and values of row i's first n tokens, kept from an earlier call, used
        where longer than the shared prefix. `ids` holds pad tokens where the cache is;
        positions follow from the mask. No cache where it saves too little.
        """
        torch = self._torch
        own = [
            k if k is not None and k[0] > n else None
            for k, n in zip(known or [None] * len(rows), shared, strict=True)
        ]
        # Every row keeps at least one token of its own: its last position is read.
        cut = [
            max(0, min(o[0] if o else n, len(r) - 1))
            for r, n, o in zip(rows, shared, own, strict=True)
        ]
        distinct = {tuple(r[:c]) for r, c, o in zip(rows, cut, own, strict=True) if c and not o}
        # Positions computed, padding included: with the cache, each distinct prefix once and
        # every row padded to the longest rest; without, every row padded to the longest row.
        plain = len(rows) * max(len(r) for r in rows)
        cached = sum(map(len, distinct)) + len(rows) * max(
            len(r) - c for r, c in zip(rows, cut, strict=True)
        )
        if plain - cached < self.min_shared_prefix * len(rows):
            ids, mask = self._left_pad(rows)
            return ids, mask, None, 0
        kv = {p: self._prefix_kv(p) for p in distinct}
        if any(v is None for v in kv.values()):
            ids, mask = self._left_pad(rows)
            return ids, mask, None, 0
        width = max(cut)
        rest, rest_mask = self._left_pad([r[c:] for r, c in zip(rows, cut, strict=True)])
        prefix_mask = torch.zeros((len(rows), width), dtype=rest_mask.dtype, device=rest.device)
        for i, c in enumerate(cut):
            if c:
                prefix_mask[i, width - c :] = 1
        per_row: list[Any] = []
        for r, c, o in zip(rows, cut, own, strict=True):
            if o is not None:
                per_row.append([(k[:, :, :c], v[:, :, :c]) for k, v in o[1]])
            else:
                per_row.append(kv[tuple(r[:c])] if c else None)
        ids = torch.cat([torch.full_like(prefix_mask, self.tokenizer.pad_token_id), rest], dim=-1)
        mask = torch.cat([prefix_mask, rest_mask], dim=-1)
        return ids, mask, self._stack_cache(per_row, width), width

    def _stack_cache(self, per_row: Sequence[Any], width: int) -> Any:
        """One batch cache of `width` positions from each row's prefix KV (None: no prefix),
        right-aligned; positions left of a row's prefix are masked out by the caller."""
        from transformers import DynamicCache

        torch = self._torch
        if len({id(p) for p in per_row}) == 1 and per_row[0] is not None:
            # One prefix for the whole batch: views, not copies (the forward pass concatenates
            # new keys onto them).
            layers = [
                (k.expand(len(per_row), -1, -1, -1), v.expand(len(per_row), -1, -1, -1))
                for k, v in per_row[0]
            ]
        else:
            template = next(p for p in per_row if p is not None)
            layers = []
            for layer, (k0, _) in enumerate(template):
                shape = (len(per_row), k0.shape[1], width, k0.shape[3])
                keys = torch.zeros(shape, dtype=k0.dtype, device=k0.device)
                values = torch.zeros_like(keys)
                for i, p in enumerate(per_row):
                    if p is not None:
                        k, v = p[layer]
                        keys[i, :, width - k.shape[2] :] = k[0]
                        values[i, :, width - v.shape[2] :] = v[0]
                layers.append((keys, values))
        return DynamicCache(ddp_cache_data=layers, config=self.model.config)

    # -- option scoring ------------------------------------------------------------------------
    def option_logprobs(self, requests: Sequence[OptionQuery]) -> list[dict[str, float]]:
        # Rows are scored, not (query, option) pairs. A query whose options are all one token
        # long (the labeller's "A"/"B") needs one row, its context: every option's log-prob is
        # read from the context's last position. Other queries get a row per option (context +
        # option). Identical rows are computed once, and each batch computes its rows' common
        # prefix (few-shot examples) once and the rest of every row from that prefix's KV cache.
        rows: dict[tuple[int, ...], list[_Read]] = {}
        for qi, q in enumerate(requests):
            split = [(option, *self._split_context(q, option)) for option in q.options]
            if all(len(cont) == 1 for _, _, cont in split):
                for option, context, cont in split:
                    rows.setdefault(tuple(context), []).append(_Read(qi, option, cont, 1))
            else:
                for option, context, cont in split:
                    key = tuple(context + cont)
                    rows.setdefault(key, []).append(_Read(qi, option, cont, len(cont) + 1))
        # As in generation: rows that share a prefix (few-shot examples; one conversation asked
        # about under several principles) side by side, the rest longest first.
        keys = sorted(rows, key=lambda r: (-len(r), r))
        if self.prefix_cache:
            order, shared = prefix_groups(keys, self.min_shared_prefix)
        else:
            order, shared = list(range(len(keys))), [0] * len(keys)
        out: list[dict[str, float]] = [{} for _ in requests]
        for start in range(0, len(order), self.batch_size):
            batch = [keys[i] for i in order[start : start + self.batch_size]]
            cuts = [shared[i] for i in order[start : start + self.batch_size]]
            for read, score in self._score_rows(batch, [rows[r] for r in batch], cuts):
                out[read.query][read.option] = score
        # Each query's options in the order it gave them.
        return [{o: out[qi][o] for o in q.options} for qi, q in enumerate(requests)]

    def _score_rows(
        self,
        batch: Sequence[tuple[int, ...]],
        reads: Sequence[list[_Read]],
        shared: Sequence[int],
    ) -> list[tuple[_Read, float]]:
        """Score one batch of rows: each shared prefix once, then the rest of each row."""
        torch = self._torch
        # A prefix must stop before the first position any read needs (a read with `back`
        # uses the logits of the row's last `back` positions).
        limits = [
            min(n, len(row) - max(r.back for r in rs))
            for row, rs, n in zip(batch, reads, shared, strict=True)
        ]
        ids, mask, cache, width = self._cached_inputs(batch, limits)
        # Positions from the mask: a row's rest follows its prefix, whatever the padding.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, width:]
        kwargs: dict[str, Any] = {
            "input_ids": ids[:, width:],
            "attention_mask": mask,
            "position_ids": positions,
        }
        if cache is not None:
            kwargs[self._cache_kwarg()] = cache
        tail = max(r.back for rs in reads for r in rs)
        if self._keeps_logits:
            kwargs["logits_to_keep"] = tail
        with torch.inference_mode():
            logits = self.model(**kwargs).logits[:, -tail:].float()
            logp = torch.log_softmax(logits, dim=-1)
        scored: list[tuple[_Read, float]] = []
        for b, rs in enumerate(reads):
            for r in rs:
                first = tail - r.back
                steps = torch.arange(first, first + len(r.targets), device=logp.device)
                targets = torch.tensor(r.targets, dtype=torch.long, device=logp.device)
                scored.append((r, float(logp[b, steps, targets].sum())))
        return scored

    def _cache_kwarg(self) -> str:
        # transformers 5 renamed `past_key_values` to `cache` on the forward pass.
        params = inspect.signature(type(self.model).forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def _prefix_kv(self, prefix: Sequence[int]) -> list[tuple[Any, Any]] | None:
        """Per layer, the keys and values of `prefix` (batch of one); None where the model's
        cache is not a plain per-layer key/value cache (callers then compute without one)."""
        torch = self._torch
        from transformers import DynamicCache

        ids = torch.tensor([list(prefix)], dtype=torch.long, device=self.device)
        keep: dict[str, Any] = {"logits_to_keep": 1} if self._keeps_logits else {}
        with torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=True, **keep)
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        layers = getattr(cache, "layers", None)
        if not isinstance(cache, DynamicCache) or not layers:
            return None
        if any(getattr(layer, "is_sliding", False) for layer in layers):
            return None
        return [(layer.keys, layer.values) for layer in layers]


@dataclass(frozen=True)
class _Stored:
    """One row of an earlier call: its tokens and, per layer, their keys and values."""

    tokens: list[int]
    kv: list[tuple[Any, Any]]
    nbytes: int


def _continuations(
    rows: Sequence[Sequence[int]], stored: Sequence[_Stored], min_prefix: int
) -> list[tuple[int, list[tuple[Any, Any]]] | None]:
    """For each row, the stored row it continues furthest (at least `min_prefix` tokens):
    `(tokens shared, that row's keys and values)`, or None."""
    import numpy as np

    if not stored:
        return [None] * len(rows)
    kept = [np.asarray(s.tokens) for s in stored]
    out: list[tuple[int, list[tuple[Any, Any]]] | None] = []
    for row in rows:
        r = np.asarray(row)
        best, where = 0, -1
        for j, t in enumerate(kept):
            n = min(len(r), len(t))
            same = r[:n] == t[:n]
            shared = n if same.all() else int(same.argmin())
            if shared > best:
                best, where = shared, j
        out.append((best, stored[where].kv) if best >= min_prefix else None)
    return out


@dataclass(frozen=True)
class _Read:
    """One option's log-prob to read from a row: `targets` are predicted by the logits of the
    row's positions `len(row) - back` onwards."""

    query: int
    option: str
    targets: list[int]
    back: int


def prefix_groups(rows: Sequence[Sequence[int]], min_prefix: int) -> tuple[list[int], list[int]]:
    """A generation order that puts rows sharing a prefix of at least `min_prefix` tokens next
    to each other, and each row's shared length (0: none).

    Rows sorted by their tokens sit next to those they share most with. That order is cut into
    groups so that the tokens saved (per group: its rows but one, times the prefix all of them
    share) are as many as possible (dynamic programming over the cuts). Groups come largest
    first, each longest row first; the rest follow, longest first (as without a cache: similar
    lengths, little padding).

    >>> prefix_groups([[9], [1, 2, 3, 4], [1, 2, 3, 5, 6], [7, 8]], 3)
    ([2, 1, 3, 0], [0, 3, 3, 0])
    >>> prefix_groups([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 6, 7], [1, 2, 6, 8]], 2)[1]
    [3, 3, 3, 3]
    """
    by_tokens = sorted(range(len(rows)), key=lambda i: list(rows[i]))
    n = len(by_tokens)
    # lcp[k]: tokens shared by the k-th and (k+1)-th rows in sorted order.
    lcp = [_common_prefix([rows[a], rows[b]]) for a, b in itertools.pairwise(by_tokens)]
    best = [0] * (n + 1)  # best[j]: most tokens saved by grouping the first j sorted rows
    cut = [0] * (n + 1)  # where the last group of that best grouping starts
    for j in range(1, n + 1):
        best[j], cut[j] = best[j - 1], j - 1  # row j-1 on its own
        shared = None
        for i in range(j - 2, -1, -1):  # group of sorted rows i..j-1
            shared = lcp[i] if shared is None else min(shared, lcp[i])
            if shared < min_prefix:
                break
            if best[i] + (j - i - 1) * shared > best[j]:
                best[j], cut[j] = best[i] + (j - i - 1) * shared, i
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(by_tokens[cut[j] : j])
        j = cut[j]
    shared_len = [0] * len(rows)
    grouped: list[list[int]] = []
    single: list[int] = []
    for g in groups:
        if len(g) == 1:
            single.extend(g)
            continue
        common = _common_prefix([rows[i] for i in g])
        for i in g:
            shared_len[i] = common
        grouped.append(sorted(g, key=lambda i: -len(rows[i])))
    grouped.sort(key=lambda g: (-len(g), g[0]))
    order = [i for g in grouped for i in g] + sorted(single, key=lambda i: -len(rows[i]))
    return order, shared_len


def _flag(value: bool | str, name: str) -> bool:
    """A boolean backend option, also from `--model-opt name=false` text."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise BackendError(f"{name} must be true or false, got {value!r}")


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix that every row shares.

    >>> _common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]])
    2
    """
    first, n = rows[0], min(len(r) for r in rows)
    for i in range(n):
        if any(r[i] != first[i] for r in rows):
            return i
    return n
