"""Verdicts only on what was measured, and fails that hold up: borderline clauses, not_run clauses of
checks left out of --checks, a policy's required checks, groups below min_group_size, and a
metric that could not be measured. Hand-made results dicts, plus one real CLI run."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from auditor.report._findings import verdict_sentence
from auditor.api import AuditConfig
from auditor.api._checks import select_checks
from auditor.cli import main
from auditor.errors import EXIT_BAD_INPUT, PolicyError, UsageError
from auditor.policy import evaluate_policy, load_policy
from auditor.report import render_junit
from tests.conftest import SAMPLE_MODELS

RATIO = """id: ratio
metric: checks.group_metrics.metrics.*.selection_rate_ratio
op: ">="
threshold: 0.8
require: {require}"""

CUE = """id: cue
metric: checks.spurious.metrics.overall.n_off_subject_findings
op: "<="
threshold: 0"""


def _policy(tmp_path, *clauses: str, head: str = "") -> object:
    body = "".join("  - " + c.strip().replace("\n", "\n    ") + "\n" for c in clauses)
    path = tmp_path / "policy.yaml"
    path.write_text(f"name: t\n{head}clauses:\n{body}")
    return load_policy(path)


def _ratio(value, ci=None, **extra) -> dict:
    """results.json with one group_metrics scope (race) whose selection_rate_ratio is ``value [ci]``."""
    node = {"value": value, "ci": ci, **extra}
    return {"checks": {"group_metrics": {"status": "ok", "metrics": {
        "overall": {"n": 500}, "race": {"scope": {"kind": "attribute"}, "selection_rate_ratio": node}}}}}


def _one(policy, results) -> dict:
    out = evaluate_policy(policy, results)
    assert len(out["clauses"]) == 1
    return out["clauses"][0] | {"verdict": out["verdict"], "policy": out}


# --- require: point -----------------------------------------------------------------------------

def test_point_miss_whose_interval_reaches_the_threshold_is_borderline_not_fail(tmp_path):
    entry = _one(_policy(tmp_path, RATIO.format(require="point")), _ratio(0.72, [0.48, 1.05]))
    assert entry["result"] == "borderline"
    assert entry["reason"] == "0.72 misses >= 0.8 but its interval [0.48, 1.05] reaches the threshold"


def test_point_miss_whose_whole_interval_misses_is_a_fail(tmp_path):
    assert _one(_policy(tmp_path, RATIO.format(require="point")), _ratio(0.6, [0.5, 0.79]))["result"] == "fail"


def test_point_miss_without_an_interval_is_a_fail_on_the_point(tmp_path):
    assert _one(_policy(tmp_path, RATIO.format(require="point")), _ratio(0.72))["result"] == "fail"


def test_point_pass_stays_a_pass_whatever_its_interval(tmp_path):
    assert _one(_policy(tmp_path, RATIO.format(require="point")), _ratio(0.85, [0.5, 1.1]))["result"] == "pass"


# --- require: interval --------------------------------------------------------------------------

@pytest.mark.parametrize("value, ci, expected", [
    (0.9, [0.82, 0.97], "pass"),        # whole interval clears
    (0.7, [0.6, 0.79], "fail"),         # whole interval misses
    (0.85, [0.75, 0.95], "borderline"),  # point clears, interval straddles
    (0.75, [0.6, 0.9], "borderline"),    # point misses, interval straddles
])
def test_require_interval_passes_fails_or_is_borderline_by_where_the_interval_lies(tmp_path, value, ci, expected):
    assert _one(_policy(tmp_path, RATIO.format(require="interval")), _ratio(value, ci))["result"] == expected


# --- the verdict --------------------------------------------------------------------------------

def test_a_borderline_blocker_makes_the_verdict_inconclusive_and_is_listed(tmp_path):
    out = evaluate_policy(_policy(tmp_path, RATIO.format(require="point")), _ratio(0.72, [0.48, 1.05]))
    assert out["verdict"] == "inconclusive"
    assert out["borderline"] == ["ratio[race]"]


def test_a_borderline_warning_leaves_the_verdict_alone(tmp_path):
    clause = RATIO.format(require="point") + "\nseverity: warning"
    gap = 'id: acc\nmetric: checks.group_metrics.metrics.overall.n\nop: ">="\nthreshold: 100'
    out = evaluate_policy(_policy(tmp_path, clause, gap), _ratio(0.72, [0.48, 1.05]))
    assert out["verdict"] == "pass"


# --- not_run ------------------------------------------------------------------------------------

def test_clause_of_a_check_left_out_of_checks_is_not_run_and_does_not_count(tmp_path):
    out = evaluate_policy(_policy(tmp_path, RATIO.format(require="point"), CUE), _ratio(0.9))
    cue = next(c for c in out["clauses"] if c["id"] == "cue")
    assert (cue["result"], cue["reason"]) == ("not_run", "check spurious was not run (not in --checks)")
    assert out["not_run"] == ["cue"]
    assert out["verdict"] == "pass"


def test_a_run_where_no_blocker_was_measured_is_inconclusive_not_a_pass(tmp_path):
    out = evaluate_policy(_policy(tmp_path, CUE), _ratio(0.9))
    assert out["verdict"] == "inconclusive"


def test_a_run_leaving_out_a_required_check_is_inconclusive_naming_it(tmp_path):
    policy = _policy(tmp_path, CUE, head="requires: [group_metrics, spurious]\n")
    results = {"checks": {"spurious": {"status": "ok", "metrics": {"overall": {"n_off_subject_findings": {"value": 0}}}}}}
    out = evaluate_policy(policy, results)
    assert out["missing_required"] == ["group_metrics"]
    assert out["verdict"] == "inconclusive"


def test_the_verdict_sentence_and_summary_line_name_a_required_check_that_was_not_run(tmp_path):
    from auditor.result import AuditResult

    policy = _policy(tmp_path, CUE, head="requires: [group_metrics, spurious]\n")
    results = {"checks": {"spurious": {"status": "ok", "metrics": {"overall": {"n_off_subject_findings": {"value": 0}}}}},
               "probe": {"n_skipped": 0}}
    results["policy"] = evaluate_policy(policy, results)
    assert "requires 1 check this run left out (group_metrics)" in verdict_sentence(results)
    assert AuditResult(results, 1).summary() == "INCONCLUSIVE: policy t (policy requires group_metrics, not run)"


def test_a_failed_blocker_still_fails_a_run_that_left_out_a_required_check(tmp_path):
    policy = _policy(tmp_path, CUE, head="requires: [group_metrics, spurious]\n")
    results = {"checks": {"spurious": {"status": "ok", "metrics": {"overall": {"n_off_subject_findings": {"value": 2}}}}}}
    assert evaluate_policy(policy, results)["verdict"] == "fail"


def test_requires_naming_no_check_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match=r"requires names no check 'spurios'; did you mean 'spurious'"):
        _policy(tmp_path, CUE, head="requires: [spurios]\n")


def test_the_default_policy_requires_group_metrics():
    assert load_policy().requires == ("group_metrics",)


# --- groups below min_group_size ----------------------------------------------------------------

def test_a_small_group_left_out_of_a_passing_gap_keeps_the_pass_with_a_note(tmp_path):
    entry = _one(_policy(tmp_path, RATIO.format(require="point")), _ratio(0.9, excluded_groups=["pacific islander"]))
    assert entry["result"] == "pass"
    assert entry["excluded_groups"] == ["pacific islander"]
    assert "pacific islander" in entry["note"]


def test_judge_every_group_turns_such_a_pass_into_insufficient_data(tmp_path):
    pol = _policy(tmp_path, RATIO.format(require="point"), head="defaults: {judge_every_group: true}\n")
    entry = _one(pol, _ratio(0.9, excluded_groups=["pacific islander"]))
    assert entry["result"] == "insufficient_data"
    assert entry["verdict"] == "inconclusive"
    assert "add images of them to the probe" in entry["reason"] and "min_group_size" not in entry["reason"]


def test_a_group_too_small_in_a_sampling_checks_sample_is_told_to_raise_the_sample_never_to_lower_the_minimum():
    from auditor.policy._clauses import small_group_remedy

    text = small_group_remedy("checks.attacks.metrics.race.robust_accuracy_difference")
    assert "--budget thorough" in text and "--param attacks.n_images=N" in text and "min_group_size" not in text


def test_judge_every_group_must_be_true_or_false(tmp_path):
    with pytest.raises(PolicyError, match=r"defaults\.judge_every_group must be true or false; got 1"):
        _policy(tmp_path, CUE, head="defaults: {judge_every_group: 1}\n")


# --- what was not measured never passes ----------------------------------------------------------

def test_off_subject_count_without_subject_boxes_is_insufficient_data_with_the_reason(tmp_path):
    reason = "the probe has no subject boxes or masks, so evidence on and off the subject cannot be told apart"
    results = {"checks": {"spurious": {"status": "ok", "metrics": {"overall": {
        "n_off_subject_findings": {"value": None, "ci": None, "reason": reason}}}}}}
    entry = _one(_policy(tmp_path, CUE), results)
    assert (entry["result"], entry["reason"]) == ("insufficient_data", reason)


# --- presenters and errors ----------------------------------------------------------------------

def test_junit_shows_a_not_run_clause_as_skipped_with_its_reason(tmp_path):
    results = _ratio(0.9)
    results["policy"] = evaluate_policy(_policy(tmp_path, RATIO.format(require="point"), CUE), results)
    case = next(c for c in ET.fromstring(render_junit(results)).iter("testcase") if c.get("name") == "cue")
    assert "not in --checks" in case.find("skipped").get("message")


def test_junit_fails_a_borderline_blocker_as_inconclusive(tmp_path):
    results = _ratio(0.72, [0.48, 1.05])
    results["policy"] = evaluate_policy(_policy(tmp_path, RATIO.format(require="point")), results)
    case = next(ET.fromstring(render_junit(results)).iter("testcase"))
    assert case.find("failure").get("type") == "inconclusive"


def test_broken_yaml_indentation_names_the_line_and_column(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text('name: t\nclauses:\n  - id: a\n    metric: x\n   op: "<="\n')
    with pytest.raises(PolicyError, match=r"not valid YAML \(.* at line 5, column 4\); fix the syntax"):
        load_policy(path)


# --- one real run -------------------------------------------------------------------------------

def test_clean_model_with_only_group_metrics_passes_naming_what_was_not_run(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["audit", str(SAMPLE_MODELS["clean_cnn"]), "--probe", "synth:faces:n=240", "--out", str(out),
                 "--device", "cpu", "--budget", "quick", "--checks", "group_metrics", "--format", "json"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0, line
    assert line.startswith("PASS: policy default (not run: off-subject-cue, ")
    assert "spurious" in line and "not in --checks" in line
    assert "off-subject-cue" in json.loads((out / "results.json").read_text())["policy"]["not_run"]


def test_leaving_out_a_required_check_is_said_before_any_work(tmp_path, caplog):
    cfg = AuditConfig(model="m", checks=["spurious"], out_dir=None)
    with caplog.at_level("WARNING", logger="auditor.api"):
        select_checks(cfg)
    assert "policy default requires group_metrics, which --checks leaves out: the verdict will be inconclusive" in caplog.text


def test_the_verdict_sentence_says_a_borderline_blocker_straddles_the_threshold(tmp_path):
    results = _ratio(0.72, [0.48, 1.05])
    results["policy"] = evaluate_policy(_policy(tmp_path, RATIO.format(require="point")), results)
    assert "an interval straddles the threshold" in verdict_sentence(results)


def test_the_summary_line_names_a_warning_not_met_though_the_verdict_passes(tmp_path):
    from auditor.result import AuditResult

    policy = _policy(tmp_path, CUE + "\nseverity: warning")
    results = {"checks": {"spurious": {"status": "ok", "metrics": {"overall": {"n_off_subject_findings": {"value": 2}}}}},
               "probe": {"n_skipped": 0}}
    results["policy"] = evaluate_policy(policy, results)
    assert AuditResult(results, 0).summary() == "PASS: policy t (warnings not met: cue)"
