"""Regression clauses against --baseline: pass, fail, significance, missing scopes, a different probe,
baseline file errors, and the CLI end to end (an audit against its own results.json, and against a
doctored one)."""
from __future__ import annotations

import json

import pytest

from auditor.cli import main
from auditor.errors import EXIT_BAD_INPUT, BadInputError
from auditor.policy import Baseline, evaluate_policy, load_baseline, load_policy, one_sided_p, se_from_interval
from tests.conftest import SAMPLE_MODELS, SMALL_PROBE
from tests.test_policy import attribute, intersection, node, results_with

POLICY = """
name: release
clauses:
  - id: overall-accuracy
    metric: checks.group_metrics.metrics.overall.accuracy
    op: ">="
    threshold: 0.5
    severity: warning
regressions:
  - id: wga
    metric: checks.group_metrics.metrics.*.worst_group_accuracy
    direction: higher_is_better
    max_drop: 0.02
    significance: {significance}
    severity: {severity}
"""


def _policy(tmp_path, significance="false", severity="blocker", text=POLICY):
    p = tmp_path / "release.yaml"
    p.write_text(text.format(significance=significance, severity=severity))
    return load_policy(p)


def _wga(**scopes):
    """results with worst_group_accuracy per attribute scope: name=(value, ci)."""
    return results_with({s: attribute(s, worst_group_accuracy=node(v, ci)) for s, (v, ci) in scopes.items()})


def _compare(tmp_path, new, old, **kw):
    return evaluate_policy(_policy(tmp_path, **kw), new, Baseline("old/results.json", old))


def _regressions(out):
    return {c["id"]: c for c in out["clauses"] if c["kind"] == "regression"}


# --- the z test's parts, by hand ------------------------------------------------------------------

def test_standard_error_is_recovered_from_the_interval_width():
    # 95%: z = 1.959964; se = 0.04 / (2 * 1.959964) = 0.0102043
    assert se_from_interval([0.88, 0.92], 0.95) == pytest.approx(0.0102043, rel=1e-5)
    # 90%: z = 1.644854; se = 0.04 / 3.289707 = 0.0121591
    assert se_from_interval([0.88, 0.92], 0.90) == pytest.approx(0.0121591, rel=1e-5)
    assert se_from_interval(None, 0.95) is None


def test_one_sided_p_value_of_the_excess():
    assert one_sided_p(0.0, 0.01) == pytest.approx(0.5)
    assert one_sided_p(0.0196, 0.01) == pytest.approx(0.025, abs=1e-4)  # z = 1.96
    assert one_sided_p(0.01, 0.0) == 0.0 and one_sided_p(-0.01, 0.0) == 1.0


# --- regression results -----------------------------------------------------------------------------

def test_comparing_results_with_themselves_passes_with_zero_delta(tmp_path):
    res = _wga(race=(0.8, [0.75, 0.85]), gender=(0.9, [0.88, 0.92]))
    out = _compare(tmp_path, res, res)
    regs = _regressions(out)
    assert list(regs) == ["wga[race]", "wga[gender]"]
    assert all(r["result"] == "pass" and r["delta"] == 0.0 for r in regs.values())
    assert out["verdict"] == "pass" and out["regressed"] is False and out["warnings"] == []


def test_a_drop_of_exactly_the_allowance_passes(tmp_path):
    out = _compare(tmp_path, _wga(race=(0.78, None)), _wga(race=(0.80, None)))
    entry = _regressions(out)["wga[race]"]
    assert entry["result"] == "pass" and entry["delta"] == pytest.approx(-0.02)


def test_a_drop_beyond_the_allowance_fails_and_fails_the_verdict(tmp_path):
    out = _compare(tmp_path, _wga(race=(0.70, None)), _wga(race=(0.80, None)))
    entry = _regressions(out)["wga[race]"]
    assert entry["result"] == "fail"
    assert (entry["value"], entry["baseline_value"], entry["delta"]) == (0.70, 0.80, pytest.approx(-0.10))
    assert (entry["op"], entry["threshold"]) == (">=", 0.78)  # new >= baseline - max_drop
    assert entry["reason"] == "dropped by 0.1, more than the allowed 0.02"
    assert out["verdict"] == "fail" and out["regressed"] is True


def test_a_failing_warning_regression_does_not_change_the_verdict(tmp_path):
    out = _compare(tmp_path, _wga(race=(0.70, None)), _wga(race=(0.80, None)), severity="warning")
    assert _regressions(out)["wga[race]"]["result"] == "fail"
    assert out["verdict"] == "pass" and out["regressed"] is False


def test_with_significance_a_significant_excess_fails(tmp_path):
    # se of each = 0.04 / (2 * 1.959964) = 0.0102043; together 0.0144311.
    # drop 0.06, excess over 0.02 is 0.04: z = 2.77179, p = 1 - Phi(z) = 0.002788.
    out = _compare(tmp_path, _wga(race=(0.84, [0.82, 0.86])), _wga(race=(0.90, [0.88, 0.92])), significance="true")
    entry = _regressions(out)["wga[race]"]
    assert entry["p_value"] == pytest.approx(0.002788, abs=2e-6)
    assert entry["result"] == "fail" and "significant (p = 0.00279 < alpha 0.05)" in entry["reason"]


def test_with_significance_an_excess_within_the_noise_passes(tmp_path):
    # se of each = 0.2 / 3.919928 = 0.0510213; together 0.0721553; z = 0.04 / 0.0721553 = 0.55436, p = 0.28967.
    out = _compare(tmp_path, _wga(race=(0.84, [0.74, 0.94])), _wga(race=(0.90, [0.80, 1.0])), significance="true")
    entry = _regressions(out)["wga[race]"]
    assert entry["p_value"] == pytest.approx(0.28967, abs=2e-5)
    assert entry["result"] == "pass" and "not significant" in entry["reason"]


def test_the_policy_alpha_is_the_significance_level(tmp_path):
    text = POLICY.replace("name: release\n", "name: release\ndefaults: {{alpha: 0.001}}\n")
    out = _compare(tmp_path, _wga(race=(0.84, [0.82, 0.86])), _wga(race=(0.90, [0.88, 0.92])), significance="true", text=text)
    assert _regressions(out)["wga[race]"]["result"] == "pass"  # p = 0.0028 >= 0.001


def test_with_significance_but_no_interval_the_result_is_insufficient_data(tmp_path):
    out = _compare(tmp_path, _wga(race=(0.70, None)), _wga(race=(0.80, [0.78, 0.82])), significance="true")
    entry = _regressions(out)["wga[race]"]
    assert entry["result"] == "insufficient_data" and "needs a confidence interval" in entry["reason"]
    assert out["verdict"] == "inconclusive"


def test_lower_is_better_fails_on_a_rise_beyond_max_rise(tmp_path):
    text = POLICY.replace("worst_group_accuracy", "accuracy_difference").replace("higher_is_better", "lower_is_better").replace("max_drop", "max_rise")
    gap = lambda v: results_with({"race": attribute("race", accuracy_difference=node(v))})
    entry = _regressions(_compare(tmp_path, gap(0.08), gap(0.02), text=text))["wga[race]"]
    assert entry["result"] == "fail" and entry["max_rise"] == 0.02 and (entry["op"], entry["threshold"]) == ("<=", 0.04)
    assert _regressions(_compare(tmp_path, gap(0.01), gap(0.02), text=text))["wga[race]"]["result"] == "pass"


def test_regression_scope_selects_intersections(tmp_path):
    text = POLICY.replace("max_drop: 0.02", "max_drop: 0.02\n    scope: intersections")
    res = results_with({"race": attribute("race", worst_group_accuracy=node(0.9)),
                        "gender+race": intersection("gender+race", worst_group_accuracy=node(0.8))})
    assert list(_regressions(_compare(tmp_path, res, res, text=text))) == ["wga[gender+race]"]


def test_a_scope_in_the_baseline_but_missing_now_is_insufficient_data(tmp_path):
    out = _compare(tmp_path, _wga(race=(0.8, None)), _wga(race=(0.8, None), age=(0.9, None)))
    entry = _regressions(out)["wga[age]"]
    assert entry["result"] == "insufficient_data"
    assert entry["reason"] == "in the baseline but not in this audit (scope 'age' is not in the results)"
    assert out["verdict"] == "inconclusive"


def test_a_scope_new_since_the_baseline_is_insufficient_data(tmp_path):
    out = _compare(tmp_path, _wga(race=(0.8, None), age=(0.9, None)), _wga(race=(0.8, None)))
    assert _regressions(out)["wga[age]"]["reason"] == "in this audit but not in the baseline (scope 'age' is not in the results)"


def test_a_metric_missing_from_the_baseline_is_insufficient_data(tmp_path):
    old = results_with({"race": attribute("race", accuracy_difference=node(0.1))})
    entry = _regressions(_compare(tmp_path, _wga(race=(0.8, None)), old))["wga[race]"]
    assert entry["result"] == "insufficient_data" and entry["reason"].startswith("in this audit but not in the baseline")


def test_a_check_that_errored_in_the_baseline_is_insufficient_data(tmp_path):
    old = _wga(race=(0.8, None))
    old["checks"]["group_metrics"]["status"] = "error"
    out = _compare(tmp_path, _wga(race=(0.8, None)), old)
    assert out["clauses"][-1]["reason"] == "check group_metrics ended with an error in the baseline"


def test_the_baseline_is_recorded(tmp_path):
    old = _wga(race=(0.8, None)) | {"created": "2026-01-01T00:00:00Z"}
    info = _compare(tmp_path, _wga(race=(0.8, None)), old)["baseline"]
    assert info == {"path": "old/results.json", "model_sha256": "m", "probe_sha256": "p", "same_probe": True,
                    "created": "2026-01-01T00:00:00Z"}


def test_a_baseline_on_a_different_probe_is_compared_but_inconclusive(tmp_path):
    old = _wga(race=(0.8, None))
    old["probe"]["sha256"] = "another-probe"
    out = _compare(tmp_path, _wga(race=(0.5, None)), old)
    entry = _regressions(out)["wga[race]"]
    assert out["baseline"]["same_probe"] is False
    assert entry["delta"] == pytest.approx(-0.3)  # the numbers are still recorded
    assert entry["result"] == "insufficient_data" and "different probe (on its own numbers: fail)" in entry["reason"]
    assert out["verdict"] == "inconclusive" and "different probe" in out["warnings"][0]


def test_a_baseline_with_a_policy_without_regressions_gives_a_warning(tmp_path):
    text = POLICY.split("regressions:")[0]
    out = _compare(tmp_path, _wga(race=(0.8, None)), _wga(race=(0.8, None)), text=text)
    assert "has no regression clauses" in out["warnings"][0]


# --- baseline file errors: exit 2, naming the file and the fix ---------------------------------------

def _good_results():
    return _wga(race=(0.8, None)) | {"created": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"does not exist; pass the results\.json an audit wrote"),
        ("{not json", r"is not valid JSON"),
        (json.dumps({"schema_version": 99, "checks": {}}), r"has schema_version 99; this auditor reads schema_version 1"),
        (json.dumps({"schema_version": 1, "checks": {}}), r"has no checks; pass the results\.json of an audit that ran its checks"),
    ],
    ids=["missing", "not-json", "wrong-schema", "no-checks"],
)
def test_an_unusable_baseline_file_is_exit_2_naming_the_file(tmp_path, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BadInputError, match=message) as err:
        load_baseline(path)
    assert str(err.value).startswith(f"--baseline {path}") and err.value.exit_code == EXIT_BAD_INPUT


def test_a_baseline_folder_is_read_through_its_results_json(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_good_results()))
    assert load_baseline(tmp_path).path == str(tmp_path / "results.json")
    with pytest.raises(BadInputError, match="is a folder without results.json"):
        load_baseline(tmp_path / "..")


def test_a_bad_baseline_stops_the_audit_before_any_work(tmp_path, capsys):
    code = main(["audit", str(SAMPLE_MODELS["shortcut_cnn"]), "--baseline", str(tmp_path / "nope.json"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--baseline" in capsys.readouterr().err and not (tmp_path / "out").exists()


# --- end to end -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def first_audit(tmp_path_factory):
    """The shortcut model audited once under the release policy (regressions skipped: no baseline)."""
    tmp = tmp_path_factory.mktemp("first")
    policy = tmp / "release.yaml"
    policy.write_text(POLICY.format(significance="true", severity="blocker"))
    code = _audit(tmp / "out", policy)
    return code, tmp / "out" / "results.json", policy


def _audit(out, policy, *extra):
    return main(["audit", str(SAMPLE_MODELS["shortcut_cnn"]), "--probe", SMALL_PROBE, "--out", str(out),
                 "--device", "cpu", "--checks", "group_metrics", "--param", "group_metrics.n_boot=50",
                 "--format", "json", "--policy", str(policy), *extra])


def test_without_baseline_the_regressions_are_skipped(first_audit):
    code, results, _ = first_audit
    pol = json.loads(results.read_text())["policy"]
    assert code == 0 and pol["verdict"] == "pass"
    assert pol["baseline"] is None and pol["regressions_skipped"][0]["id"] == "wga"


def test_an_audit_compared_with_its_own_results_has_no_regression(first_audit, tmp_path, capsys):
    _, results, policy = first_audit
    code = _audit(tmp_path / "again", policy, "--baseline", str(results))
    pol = json.loads((tmp_path / "again" / "results.json").read_text())["policy"]
    assert code == 0, capsys.readouterr().out
    assert pol["baseline"]["same_probe"] is True and pol["regressions_skipped"] == []
    regs = [c for c in pol["clauses"] if c["kind"] == "regression"]
    assert [c["id"] for c in regs] == ["wga[gender]", "wga[age]", "wga[race]"]
    assert all(c["result"] == "pass" and c["delta"] == 0.0 for c in regs)


def test_an_audit_against_a_baseline_with_higher_worst_group_accuracy_exits_1(first_audit, tmp_path, capsys):
    _, results, policy = first_audit
    doctored = json.loads(results.read_text())
    doctored["checks"]["group_metrics"]["metrics"]["race"]["worst_group_accuracy"].update(value=0.95, ci=[0.93, 0.97])
    old = tmp_path / "old" / "results.json"
    old.parent.mkdir()
    old.write_text(json.dumps(doctored))
    capsys.readouterr()
    code = _audit(tmp_path / "new", policy, "--baseline", str(old))
    assert code == 1
    assert "regressed against baseline: wga[race]" in capsys.readouterr().out
    pol = json.loads((tmp_path / "new" / "results.json").read_text())["policy"]
    entry = next(c for c in pol["clauses"] if c["id"] == "wga[race]")
    assert entry["result"] == "fail" and entry["baseline_value"] == 0.95 and entry["p_value"] < 0.05
    assert pol["verdict"] == "fail" and pol["regressed"] is True
