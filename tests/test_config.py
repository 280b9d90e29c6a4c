from __future__ import annotations

from pathlib import Path

import pytest

from charter.config import load_config
from charter.errors import ConfigError


def test_presets_file_overlay_and_overrides(tmp_path: Path) -> None:
    quick = load_config("quick")
    assert quick.generation.max_new_tokens == 64 and quick.name == "quick"
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("name: mine\ngeneration:\n  temperature: 0.1\n")
    cfg = load_config("quick", cfg_file, ["generation.batch_size=3", "prompts=x.jsonl"])
    assert cfg.name == "mine"
    assert cfg.generation.temperature == 0.1
    assert cfg.generation.max_new_tokens == 64  # kept from the preset
    assert cfg.generation.batch_size == 3
    assert cfg.prompts == "x.jsonl"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("generation:\n  temprature: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml.*unknown key `generation.temprature`"):
        load_config("default", cfg_file)
    with pytest.raises(ConfigError, match="unknown key `bogus`"):
        load_config("default", None, ["bogus=1"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("- a\n- b\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
        ("generation:\n  batch_size: zero\n", "generation.batch_size"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, match: str) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config("default", cfg_file)


def test_unknown_preset_and_bad_override() -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("huge")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config("default", None, ["novalue"])


def test_a_yaml_escape_past_unicode_is_an_input_error_with_its_line() -> None:
    """Found by the constitution fuzz test: PyYAML's scanner raised OverflowError on an escape
    like "\\UFFFFFFFF"."""
    from charter.errors import InputError
    from charter.userinput import parse_yaml

    for text, line in (('"\\UFFFFFFFF"', 1), ('a: 1\nb: "\\U00110000"', 2)):
        with pytest.raises(InputError, match=rf"x\.yaml, line {line}: not valid YAML/JSON"):
            parse_yaml(text, "x.yaml")
