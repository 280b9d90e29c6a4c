"""Property tests of run configs: `--config FILE` (YAML) and `--set KEY=VALUE` (issue #18.6).

Generated config files mix near-valid configs (real keys with good and bad values) with hostile
YAML (anchors and aliases, `!!python` tags, NUL bytes, deep nesting, several documents), and
generated `--set` lines mix real keys with hostile values (`name=[`, tags, NUL). Each either
validates or fails with a `ConfigError` (a `CharterError`) in one paragraph; through `charter
run` a failure exits 2 before anything is written under `--runs-dir`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from charter.config import RunConfig, load_config
from charter.errors import CharterError
from fuzzing import CASES, NASTY_TEXT, deep, files_under, json_values, run_main, typed_or_ok

KEYS = [
    "name", "seed", "prompts", "limit", "runs_dir", "constitution", "generation.backend",
    "generation.temperature", "generation.max_new_tokens", "generation.batch_size",
    "generation.backend_options.delay", "sl.limit", "sl.rounds", "sl.split", "label.limit",
    "label.principles_per_pair", "train.enabled", "train.sft.max_steps", "evaluate.langs",
    "evaluate.limit", "feedback.backend", "judge.backend_options", "tempreture", "sl.colour",
]  # fmt: skip
GOOD_VALUES = ["1", "0.5", "null", "true", "fake", "all", "[en, ar]", "16", "x"]
HOSTILE_VALUES = [*NASTY_TEXT, "[", "{a: 1", "!!python/name:os.system", "&a [*a]", "\x00",
                  "- x\n- y", "1e999", deep(100), "'unterminated", '"\\ud800"']  # fmt: skip
value_text = st.one_of(st.sampled_from(GOOD_VALUES), st.sampled_from(HOSTILE_VALUES),
                       st.text(max_size=10))  # fmt: skip
overrides = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), value_text),
        st.sampled_from(["name=", "=1", "novalue", ".=1", "a..b=1", "name=[", "x.=2"]),
    ),
    max_size=3,
)


def nested(key: str, value: Any) -> dict[str, Any]:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value  # type: ignore[no-any-return]


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    """A config file: real keys with any values, written as YAML, sometimes spliced."""
    data: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=4)):
        value = draw(st.one_of(json_values, st.sampled_from([1, 0.5, None, True, "fake"])))
        data.update(nested(key, value))
    top = draw(st.one_of(st.just(data), json_values))
    try:
        text = yaml.safe_dump(top, allow_unicode=draw(st.booleans()), sort_keys=False)
    except yaml.YAMLError:
        text = repr(top)
    for at, piece in draw(
        st.lists(st.tuples(st.integers(0, len(text)), st.sampled_from(HOSTILE_VALUES)), max_size=2)
    ):
        text = text[:at] + piece + text[at:]
    return text.encode("utf-8", "surrogatepass")


@CASES
@given(content=config_files(), sets=overrides, preset=st.sampled_from(["quick", "default"]))
def test_config_files_and_sets_validate_or_fail_typed(
    content: bytes, sets: list[str], preset: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(content)
        result = typed_or_ok(lambda: load_config(preset, path, sets))
        assert isinstance(result, RunConfig | CharterError)
        assert files_under(Path(tmp)) == {"c.yaml"}  # validating writes nothing


# Values that always fail validation, so that no case starts a real run.
FAILING_SET = st.sampled_from(
    ["seed=[", "generation.temperature=-1", "sl.rounds=x", "name=", "name=..", "limit=0",
     "generation.max_new_tokens=!!python/name:os.system", "tempreture=1", "name=\x00"]
)  # fmt: skip


@CASES
@given(content=config_files(), sets=overrides, failing=FAILING_SET)
def test_charter_run_with_a_bad_config_exits_2_and_writes_nothing(
    content: bytes, sets: list[str], failing: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "c.yaml"
        path.write_bytes(content)
        runs = root / "runs"
        args = ["run", "--preset", "quick", "--config", str(path), "--runs-dir", str(runs)]
        args += [a for s in [*sets, failing] for a in ("--set", s)]
        code, _, err = run_main([*args, "--no-progress"])
        assert code == 2, err
        assert err.startswith("charter: error:") or "Error:" in err, err
        assert "Traceback" not in err
        assert not runs.exists(), files_under(runs)
