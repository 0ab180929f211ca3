"""Policies: parsing (each error, exit 2), shipped policies, and threshold clauses evaluated on
hand-made results (pass, fail, inconclusive; require point vs interval; scope expansion)."""
from __future__ import annotations

import json
import re

import pytest

from auditor.cli import main
from auditor.errors import EXIT_BAD_INPUT, PolicyError
from auditor.policy import evaluate_policy, load_policy, shipped_policies
from tests.conftest import SAMPLE_MODELS, SMALL_PROBE

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


def _write(tmp_path, text, name="policy.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _policy(tmp_path, clause: str, defaults: str = "") -> object:
    """A policy of one clause given as YAML lines (indented under '- ')."""
    return load_policy(_write(tmp_path, f"name: t\n{defaults}clauses:\n  - " + clause.strip().replace("\n", "\n    ") + "\n"))


def node(value, ci=None, **extra):
    return {"value": value, "ci": ci, **extra}


def attribute(name, **leaves):
    return {"scope": {"kind": "attribute", "attributes": [name]}, **leaves}


def intersection(name, **leaves):
    return {"scope": {"kind": "intersection", "attributes": name.split("+")}, **leaves}


def results_with(scopes=None, status="ok", overall_acc=0.95):
    """results.json as group_metrics writes it (the issue-3 contract), with the given scopes."""
    metrics = {"overall": {"n": 1200, "accuracy": node(overall_acc, [overall_acc - 0.02, overall_acc + 0.02])}}
    metrics.update(scopes or {})
    return {"schema_version": 1, "model": {"sha256": "m"}, "probe": {"sha256": "p"},
            "checks": {"group_metrics": {"status": status, "params": {"confidence": 0.95}, "metrics": metrics}}}


def _results(ratio_race, ratio_gender=0.9, acc=0.95, status="ok"):
    return results_with({"race": attribute("race", selection_rate_ratio=node(ratio_race)),
                         "gender": attribute("gender", selection_rate_ratio=node(ratio_gender))}, status, acc)


def _by_id(out):
    return {c["id"]: c for c in out["clauses"]}


# --- shipped policies and --policy NAME -------------------------------------------------------------

def test_default_policy_loads():
    pol = load_policy()
    assert pol.name == "default"
    assert [c.id for c in pol.clauses][:4] == ["four-fifths", "accuracy-gap", "equalized-odds", "overall-accuracy"]


def test_default_policy_covers_intersections_only_with_warnings():
    pol = load_policy()
    inter = [c for c in pol.clauses if c.scope == "intersections"]
    assert inter and all(c.severity == "warning" for c in inter)


@pytest.mark.parametrize("name", ["default", "strict-ci", "eu-ai-act-high-risk"])
def test_each_shipped_policy_loads_by_name(name):
    assert name in shipped_policies()
    assert load_policy(name).name == name


def test_strict_ci_requires_intervals_and_has_regression_clauses():
    pol = load_policy("strict-ci")
    assert pol.defaults["require"] == "interval"
    blockers = [c for c in pol.clauses if c.severity == "blocker"]
    # every rate or disparity blocker is judged on its whole interval; a count of confirmed cues has none
    assert all(c.require == "interval" for c in blockers if c.metric.startswith("checks.group_metrics."))
    assert all(c.require == "point" for c in blockers if c.metric.endswith("n_off_subject_findings"))
    assert any(r.severity == "blocker" for r in pol.regressions)


def test_eu_ai_act_policy_says_it_is_not_legal_advice():
    pol = load_policy("eu-ai-act-high-risk")
    assert "NOT LEGAL ADVICE" in pol.description
    cited = " ".join(m for c in pol.clauses for m in c.maps_to)
    for article in ("Art. 10(2)(f)", "Art. 10(3)", "Art. 15(1)", "Art. 15(3)", "Art. 15(4)"):
        assert article in cited


def test_unknown_policy_name_lists_the_shipped_ones():
    with pytest.raises(PolicyError, match="unknown policy 'strict_ci': did you mean 'strict-ci'.*shipped policies: default, eu-ai-act-high-risk, strict-ci"):
        load_policy("strict_ci")


def test_missing_policy_file_says_so(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.yaml")


def test_policy_that_is_not_yaml_says_so(tmp_path):
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(_write(tmp_path, "clauses: [unclosed"))


# --- every parse error: exit 2, one line naming the file, the key and the fix -------------------------

CLAUSE = """
  - id: gap
    metric: checks.group_metrics.metrics.*.accuracy_difference
    op: "<="
    threshold: 0.1
"""
GAP_CLAUSE = 'id: gap\nmetric: checks.group_metrics.metrics.*.accuracy_difference\nop: "<="\nthreshold: 0.1'
REGRESSION = """
regressions:
  - id: wga
    metric: checks.group_metrics.metrics.*.worst_group_accuracy
    direction: higher_is_better
    max_drop: 0.02
"""
BASE = "name: t\nclauses:" + CLAUSE + REGRESSION

PARSE_ERRORS = [
    # (name, (old, new) applied to BASE, message regex)
    ("bad operator", ('op: "<="', 'op: "=<"'), r"operator '=<'; use one of <, <=, >, >=, ==, !="),
    ("missing threshold", ("    threshold: 0.1\n", ""), r"missing 'threshold'"),
    ("threshold not a number", ("threshold: 0.1", "threshold: high"), r"threshold 'high'; it must be a number"),
    ("unknown metric leaf", ("accuracy_difference", "acuracy_difference"),
     r"names no metric of group_metrics; valid paths near it: checks\.group_metrics\.metrics\.\*\.accuracy_difference"),
    ("disparity asked of overall", ("metrics.*.accuracy_difference", "metrics.overall.accuracy_difference"),
     r"has no overall value \(accuracy_difference compares groups; use \* or a scope name\)"),
    ("unknown check", ("checks.group_metrics.metrics.*.accuracy", "checks.group_metrix.metrics.*.accuracy"), r"no registered check 'group_metrix'"),
    ("path not of the form", ("checks.group_metrics.metrics.*.accuracy_difference", "group_metrics.accuracy_difference"),
     r"is not of the form checks\.CHECK\.metrics\.SCOPE\.METRIC"),
    ("star inside a name", ("metrics.*.accuracy_difference", "metrics.ra*.accuracy_difference"), r"may use \* only as the whole SCOPE"),
    ("bad severity", ("threshold: 0.1\n", "threshold: 0.1\n    severity: fatal\n"), r"severity 'fatal'; use blocker or warning"),
    ("bad scope word", ("threshold: 0.1\n", "threshold: 0.1\n    scope: intersection\n"),
     r"scope 'intersection'; did you mean 'intersections'\? use attributes, intersections, all, or a list"),
    ("scope name not in a list", ("threshold: 0.1\n", "threshold: 0.1\n    scope: race\n"), r"scope 'race'; a single scope name goes in a list: \[race\]"),
    ("empty scope list", ("threshold: 0.1\n", "threshold: 0.1\n    scope: []\n"), r"scope \[\]; use attributes"),
    ("scope lists overall", ("threshold: 0.1\n", "threshold: 0.1\n    scope: [race, overall]\n"), r"lists scope 'overall'"),
    ("scope without *", ("metrics.*.accuracy_difference", "metrics.race.accuracy_difference\n    scope: all"),
     r"sets 'scope' but its metric names one scope \('race'\)"),
    ("bad require", ("threshold: 0.1\n", "threshold: 0.1\n    require: always\n"), r"require 'always'; use point .* or interval"),
    ("unknown clause key", ("threshold: 0.1", "treshold: 0.1"), r"unknown key 'treshold' \(did you mean 'threshold'\?\); valid keys: id, description, metric, scope, op, threshold, require"),
    ("unknown top-level key", ("name: t\n", "name: t\nclause: []\n"), r"unknown key 'clause' \(did you mean 'clauses'\?\)"),
    ("clauses not a list", ("clauses:" + CLAUSE, "clauses: gap\n"), r"'clauses' must be a list"),
    ("no clauses at all", ("clauses:" + CLAUSE + REGRESSION, "clauses: []\n"), r"has no clauses; add a 'clauses' list"),
    ("duplicate ids", ("id: wga", "id: gap"), r"two clauses with id 'gap'; ids must be unique"),
    ("unknown defaults key", ("name: t\n", "name: t\ndefaults: {min_group: 30}\n"), r"defaults has unknown key 'min_group' \(did you mean 'min_group_size'\?\)"),
    ("defaults not a mapping", ("name: t\n", "name: t\ndefaults: 30\n"), r"'defaults' must be a mapping"),
    ("min_group_size 0", ("name: t\n", "name: t\ndefaults: {min_group_size: 0}\n"), r"defaults\.min_group_size must be an int >= 1; got 0"),
    ("confidence out of range", ("name: t\n", "name: t\ndefaults: {confidence: 95}\n"), r"defaults\.confidence must be a float in \[0\.5, 0\.999\]; got 95"),
    ("n_boot not an integer", ("name: t\n", "name: t\ndefaults: {n_boot: 2.5}\n"), r"defaults\.n_boot must be an int in \[0, 100000\]; got 2\.5"),
    ("unknown correction", ("name: t\n", "name: t\ndefaults: {correction: bonferroni}\n"), r"defaults\.correction must be one of 'holm', 'bh'; got 'bonferroni'"),
    ("alpha zero", ("name: t\n", "name: t\ndefaults: {alpha: 0}\n"), r"defaults\.alpha must be a float in \[1e-06, 0\.5\]; got 0"),
    ("alpha below what group_metrics takes", ("name: t\n", "name: t\ndefaults: {alpha: 1.0e-7}\n"),
     r"defaults\.alpha must be a float in \[1e-06, 0\.5\]; got 1e-07"),
    ("default require", ("name: t\n", "name: t\ndefaults: {require: ci}\n"), r"defaults\.require must be one of 'point', 'interval'; got 'ci'"),
    ("regression bad direction", ("direction: higher_is_better", "direction: up"), r"direction 'up'; use higher_is_better \(with max_drop\) or lower_is_better"),
    ("regression wrong allowance", ("max_drop: 0.02", "max_rise: 0.02"), r"sets max_rise but its direction is higher_is_better; use max_drop"),
    ("regression missing allowance", ("    max_drop: 0.02\n", ""), r"missing 'max_drop'"),
    ("regression negative allowance", ("max_drop: 0.02", "max_drop: -0.02"), r"max_drop -0\.02; it must be >= 0"),
    ("regression significance", ("max_drop: 0.02", "max_drop: 0.02\n    significance: yes please"), r"significance 'yes please'; use true or false"),
    ("regression with op", ("max_drop: 0.02", "max_drop: 0.02\n    op: '<='"), r"regression 'wga' has unknown key 'op'"),
    ("regression unknown metric", ("worst_group_accuracy", "worst_group_acc"), r"valid paths near it: checks\.group_metrics\.metrics\.\*\.worst_group_accuracy"),
]


def test_the_base_policy_of_the_error_table_is_valid(tmp_path):
    pol = load_policy(_write(tmp_path, BASE))
    assert [c.id for c in pol.clauses] == ["gap"] and [r.id for r in pol.regressions] == ["wga"]


@pytest.mark.parametrize("name, change, message", PARSE_ERRORS, ids=[e[0] for e in PARSE_ERRORS])
def test_invalid_policy_is_rejected_with_a_pointed_one_line_message(tmp_path, name, change, message):
    assert change[0] in BASE, name
    path = _write(tmp_path, BASE.replace(*change, 1))
    with pytest.raises(PolicyError, match=message) as err:
        load_policy(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == EXIT_BAD_INPUT


def test_invalid_policy_exits_2_from_the_cli(tmp_path, capsys):
    path = _write(tmp_path, BASE.replace('op: "<="', 'op: "=<"'))
    code = main(["audit", str(SAMPLE_MODELS["clean_cnn"]), "--policy", str(path), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "operator '=<'" in capsys.readouterr().err


# --- evaluation: pass, fail, inconclusive ----------------------------------------------------------

def test_wildcard_clause_expands_per_attribute(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), _results(0.85))
    assert [c["id"] for c in out["clauses"]] == ["dp[race]", "dp[gender]", "acc"]
    assert [c["scope"] for c in out["clauses"]] == ["race", "gender", "overall"]
    assert out["verdict"] == "pass"


def test_every_entry_says_its_kind_require_and_scope(tmp_path):
    entry = evaluate_policy(load_policy(_write(tmp_path, GOOD)), _results(0.85))["clauses"][0]
    assert entry["kind"] == "threshold" and entry["require"] == "point" and entry["scope"] == "race"
    for key in ("id", "description", "metric", "op", "threshold", "severity", "maps_to", "value", "ci", "result", "reason"):
        assert key in entry


def test_failing_blocker_fails_the_policy(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), _results(0.5))
    assert out["verdict"] == "fail"
    assert _by_id(out)["dp[race]"]["result"] == "fail"


def test_failing_warning_does_not_fail_the_policy(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), _results(0.85, acc=0.5))
    assert out["verdict"] == "pass"
    assert out["clauses"][-1]["result"] == "fail"


def test_missing_value_makes_the_verdict_inconclusive(tmp_path):
    res = _results(0.85)
    res["checks"]["group_metrics"]["metrics"]["race"]["selection_rate_ratio"] = {
        "value": None, "ci": None, "groups": [], "reason": "fewer than two groups with at least 30 samples"}
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), res)
    assert out["verdict"] == "inconclusive"
    assert _by_id(out)["dp[race]"]["result"] == "insufficient_data"
    assert _by_id(out)["dp[race]"]["reason"] == "fewer than two groups with at least 30 samples"


def test_metric_nodes_are_read_as_metric_entries(tmp_path):
    """Read by results.MetricEntry: a bare number is a value, an interval is read low to high, and a value
    that is not a finite number is no value (insufficient_data, never a fail on NaN)."""
    pol = load_policy(_write(tmp_path, GOOD))
    res = _results(0.85)
    race = res["checks"]["group_metrics"]["metrics"]["race"]
    race["selection_rate_ratio"] = node(0.85, [0.9, 0.82])
    assert _by_id(evaluate_policy(pol, res))["dp[race]"]["ci"] == [0.82, 0.9]
    race["selection_rate_ratio"] = 0.7
    assert _by_id(evaluate_policy(pol, res))["dp[race]"]["result"] == "fail"
    race["selection_rate_ratio"] = node(float("nan"), [0.1, 0.2])
    entry = _by_id(evaluate_policy(pol, res))["dp[race]"]
    assert (entry["result"], entry["value"], entry["ci"], entry["reason"]) == (
        "insufficient_data", None, None, "no value (not enough data)")

def test_a_pass_that_left_small_groups_out_stays_a_pass_with_a_note_and_a_fail_stays_a_fail(tmp_path):
    res = _results(0.85)
    race = res["checks"]["group_metrics"]["metrics"]["race"]
    race["selection_rate_ratio"]["excluded_groups"] = ["pacific islander"]
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), res)
    assert out["verdict"] == "pass"
    assert _by_id(out)["dp[race]"]["result"] == "pass"
    assert "pacific islander" in _by_id(out)["dp[race]"]["note"]
    race["selection_rate_ratio"]["value"] = 0.5
    assert evaluate_policy(load_policy(_write(tmp_path, GOOD)), res)["verdict"] == "fail"


def test_errored_check_makes_the_verdict_inconclusive_not_pass(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), _results(0.9, status="error"))
    assert out["verdict"] == "inconclusive"
    assert out["clauses"][0]["reason"] == "check group_metrics ended with an error"


def test_check_that_was_not_run_gives_not_run_clauses_and_no_pass(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, GOOD)), {"checks": {}})
    assert out["verdict"] == "inconclusive"  # no blocker was measured
    assert out["clauses"][0]["result"] == "not_run"
    assert out["clauses"][0]["reason"] == "check group_metrics was not run (not in --checks)"


def test_significance_fields_of_the_metric_are_copied_into_the_clause(tmp_path):
    pol = _policy(tmp_path, GAP_CLAUSE)
    res = results_with({"race": attribute("race", accuracy_difference=node(0.2, [0.1, 0.3], p_value=0.001, p_adjusted=0.004, significant=True))})
    entry = evaluate_policy(pol, res)["clauses"][0]
    assert (entry["p_adjusted"], entry["significant"]) == (0.004, True)
    assert "p_value" not in entry  # p_value names the regression test in regression entries


def test_a_permutation_p_value_at_its_floor_reaches_the_clause_and_prints_as_a_bound(tmp_path):
    from auditor.report._findings import clause_sentence

    pol = _policy(tmp_path, GAP_CLAUSE)
    gap = node(0.2, [0.1, 0.3], p_value=1 / 10001, p_adjusted=4 / 10001, significant=True, p_floor=1 / 10001)
    entry = evaluate_policy(pol, results_with({"race": attribute("race", accuracy_difference=gap)}))["clauses"][0]
    assert entry["p_at_floor"] is True
    assert "Adjusted p < 0.0004 (significant)" in clause_sentence(entry)


# --- require: point vs interval ---------------------------------------------------------------------

GAP = """id: gap
metric: checks.group_metrics.metrics.*.accuracy_difference
op: "<="
threshold: 0.05
require: {require}"""


@pytest.mark.parametrize("require, expected", [("point", "pass"), ("interval", "borderline")])
def test_the_same_values_pass_on_the_point_and_are_borderline_on_the_interval(tmp_path, require, expected):
    res = results_with({"race": attribute("race", accuracy_difference=node(0.04, [0.01, 0.08]))})
    entry = evaluate_policy(_policy(tmp_path, GAP.format(require=require)), res)["clauses"][0]
    assert entry["result"] == expected and entry["require"] == require


@pytest.mark.parametrize(
    "op, threshold, value, ci, expected",
    [
        ("<=", 0.05, 0.02, [0.01, 0.05], "pass"),   # upper end on the threshold: clears <=
        ("<", 0.05, 0.02, [0.01, 0.05], "borderline"),    # ... but not <
        (">=", 0.8, 0.85, [0.8, 0.9], "pass"),      # lower end on the threshold: clears >=
        (">", 0.8, 0.85, [0.8, 0.9], "borderline"),
        (">=", 0.8, 0.85, [0.75, 0.9], "borderline"),     # lower end under the threshold
        ("!=", 0.5, 0.65, [0.6, 0.7], "pass"),      # interval excludes the threshold
        ("!=", 0.5, 0.65, [0.4, 0.7], "borderline"),
        ("<=", 0.05, 0.06, [0.01, 0.04], "borderline"),   # the value must clear it too, even outside its interval
        ("<=", 0.05, 0.08, [0.06, 0.1], "fail"),    # the whole interval misses: a fail
        ("<", 0.05, 0.08, [0.05, 0.1], "fail"),     # lower end on the threshold: misses <
        (">=", 0.8, 0.7, [0.6, 0.79], "fail"),
        ("!=", 0.5, 0.5, [0.5, 0.5], "fail"),
    ],
)
def test_require_interval_passes_on_the_whole_interval_and_fails_only_when_all_of_it_misses(tmp_path, op, threshold, value, ci, expected):
    clause = f'id: c\nmetric: checks.group_metrics.metrics.*.accuracy_difference\nop: "{op}"\nthreshold: {threshold}\nrequire: interval'
    res = results_with({"race": attribute("race", accuracy_difference=node(value, ci))})
    assert evaluate_policy(_policy(tmp_path, clause), res)["clauses"][0]["result"] == expected


def test_require_interval_without_an_interval_is_insufficient_data(tmp_path):
    res = results_with({"race": attribute("race", accuracy_difference=node(0.01, None))})
    out = evaluate_policy(_policy(tmp_path, GAP.format(require="interval")), res)
    assert out["clauses"][0]["result"] == "insufficient_data"
    assert out["clauses"][0]["reason"].startswith("no interval")
    assert out["verdict"] == "inconclusive"


def test_policy_default_require_applies_unless_the_clause_overrides_it(tmp_path):
    text = ("name: t\ndefaults: {require: interval}\nclauses:\n" + CLAUSE
            + CLAUSE.replace("id: gap", "id: gap-point").replace("threshold: 0.1\n", "threshold: 0.1\n    require: point\n"))
    pol = load_policy(_write(tmp_path, text))
    assert [c.require for c in pol.clauses] == ["interval", "point"]
    res = results_with({"race": attribute("race", accuracy_difference=node(0.05, [0.02, 0.12]))})
    assert [c["result"] for c in evaluate_policy(pol, res)["clauses"]] == ["borderline", "pass"]


# --- scope expansion --------------------------------------------------------------------------------

def _scoped_results():
    """gender and race (attributes), age (an older results.json: no 'scope' key), gender+race (intersection)."""
    gap = lambda v: node(v, [max(v - 0.01, 0.0), v + 0.01])
    return results_with({
        "gender": attribute("gender", accuracy_difference=gap(0.01)),
        "age": {"accuracy_difference": gap(0.02)},
        "race": attribute("race", accuracy_difference=gap(0.03)),
        "gender+race": intersection("gender+race", accuracy_difference=gap(0.2)),
    })


@pytest.mark.parametrize(
    "scope, ids",
    [
        ("", ["gap[gender]", "gap[age]", "gap[race]"]),                       # default: attributes
        ("scope: attributes", ["gap[gender]", "gap[age]", "gap[race]"]),
        ("scope: intersections", ["gap[gender+race]"]),
        ("scope: all", ["gap[gender]", "gap[age]", "gap[race]", "gap[gender+race]"]),
        ("scope: [gender+race, race]", ["gap[gender+race]", "gap[race]"]),   # a list keeps its order
    ],
)
def test_scope_selects_the_scopes_a_wildcard_stands_for(tmp_path, scope, ids):
    pol = _policy(tmp_path, GAP_CLAUSE + ("\n" + scope if scope else ""))
    out = evaluate_policy(pol, _scoped_results())
    assert [c["id"] for c in out["clauses"]] == ids
    assert "overall" not in [c["scope"] for c in out["clauses"]]


def test_intersection_gap_fails_only_the_intersection_entry(tmp_path):
    pol = _policy(tmp_path, GAP_CLAUSE + "\nscope: all")
    out = _by_id(evaluate_policy(pol, _scoped_results()))
    assert out["gap[gender+race]"]["result"] == "fail"
    assert {out[i]["result"] for i in ("gap[gender]", "gap[age]", "gap[race]")} == {"pass"}


def test_wildcard_matching_no_scope_gives_one_insufficient_data_entry(tmp_path):
    pol = _policy(tmp_path, GAP_CLAUSE + "\nscope: intersections")
    res = results_with({"race": attribute("race", accuracy_difference=node(0.01))})
    out = evaluate_policy(pol, res)
    assert len(out["clauses"]) == 1
    entry = out["clauses"][0]
    assert (entry["id"], entry["result"], entry["scope"]) == ("gap", "insufficient_data", None)
    assert entry["reason"] == "no intersection scope in the results (scopes reported: race (attribute))"
    assert out["verdict"] == "inconclusive"


def test_listed_scope_that_was_not_reported_is_insufficient_data(tmp_path):
    pol = _policy(tmp_path, GAP_CLAUSE + "\nscope: [race, skin_tone]")
    out = _by_id(evaluate_policy(pol, _scoped_results()))
    assert out["gap[race]"]["result"] == "pass"
    assert out["gap[skin_tone]"]["result"] == "insufficient_data"
    assert out["gap[skin_tone]"]["reason"] == "scope 'skin_tone' is not in the results"


def test_without_baseline_regression_clauses_are_listed_as_skipped_and_do_not_count(tmp_path):
    out = evaluate_policy(load_policy(_write(tmp_path, BASE)), results_with({"race": attribute("race", accuracy_difference=node(0.01))}))
    assert out["verdict"] == "pass" and out["regressed"] is False and out["baseline"] is None
    assert [s["id"] for s in out["regressions_skipped"]] == ["wga"]
    assert "no --baseline" in out["regressions_skipped"][0]["reason"]
    assert all(c["kind"] == "threshold" for c in out["clauses"])


# --- end to end: policy defaults reach group_metrics; --policy NAME ----------------------------------

def test_policy_defaults_become_group_metrics_parameters_and_param_still_wins(tmp_path):
    text = BASE.replace("name: t\n", "name: t\ndefaults: {min_group_size: 20, confidence: 0.9, n_boot: 30, correction: bh, alpha: 0.1}\n")
    out = tmp_path / "out"
    code = main(["audit", str(SAMPLE_MODELS["clean_cnn"]), "--probe", SMALL_PROBE, "--out", str(out), "--device", "cpu",
                 "--checks", "group_metrics", "--format", "json", "--policy", str(_write(tmp_path, text)),
                 "--param", "group_metrics.n_boot=20", "--allow-inconclusive"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    params = results["checks"]["group_metrics"]["params"]
    assert {k: params[k] for k in ("min_group_size", "confidence", "n_boot", "correction", "alpha")} == {
        "min_group_size": 20, "confidence": 0.9, "n_boot": 20, "correction": "bh", "alpha": 0.1}
    assert results["policy"]["regressions_skipped"][0]["id"] == "wga"


def test_unknown_policy_name_exits_2_naming_the_shipped_ones(tmp_path, capsys):
    code = main(["audit", str(SAMPLE_MODELS["clean_cnn"]), "--policy", "strictest", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(r"unknown policy 'strictest'.*shipped policies: default, eu-ai-act-high-risk, strict-ci", err)


def test_an_overall_only_metric_under_a_scope_is_refused_naming_the_overall_path(tmp_path):
    text = "name: t\nclauses:\n  - id: r\n    metric: checks.attacks.metrics.*.reliable\n    op: '>='\n    threshold: 1\n"
    with pytest.raises(PolicyError, match=r"write checks\.attacks\.metrics\.overall\.reliable"):
        load_policy(_write(tmp_path, text))
