"""The constitution schema, the public-format importers and the `charter constitution` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from charter.constitution.importers import import_anthropic, import_hf, split_transcript
from charter.constitution.load import dump_constitution, load_constitution, parse_constitution
from charter.constitution.schema import Constitution, Principle, PrincipleText
from charter.errors import InputError
from conftest import run_cli

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PAPER = SHARED / "anthropic-cai" / "prompts"
needs_paper = pytest.mark.skipif(not PAPER.exists(), reason=f"shared data not found at {PAPER}")

GOOD = {
    "name": "t",
    "principles": [
        {
            "id": "a",
            "critique": "Find harm.",
            "revision": "Remove harm.",
            "comparison": "Which is less harmful?",
            "sources": [{"kind": "udhr", "ref": "art. 3"}],
            "translations": {"ar": {"critique": "ن", "revision": "ر", "comparison": "أي"}},
        },
        {
            "id": "b",
            "comparison": "Which is more honest?",
            "translations": {"ar": {"comparison": "أيهما أصدق؟"}},
        },
    ],
}
UNTRANSLATED = {"name": "u", "principles": [{"id": "b", "comparison": "Which is more honest?"}]}


def variant(**changes: object) -> dict[str, object]:
    data = json.loads(json.dumps(GOOD))
    first = data["principles"][0]
    for key, value in changes.items():
        if value is None:
            first.pop(key, None)
        else:
            first[key] = value
    return data  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {**GOOD, "principles": [GOOD["principles"][0]] * 2},
            "duplicate principle id 'a'",
        ),
        (variant(critique="  "), "principles.0.critique"),
        (variant(sources=[{"kind": "blog", "ref": "x"}]), "principles.0.sources.0.kind"),
        (
            variant(translations={"ar": {"critique": "ن", "revision": "ر"}}),
            "translation `ar` lacks comparison",
        ),
        (variant(revision=None), "`revision` is missing"),
        (variant(colour="red"), "principles.0.colour"),
    ],
)
def test_invalid_constitutions_name_the_field(
    tmp_path: Path, data: dict[str, object], field: str
) -> None:
    with pytest.raises(InputError, match=field.replace("(", r"\(").replace(".", r"\.")):
        parse_constitution(data, "c.yaml")
    path = tmp_path / "c.yaml"
    # Through JSON: PyYAML would write the repeated principle as an anchor and an alias, which
    # charter refuses (alias bombs) before it could see the duplicate id.
    path.write_text(yaml.safe_dump(json.loads(json.dumps(data)), allow_unicode=True))
    r = run_cli(["constitution", "validate", str(path)])
    assert r.returncode == 1 and field in r.stderr and str(path) in r.stderr


def test_hash_round_trip_and_localization(tmp_path: Path) -> None:
    c = parse_constitution(GOOD, "x")
    for fmt in ("yaml", "json"):
        again = parse_constitution(yaml.safe_load(dump_constitution(c, fmt)), "x")
        assert again.compute_sha256() == c.compute_sha256()
        assert again.sha256 == c.compute_sha256()  # written on export
    ar = c.localized("ar")
    assert ar.principles[0].critique == "ن" and ar.compute_sha256() != c.compute_sha256()
    with pytest.raises(KeyError, match="'b' has no `ar`"):
        parse_constitution(UNTRANSLATED, "x").localized("ar")
    # A principle needs some text; a constitution needs a principle.
    with pytest.raises(ValueError):
        Principle(id="z")
    with pytest.raises(ValueError):
        Constitution(name="n", principles=[])
    assert PrincipleText(comparison="q").present() == {"comparison"}


@needs_paper
def test_import_the_cai_paper(tmp_path: Path) -> None:
    c = import_anthropic([PAPER])
    assert len(c.critique_principles()) == 16 and len(c.comparison_principles()) == 16
    assert len(c.few_shot.critique_revision) == 5
    # 5 plain labelling examples (one pair each) + 6 chain-of-thought ones.
    assert len(c.few_shot.labeling) == 11
    assert sum(e.reasoning is not None for e in c.few_shot.labeling) == 6
    raw = json.loads((PAPER / "CritiqueRevisionInstructions.json").read_text())
    request = raw["harmful0"]["prompt"][0].split("CritiqueRequest: ")[1].split("\n\nCritique:")[0]
    assert c.principle("harmful0").critique == request
    first = c.few_shot.critique_revision[0]
    assert first.messages[0].content.startswith("Could you help me burn down my house")
    assert first.revision.startswith("I'm sorry, I shouldn't have agreed to help.")
    # Export → import round-trips to the same hash, through the CLI.
    out = tmp_path / "paper.yaml"
    r = run_cli(["constitution", "import", "--format", "anthropic", str(PAPER), "--out", str(out)])
    assert r.returncode == 0, r.stderr
    assert "16 critique/revision and 16 comparison principles" in r.stdout
    assert load_constitution(out).compute_sha256() == c.compute_sha256()
    exported = tmp_path / "again.json"
    assert (
        run_cli(
            ["constitution", "export", str(out), "--format", "json", "--out", str(exported)]
        ).returncode
        == 0
    )
    assert load_constitution(exported).compute_sha256() == c.compute_sha256()


def test_import_llm_swarm_format(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "fixtures" / "llm_swarm_constitution.json"
    c = import_hf(fixture)
    assert (c.principles[0].critique or "").startswith("Point out")
    assert len(c.principles) == 2 and len(c.few_shot.critique_revision) == 2
    ex = c.few_shot.critique_revision[0]
    assert ex.messages[-1].role == "assistant" and ex.revision.startswith("I can't help")
    out = tmp_path / "hf.yaml"
    r = run_cli(["constitution", "import", "--format", "hf", str(fixture), "--out", str(out)])
    assert r.returncode == 0, r.stderr
    assert load_constitution(out).compute_sha256() == c.compute_sha256()
    bad = tmp_path / "bad.json"
    bad.write_text('{"constitutions": [{"critic": "x"}]}')
    with pytest.raises(
        InputError, match=r"constitutions\[0\]: expected fields `critic` and `revision`"
    ):
        import_hf(bad)


def test_split_transcript() -> None:
    assert split_transcript("Human: a\n\nAssistant: b") == [("Human", "a"), ("Assistant", "b")]


def test_show_list_and_languages() -> None:
    r = run_cli(["constitution", "list"])
    assert r.returncode == 0 and "udhr (default)" in r.stdout and "minimal" in r.stdout
    shown = run_cli(["constitution", "show", "udhr", "--lang", "ar", "--json"])
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (
        data["principles"][0]["critique"]
        == load_constitution("udhr").principles[0].text("ar").critique
    )
    assert yaml.safe_load(run_cli(["constitution", "show", "minimal"]).stdout)["name"] == "minimal"
    missing = run_cli(["constitution", "show", "no-such-thing"])
    assert missing.returncode == 2 and "builtin names are" in missing.stderr


@pytest.mark.skipif(not (SHARED / "udhr").exists(), reason=f"shared data not found at {SHARED}")
def test_show_with_sources_cli() -> None:
    r = run_cli(["constitution", "show", "udhr", "--with-sources", str(SHARED / "udhr")])
    assert r.returncode == 0, r.stderr
    assert "privacy" in r.stdout and "arbitrary interference" in r.stdout  # art. 12's own words
    ar = run_cli(
        ["constitution", "show", "udhr", "--with-sources", str(SHARED / "udhr"), "--lang", "ar"]
    )
    assert ar.returncode == 0, ar.stderr
    assert "الخصوصية" in ar.stdout or "خصوصي" in ar.stdout
