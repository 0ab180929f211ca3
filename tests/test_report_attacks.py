"""The attacks check's part of the report: HTML/PDF view, robustness chart, Markdown section, methodology,
and survival of missing keys, wrong types and hostile strings (fixture: `tests.report_fixtures.attacks`)."""
from __future__ import annotations

import copy
import io
import re
from typing import Any

import pytest
from pypdf import PdfReader

from auditor.report import render_html, render_markdown, render_pdf
from auditor.report._curves import robustness_curves
from auditor.report.sections.attacks import eps_text, reliability
from tests.report_fixtures import (
    CONTROL,
    HOSTILE,
    LONG_NAME,
    PIXEL,
    check_section,
    renders_cleanly,
    results_attacks,
    results_v1,
    table_by_caption,
    table_row,
)

UNTRUSTED = "These robustness numbers cannot be trusted:"
GALLERY = "Original, perturbation and adversarial image with predictions"


def _at(results: dict[str, Any]) -> dict[str, Any]:
    return results["checks"]["attacks"]


def _overall(results: dict[str, Any]) -> dict[str, Any]:
    return _at(results)["metrics"]["overall"]


@pytest.fixture(scope="module")
def section() -> str:
    return check_section(render_html(results_attacks(masked=True)), "attacks")


@pytest.fixture(scope="module")
def trusted() -> str:
    return check_section(render_html(results_attacks()), "attacks")


# -- HTML: content and order ----------------------------------------------------------------------------


def test_parts_come_in_order(section: str) -> None:
    # the main body (banner, headline numbers, chart, gaps, the check's figures), then its part of the appendix
    marks = [UNTRUSTED, 'class="kv at-overall"', "Line charts of robust accuracy against eps",
             "<caption>Robust accuracy between groups at eps 4/255</caption>",
             "<caption>All images, L∞</caption>", "<caption>All images, L2</caption>",
             "<caption>Robust accuracy by gender group</caption>", "<caption>Robust accuracy by age group</caption>",
             "gender × age: the groups with enough images", "<caption>Black-box attacks</caption>",
             "<caption>Attack settings</caption>", f"<figcaption>{GALLERY}</figcaption>"]
    positions = [section.index(m) for m in marks]
    assert positions == sorted(positions)
    assert section.index(UNTRUSTED) < section.index("<table")  # the banner before any number
    assert render_html(results_attacks(True)) == render_html(copy.deepcopy(results_attacks(True)))  # deterministic


def test_an_unreliable_result_opens_with_the_banner_and_every_flag(section: str) -> None:
    banner = section.split('class="error-box at-untrusted"', 1)[1].split("</div>", 1)[0]
    assert f"<strong>{UNTRUSTED}</strong> The robustness measurement shows 2 signs of gradient masking" in banner
    assert "<li>The black-box Square attack left a robust accuracy of 12.5% at eps 4/255" in banner
    assert "<li>With a perturbation budget large enough to change every pixel completely" in banner
    assert "No sign of gradient masking" not in section


def test_a_reliable_result_says_so_in_one_quiet_line(trusted: str) -> None:
    assert '<p class="at-trusted small">✓ No sign of gradient masking: No sign of gradient masking was found' in trusted
    assert UNTRUSTED not in trusted and "error-box" not in trusted


@pytest.mark.parametrize(("change", "reliable"), [
    (lambda o: o["masking"].update(flags=[{"id": "zero_gradients"}]), False),  # a flag wins over reliable: true
    (lambda o: o.update(reliable={"value": 0, "ci": None}), False),
    (lambda o: o.update(n_masking_flags={"value": 3, "ci": None}), False),
    (lambda o: o.pop("masking"), True),  # overall.reliable alone
    (lambda o: [o.pop("masking"), o.pop("reliable")], None),
    (lambda o: o["masking"].update(reliable="yes") or o.pop("reliable"), None),
])
def test_reliability_takes_any_sign_of_masking(change: Any, reliable: bool | None) -> None:
    overall = _overall(results_attacks())
    change(overall)
    trust = reliability(overall)
    assert trust["reliable"] is reliable
    if reliable is False:
        assert trust["summary"] == "the gradient-masking diagnostics raised a flag."  # not "No sign ..."
    results = results_attacks()
    _at(results)["metrics"]["overall"] = overall
    section = check_section(render_html(results), "attacks")
    assert (UNTRUSTED in section) is (reliable is False)
    assert ("at-trusted" in section) is (reliable is True)
    if reliable is None:
        assert "whether these numbers can be trusted is unknown" in section


def test_key_values(section: str, trusted: str) -> None:
    kv = section.split('class="kv at-overall"', 1)[1].split("</table>", 1)[0]
    assert '>Clean accuracy<' in kv and '0.906</span> <span class="ci">[0.856, 0.957]' in kv
    row = table_row(kv, "Robust accuracy at eps 4/255 (PGD, L∞)")
    assert '0.312</span> <span class="ci">[0.232, 0.393]' in row
    assert '0.655</span>' in table_row(kv, "Attack success rate")
    row = table_row(kv, "Median minimal eps (L∞)")
    assert "0.0118 (≈3.0/255) [0.0078, 0.0157]" in row and "2 images not flipped within the search range" in row
    assert '0.219</span>' in table_row(kv, "Accuracy under an unbounded attack (eps 1)")
    assert '0.000</span>' in table_row(trusted.split('class="kv at-overall"', 1)[1], "Accuracy under an unbounded attack (eps 1)")


def test_chart_and_overall_curves(section: str) -> None:
    img = re.search(r'<img src="(data:image/png;base64,[^"]+)" alt="Line charts of robust accuracy against eps[^"]*by gender', section)
    assert img is not None
    linf = table_by_caption(section, "All images, L∞")
    assert re.search(r">4/255</th><td[^>]*><span class=\"num\">0.461</span></td><td[^>]*><span class=\"num\">0.312<", linf)
    assert re.search(r">16/255</th>.*>0.102<.*>0.016<", linf)
    l2 = table_by_caption(section, "All images, L2")
    assert re.search(r">0.5</th>.*>0.547<.*>0.406<", l2) and ">1</th>" in l2


def test_the_chart_shows_the_attribute_with_the_largest_gap() -> None:
    results = results_attacks()
    metrics = _at(results)["metrics"]
    metrics["age"]["robust_accuracy_difference"]["value"] = 0.5
    assert re.search(r'alt="Line charts[^"]*by age', check_section(render_html(results), "attacks"))
    for scope in ("gender", "age"):
        metrics[scope]["robust_accuracy_difference"]["value"] = None
    assert re.search(r'alt="Line charts[^"]*by gender', check_section(render_html(results), "attacks"))  # the first attribute


def test_robustness_curves_draws_at_most_eight_groups_with_enough_images() -> None:
    curves = _overall(results_attacks())["curves"]
    group = _at(results_attacks())["by_group"]["gender"]["female"]
    many = [[f"g{i}", {**group, "insufficient_data": i % 2 == 1}] for i in range(20)]
    eight = [p for p in many if not p[1]["insufficient_data"]]
    chart = robustness_curves(curves, "s", many)
    assert chart is not None and chart.startswith("data:image/png;base64,")
    assert chart == robustness_curves(curves, "s", eight[:8]) != robustness_curves(curves, "s", eight[:7])
    assert robustness_curves(curves, "s", []) is not None  # the all-images lines alone
    assert robustness_curves(curves, "s", eight[:8][::-1]) != chart  # the groups' order is kept (legend, colours)
    for bad in (None, {}, {"linf": {"eps": [], "pgd": []}}, {"linf": {"eps": [0, -1, "x"], "pgd": [0.5, 0.4, 0.3]}}):
        assert robustness_curves(bad, "s", many) is None


def test_gaps_and_group_tables(section: str) -> None:
    gaps = table_by_caption(section, "Robust accuracy between groups at eps 4/255").split("<tbody>", 1)[1]
    assert [m for m in re.findall(r'<th scope="row">([^<]+)</th>', gaps)] == ["gender", "age", "gender × age"]
    row = table_row(gaps, "gender")
    assert '0.125</span><br><span class="ci">[0.000, 0.275]' in row and "female → male" in row and "0.27" in row
    assert 'female</span> <span class="num">0.250</span>' in row
    assert "20-39 → 0-19" in table_row(gaps, "age") and "female &amp; 20-39 → male &amp; 0-19" in table_row(gaps, "gender × age")
    table = table_by_caption(section, "Robust accuracy by age group")
    old = table_row(table, "60+ ", whole=False)
    assert old.startswith('<span class="tag">insufficient data</span>') and ">0.167<" in old
    assert "0.0118 (≈3.0/255) [0.0082, 0.0153]" in table_row(table, "0-19")
    cross = section.split("gender × age: the groups with enough images", 1)[1].split("</table>", 1)[0]
    names = re.findall(r'class="group-name">([^<]+)<', cross)
    assert names == ["female &amp; 20-39", "female &amp; 0-19", "male &amp; 0-19", "male &amp; 20-39"]  # lowest first
    assert "gender × age, too few images (under 20):</strong> female &amp; 60+ (n=9); male &amp; 60+ (n=9)." in section


def test_blackbox_and_settings_tables(section: str) -> None:
    bb = table_by_caption(section, "Black-box attacks")
    assert re.search(r">Square \(ART\)</th><td>L∞</td><td[^>]*>4/255</td>\s*<td[^>]*>32</td><td[^>]*>.*0.125.*0.875.*>12,000<", bb)
    assert "median L2 norm found 0.610" in bb and ">0.5<" in table_row(bb, "HopSkipJump (ART)")
    assert "substitute agrees with the model on 0.840 of the attacked images (trained on 512 pool images)" in bb and ">564<" in bb
    assert "Model queries by the black-box attacks, in all: 28,364." in section
    settings = table_by_caption(section, "Attack settings")
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th>', settings)
    assert rows == ["FGSM", "PGD", "FGSM", "PGD", "PGD", "Square", "HopSkipJump", "Transfer (PGD on the substitute)"]
    pgd = settings.split('<th scope="row">PGD</th>', 1)[1].split("</tr>", 1)[0]
    for text in ("L∞", "1/255, 2/255, 4/255, 8/255, 16/255", ">10<", "2.5 * eps / steps", ">1<", ">yes<",
                 "auditor (torch), torch 2.14.1", "seed 0"):
        assert text in pgd, text
    assert "minimal (bisection)" in settings and "eps max 32/255; tolerance 1/255" in settings
    assert "adversarial-robustness-toolbox, 1.20.1" in table_row(settings, "Square") and "queries per image ≤ 500" in settings
    assert "epochs 5; substitute SmallCNN" in settings and ">0.003922<" in settings


def test_a_blackbox_attack_that_did_not_run_says_why_and_blackbox_off_says_so() -> None:
    results = results_attacks()
    _overall(results)["blackbox"]["transfer"] = {"reason": "the probe has too few images beyond the attacked ones"}
    bb = table_by_caption(check_section(render_html(results), "attacks"), "Black-box attacks")
    assert 'colspan="6" class="muted">Not run: the probe has too few images beyond the attacked ones<' in bb
    _overall(results)["blackbox"] = {}
    _at(results)["params"]["blackbox"] = False
    section = check_section(render_html(results), "attacks")
    assert "The black-box attacks were not run (blackbox = false)." in section and "Black-box attacks</caption>" not in section


def test_a_model_without_input_gradients_gets_the_note_and_no_curves() -> None:
    results = results_attacks()
    overall = _overall(results)
    for key in ("curves", "median_minimal_eps"):
        del overall[key]
    overall["settings"] = []
    overall["not_differentiable"] = "the model returns no input gradient (torch.round); the white-box attacks were not run"
    overall["robust_accuracy"] = {"value": None, "ci": None, "reason": "no white-box attack could run (no input gradient)"}
    section = check_section(render_html(results), "attacks")
    assert "White-box attacks not run: the model returns no input gradient (torch.round)" in section
    assert "n/a</span> <span class=\"reason\">(no white-box attack could run (no input gradient))" in section
    assert "Line charts" not in section and "All images, L∞" not in section and "Black-box attacks" in section


def test_gallery_is_shown_once_and_an_entry_from_before_the_schema_is_a_generic_tree() -> None:
    page = render_html(results_attacks())
    assert page.count(f"<figcaption>{GALLERY}</figcaption>") == 1
    results = results_attacks()
    _at(results)["metrics"] = {"robust_accuracy": {"value": 0.3, "ci": None}}
    section = check_section(render_html(results), "attacks")
    assert "at-overall" not in section and "<h4>Metrics</h4>" in section and "0.300" in section
    assert "### Adversarial robustness" not in render_markdown(results)
    results["checks"]["attacks"] = {"status": "error", "error": "RuntimeError: CUDA out of memory", "metrics": {}}
    page = render_html(results)
    assert "CUDA out of memory" in check_section(page, "attacks")
    assert "at-overall" not in page and "How adversarial robustness" not in page
    assert "How adversarial robustness" not in render_html(results_v1())


@pytest.mark.parametrize(("x", "norm", "text"), [
    (4 / 255, "linf", "4/255"), (0.0156863, "linf", "0.0156863"), (0.5, "l2", "0.5"), (1 / 255, "l2", "0.00392157"),
    (1.0, "linf", "1"), ([1 / 255, 8 / 255], "linf", "1/255, 8/255"), ("minimal (bisection)", "linf", "minimal (bisection)"),
    (None, "linf", "n/a"), (True, "linf", "n/a"), (float("nan"), "linf", "n/a"), ({"a": 1}, "linf", "n/a"),
    (list(range(1, 20)), "l2", ", ".join(str(i) for i in range(1, 17)) + ", …")])
def test_eps_text(x: Any, norm: str, text: str) -> None:
    assert eps_text(x, norm) == text


# -- methodology -------------------------------------------------------------------------------------------


def test_methodology_reads_the_checks_parameters() -> None:
    method = render_html(results_attacks()).split('id="methodology"', 1)[1].split("</section>", 1)[0]
    for text in ("How adversarial robustness is measured", "128 images are sampled from the probe (seeded), as evenly across the groups", "FGSM", "Madry et al.",
                 "from a random start", "10 steps of size 2.5·eps/steps", "1 restart(s)",
                 "L∞ eps 1/255, 2/255, 4/255, 8/255, 16/255", "L2 eps 0.1, 0.25, 0.5, 1", "[0, 1] pixel units",
                 "bisection to a tolerance of 1/255", "reference eps 4/255", "permutation tests", "subsample of 32 images",
                 "at most 500 queries per image", "HopSkipJump", "within the L2 reference eps (0.5)", "counted by the auditor",
                 "substitute CNN", "pool of 512 other probe images", "FGSM beating PGD", "unbounded attack (eps 1",
                 "robust accuracy is an upper bound", "a stronger or adaptive attack", "a sample of 128 images",
                 "black-box attacks ran on a subsample of 32 images"):
        assert text in method, text
    results = results_attacks()
    _at(results)["params"].update(n_images=512, steps=40, restarts=3, eps_linf=[8 / 255], reference_eps=8 / 255, blackbox=False)
    method = render_html(results).split('id="methodology"', 1)[1]
    assert "512 images are sampled" in method and "40 steps" in method and "3 restart(s)" in method
    assert "L∞ eps 8/255;" in method and "reference eps 8/255" in method and "Black-box and transfer" not in method


# -- Markdown ----------------------------------------------------------------------------------------------


def test_markdown_has_reliability_accuracies_and_the_worst_group() -> None:
    block = render_markdown(results_attacks(True)).split("### Adversarial robustness\n\n", 1)[1].split("\n_Full report", 1)[0]
    assert block.startswith("⚠️ **These robustness numbers cannot be trusted:** The robustness measurement shows 2 signs")
    assert "\n- The black\\-box Square attack left a robust accuracy of 12\\.5\\%" in block
    assert "- Clean accuracy 0.906 [0.856, 0.957]; robust accuracy at eps 4/255 (PGD, L∞) 0.312 [0.232, 0.393]." in block
    assert "- Worst group: female (gender) at 0.250 [0.144, 0.356]; gap to the best group 0.125 [0.000, 0.275], p (adj.) 0.27." in block
    text = render_markdown(results_attacks())
    assert "### Adversarial robustness\n\nNo sign of gradient masking.\n\n- Clean accuracy" in text


# -- missing keys, wrong types, hostile strings; PDF --------------------------------------------------------------

_LEVELS = {  # each dict of the entry whose keys are deleted or given a wrong type in turn
    "check": lambda r: _at(r), "params": lambda r: _at(r)["params"], "metrics": lambda r: _at(r)["metrics"],
    "overall": lambda r: _overall(r), "masking": lambda r: _overall(r)["masking"],
    "flag": lambda r: _overall(r)["masking"]["flags"][0], "curves": lambda r: _overall(r)["curves"]["linf"],
    "blackbox": lambda r: _overall(r)["blackbox"], "square": lambda r: _overall(r)["blackbox"]["square"],
    "transfer": lambda r: _overall(r)["blackbox"]["transfer"], "setting": lambda r: _overall(r)["settings"][1],
    "scope": lambda r: _at(r)["metrics"]["gender"], "gap": lambda r: _at(r)["metrics"]["gender"]["robust_accuracy_difference"],
    "group": lambda r: _at(r)["by_group"]["gender"]["female"],
    "group_curves": lambda r: _at(r)["by_group"]["gender"]["female"]["curves"]["linf"],
    "cross_group": lambda r: _at(r)["by_group"]["gender+age"]["female & 20-39"],
}
_KEYS = [(level, key) for level, get in _LEVELS.items() for key in get(results_attacks(True))]


@pytest.mark.parametrize(("level", "key"), _KEYS, ids=[f"{lv}.{k}" for lv, k in _KEYS])
def test_renders_without_each_key(level: str, key: str) -> None:
    results = results_attacks(True)
    del _LEVELS[level](results)[key]
    assert key not in _LEVELS[level](results)
    assert 'id="check-0-attacks"' in renders_cleanly(results, "attacks")


@pytest.mark.parametrize(("level", "key"), _KEYS, ids=[f"{lv}.{k}" for lv, k in _KEYS])
def test_renders_when_a_key_has_an_unexpected_type(level: str, key: str) -> None:
    for bad in ("x", 3, -1.5, float("nan"), float("inf"), True, None, [], [None, "y"], {"a": {"b": 1}}):
        results = results_attacks(True)
        _LEVELS[level](results)[key] = bad
        renders_cleanly(results, "attacks")


def test_renders_when_the_whole_entry_is_malformed() -> None:
    for bad in (None, "x", 3, [], {}, {"metrics": None}, {"metrics": {"overall": 3}},
                {"metrics": {"overall": {"masking": [1], "settings": {"a": 1}, "blackbox": [2], "curves": "x"}}},
                {"metrics": {"overall": {"clean_accuracy": 0.9}, "gender": [1]}, "by_group": {"gender": [1], "age": {"a": 2}}}):
        html = renders_cleanly({**results_attacks(), "checks": {"attacks": bad}}, "attacks")
        assert "Check details" in html and "Traceback" not in html


def _hostile() -> dict[str, Any]:
    results = results_attacks(True)
    at = _at(results)
    overall = at["metrics"]["overall"]
    overall["masking"]["flags"][0]["message"] = HOSTILE[0] + " @everyone " + HOSTILE[6]
    overall["masking"]["flags"][1] = {"id": HOSTILE[1], "message": None}
    overall["masking"]["summary"] = HOSTILE[5] + " " + LONG_NAME
    overall["not_differentiable"] = HOSTILE[3] + HOSTILE[2]
    overall["settings"][0].update(attack=HOSTILE[0], norm=HOSTILE[1], library=HOSTILE[4], torch=HOSTILE[6], seed=HOSTILE[5])
    overall["settings"][1]["step_size"] = HOSTILE[2]
    overall["blackbox"][HOSTILE[1]] = {"norm": HOSTILE[0], "eps": HOSTILE[5], "robust_accuracy": 0.5, "queries": 3}
    overall["blackbox"]["transfer"] = {"reason": HOSTILE[0] + HOSTILE[6]}
    groups = at["by_group"]["gender"]
    at["by_group"]["<b>race</b>"] = {HOSTILE[0]: groups["female"], LONG_NAME: groups["male"], HOSTILE[6]: groups["male"]}
    at["metrics"]["<b>race</b>"] = {**at["metrics"]["gender"], "reason": HOSTILE[1]}
    at["metrics"]["<b>race</b>"]["robust_accuracy_difference"] = {
        **at["metrics"]["gender"]["robust_accuracy_difference"], "value": 0.9, "groups": [HOSTILE[0], LONG_NAME]}
    at["metrics"]["<b>race</b>"]["worst_group_robust_accuracy"] = {"value": 0.01, "ci": None, "groups": [HOSTILE[5]]}
    at["figures"][HOSTILE[1]] = {"data_uri": PIXEL, "caption": HOSTILE[1]}
    at["params"]["reference_eps"] = HOSTILE[0]
    return results


def test_hostile_strings_are_inert_in_html_and_markdown() -> None:
    html = render_html(_hostile())
    assert "<script" not in html.lower() and "<b>" not in html and not CONTROL.search(html) and LONG_NAME not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; @everyone" in html and "&lt;b&gt;race&lt;/b&gt;" in html
    assert all(re.fullmatch(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"<>]*">', t)
               for t in re.findall(r"<img\b[^>]*>", html))
    assert re.search(r'alt="Line charts[^"]*by &lt;b&gt;race&lt;/b&gt;', html)  # the widest gap, by its hostile name
    assert "eps the reference eps" not in html and "Robust accuracy at the reference eps (PGD, L∞)" in html
    text = render_markdown(_hostile())
    assert not re.search(r"(?<!\\)<[a-zA-Z/!]", text) and not re.search(r"(?<!\\)@[a-z]", text)
    assert "\\<script\\>alert\\(1\\)\\<\\/script\\>" in text and not CONTROL.search(text)


def test_pdf_renders_the_reliability_banner_and_hostile_strings_as_text() -> None:
    data = render_pdf(results_attacks(True))
    assert data.startswith(b"%PDF-")
    flat = re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages))
    assert UNTRUSTED in flat and "The black-box Square attack left a robust accuracy of 12.5%" in flat
    assert "Black-box attacks" in flat and "Attack settings" in flat and "How adversarial robustness is measured" in flat
    flat = re.sub(r"\s+", "", "".join(p.extract_text() for p in PdfReader(io.BytesIO(render_pdf(_hostile()))).pages))
    assert "<script>alert(1)</script>" in flat and "<b>race</b>" in flat and not CONTROL.search(flat)
