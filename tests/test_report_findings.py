"""The executive-summary findings shared by the HTML, PDF, Markdown and JUnit reports."""
from __future__ import annotations

from auditor.report._findings import (
    clause_requirement,
    clause_sentence,
    inconclusive_sentence,
    summary,
    verdict_sentence,
)
from auditor.report.sections.group_metrics import significant_gaps
from tests.report_fixtures import results_v2


def _clause(results, cid):
    return next(c for c in results["policy"]["clauses"] if c["id"] == cid)


def test_verdict_sentence_of_each_verdict():
    r = results_v2()
    assert verdict_sentence(r).startswith("FAIL: the model does not meet 2 blocking requirements")
    r["policy"]["verdict"] = "pass"
    assert verdict_sentence(r) == "PASS: the model meets every blocking requirement of policy “default” (version 2)."
    r["policy"]["verdict"] = "inconclusive"
    assert "too little data to decide 1 blocking requirement" in verdict_sentence(r)
    del r["policy"]
    assert verdict_sentence(r) == "No policy was evaluated, so this audit has no verdict."


def test_requirement_of_threshold_interval_and_regression_clauses():
    r = results_v2()
    assert clause_requirement(_clause(r, "accuracy-gap[race]")) == "≤ 0.1"
    assert clause_requirement(_clause(r, "accuracy-gap[gender]")) == "≤ 0.1 (whole interval)"
    assert clause_requirement(_clause(r, "no-accuracy-drop[race]")) == "drop ≤ 0.02 from baseline, if significant"


def test_failed_regression_sentence_gives_baseline_and_change():
    text = clause_sentence(_clause(results_v2(), "no-accuracy-drop[race]"))
    assert "Measured 0.59 [0.54, 0.64], baseline 0.72 (change -0.13)" in text


def test_significant_gaps_are_largest_first_at_most_two_per_scope_attributes_first():
    gaps, more = significant_gaps(results_v2(), limit=5)
    assert [(g["scope"], g["rate"]) for g in gaps[:2]] == [("race", "tpr"), ("race", "accuracy")]
    assert all(g["entry"]["significant"] is True for g in gaps)
    scopes = [g["scope"] for g in gaps]
    assert all(scopes.count(s) <= 2 for s in scopes)
    assert scopes.index(next(s for s in scopes if "+" in s)) > scopes.index("race")
    assert more > 0


def test_gaps_that_are_not_significant_are_not_findings():
    r = results_v2()
    for table in r["checks"]["group_metrics"]["metrics"].values():
        for m in table.values():
            if isinstance(m, dict) and "significant" in m:
                m["significant"] = False
    assert significant_gaps(r) == ([], 0)
    assert summary(r)["findings"][0]["empty"] == "No gap between groups is statistically significant."


def test_inconclusive_clause_names_the_smallest_groups_and_the_images_they_need():
    r = results_v2()
    text = inconclusive_sentence(r, _clause(r, "tpr-gap[gender+age+race]"))
    assert text.startswith("tpr-gap[gender+age+race] (blocker) could not be decided: fewer than two groups")
    assert ("To decide it: about 27 more images of female & 60+ & asian (n=3), 27 of female & 60+ & black (n=3) and "
            "27 of female & 60+ & indian (n=3) to reach the minimum of 30, and more for 5 other small groups of "
            "gender × age × race.") in text


def test_inconclusive_clause_adds_the_power_based_need_when_it_is_larger():
    r = results_v2()
    for g in r["checks"]["group_metrics"]["by_group"]["gender+age+race"].values():
        if g["insufficient_data"]:
            g["n_needed"] = 400
    text = inconclusive_sentence(r, _clause(r, "tpr-gap[gender+age+race]"))
    assert text.endswith("telling their accuracy from the rest's at 80% power would take up to about 400 more each.")


def test_inconclusive_clause_without_small_groups_uses_the_power_estimate():
    r = results_v2()
    race = r["checks"]["group_metrics"]["metrics"]["race"]
    race["precision_difference"]["power"] = {"achieved": 0.4, "n_per_group_needed": 500, "n_more": 400}
    clause = {"id": "p", "metric": "checks.group_metrics.metrics.race.precision_difference", "scope": "race",
              "result": "insufficient_data", "severity": "blocker", "reason": "interval straddles the threshold"}
    text = inconclusive_sentence(r, clause)
    assert text.endswith("about 400 more images in all, at least 500 in each of groups black and white.")


def test_summary_lists_errored_checks_thin_groups_and_policy_warnings():
    notes = summary(results_v2())["notes"]
    assert "Too few images for reliable metrics, so left out of the disparities: age 60+ (n=24)." in notes
    assert "The explanations check did not complete: ValueError: saliency needs gradients" in notes
    assert "Policy warning: baseline was audited with auditor 0.0.9" in notes
