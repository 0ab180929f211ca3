"""Borderline passes and the robust-accuracy floor where a reader meets them: page 1 (the summary), the
HTML clause table's badge, the Markdown comment and the JUnit report."""
from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET

import pytest

from auditor.policy import evaluate_policy, load_policy
from auditor.report import render_html, render_junit, render_markdown
from auditor.report._findings import clause_brief, plain_words, summary, verdict_sentence
from tests.report_fixtures import results_v2
from tests.test_policy_borderline import _attacked

SHAKY = "0.828 clears >= 0.8 but its interval [0.69, 0.99] crosses the threshold (borderline: a larger probe could show it fails)"


@pytest.fixture(scope="module")
def shaky() -> dict:
    """A passing run whose blocker four-fifths[race] passes at 0.828 [0.690, 0.990] against 0.8."""
    results = copy.deepcopy(results_v2(baseline=False))
    pol = results["policy"]
    pol["clauses"] = [c for c in pol["clauses"] if c["result"] == "pass"]
    for c in pol["clauses"]:
        c["borderline"] = False
    c = next(c for c in pol["clauses"] if c["id"] == "four-fifths[race]")
    c.update(value=0.828, ci=[0.690, 0.990], borderline=True, reason=SHAKY)
    pol.update(verdict="pass", borderline_passes=["four-fifths[race]"])
    return results


def test_page_one_says_which_blocker_passes_only_at_its_value(shaky):
    assert verdict_sentence(shaky) == (
        "PASS: the model meets every blocking requirement of policy “default” (version 2), but one "
        "(four-fifths[race]) only at the measured value: the interval crosses the threshold (borderline), so a "
        "larger probe could show a fail.")
    s = summary(shaky)
    assert "1 passed only at the measured value (borderline: the interval crosses the threshold)" in s["counts"]
    assert s["notes"][0] == ("four-fifths[race] (blocker) passes at 0.83 but its interval [0.69, 0.99] crosses the "
                             "threshold ≥ 0.8: borderline, a larger probe could show it fails.")


def test_the_clause_table_shows_pass_borderline_in_amber(shaky):
    html = render_html(shaky)
    row = re.search(r'<tr class="row-borderline">.*?</tr>', html, re.S)
    assert row and "four-fifths[race]" in row.group(0)
    assert re.search(r'<span class="badge result-borderline[^"]*"[^>]*>≈ pass \(borderline\)</span>', row.group(0))
    assert html.count("pass (borderline)") == 1  # the other passes are plain passes


def test_markdown_and_junit_say_borderline(shaky):
    md = render_markdown(shaky)
    assert "### Borderline passes (1)" in md and r"four\-fifths\[race\] \(blocker\) passes at 0\.83" in md
    root = ET.fromstring(render_junit(shaky))
    case = next(c for c in root.iter("testcase") if c.get("name") == "four-fifths[race]")
    assert case.find("failure") is None and case.find("skipped") is None  # a pass: the gate is green
    assert "reason: " + SHAKY in case.find("system-out").text
    assert "(borderline)" in root.find("testsuite/system-out").text


def test_no_borderline_text_without_a_borderline_pass():
    results = results_v2(baseline=False)
    s = summary(results)
    assert "borderline" not in s["counts"] and not any("borderline" in n for n in s["notes"])
    assert "Borderline passes" not in render_markdown(results)
    assert "pass (borderline)" not in render_html(results)


def _floor_results(robust_accuracy: float, policy: str = "default") -> dict:
    results = _attacked(robust_accuracy, [robust_accuracy, min(1.0, robust_accuracy + 0.06)])
    results["checks"]["attacks"]["params"] = {"reference_eps": 4 / 255}
    results["policy"] = evaluate_policy(load_policy(policy), results)
    return results


def test_page_one_says_zero_robust_accuracy_in_plain_words():
    results = _floor_results(0.0)
    s = summary(results)
    assert results["policy"]["verdict"] == "pass"
    assert s["warnings"][0] == ("Robust accuracy under a 4/255 attack is 0%: any imperceptible perturbation flips the "
                                "model's answers (robust-accuracy-floor: 0.00 [0.00, 0.06], required ≥ 0.2).")
    blocked = summary(_floor_results(0.0, "strict-ci"))
    assert blocked["blockers"][0].startswith("Robust accuracy under a 4/255 attack is 0%: any imperceptible")


def test_plain_words_for_a_low_but_nonzero_floor():
    c = next(c for c in _floor_results(0.03)["policy"]["clauses"] if c["id"] == "robust-accuracy-floor")
    assert plain_words(c, {"checks": {"attacks": {"params": {"reference_eps": 8 / 255}}}}) == (
        "Robust accuracy under an 8/255 attack is 3%: an imperceptible perturbation makes the model wrong on 97% "
        "of the images")
    assert plain_words(c).startswith("Robust accuracy under the reference attack is 3%")
    assert clause_brief({"id": "x", "metric": "checks.group_metrics.metrics.overall.accuracy", "value": 0.5,
                         "op": ">=", "threshold": 0.7}) == "x: 0.50, required ≥ 0.7."  # no plain words: as before


def test_junit_names_the_attack_strength_of_the_floor():
    from auditor.report import render_junit

    xml = render_junit(_floor_results(0.0, "strict-ci")).decode()
    assert "Robust accuracy under a 4/255 attack is 0%" in xml and "reference attack" not in xml
