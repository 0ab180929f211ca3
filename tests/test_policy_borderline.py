"""Verdicts safe to sign: a pass whose interval crosses its threshold is flagged ``borderline`` (and a
policy's ``defaults.borderline`` makes it a warning, a fail or nothing), and the shipped policies' absolute
robust-accuracy floor (``default`` warns, ``strict-ci`` blocks). Hand-made results dicts."""
from __future__ import annotations

import pytest

from auditor.errors import PolicyError
from auditor.policy import evaluate_policy, load_policy

FOUR_FIFTHS = """id: four-fifths
metric: checks.group_metrics.metrics.*.equal_opportunity_ratio
op: ">="
threshold: 0.8
severity: blocker"""


def _policy(tmp_path, *clauses: str, head: str = "") -> object:
    body = "".join("  - " + c.strip().replace("\n", "\n    ") + "\n" for c in clauses)
    path = tmp_path / "policy.yaml"
    path.write_text(f"name: t\n{head}clauses:\n{body}")
    return load_policy(path)


def _ratio(value, ci) -> dict:
    node = {"value": value, "ci": ci}
    return {"checks": {"group_metrics": {"status": "ok", "metrics": {
        "overall": {"n": 600}, "race": {"scope": {"kind": "attribute"}, "equal_opportunity_ratio": node}}}}}


def _one(policy, results) -> tuple[dict, dict]:
    out = evaluate_policy(policy, results)
    assert len(out["clauses"]) == 1
    return out["clauses"][0], out


def test_a_pass_whose_interval_crosses_the_threshold_is_borderline(tmp_path):
    entry, out = _one(_policy(tmp_path, FOUR_FIFTHS), _ratio(0.828, [0.690, 0.990]))
    assert entry["result"] == "pass" and entry["borderline"] is True
    assert entry["reason"] == ("0.828 clears >= 0.8 but its interval [0.69, 0.99] crosses the threshold "
                               "(borderline: a larger probe could show it fails)")
    assert out["verdict"] == "pass"  # warn, the default: flagged, not a fail
    assert out["borderline_passes"] == ["four-fifths[race]"] and out["borderline"] == []
    assert out["counts"]["blocker"]["pass"] == 1 and out["counts"]["blocker"]["borderline_pass"] == 1
    assert out["counts"]["warning"] == {"pass": 0, "fail": 0, "borderline": 0, "insufficient_data": 0,
                                        "not_run": 0, "borderline_pass": 0}


def test_a_pass_backed_by_its_whole_interval_is_not_borderline(tmp_path):
    for ci in ([0.81, 0.99], [0.8, 0.9], None):  # an interval that touches the threshold still clears it
        entry, out = _one(_policy(tmp_path, FOUR_FIFTHS), _ratio(0.85, ci))
        assert entry["result"] == "pass" and entry["borderline"] is False and entry["reason"] is None
        assert out["borderline_passes"] == [] and out["counts"]["blocker"]["borderline_pass"] == 0


def test_borderline_fail_fails_the_clause_and_the_verdict(tmp_path):
    policy = _policy(tmp_path, FOUR_FIFTHS, head="defaults:\n  borderline: fail\n")
    entry, out = _one(policy, _ratio(0.828, [0.690, 0.990]))
    assert entry["result"] == "fail" and entry["borderline"] is True
    assert entry["reason"].endswith("; the policy sets borderline: fail")
    assert out["verdict"] == "fail" and out["counts"]["blocker"]["fail"] == 1
    # a miss whose interval reaches the threshold, undecided under warn, fails too
    entry, out = _one(policy, _ratio(0.75, [0.6, 0.9]))
    assert entry["result"] == "fail" and out["verdict"] == "fail"
    # a pass its whole interval backs is untouched
    entry, out = _one(policy, _ratio(0.9, [0.85, 0.95]))
    assert entry["result"] == "pass" and out["verdict"] == "pass"


def test_borderline_ignore_leaves_a_plain_pass(tmp_path):
    policy = _policy(tmp_path, FOUR_FIFTHS, head="defaults:\n  borderline: ignore\n")
    entry, out = _one(policy, _ratio(0.828, [0.690, 0.990]))
    assert entry["result"] == "pass" and entry["borderline"] is False and entry["reason"] is None
    assert out["borderline_passes"] == [] and out["verdict"] == "pass"
    entry, out = _one(policy, _ratio(0.75, [0.6, 0.9]))  # an undecided miss stays undecided
    assert entry["result"] == "borderline" and out["verdict"] == "inconclusive"


def test_require_interval_has_no_borderline_pass(tmp_path):
    policy = _policy(tmp_path, FOUR_FIFTHS + "\nrequire: interval")
    entry, out = _one(policy, _ratio(0.828, [0.690, 0.990]))
    assert entry["result"] == "borderline" and entry["borderline"] is True  # undecided, not a pass
    assert out["borderline_passes"] == [] and out["verdict"] == "inconclusive"


@pytest.mark.parametrize("value", ["fial", True, 3])
def test_borderline_default_is_validated(tmp_path, value):
    with pytest.raises(PolicyError, match=r"defaults\.borderline must be .*warn.*fail.*ignore"):
        _policy(tmp_path, FOUR_FIFTHS, head=f"defaults:\n  borderline: {value}\n")


def test_every_threshold_entry_records_borderline(tmp_path):
    policy = _policy(tmp_path, FOUR_FIFTHS, """id: cue
metric: checks.spurious.metrics.overall.n_off_subject_findings
op: "<="
threshold: 0""")
    out = evaluate_policy(policy, _ratio(0.9, [0.85, 0.95]))
    assert [(c["id"], c["result"], c["borderline"]) for c in out["clauses"]] == [
        ("four-fifths[race]", "pass", False), ("cue", "not_run", False)]


# --- the robust-accuracy floor ------------------------------------------------------------------

def _attacked(robust_accuracy, ci=None) -> dict:
    """results.json of a model that is fair and accurate but, under attack, as robust as ``robust_accuracy``."""
    gm = {"overall": {"accuracy": {"value": 0.99, "ci": [0.98, 1.0]}}}
    for attr in ("race", "gender"):
        gm[attr] = {"scope": {"kind": "attribute"}, **{k: {"value": v, "ci": [v, v]} for k, v in (
            ("equal_opportunity_ratio", 1.0), ("selection_rate_ratio", 1.0), ("accuracy_difference", 0.0),
            ("equalized_odds_difference", 0.0), ("worst_group_accuracy", 0.99))}}
    attacks = {"overall": {"robust_accuracy": {"value": robust_accuracy, "ci": ci}, "reliable": {"value": 1, "ci": None}},
               "race": {"scope": {"kind": "attribute"}, "robust_accuracy_difference": {"value": 0.0, "ci": [0.0, 0.0]}}}
    spurious = {"overall": {"n_off_subject_findings": {"value": 0, "ci": None}, "n_findings": {"value": 0, "ci": None}}}
    return {"checks": {"group_metrics": {"status": "ok", "metrics": gm}, "attacks": {"status": "ok", "metrics": attacks},
                       "spurious": {"status": "ok", "metrics": spurious}}}


def _floor(out: dict) -> dict:
    return next(c for c in out["clauses"] if c["id"] == "robust-accuracy-floor")


def test_default_policy_warns_on_zero_robust_accuracy():
    out = evaluate_policy(load_policy("default"), _attacked(0.0, [0.0, 0.0]))
    floor = _floor(out)
    assert (floor["result"], floor["severity"]) == ("fail", "warning")
    assert floor["metric"] == "checks.attacks.metrics.overall.robust_accuracy" and floor["threshold"] == 0.2
    assert out["verdict"] == "pass"  # a warning: reported, the gate still passes (exit 0)
    assert out["counts"]["warning"]["fail"] >= 1


def test_strict_ci_blocks_on_zero_robust_accuracy():
    out = evaluate_policy(load_policy("strict-ci"), _attacked(0.0, [0.0, 0.0]))
    floor = _floor(out)
    assert (floor["result"], floor["severity"], floor["require"]) == ("fail", "blocker", "interval")
    assert out["verdict"] == "fail"


def test_a_robust_model_clears_the_floor():
    for name in ("default", "strict-ci"):
        assert _floor(evaluate_policy(load_policy(name), _attacked(0.55, [0.45, 0.65])))["result"] == "pass"


def test_the_eu_example_maps_the_floor_to_article_15():
    floor = next(c for c in load_policy("eu-ai-act-high-risk").clauses if c.id == "robust-accuracy-floor")
    assert floor.severity == "warning" and any(m.startswith("EU AI Act Art. 15") for m in floor.maps_to)
    assert "robustness and cybersecurity" in floor.maps_to[0]


def test_the_floor_is_not_run_without_the_attacks_check():
    results = _attacked(0.0)
    del results["checks"]["attacks"]
    out = evaluate_policy(load_policy("default"), results)
    floor = _floor(out)
    assert floor["result"] == "not_run" and floor["reason"] == "check attacks was not run (not in --checks)"
    assert out["verdict"] == "pass"  # a warning of a check left out of --checks does not count
    out = evaluate_policy(load_policy("strict-ci"), results)
    assert _floor(out)["result"] == "not_run" and out["missing_required"] == ["attacks"]
    assert out["verdict"] == "inconclusive"  # strict-ci requires attacks
