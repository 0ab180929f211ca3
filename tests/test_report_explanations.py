"""The explanations check's part of the report: HTML/PDF view, charts, Markdown section, methodology, and
survival of missing keys, wrong types and hostile strings (fixture: `tests.report_fixtures.explanations`)."""
from __future__ import annotations

import copy
import io
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from pypdf import PdfReader

from auditor.report import render_html, render_junit, render_markdown, render_pdf
from auditor.report._curves import faithfulness_curves, sanity_chart
from auditor.report.sections import explanations as explanations_section
from auditor.report.sections.explanations import explanations_view, finding_text
from tests.report_fixtures import (
    CONTROL,
    EX_FINDING,
    EX_GRAD_CAM,
    HOSTILE,
    LONG_NAME,
    PIXEL,
    check_section,
    results_explanations,
    results_v1,
    table_by_caption,
    table_row,
)

IMG = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"<>]*">')
CURVES_ALT = "Line charts of the explained class's probability as pixels are deleted and inserted"
SANITY_ALT = "Line chart of each method's rank correlation with its original map"
LABELS = ("Integrated Gradients", "Saliency", "SmoothGrad", "Grad-CAM", "Occlusion", "Meaningful perturbation")


def _ex(results: dict[str, Any]) -> dict[str, Any]:
    return results["checks"]["explanations"]


def _metrics(results: dict[str, Any]) -> dict[str, Any]:
    return _ex(results)["metrics"]


def _parts(results: dict[str, Any]) -> dict[str, Any]:
    """``metrics.overall``, where the check's parts live."""
    return _metrics(results)["overall"]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(results_explanations())


@pytest.fixture(scope="module")
def section(page: str) -> str:
    return check_section(page, "explanations")


@pytest.fixture
def stub_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two charts as a fixed pixel: the key-by-key tests render hundreds of pages (the charts' own
    survival of bad data is tested on the chart functions)."""
    monkeypatch.setattr(explanations_section, "faithfulness_curves", lambda *args: PIXEL)
    monkeypatch.setattr(explanations_section, "sanity_chart", lambda *args: PIXEL)


# -- HTML: content and order ----------------------------------------------------------------------------


def test_parts_come_in_order(section: str) -> None:
    # the main body (faithfulness, maps, differences between groups, notes), then its part of the appendix
    marks = ['class="ex-summary ex-flagged"', 'class="kv ex-overall"', "Faithfulness and sanity per method", CURVES_ALT,
             "Differences between groups",
             "<caption>Largest difference between groups, per attribute, compared under Integrated Gradients</caption>",
             "Attribution maps: a row per image", "Sanity check: cascading model randomisation", SANITY_ALT,
             "<caption>Rank correlation with the original map, by randomisation stage</caption>",
             "Sanity check: each method&#39;s map on the original model", "<caption>By gender group</caption>",
             "<caption>By age group</caption>", "First-layer filters", "Class models", "<h4>Notes</h4>"]
    positions = [section.index(m) for m in marks]
    assert positions == sorted(positions)
    assert "4 of 5 methods beat a random pixel order; Occlusion failed the sanity check" in section
    assert render_html(results_explanations()) == render_html(copy.deepcopy(results_explanations()))  # deterministic


def test_faithfulness_table_has_a_row_per_method_and_the_random_baseline(section: str) -> None:
    table = table_by_caption(section, "Deletion and insertion against a random pixel order; the sanity check").split("<tbody>", 1)[1]
    heads = re.findall(r'<th scope="row">([^<]+)', table)
    assert heads == [*LABELS, "Random order (baseline)"]
    ig = table_row(table, "Integrated Gradients", whole=False)
    for text in ('0.210</span><br><span class="ci">[0.170, 0.250]', '0.700</span><br><span class="ci">[0.650, 0.750]',
                 '0.180</span><br><span class="ci">[0.120, 0.230]', '0.290</span><br><span class="ci">[0.240, 0.340]',
                 'class="ex-yes">yes<', "✓ passed", "ρ 0.050", "[-0.010, 0.110]", '0.620</span><br><span class="ci">[0.580, 0.660]'):
        assert text in ig, text
    assert 'class="ex-no">no<' in table_row(table, "Saliency", whole=False)
    occlusion = table.split('<tr class="ex-failed">', 1)[1].split("</tr>", 1)[0]
    assert ">Occlusion<" in occlusion and "✗ failed" in occlusion and "ρ 0.680" in occlusion
    mask = table_row(table, "Meaningful perturbation", whole=False)
    assert "not run" in mask and "a learned mask is an optimisation" in mask
    random = table_row(table, "Random order (baseline)", whole=False)
    assert '0.390</span><br><span class="ci">[0.360, 0.420]' in random and '0.410</span>' in random


def test_a_method_that_did_not_run_says_why(section: str) -> None:
    row = section.split('<tr class="ex-not-run"><th scope="row">Grad-CAM</th>', 1)[1].split("</tr>", 1)[0]
    assert f'<td colspan="7" class="wrap muted">Not run: {EX_GRAD_CAM}</td>' in row


def test_overall_facts(section: str) -> None:
    kv = section.split('class="kv ex-overall"', 1)[1].split("</table>", 1)[0]
    assert "4 of 5" in table_row(kv, "Faithful methods", whole=False) and "1 of 4 <span class=\"muted small\">(Occlusion)" in kv
    assert '0.120</span> <span class="ci">[0.090, 0.150]</span> <span class="muted small">(Occlusion; lower is better)' in kv
    assert ">128<" in table_row(kv, "Images explained", whole=False)
    assert "0.430" in table_row(kv, "First-layer smoothness", whole=False)


def test_charts_and_the_cascade_table(section: str) -> None:
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}" alt="' + CURVES_ALT, section)
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}" alt="' + SANITY_ALT
                     + r"[^\"]*with the threshold 0.5 dashed", section)
    table = table_by_caption(section, "Rank correlation with the original map, by randomisation stage")
    stages = re.findall(r'Stage (\d)<br><span class="mono small">([^<]+)<', table)
    assert stages == [("1", "head"), ("2", "inner.12"), ("3", "inner.9"), ("4", "inner.3"), ("5", "inner.0")]
    assert re.findall(r'<th scope="row">([^<]+)', table) == ["Integrated Gradients", "Saliency", "SmoothGrad", "Occlusion"]
    assert '0.930</span><br><span class="ci">[0.860, 1.000]' in table_row(table, "Occlusion", whole=False)


def test_differences_findings_and_groups(section: str) -> None:
    assert f'<ul class="findings findings-warn ex-findings"><li>{EX_FINDING}</li></ul>' in section
    diffs = table_by_caption(section, "Largest difference between groups, per attribute, compared under Integrated Gradients")
    row = diffs.split("<td>Subject share</td>", 1)[1].split("</tr>", 1)[0]
    assert "<td>Integrated Gradients</td>" in row and "0.210</span><br><span class=\"ci\">[0.120, 0.300]" in row
    assert "female → male" in row
    age = diffs.split('<th scope="row">age</th>', 1)[1].split("</tr>", 1)[0]  # one row says why for the attribute
    assert "<td>Every difference</td>" in age and "(fewer than 2 groups reach the minimum group size (30))" in age
    assert diffs.count('<th scope="row">age</th>') == 1
    gender = table_by_caption(section, "By gender group")
    assert 'rowspan="5" class="group-name">female</th><td class="n" rowspan="5">64</td><td>Integrated Gradients</td>' in gender
    assert '0.520</span><br><span class="ci">[0.460, 0.580]' in gender.split("female", 1)[1].split("</tr>", 1)[0]
    old = table_row(table_by_caption(section, "By age group"), "60+ ", whole=False)
    assert old.startswith('<span class="tag">insufficient data</span>') and ">18<" in old
    assert "Groups marked insufficient data (fewer than 30 images)" in section


def test_first_layer_class_models_and_notes(section: str) -> None:
    block = section.split("<h4>First-layer filters</h4>", 1)[1].split("<h4>Class models</h4>", 1)[0]
    assert "no sign of an untrained layer." in block and "Kernel: 3×3" in block and "Noisy: no" in block
    assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="The first layer&#39;s filters">', block)
    classes = table_by_caption(section, "Probability each class's model reaches after 64 steps")
    assert ">not_smiling</th><td class=\"n\">0.990<" in classes and ">smiling</th><td class=\"n\">0.980<" in classes
    notes = section.split("<h4>Notes</h4>", 1)[1]
    assert f"<li>Grad-CAM was not run: {EX_GRAD_CAM}.</li>" in notes


def test_each_figure_is_shown_once_next_to_its_part_and_others_at_the_end() -> None:
    results = results_explanations()
    _ex(results)["figures"].update(gallery={"data_uri": PIXEL, "caption": "Extra gallery"}, remote="https://example.com/x.png")
    _parts(results)["first_layer"]["noisy"] = True
    section = check_section(render_html(results), "explanations")
    for caption in ("Attribution maps: a row per image", "Sanity check: each method&#39;s map on the original model",
                    "The first layer&#39;s filters", "Class models: an input optimised", "Extra gallery"):
        assert section.count(f"<figcaption>{caption}") == 1, caption
    assert section.index("<figcaption>Extra gallery") > section.index("<h4>Notes</h4>")
    assert "Not embedded (not an inline image): remote." in section
    assert '<p class="note-box">The first layer&#39;s filters are smooth' in section  # a noisy layer stands out
    del _parts(results)["first_layer"]  # its figure is then shown with the others
    assert "<figcaption>first_layer_filters</figcaption>" in check_section(render_html(results), "explanations")


def test_without_a_summary_one_is_made_and_a_finding_without_text_gets_a_sentence() -> None:
    results = results_explanations()
    parts = _parts(results)
    parts["summary"] = ""
    parts["findings"][0]["text"] = None
    section = check_section(render_html(results), "explanations")
    assert ('<p class="ex-summary ex-flagged">4 of 5 methods beat a random pixel order on deletion; 1 of 4 failed the '
            "sanity check.</p>") in section
    assert ("<li>Subject share difference for Integrated Gradients between gender groups: 0.21 [0.12, 0.30] "
            "(female → male).</li>") in section
    assert finding_text({}) == "Difference." and finding_text({"value": float("nan"), "metric": 3}) == "Difference."


def test_parts_are_read_from_overall_only_and_attribute_scopes_beside_it() -> None:
    results = results_explanations()
    metrics = _metrics(results)
    metrics["summary"] = "At the top is not read."  # the old place: an attribute scope's name to the policy engine
    metrics["overall"]["summary"] = ""
    section = check_section(render_html(results), "explanations")
    assert "At the top is not read." not in section
    assert '<p class="ex-summary ex-flagged">4 of 5 methods beat a random pixel order on deletion; 1 of 4 failed' in section
    results = results_explanations()
    metrics = _metrics(results)
    for key in explanations_section.PARTS:
        metrics[key] = metrics["overall"].pop(key)
    assert explanations_view(_ex(results), []) is None  # the parts at the top only: not the schema, a generic tree
    assert "ex-summary" not in check_section(render_html(results), "explanations")
    results = results_explanations()
    metrics = _metrics(results)
    metrics["race"] = {"scope": {"kind": "attribute"},
                       "deletion_auc_difference": {"value": 0.07, "ci": [0.01, 0.13], "method": "integrated_gradients",
                                                   "lowest": "a", "highest": "b", "groups_compared": 2, "reason": None}}
    view = explanations_view(_ex(results), [], charts=False)
    assert view is not None and view["reference_method"] == "Integrated Gradients"
    assert [(d["attribute"], d["label"]) for d in view["differences"]] == [
        ("gender", "Subject share"), ("gender", "Deletion AUC"), ("gender", "Insertion AUC"), ("age", "Every difference"),
        ("race", "Deletion AUC")]  # every key beside overall, the scope's own description left out
    assert view["differences"][-1]["groups"] == "a → b" and "overall" not in {d["attribute"] for d in view["differences"]}
    del metrics["overall"]["reference_method"]
    assert explanations_view(_ex(results), [], charts=False)["reference_method"] is None
    metrics["overall"]["reference_method"] = "new_method"
    assert explanations_view(_ex(results), [], charts=False)["reference_method"] == "New method"


def test_an_entry_from_before_the_schema_is_a_generic_tree_and_an_errored_one_its_error() -> None:
    results = results_explanations()
    _ex(results)["metrics"] = {"saliency": {"value": 0.3, "ci": None}}
    section = check_section(render_html(results), "explanations")
    assert "ex-summary" not in section and "<h4>Metrics</h4>" in section and "0.300" in section
    assert "### Explanations" not in render_markdown(results)
    results["checks"]["explanations"] = {"status": "error", "error": "RuntimeError: captum failed", "metrics": {}}
    page = render_html(results)
    assert "captum failed" in check_section(page, "explanations")
    assert 'class="ex-summary' not in page and "How the explanations are checked" not in page
    assert "How the explanations are checked" not in render_html(results_v1())  # errored there too


def test_lists_are_capped() -> None:
    results = results_explanations()
    parts = _parts(results)
    ig = parts["methods"]["integrated_gradients"]
    parts["methods"] = {f"m{i}": dict(ig, label=f"Method {i}") for i in range(30)}
    parts["notes"] = [f"note {i}" for i in range(50)]
    parts["findings"] = [dict(parts["findings"][0], text=f"finding {i}") for i in range(45)]
    parts["class_models"]["classes"] = [f"class {i}" for i in range(100)]
    ig["deletion_curve"] = [0.5] * 100_000
    view = explanations_view(_ex(results), _ex(results)["figures"], charts=False)
    assert view is not None
    assert (len(view["methods"]), view["methods_more"]) == (12, 18)
    assert (len(view["notes"]), view["notes_more"]) == (20, 30)
    assert (len(view["findings"]), view["findings_more"]) == (20, 25)
    assert (len(view["class_models"]["rows"]), view["class_models"]["more"]) == (40, 60)
    section = check_section(render_html(results), "explanations")
    assert "… and 18 more methods in results.json." in section and "… and 30 more notes" in section
    assert "… and 25 more findings" in section and "… and 60 more classes" in section


# -- charts ----------------------------------------------------------------------------------------------


def test_chart_functions_draw_what_is_finite_and_refuse_nothing_to_draw() -> None:
    good = [[f"m{i}", [0.9, 0.5, 0.1], [0.1, 0.5, 0.9]] for i in range(3)]
    bad = ["<b>x</b>", [float("nan"), "x", None, True, float("inf"), {"a": 1}], "not a curve"]
    uri = faithfulness_curves([0.0, 0.5, 1.0], good + [bad, "junk", [1, 2]], [[0.9, 0.6, 0.0], None])
    assert uri is not None and uri.startswith("data:image/png;base64,")
    assert faithfulness_curves(None, good[:1], None) is not None  # evenly spaced fractions
    for fractions, methods, random in ((None, None, None), ([0, 1], [], [[], []]), ([0, 1], [["a", [0.5], [0.5]]], None),
                                       ("x", [["a", "y", {"z": 1}]], "w"), ([float("nan")] * 3, good, None)):
        assert faithfulness_curves(fractions, methods, random) is None
    lines = [["IG", [[1, 0.6, 0.5, 0.7], [2, 0.3, None, "x"], [3, float("nan"), 0, 1], ["s", 0.1, 0, 1]]], ["bad", "x"], [1]]
    uri = sanity_chart([[1, "inner.12"], [2, None], ["x", "y"], "z"], lines, 0.5)
    assert uri is not None and uri.startswith("data:image/png;base64,")
    for stages, methods, threshold in (([], [], 0.5), (None, None, None), ([[1, "a"]], [["IG", [[1, None, 0, 1]]]], 0.5),
                                       ([[1, "a"]], [["IG", "x"]], float("inf"))):
        assert sanity_chart(stages, methods, threshold) is None


# -- methodology -------------------------------------------------------------------------------------------


def test_methodology_reads_the_checks_parameters(page: str) -> None:
    method = page.split('id="methodology"', 1)[1].split("</section>", 1)[0]
    for text in ("How the explanations are checked", "For 128 audited images", "Sundararajan et al. 2017", "in 32 steps",
                 "16 copies of the image with Gaussian noise of standard deviation 0.15", "(“inner.9”)",
                 "patch of 8×8 pixels moved 4 pixels at a time", "Fong &amp; Vedaldi 2017", "in 40 steps",
                 "Petsiuk et al. 2018, RISE", "in 20 equal steps", "filled with a constant colour", "random pixel order",
                 "faithful when its deletion gain&#39;s interval lies above 0", "Adebayo et al. 2018", "in 5 stages",
                 "on 8 images", "stays above 0.5", "at least 30 images", "bootstrap interval", "Simonyan et al. 2014",
                 "in 64 steps", "one method&#39;s account of the model", "the sanity check on 8."):
        assert text in method, text
    results = results_explanations()
    _ex(results)["params"].update(ig_steps=64, sanity_threshold=0.3, curve_steps=10, operator="blur", n_sanity=16,
                                  methods=["saliency", "occlusion"], layer=None, confidence=0.9, min_difference=0.15)
    method = render_html(results).split('id="methodology"', 1)[1]
    assert "stays above 0.3" in method and "in 10 equal steps" in method and "blurred copy" in method and "on 16 images" in method
    assert "Sundararajan" not in method and "Saliency (Simonyan" in method and "a 90% bootstrap interval" in method
    assert "A difference of at least 0.15 whose adjusted p-value is below 0.05 is reported as a finding" in method
    assert "whose interval lies above 0 is reported" not in method  # the rule the check does not use (issue 17)
    assert "reported as a finding" not in page and "threshold 0.3 dashed" in check_section(render_html(results), "explanations")


# -- Markdown ----------------------------------------------------------------------------------------------


def test_markdown_has_the_summary_a_line_per_method_and_the_findings() -> None:
    block = render_markdown(results_explanations()).split("### Explanations\n\n", 1)[1].split("\n_Full report", 1)[0]
    assert block.startswith("4 of 5 methods beat a random pixel order\\; Occlusion failed the sanity check")
    assert ("- **Integrated Gradients**: deletion AUC 0.210 [0.170, 0.250], insertion AUC 0.700 [0.650, 0.750]; faithful; "
            "sanity passed (final rank correlation 0.050 [-0.010, 0.110])") in block
    assert ("- **Occlusion**: deletion AUC 0.120 [0.080, 0.160], insertion AUC 0.780 [0.730, 0.830]; faithful; "
            "⚠️ sanity failed") in block
    assert "- **Grad\\-CAM**: not run (the model has no convolutional layer that can be hooked \\(TorchScript\\)" in block
    assert "- Random order: deletion AUC 0.390 [0.360, 0.420], insertion AUC 0.410 [0.380, 0.440]" in block
    assert "- Integrated Gradients puts less of its attribution on the subject for female images \\(0\\.52\\)" in block


# -- missing keys, wrong types, hostile strings; PDF --------------------------------------------------------------

_LEVELS = {  # each dict of the entry whose keys are deleted or given a wrong type in turn
    "check": lambda r: _ex(r), "params": lambda r: _ex(r)["params"], "metrics": lambda r: _metrics(r),
    "overall": lambda r: _parts(r), "methods": lambda r: _parts(r)["methods"],
    "method": lambda r: _parts(r)["methods"]["occlusion"], "not_run": lambda r: _parts(r)["methods"]["grad_cam"],
    "sanity": lambda r: _parts(r)["methods"]["occlusion"]["sanity"],
    "stage": lambda r: _parts(r)["methods"]["occlusion"]["sanity"]["cascade"][0],
    "random": lambda r: _parts(r)["random_baseline"], "scope": lambda r: _metrics(r)["gender"],
    "scope_kind": lambda r: _metrics(r)["gender"]["scope"],
    "difference": lambda r: _metrics(r)["gender"]["subject_share_difference"],
    "finding": lambda r: _parts(r)["findings"][0], "first_layer": lambda r: _parts(r)["first_layer"],
    "class_models": lambda r: _parts(r)["class_models"], "group": lambda r: _ex(r)["by_group"]["age"]["60+"],
    "group_method": lambda r: _ex(r)["by_group"]["gender"]["female"]["methods"]["integrated_gradients"],
    "figures": lambda r: _ex(r)["figures"],
}
_KEYS = [(level, key) for level, get in _LEVELS.items() for key in get(results_explanations())]
_BAD = ("x", float("inf"), True, None, [None, "y"], {"a": {"b": 1}})  # NaN: in the hostile test


@pytest.mark.parametrize(("level", "key"), _KEYS, ids=[f"{lv}.{k}" for lv, k in _KEYS])
def test_renders_without_each_key(level: str, key: str, stub_charts: None) -> None:
    results = results_explanations()
    del _LEVELS[level](results)[key]
    html = render_html(results)
    assert key not in _LEVELS[level](results)
    assert 'id="check-0-explanations"' in html and "Check details" in html and not CONTROL.search(html)
    assert render_markdown(results).startswith("## Audit report")
    ET.fromstring(render_junit(results))


@pytest.mark.parametrize(("level", "key"), _KEYS, ids=[f"{lv}.{k}" for lv, k in _KEYS])
def test_renders_when_a_key_has_an_unexpected_type(level: str, key: str, stub_charts: None) -> None:
    for bad in _BAD:
        results = results_explanations()
        _LEVELS[level](results)[key] = bad
        html = render_html(results)
        assert 'id="check-0-explanations"' in html and not CONTROL.search(html), bad
        assert render_markdown(results).startswith("## Audit report")


def test_renders_when_the_whole_entry_is_malformed(stub_charts: None) -> None:
    for bad in (None, "x", 3, [], {}, {"metrics": None}, {"metrics": {"overall": 3, "methods": [1], "findings": {"a": 1}}},
                {"metrics": {"overall": {"methods": [1], "findings": {"a": 1}, "summary": 3, "reference_method": [1]},
                             "gender": {"scope": 3}, "age": "x", "race": {"scope": {"kind": "attribute"}, "x": [1]}}},
                {"metrics": {"overall": {"methods": {"a": 1, "b": None, "c": {"status": 3, "sanity": [1]}},
                                         "random_baseline": "x", "notes": "x", "first_layer": 2, "class_models": [1],
                                         "reference_method": "", "faithful_methods": {"value": 2, "of": "x"}},
                             "gender": [1]},
                 "by_group": {"gender": [1], "age": {"a": 2, "b": {"methods": [1]}}}, "figures": [PIXEL]}):
        html = render_html({**results_explanations(), "checks": {"explanations": bad}})
        assert "Check details" in html and "Traceback" not in html and 'id="check-0-explanations"' in html
        assert render_markdown({**results_explanations(), "checks": {"explanations": bad}}).startswith("## Audit report")


def _hostile() -> dict[str, Any]:
    results = results_explanations()
    ex = _ex(results)
    metrics = ex["metrics"]
    parts = metrics["overall"]
    parts["summary"] = HOSTILE[5] + " @everyone " + HOSTILE[0]
    parts["reference_method"] = HOSTILE[0]
    parts["methods"]["occlusion"].update(label=HOSTILE[0], reason=HOSTILE[6], deletion_gain=float("inf"),
                                           deletion_auc={"value": float("nan"), "ci": [float("-inf"), "x"], "reason": HOSTILE[1]})
    parts["methods"]["occlusion"]["sanity"]["cascade"][0]["layer"] = HOSTILE[1]
    parts["methods"][HOSTILE[1]] = {"status": "not_run", "reason": HOSTILE[0] + LONG_NAME}
    parts["methods"]["grad_cam"]["label"] = LONG_NAME
    parts["findings"].append({"text": HOSTILE[0] + " " + HOSTILE[6]})
    parts["findings"].append({"attribute": "<b>race</b>", "metric": HOSTILE[2], "lowest": HOSTILE[1], "highest": LONG_NAME,
                                "value": float("inf")})
    metrics["<b>race</b>"] = {"scope": {"kind": "attribute"}, HOSTILE[3]: {"value": 0.2, "ci": None, "method": HOSTILE[0], "lowest": HOSTILE[4],
                                           "highest": HOSTILE[5]}}
    parts["notes"] = [HOSTILE[0], LONG_NAME, HOSTILE[6]]
    parts["first_layer"].update(verdict=HOSTILE[1] + HOSTILE[6], layer=HOSTILE[0], figure=HOSTILE[1])
    parts["class_models"]["classes"] = [HOSTILE[0], LONG_NAME]
    ex["by_group"]["<b>race</b>"] = {HOSTILE[0]: {"n": 40, "insufficient": False,
                                                  "methods": {HOSTILE[1]: {"deletion_auc": {"value": 0.3, "ci": None}}}},
                                     LONG_NAME: ex["by_group"]["gender"]["male"]}
    ex["figures"][HOSTILE[1]] = {"data_uri": PIXEL, "caption": HOSTILE[1]}
    ex["figures"]["first_layer_filters"] = "javascript:alert(1)"
    ex["params"]["operator"] = HOSTILE[0]
    return results


def test_hostile_strings_are_inert_in_html_and_markdown() -> None:
    html = render_html(_hostile())
    assert "<script" not in html.lower() and "<b>" not in html and not CONTROL.search(html) and LONG_NAME not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;race&lt;/b&gt;" in html
    assert all(IMG.fullmatch(t) for t in re.findall(r"<img\b[^>]*>", html)) and "javascript:" not in html
    section = check_section(html, "explanations")
    assert "<figcaption>&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</figcaption>" in section  # found by its hostile name
    assert '<span class="na">n/a</span> <span class="reason">(&#34;&gt;&lt;img' in section  # NaN with its reason
    text = render_markdown(_hostile())
    assert not re.search(r"(?<!\\)<[a-zA-Z/!]", text) and not re.search(r"(?<!\\)@[a-z]", text)
    assert "**\\<script\\>alert\\(1\\)\\<\\/script\\>**" in text and not CONTROL.search(text) and LONG_NAME not in text


@pytest.mark.slow
def test_pdf_renders_the_section_and_hostile_strings_as_text() -> None:
    results = _hostile()
    _parts(results)["summary"] = "Explanations summary, with " + HOSTILE[0]
    data = render_pdf(results)
    assert data.startswith(b"%PDF-")
    flat = re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages))
    for text in ("Faithfulness and sanity per method", "Integrated Gradients", "Random order (baseline)", "Not run:",
                 "Sanity check: cascading model randomisation", "Differences between groups", "First-layer filters",
                 "Class models", "How the explanations are checked", "Adebayo et al. 2018"):
        assert text in flat, text
    squeezed = re.sub(r"\s+", "", flat)
    assert "Explanationssummary,with<script>alert(1)</script>" in squeezed and "<b>race</b>" in squeezed
    assert re.sub(r"\s+", "", EX_FINDING) in squeezed and not CONTROL.search(flat)
