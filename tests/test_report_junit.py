"""The JUnit XML report: valid structure, counts that match, and the verdict rule for CI systems."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from auditor.report import render_junit, write_junit
from tests.report_fixtures import results_v1, results_v2

# Children allowed in each element, in order (the common JUnit schema used by Jenkins, GitLab and the
# GitHub test-report actions).
CHILDREN = {
    "testsuites": ("testsuite",),
    "testsuite": ("properties", "testcase", "system-out", "system-err"),
    "properties": ("property",),
    "testcase": ("skipped", "failure", "error", "system-out", "system-err"),
}
REQUIRED = {"testsuites": ("tests", "failures"), "testsuite": ("name", "tests", "failures", "errors", "skipped"),
            "testcase": ("name", "classname"), "property": ("name", "value"), "failure": ("message", "type"),
            "skipped": ("message",)}


def validate(xml: bytes) -> ET.Element:
    """Parse and check against the JUnit structure; return the root."""
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    for el in root.iter():
        for key in REQUIRED.get(el.tag, ()):
            assert key in el.attrib, (el.tag, key)
        allowed = CHILDREN.get(el.tag, ())
        order = [allowed.index(c.tag) for c in el if c.tag in allowed]
        assert all(c.tag in allowed for c in el), (el.tag, [c.tag for c in el])
        if el.tag != "testcase":
            assert order == sorted(order), (el.tag, [c.tag for c in el])
        if el.tag == "testcase":
            assert sum(c.tag in ("skipped", "failure", "error") for c in el) <= 1
    for suite in [root, *root.iter("testsuite")]:
        cases = list(suite.iter("testcase"))
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
        if suite.get("skipped") is not None:
            assert int(suite.get("skipped")) == sum(1 for c in cases if c.find("skipped") is not None)
    return root


def _outcomes(root: ET.Element) -> dict[str, str]:
    """The policy suite's testcases and their outcomes."""
    out = {}
    for case in root.find("testsuite").iter("testcase"):
        child = next((c for c in case if c.tag in ("failure", "skipped")), None)
        out[case.get("name")] = "passed" if child is None else f"{child.tag}:{child.get('type', '')}"
    return out


@pytest.fixture(scope="module")
def root() -> ET.Element:
    return validate(render_junit(results_v2()))


def test_one_policy_suite_and_one_testcase_per_clause_named_by_policy_and_clause(root: ET.Element) -> None:
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["auditor policy default", "auditor checks"]
    cases = suites[0].findall("testcase")
    assert [c.get("name") for c in cases] == [c["id"] for c in results_v2()["policy"]["clauses"]]
    assert {c.get("classname") for c in cases} == {"default"}


def test_clause_results_follow_the_verdict_rule(root: ET.Element) -> None:
    assert _outcomes(root) == {
        "accuracy-gap[race]": "failure:blocker",
        "accuracy-gap[gender]": "passed",
        "four-fifths[race]": "passed",
        "tpr-gap[gender+age+race]": "failure:inconclusive",
        "eo[age]": "passed",
        "overall-accuracy": "skipped:",
        "no-accuracy-drop[race]": "failure:blocker",
    }


def test_failure_message_has_value_interval_and_threshold(root: ET.Element) -> None:
    failure = root.find(".//testcase[@name='accuracy-gap[race]']/failure")
    assert "Measured 0.41 [0.36, 0.46]; required ≤ 0.1." in failure.get("message")
    assert "metric: checks.group_metrics.metrics.race.accuracy_difference" in failure.text


def test_failed_warning_is_skipped_with_its_finding(root: ET.Element) -> None:
    skipped = root.find(".//testcase[@name='overall-accuracy']/skipped")
    assert skipped.get("message").startswith("warning (does not fail the gate): overall-accuracy:")


def test_allow_inconclusive_turns_an_undecided_blocker_into_a_skip() -> None:
    root = validate(render_junit(results_v2(), allow_inconclusive=True))
    assert _outcomes(root)["tpr-gap[gender+age+race]"] == "skipped:"


def test_allow_inconclusive_is_read_from_the_recorded_command() -> None:
    results = results_v2()
    results["command"] += " --allow-inconclusive"
    assert _outcomes(validate(render_junit(results)))["tpr-gap[gender+age+race]"] == "skipped:"


def _inconclusive_only() -> dict[str, Any]:
    results = results_v2(baseline=False)
    results["policy"]["verdict"] = "inconclusive"
    results["policy"]["clauses"] = [c for c in results["policy"]["clauses"] if c["result"] != "fail"]
    return results


@pytest.mark.parametrize(("verdict", "allow", "gate_fails"), [("pass", False, False), ("fail", False, True),
                                                              ("inconclusive", False, True), ("inconclusive", True, False)])
def test_test_report_fails_exactly_when_the_gate_does(verdict: str, allow: bool, gate_fails: bool) -> None:
    results = _inconclusive_only() if verdict == "inconclusive" else results_v2()
    if verdict == "pass":
        results["policy"]["verdict"] = "pass"
        for c in results["policy"]["clauses"]:
            c["result"] = "pass"
    root = validate(render_junit(results, allow_inconclusive=allow))
    assert (int(root.get("failures")) > 0) == gate_fails


def test_failing_verdict_without_a_failing_clause_adds_a_failing_verdict_case() -> None:
    results = results_v2()
    for c in results["policy"]["clauses"]:
        c["result"] = "pass"
    root = validate(render_junit(results))
    assert _outcomes(root)["verdict"] == "failure:verdict"


def test_no_policy_gives_one_skipped_case_not_an_empty_suite() -> None:
    root = validate(render_junit({"schema_version": 1}))
    assert _outcomes(root) == {"verdict": "skipped:"}


def test_a_checks_suite_has_a_testcase_per_check_with_its_headline_and_never_fails(root: ET.Element) -> None:
    suite = root.findall("testsuite")[1]
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == list(results_v2()["checks"])
    assert suite.get("failures") == "0" and not list(suite.iter("failure"))
    assert "overall accuracy: 0.870 [0.851, 0.889]" in cases["group_metrics"].find("system-out").text
    assert cases["explanations"].find("skipped").get("message").startswith("check errored")


def test_errored_checks_and_policy_warnings_are_in_the_suite_output(root: ET.Element) -> None:
    suite = root.find("testsuite")
    assert "explanations errored: ValueError: saliency needs gradients" in suite.find("system-err").text
    assert "policy warning: baseline was audited with auditor 0.0.9" in suite.find("system-out").text


def test_suite_properties_identify_model_probe_and_verdict(root: ET.Element) -> None:
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["verdict"] == "fail" and props["model_sha256"] == "ab12" * 16 and props["probe"] == "synth:faces"


def test_old_results_give_a_valid_report() -> None:
    root = validate(render_junit(results_v1()))
    assert _outcomes(root)["dp-ratio"] == "failure:blocker"


def test_write_junit_is_atomic_and_named_for_ci(tmp_path: Path) -> None:
    path = write_junit(results_v2(), tmp_path)
    assert path == tmp_path / "report.junit.xml" and [p.name for p in tmp_path.iterdir()] == ["report.junit.xml"]
    validate(path.read_bytes())
