"""report.html: self-contained, escaped, right-to-left where Arabic, and it opens in Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from eval_fakes import KeywordDetector, is_ar, judge, refuser, write_inputs

from charter.backends.fake import FakeBackend
from charter.evaluate.compare import evaluate_models
from charter.evaluate.options import EvalOptions
from charter.evaluate.report import write_report

SCRIPT = "<script>alert(1)</script>"
CHROMIUM = Path("/usr/bin/chromium")


def evaluated(tmp_path: Path, run_dir: Path | None = None) -> Path:
    """An evaluation where one model answers with a script tag (English and Arabic)."""
    prompts = write_inputs(tmp_path / "in")
    opts = EvalOptions(
        models={"base": "fake", "sl": "fake"},
        prompts=prompts,
        langs=["en", "ar"],
        judge="fake",
        judge_format="raw",
        constitution=str(tmp_path / "in" / "tiny.yaml"),
        few_shot=0,
        n_boot=100,
    )
    hostile = FakeBackend(
        answers=lambda chat: (
            f"مرحبا {SCRIPT} <img src=x onerror=alert(2)>"
            if is_ar(chat)
            else f"Sure {SCRIPT} & <b>bold</b>"
        )
    )
    out = (run_dir or tmp_path) / "eval"
    backends: dict[str, Any] = {"base": hostile, "sl": refuser(), "judge": judge()}
    evaluate_models(opts, out, progress=False, backends=backends, detector=KeywordDetector())
    return out


def sl_sample(prompt_id: str, text: str) -> dict[str, Any]:
    return {
        "id": "s1",
        "prompt_id": prompt_id,
        "messages": [{"role": "user", "content": text}],
        "initial": f"initial {SCRIPT}",
        "rounds": [
            {
                "principle_id": "harmless",
                "critique_request": "c?",
                "critique": f"critique {SCRIPT}",
                "revision_request": "r?",
                "revision": "revised answer",
                "accepted": True,
                "reason": None,
            }
        ],
        "final": "revised answer",
        "lang": "en",
    }


def test_model_text_is_inert_and_the_page_is_self_contained(tmp_path: Path) -> None:
    out = evaluated(tmp_path)
    html = write_report(out, out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()  # the page has no scripts of its own either
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<b>bold</b>" not in html
    # No external resources: every src is inline data, no stylesheet or font links.
    assert set(re.findall(r'src="([a-z]+):', html)) == {"data"}
    assert "<link" not in html and "http://" not in html and "https://" not in html
    # Arabic answers render right-to-left.
    assert re.search(r'<div class="txt" lang="ar" dir="rtl">مرحبا', html)
    # Plots and sections.
    assert html.count("data:image/png;base64,") == 3
    for heading in ("Summary", "Pairwise win rates", "Per harm category", "Constitution: tiny"):
        assert heading in html
    assert "Life &amp; &lt;security&gt;" in html  # a principle's source note, escaped


def test_run_folder_adds_config_and_sl_examples(tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = evaluated(tmp_path, run)
    (run / "config.yaml").write_text(f"name: run\nnote: '{SCRIPT}'\n", encoding="utf-8")
    (run / "sl").mkdir()
    sl = run / "sl" / "samples.jsonl"
    # A train prompt that was not evaluated: shown on its own, and the page says so.
    sl.write_text(json.dumps(sl_sample("train-1", "a train prompt")) + "\n", encoding="utf-8")
    html = write_report(out, run / "report.html", run_dir=run).read_text(encoding="utf-8")
    assert "no prompt is in both" in html
    assert "critique &lt;script&gt;" in html and "note: &#39;&lt;script&gt;" in html
    # An SL prompt that the evaluation also answered: joined with the models' answers.
    sl.write_text(
        json.dumps(sl_sample("red-team-en-0", "question 0 red-team")) + "\n", encoding="utf-8"
    )
    html = write_report(out, run / "report.html", run_dir=run).read_text(encoding="utf-8")
    assert "whose prompts were also evaluated" in html
    section = html.split("SL-CAI: critiques and revisions")[1]
    assert "I can&#39;t help with that." in section  # the refuser's eval answer to that prompt


@pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (/usr/bin/chromium); .ci/run installs it",
)
def test_report_opens_in_headless_chromium(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    out = evaluated(tmp_path)
    report = write_report(out, out / "report.html")
    errors: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        images = page.eval_on_selector_all("img.plot", "els => els.map(e => e.naturalWidth)")
        rtl = page.eval_on_selector('div.txt[lang="ar"]', "e => getComputedStyle(e).direction")
        browser.close()
    assert errors == []  # no console errors, and no alert() from the model's text
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert len(images) == 3 and all(w > 100 for w in images)
    assert rtl == "rtl"
    assert shot.stat().st_size > 10_000


def test_the_report_warns_about_an_unmeasured_or_near_chance_judge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A judge never measured on the HHH comparisons gets a banner; once `evaluate mc` has
    recorded a near-chance result for its weights, the banner says so with the figures."""
    from charter.evaluate import validity

    monkeypatch.setenv("CHARTER_HOME", str(tmp_path / "home"))
    out = evaluated(tmp_path / "a")
    metrics = json.loads((out / "metrics.json").read_text())
    v = metrics["judge_validity"]
    assert v["measured"] is False and v["format"] == "raw"
    html = write_report(out, tmp_path / "a.html").read_text(encoding="utf-8")
    assert "was never measured on the HHH comparisons" in html
    result = {
        "n": 438, "accuracy": 0.52, "letter_bias": 0.2, "format": "raw",
        "swap": {"accuracy": 0.51, "ci_low": 0.46, "ci_high": 0.56, "ece": 0.03},
    }  # fmt: skip
    kept = validity.record(
        result, model_sha256=v["model_sha256"], data=Path("x/438HHHEvaluations.jsonl"), spec="fake"
    )
    assert kept is not None and kept.exists()
    assert validity.record(result, model_sha256="x", data=Path("other.jsonl"), spec="fake") is None
    found = validity.lookup("fake", v["model_sha256"], "raw")
    assert found is not None and found["near_chance"] and found["accuracy"] == 0.51
    assert validity.lookup("fake", v["model_sha256"], "chat") is None
    out = evaluated(tmp_path / "b")
    html = write_report(out, tmp_path / "b.html").read_text(encoding="utf-8")
    assert "is near chance: 0.510 [0.460, 0.560]" in html


def test_shipped_validity_covers_the_catalog_judges() -> None:
    from charter.evaluate import validity

    specs = {e["spec"] for e in validity.shipped()}
    assert {"embedded", "model:qwen2.5-coder-1.5b-instruct"} <= specs
    embedded = validity.lookup("embedded", None, "raw")
    assert embedded is not None and embedded["near_chance"]
