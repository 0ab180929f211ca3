"""The spurious check's part of the report: HTML/PDF view, Markdown section, methodology, and survival of
missing keys, wrong types and hostile strings (fixture: `tests.report_fixtures.spurious`)."""
from __future__ import annotations

import copy
import io
import re
from typing import Any

import pytest
from pypdf import PdfReader

from auditor.report import render_html, render_markdown, render_pdf
from auditor.report.sections.spurious import box_text
from tests.report_fixtures import (
    CONTROL,
    HOSTILE,
    LONG_NAME,
    check_section,
    renders_cleanly,
    results_spurious,
    results_v1,
    table_by_caption,
    table_row,
)

CAPTION = "Finding 1: before and after removing the region"


def _sp(results: dict[str, Any]) -> dict[str, Any]:
    return results["checks"]["spurious"]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(results_spurious())


@pytest.fixture(scope="module")
def section(page: str) -> str:
    return check_section(page, "spurious")


# -- HTML: content and order ----------------------------------------------------------------------------


def test_parts_come_in_order(section: str) -> None:
    # the main body (the cue, where the evidence lies, the check's figures), then its part of the appendix
    marks = ['class="sp-summary sp-found"', "<caption>Confirmed cues</caption>", "Where the evidence lies",
             "<caption>Flip rates by group</caption>", "No audited image was predicted as",
             "Regions tested but not reported as cues", "Share of evidence off the subject, by group", "Mean evidence per predicted class"]
    positions = [section.index(m) for m in marks]
    assert positions == sorted(positions)
    assert "1 confirmed cue: the model relies on a top-right region to predict smiling." in section
    assert render_html(results_spurious()) == render_html(copy.deepcopy(results_spurious()))  # deterministic


def test_findings_table_has_box_shares_flips_n_and_p(section: str) -> None:
    row = table_by_caption(section, "Confirmed cues").split("<tbody>", 1)[1]
    assert ">smiling<" in row and "48,0 – 64,16 of 64×64" in row and ">0.340<" in row and ">0.940<" in row
    assert '<span class="num">0.620</span><br><span class="ci">control 0.040</span>' in row
    assert '<span class="num">0.453</span><br><span class="ci">control 0.031</span>' in row
    assert ">50 / 64<" in row and "&lt;0.001" in row
    assert "a cue needs p &lt; 0.05" in section


def test_group_flips_overall_metrics_unpredicted_classes_candidates_and_groups(section: str) -> None:
    female = table_row(table_by_caption(section, "Flip rates by group"), "female")
    assert '0.615</span> <span class="ci">(n=26)' in female and '0.469</span> <span class="ci">(n=32)' in female
    kv = section.split('class="kv sp-overall"', 1)[1].split("</table>", 1)[0]
    assert '0.570</span> <span class="ci">[0.530, 0.610]' in kv and "6 of 128 images" in kv and ">0.860<" in kv
    assert "0.183" in kv and "lower is better; a random pixel order scores 0.412" in kv and ">128<" in kv
    assert "No audited image was predicted as (no evidence map): surprised." in section
    table = table_by_caption(section, "Regions tested but not reported as cues")
    assert ">neutral<" in table and "0,48 – 16,64 of 64×64" in table and "not confirmed: removing or transplanting" in table
    assert ">smiling<" not in table and ">0.50<" in table
    table = table_by_caption(section, "Share of evidence off the subject, by group")
    assert '0.550</span><br><span class="ci">[0.500, 0.600]' in table
    assert '<span class="na">n/a</span> <span class="reason">(too few images)</span>' in table.split(">60+<", 1)[1]


def _first_finding(section: str) -> str:
    """The first finding's <div class="sp-finding">, up to its matching </div> (its wide tables sit in a
    scroll <div> of their own)."""
    rest = section.split('class="sp-finding"', 1)[1]
    depth = 1
    for tag in re.finditer(r"<div\b|</div>", rest):
        depth += -1 if tag.group() == "</div>" else 1
        if depth == 0:
            return rest[:tag.start()]
    raise AssertionError("the finding's <div> is not closed")


def test_finding_figure_sits_with_its_finding_and_is_shown_once(page: str, section: str) -> None:
    block = _first_finding(section)
    assert f"<figcaption>{CAPTION}</figcaption>" in block
    assert page.count(f"<figcaption>{CAPTION}</figcaption>") == 1
    for caption in ("Mean evidence per predicted class", "The strongest examples with their masks"):
        assert page.count(f"<figcaption>{caption}</figcaption>") == 1


def test_a_finding_naming_no_known_figure_leaves_every_figure_to_the_generic_list() -> None:
    results = results_spurious()
    _sp(results)["metrics"]["findings"][0]["figure"] = "missing"
    section = check_section(render_html(results), "spurious")
    assert section.count(f"<figcaption>{CAPTION}</figcaption>") == 1
    assert section.index(CAPTION) > section.index("Share of evidence off the subject, by group")


def test_no_findings_says_no_cue_was_confirmed_once() -> None:
    results = results_spurious()
    metrics = _sp(results)["metrics"]
    metrics.update(findings=[], candidates=metrics["candidates"][1:], summary="")
    section = check_section(render_html(results), "spurious")
    assert '<p class="sp-summary sp-none">No cue was confirmed.' in section
    assert "Confirmed cues</caption>" not in section and "Regions tested but not reported" in section
    assert "\nNo cue was confirmed\\." in render_markdown(results)
    metrics["summary"] = "no cue was confirmed: nothing flipped more than the control"
    section = check_section(render_html(results), "spurious")
    assert '<p class="sp-summary sp-none">no cue was confirmed: nothing flipped more than the control</p>' in section


def test_without_subject_boxes_the_off_subject_share_is_unknown() -> None:
    results = results_spurious()
    sp = _sp(results)
    sp["metrics"]["findings"][0]["off_subject"] = None
    sp["metrics"]["overall"]["off_subject_share"] = {"value": None, "ci": None, "reason": "the probe has no subject boxes"}
    page = render_html(results)
    assert "unknown (no subject boxes)" in table_by_caption(check_section(page, "spurious"), "Confirmed cues")
    assert '<span class="reason">(the probe has no subject boxes)</span>' in check_section(page, "spurious")
    assert "This probe has no subject boxes" in page.split('id="methodology"', 1)[1]
    assert "off-subject share unknown (no subject boxes)" in render_markdown(results)


def test_an_entry_from_before_the_schema_is_a_generic_tree_and_an_errored_one_its_error() -> None:
    section = check_section(render_html(results_v1()), "spurious", 2)
    assert "corner patch" in section and "sp-summary" not in section
    assert "### Spurious cues" not in render_markdown(results_v1())
    results = results_spurious()
    results["checks"]["spurious"] = {"status": "error", "error": "RuntimeError: CUDA out of memory", "metrics": {}}
    page = render_html(results)
    assert "CUDA out of memory" in check_section(page, "spurious")
    assert 'class="sp-summary' not in page and "How spurious cues are found" not in page


@pytest.mark.parametrize(("box", "size", "text"), [
    ([0, 0, 8, 8], [64, 48], "0,0 – 8,8 of 48×64"), ([0.0, 0, 8, 8.0], None, "0,0 – 8,8"), ([0, 0, 8], [64, 64], "n/a"),
    ([0, 0, 8, 8.5], [64, 64], "n/a"), ("0,0,8,8", None, "n/a"), ([True, 0, 8, 8], None, "n/a"), (None, None, "n/a"),
    ([0, 0, 8, 8], ["a", 64], "0,0 – 8,8")])
def test_box_text(box: Any, size: Any, text: str) -> None:
    assert box_text(box, size) == text


# -- methodology -------------------------------------------------------------------------------------------


def test_methodology_reads_the_checks_parameters(page: str) -> None:
    method = page.split('id="methodology"', 1)[1].split("</section>", 1)[0]
    for text in ("For 128 audited images", "in 150 steps", "learning rate 0.1", "deletion game", "4×4 grid",
                 "filled with a constant colour", "at least 3 times a uniform share", "at least 50% of the images", "the 2 largest per class",
                 "mean colour of a ring", "at least 20% of the predictions", "at least 15 percentage points more",
                 "McNemar", "p &lt; 0.05", "less than half of its evidence off the subject", "random order",
                 "a cue the masks never highlight is not found", "a sample of 128 images"):
        assert text in method, text
    results = results_spurious()
    _sp(results)["params"].update(grid=8, operator="blur", alpha=0.01, min_flip_rate=0.3, n_images=48, steps=60)
    method = render_html(results).split('id="methodology"', 1)[1]
    assert "8×8 grid" in method and "blurred copy" in method and "p &lt; 0.01" in method and "at least 30%" in method
    assert "For 48 audited images" in method and "in 60 steps" in method


# -- Markdown ----------------------------------------------------------------------------------------------


def test_markdown_has_the_summary_and_a_line_per_finding() -> None:
    text = render_markdown(results_spurious())
    block = text.split("### Spurious cues\n\n", 1)[1].split("\n_Full report", 1)[0]
    assert block.startswith("1 confirmed cue\\: the model relies on a top\\-right region to predict smiling\\.\n")
    assert ("- **smiling**: region 48,0 – 64,16 of 64×64, off-subject share 0.940, removal flip 0.620 vs control 0.040 "
            "(n=50), transplant flip 0.453 vs control 0.031 (n=64), p <0.001") in block
    assert "neutral" not in block


# -- missing keys, wrong types, hostile strings; PDF --------------------------------------------------------------

_LEVELS = {  # each dict of the entry whose keys are deleted or given a wrong type in turn
    "check": lambda r: _sp(r), "metrics": lambda r: _sp(r)["metrics"], "overall": lambda r: _sp(r)["metrics"]["overall"],
    "finding": lambda r: _sp(r)["metrics"]["findings"][0], "candidate": lambda r: _sp(r)["metrics"]["candidates"][1],
    "group": lambda r: _sp(r)["by_group"]["gender"]["female"],
    "finding_group": lambda r: _sp(r)["metrics"]["findings"][0]["by_group"]["gender"]["female"],
}
_KEYS = [(level, key) for level, get in _LEVELS.items() for key in get(results_spurious())]


@pytest.mark.parametrize(("level", "key"), _KEYS, ids=[f"{lv}.{k}" for lv, k in _KEYS])
def test_renders_without_each_key(level: str, key: str) -> None:
    results = results_spurious()
    del _LEVELS[level](results)[key]
    assert key not in _LEVELS[level](results)
    assert 'id="check-0-spurious"' in renders_cleanly(results, "spurious")


@pytest.mark.parametrize(("level", "key"), _KEYS, ids=[f"{lv}.{k}" for lv, k in _KEYS])
def test_renders_when_a_key_has_an_unexpected_type(level: str, key: str) -> None:
    for bad in ("x", 3, -1.5, float("nan"), True, None, [], [None, "y"], {"a": {"b": 1}}):
        results = results_spurious()
        _LEVELS[level](results)[key] = bad
        renders_cleanly(results, "spurious")


def test_renders_when_the_whole_entry_is_malformed() -> None:
    for bad in (None, "x", 3, [], {}, {"metrics": None}, {"metrics": {"overall": 3, "findings": {"a": 1}}}):
        html = renders_cleanly({**results_spurious(), "checks": {"spurious": bad}}, "spurious")
        assert "Check details" in html and "Traceback" not in html


def _hostile() -> dict[str, Any]:
    results = results_spurious()
    sp = _sp(results)
    metrics = sp["metrics"]
    finding, candidate = metrics["findings"][0], metrics["candidates"][1]
    finding.update({"class": HOSTILE[0], "verdict": HOSTILE[5], "figure": HOSTILE[1]})
    finding["by_group"] = {HOSTILE[2]: {HOSTILE[6]: finding["by_group"]["gender"]["female"]}}
    candidate.update({"class": HOSTILE[1], "verdict": HOSTILE[0] + " " + HOSTILE[6]})
    metrics["summary"] = HOSTILE[5] + " @everyone " + HOSTILE[0]
    metrics["not_predicted"] = [HOSTILE[3], LONG_NAME]
    sp["by_group"] = {"<b>race</b>": {HOSTILE[4]: sp["by_group"]["gender"]["female"], LONG_NAME: sp["by_group"]["age"]["60+"]}}
    sp["figures"][HOSTILE[1]] = {"data_uri": sp["figures"].pop("finding_1_counterfactual")["data_uri"], "caption": HOSTILE[1]}
    sp["params"]["operator"] = HOSTILE[0]
    return results


def test_hostile_strings_are_inert_in_html_and_markdown() -> None:
    html = render_html(_hostile())
    assert "<script" not in html.lower() and "<b>" not in html and not CONTROL.search(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;race&lt;/b&gt;" in html and LONG_NAME not in html
    assert all(re.fullmatch(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"<>]*">', t)
               for t in re.findall(r"<img\b[^>]*>", html))
    block = _first_finding(check_section(html, "spurious"))
    assert "<figcaption>&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</figcaption>" in block  # found by its hostile name
    text = render_markdown(_hostile())
    assert not re.search(r"(?<!\\)<[a-zA-Z/!]", text) and not re.search(r"(?<!\\)@[a-z]", text)
    assert "**\\<script\\>alert\\(1\\)\\<\\/script\\>**" in text and not CONTROL.search(text)


def test_pdf_renders_the_finding_and_hostile_strings_as_text() -> None:
    data = render_pdf(results_spurious())
    assert data.startswith(b"%PDF-")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    flat = re.sub(r"\s+", " ", text)
    assert "smiling" in text and "Confirmed cues" in flat and "Regions tested but not reported as cues" in flat
    assert "No audited image was predicted as (no evidence map): surprised." in flat
    flat = re.sub(r"\s+", "", "".join(p.extract_text() for p in PdfReader(io.BytesIO(render_pdf(_hostile()))).pages))
    assert "<script>alert(1)</script>" in flat and "<b>race</b>" in flat and not CONTROL.search(flat)
