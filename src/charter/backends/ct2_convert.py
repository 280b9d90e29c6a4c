"""Converting a transformers model folder for CTranslate2, once, cached by content.

A converted copy lives in `$CHARTER_HOME/ct2/<folder name>-<sha256 of the source files>-<weight
type>/`: the CTranslate2 model (`model.bin`, `config.json`, `vocabulary.json`) and, under `hf/`,
the source's tokenizer, chat template and configs (CTranslate2 writes its own `config.json`, so
the transformers files cannot sit beside it). The key is the content of the source files, not
their path: retraining into the same folder gives a new copy, and the same weights reached by
two paths convert once. As for the embedded model, a file lock keeps two processes from
converting at once and the copy appears by an atomic rename, so a half-converted copy is never
seen; a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from charter.backends.gguf_convert import charter_home
from charter.errors import BackendError

MARK = "charter-ct2.json"
HF_DIR = "hf"
# Files of a model folder that are weights: converted, not copied beside the CTranslate2 model.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".ckpt")
# Left out of the content key: charter's own marker and transient files.
UNKEYED = ("charter-converted.json",)

# How each compute type stores its weights on disk (the conversion's `quantization`).
STORAGE = {
    "int8": "int8",
    "int8_float32": "int8",
    "int8_float16": "int8",
    "int8_bfloat16": "int8",
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
}

# Decoder-only families among CTranslate2's transformers loaders (the others are encoders and
# sequence-to-sequence models, which are not causal LMs).
_NOT_CAUSAL = (
    "Bart",
    "Bert",
    "Camembert",
    "DistilBert",
    "M2M100",
    "MBart",
    "MT5",
    "Marian",
    "Pegasus",
    "Roberta",
    "T5",
    "UMT5",
    "Wav2Vec2",
    "Whisper",
    "XLMRoberta",
)


def supported_configs() -> list[str]:
    """transformers config classes of causal LMs that this CTranslate2 can convert."""
    from ctranslate2.converters import transformers as ct2_transformers

    loaders: dict[str, Any] = getattr(ct2_transformers, "_MODEL_LOADERS", {})
    return sorted(name for name in loaders if not name.startswith(_NOT_CAUSAL))


def _supported_text() -> str:
    names = [n.removesuffix("Config") for n in supported_configs()]
    return ", ".join(names)


def check_convertible(source: Path) -> dict[str, Any]:
    """The folder's `config.json`, after checking it is a causal LM CTranslate2 can convert."""
    config_path = source / "config.json"
    if not source.is_dir():
        raise BackendError(f"model folder {source} not found")
    if not config_path.exists():
        raise BackendError(
            f"{source} is not a transformers model folder (no config.json); the ct2: backend "
            "needs a local folder saved by transformers (`save_pretrained`)"
        )
    try:
        config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BackendError(f"{config_path}: unreadable ({e})") from None
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForCausalLM") for a in architectures):
        raise BackendError(
            f"{source} is not a causal language model (architectures: "
            f"{', '.join(map(str, architectures)) or 'none given'}); the ct2: backend runs "
            f"causal LMs of these families: {_supported_text()}"
        )
    config_class = _config_class(config)
    if config_class not in supported_configs():
        raise BackendError(
            f"CTranslate2 cannot convert {source} (model type "
            f"{config.get('model_type')!r}, {', '.join(map(str, architectures))}); it converts "
            f"causal LMs of these families: {_supported_text()}. Use engine=torch for this model."
        )
    return config


def _config_class(config: dict[str, Any]) -> str:
    from transformers import AutoConfig

    model_type = config.get("model_type")
    try:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        return str(CONFIG_MAPPING[model_type].__name__)
    except (KeyError, ImportError):
        return str(type(AutoConfig.for_model(str(model_type))).__name__)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _keyed_files(source: Path) -> list[Path]:
    return sorted(
        p
        for p in source.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in UNKEYED
    )


def source_digest(source: Path) -> str:
    """sha256 over the folder's files (names and contents), top level only.

    Hashing a multi-GB model takes seconds, so each folder's digest is remembered with the
    files' sizes and modification times (`$CHARTER_HOME/ct2/digests.json`) and reused while
    those are unchanged.
    """
    from filelock import FileLock

    files = _keyed_files(source)
    signature = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    index_path = charter_home() / "ct2" / "digests.json"
    index_path.parent.mkdir(parents=True, exist_ok=True)
    key = str(source.resolve())
    with FileLock(str(index_path) + ".lock", timeout=600):
        try:
            index: dict[str, Any] = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            index = {}
        entry = index.get(key)
        if entry and entry.get("signature") == signature:
            return str(entry["sha256"])
        h = hashlib.sha256()
        for p in files:
            h.update(f"{p.name}\0{_file_sha256(p)}\n".encode())
        digest = h.hexdigest()
        index[key] = {"signature": signature, "sha256": digest}
        tmp = index_path.with_name(f".{index_path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, index_path)
    return digest


def converted_dir(source: Path, compute_type: str) -> Path:
    storage = STORAGE[compute_type]
    return charter_home() / "ct2" / f"{source.name}-{source_digest(source)[:16]}-{storage}"


def is_converted(target: Path) -> bool:
    return (target / MARK).exists()


def ensure_converted(source: Path, compute_type: str) -> tuple[Path, bool]:
    """The CTranslate2 copy of `source` for `compute_type`, converting it if needed; also
    whether this call converted it."""
    from filelock import FileLock

    source = source.expanduser()
    check_convertible(source)
    target = converted_dir(source, compute_type)
    if is_converted(target):
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=3600):
        if is_converted(target):  # another process converted it while we waited
            return target, False
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        started = time.perf_counter()
        print(
            f"charter: converting {source} for CTranslate2 ({STORAGE[compute_type]} weights), "
            f"once, into {target}",
            file=sys.stderr,
        )
        try:
            _convert(source, tmp, STORAGE[compute_type])
            (tmp / MARK).write_text(
                json.dumps(
                    {
                        "source": str(source.resolve()),
                        "source_sha256": source_digest(source),
                        "weights": STORAGE[compute_type],
                        "ctranslate2": _ct2_version(),
                        "seconds": round(time.perf_counter() - started, 2),
                    },
                    indent=2,
                )
                + "\n",
                encoding="utf-8",
            )
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, BackendError | KeyboardInterrupt):
                raise
            if isinstance(e, Exception):
                raise BackendError(
                    f"CTranslate2 could not convert {source}: {e}. It converts causal LMs of "
                    f"these families: {_supported_text()}; engine=torch runs any model."
                ) from None
            raise
    return target, True


def _ct2_version() -> str:
    import ctranslate2

    return str(ctranslate2.__version__)


def _convert(source: Path, out: Path, quantization: str) -> None:
    import transformers
    from ctranslate2.converters import TransformersConverter

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    TransformersConverter(str(source), low_cpu_mem_usage=True).convert(
        str(out), quantization=quantization, force=True
    )
    hf = out / HF_DIR
    hf.mkdir()
    for p in _keyed_files(source):
        if not p.name.endswith(WEIGHT_SUFFIXES) and not p.name.endswith(".index.json"):
            shutil.copy2(p, hf / p.name)
