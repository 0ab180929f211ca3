"""Policy parsing (each error) and clause evaluation (pass, fail, inconclusive)."""
from __future__ import annotations

import pytest

from auditor.errors import PolicyError
from auditor.policy import evaluate_policy, load_policy

GOOD = """
name: p
version: "2"
clauses:
  - id: dp
    metric: checks.group_metrics.metrics.*.selection_rate_ratio
    op: ">="
    threshold: 0.8
    maps_to: EU AI Act Art. 10(2)(f)
  - id: acc
    metric: checks.group_metrics.metrics.overall.accuracy
    op: ">="
    threshold: 0.9
    severity: warning
"""


def _write(tmp_path, text):
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


def _results(ratio_race, ratio_gender=0.9, acc=0.95, status="ok"):
    return {"checks": {"group_metrics": {"status": status, "metrics": {
        "overall": {"n": 100, "accuracy": {"value": acc, "ci": None}},
        "race": {"selection_rate_ratio": {"value": ratio_race, "ci": None}},
        "gender": {"selection_rate_ratio": {"value": ratio_gender, "ci": None}},
    }}}}


def test_default_policy_loads():
    pol = load_policy()
    assert pol.name == "default"
    assert any(c.id == "four-fifths" for c in pol.clauses)


def test_wildcard_clause_expands_per_attribute(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), _results(0.85))
    assert [c["id"] for c in out["clauses"]] == ["dp[race]", "dp[gender]", "acc"]
    assert out["verdict"] == "pass"


def test_failing_blocker_fails_the_policy(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), _results(0.5))
    assert out["verdict"] == "fail"
    assert next(c for c in out["clauses"] if c["id"] == "dp[race]")["result"] == "fail"


def test_failing_warning_does_not_fail_the_policy(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), _results(0.85, acc=0.5))
    assert out["verdict"] == "pass"
    assert out["clauses"][-1]["result"] == "fail"


def test_missing_value_makes_the_verdict_inconclusive(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), _results(None))
    assert out["verdict"] == "inconclusive"
    assert out["clauses"][0]["result"] == "insufficient_data"


def test_errored_check_makes_the_verdict_inconclusive_not_pass(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), _results(0.9, status="error"))
    assert out["verdict"] == "inconclusive"


@pytest.mark.parametrize(
    "change, message",
    [
        (("op: \">=\"\n    threshold: 0.8\n    maps_to", "op: \"=>\"\n    threshold: 0.8\n    maps_to"), "operator '=>'"),
        (("    threshold: 0.8\n", ""), "missing 'threshold'"),
        (("threshold: 0.8", "threshold: high"), "must be a number"),
        (("selection_rate_ratio", "selection_rate_ration"), "valid paths near it: checks.group_metrics.metrics.*.selection_rate_ratio"),
        (("checks.group_metrics.metrics.*", "checks.group_metrix.metrics.*"), "no registered check"),
        (("severity: warning", "severity: fatal"), "severity 'fatal'"),
    ],
)
def test_invalid_policy_is_rejected_with_a_pointed_message(tmp_path, change, message):
    text = GOOD.replace(*change, 1)
    with pytest.raises(PolicyError, match=message.replace("*", r"\*").replace("(", r"\(").replace(")", r"\)")):
        load_policy(_write(tmp_path, text))


def test_missing_policy_file_says_so(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.yaml")


def test_policy_that_is_not_yaml_says_so(tmp_path):
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(_write(tmp_path, "clauses: [unclosed"))
