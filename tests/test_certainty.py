"""Certainty stated honestly (issue 17): rate intervals that do not collapse at 0 or 1, p-values at the
permutation floor printed as "<", one significance rule in every check, group-balanced samples for
the costly checks, and an "undecided" text that names the real cause and remedy."""
from __future__ import annotations

import numpy as np
import pytest

from auditor.checks import bootstrap as boot
from auditor.checks import get_check
from tests.test_group_metrics import _context

# -- 1. Wilson intervals for rates ------------------------------------------------------------------------

# Wilson score intervals (95%) typed from Newcombe RG (1998), "Two-sided confidence intervals for the
# single proportion: comparison of seven methods", Statistics in Medicine 17:857-872, Table I, method 3
# (score method without continuity correction); 0/10 and 10/10 are the same formula's closed form
# (upper bound z^2 / (n + z^2) = 0.2775), as statsmodels' proportion_confint(method="wilson") gives them.
NEWCOMBE = [
    ((81, 263), (0.2553, 0.3662)),
    ((15, 148), (0.0624, 0.1605)),
    ((0, 20), (0.0000, 0.1611)),
    ((1, 29), (0.0061, 0.1718)),
    ((0, 10), (0.0000, 0.2775)),
    ((10, 10), (0.7225, 1.0000)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE)
def test_wilson_interval_matches_the_published_values(counts, expected):
    assert boot.wilson_ci(*counts, level=0.95) == pytest.approx(list(expected), abs=6e-5)


def test_wilson_is_vectorised_and_undefined_without_trials():
    lo, hi = boot.wilson(np.array([0, 5, 0]), np.array([10, 10, 0]))
    assert lo[0] == 0.0 and hi[0] == pytest.approx(0.2775, abs=1e-4)
    assert lo[1] < 0.5 < hi[1] and np.isnan(lo[2]) and np.isnan(hi[2])
    assert boot.wilson_ci(0, 0) is None


def _perfect_context(n=300):
    """Two groups of ``n``: ``a`` all right (accuracy 1), ``b`` all wrong on the positives."""
    y_true = [1, 0] * n
    y_pred = list(y_true[:n]) + [0] * n
    return _context(y_true, y_pred, ["a"] * n + ["b"] * n)


def test_a_rate_of_one_or_zero_gets_an_interval_that_does_not_collapse():
    res = get_check("group_metrics")(n_boot=200, n_perm=0).run(_perfect_context())
    a, b = res.by_group["gender"]["a"], res.by_group["gender"]["b"]
    assert a["accuracy"]["value"] == 1.0
    lo, hi = a["accuracy"]["ci"]
    assert hi == 1.0 and 0.98 < lo < 0.999  # Wilson 300/300: [0.9874, 1]
    assert b["tpr"]["value"] == 0.0 and b["tpr"]["ci"][0] == 0.0 and b["tpr"]["ci"][1] > 0.01
    assert a["fpr"]["value"] == 0.0 and a["fpr"]["ci"][1] > 0.01
    worst = res.metrics["gender"]["worst_group_accuracy"]
    assert worst["ci"] == b["accuracy"]["ci"]  # the worst group's own interval
    assert res.metrics["overall"]["accuracy"]["ci"] == boot.wilson_ci(450, 600)
    assert "Wilson" in res.params["interval"]


def test_gaps_keep_their_bootstrap_interval():
    res = get_check("group_metrics")(n_boot=200, n_perm=0).run(_perfect_context())
    gap = res.metrics["gender"]["accuracy_difference"]
    assert gap["value"] == 0.5 and gap["ci"] is not None  # percentile bootstrap of the pair, not a Wilson interval


def test_multi_class_per_class_rates_use_wilson_and_macro_means_the_bootstrap():
    y = [0, 1, 2] * 40
    ctx = _context(y, y, ["a", "b"] * 60, classes=("x", "y", "z"), positive=None)
    res = get_check("group_metrics")(n_boot=200, n_perm=0).run(ctx)
    g = res.by_group["gender"]["a"]
    assert g["per_class"]["x"]["tpr"]["value"] == 1.0 and g["per_class"]["x"]["tpr"]["ci"][0] < 1.0
    assert g["accuracy"]["ci"][0] < 1.0


def test_attack_shares_use_wilson():
    from auditor.checks.attacks import _share

    entry = _share(np.zeros(128, bool))
    assert entry["value"] == 0.0 and entry["ci"][0] == 0.0 and entry["ci"][1] > 0.02
    assert _share(np.ones(128, bool))["ci"][0] < 1.0


def test_robust_accuracy_per_group_uses_wilson():
    from auditor.checks.attack_groups import robust_accuracy_by_group

    ctx = _perfect_context(100)
    rows = np.arange(200)
    logits = np.eye(2)[ctx.predictions.y_true]  # every adversarial answer right
    out = robust_accuracy_by_group(ctx, rows, logits, n_boot=100, n_perm=0)
    acc = out["scopes"]["gender"]["groups"]["a"]["accuracy"]
    assert acc["value"] == 1.0 and acc["ci"] == boot.wilson_ci(100, 100)


# -- 2. p-values at the permutation floor ---------------------------------------------------------------


def _walk(x, path=()):
    if isinstance(x, dict):
        yield path, x
        for k, v in x.items():
            yield from _walk(v, (*path, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _walk(v, (*path, i))


def test_a_permutation_p_value_records_its_floor_after_the_existing_keys():
    res = get_check("group_metrics")(n_boot=100, n_perm=1000).run(_perfect_context())
    gap = res.metrics["gender"]["accuracy_difference"]
    assert gap["p_value"] == gap["p_floor"] == pytest.approx(1 / 1001, rel=1e-3)  # no permutation reached 0.5
    assert list(gap)[-1] == "p_floor" and list(gap)[:2] == ["value", "ci"]
    for _, entry in _walk(res.metrics):  # wherever a permutation p-value is written, its floor is too
        if "p_value" in entry and entry["p_value"] is not None:
            assert entry["p_floor"] is not None and entry["p_value"] >= entry["p_floor"]


def test_robust_accuracy_gaps_carry_the_floor():
    from auditor.checks.attack_groups import robust_accuracy_by_group

    ctx = _perfect_context(100)
    out = robust_accuracy_by_group(ctx, np.arange(200), np.eye(2)[ctx.predictions.y_pred], n_boot=100, n_perm=500)
    gap = out["scopes"]["gender"]["accuracy_difference"]
    assert gap["p_floor"] == pytest.approx(1 / 501, rel=1e-3) and gap["p_value"] == gap["p_floor"]


def test_explanation_differences_carry_the_floor():
    from auditor.checks._explanation_groups import N_PERM, scope_differences

    labels = np.array(["a"] * 40 + ["b"] * 40, dtype=object)
    values = {k: np.r_[np.zeros(40), np.ones(40)] + np.linspace(0, 0.01, 80)
              for k in ("deletion_auc", "insertion_auc", "subject_share")}
    out = scope_differences(labels, values, "saliency", 30, True, np.random.default_rng(0))
    d = out["deletion_auc_difference"]
    assert d["p_floor"] == pytest.approx(1 / (N_PERM + 1), rel=1e-3) and d["p_value"] == d["p_floor"]


def test_the_one_p_value_formatter_prints_the_floor_as_a_bound():
    from auditor.report._format import fmt_p, fmt_p_of, p_phrase_of, p_shown
    from auditor.report._jinja import environment

    floor = float(f"{1 / 10001:.4g}")
    at = {"p_value": floor, "p_floor": floor, "p_adjusted": 0.0023}
    assert fmt_p(floor, floor) == "<0.0001"
    assert fmt_p_of(at, "p_value") == "<0.0001"
    assert fmt_p_of(at) == "<0.0023"  # the adjusted value of a floored p-value is a bound too
    assert p_phrase_of(at) == "p < 0.0023"
    assert environment().filters["p"](p_shown(at)) == "<0.0023"  # what the HTML and PDF tables print
    above = {"p_value": 0.0004, "p_floor": floor, "p_adjusted": 0.0092}
    assert fmt_p_of(above) == "0.0092" and fmt_p(0.03) == "0.03" and fmt_p(0.0004) == "<0.001"
    assert fmt_p(1 / 1001, 1 / 1001) == "<0.001" and fmt_p(1 / 2001, 1 / 2001) == "<0.0005"


def test_group_section_rows_show_the_floor():
    from auditor.report._format import fmt_p
    from auditor.report.sections.group_metrics import _disparity_rows

    res = get_check("group_metrics")(n_boot=100, n_perm=1000).run(_perfect_context())
    rows, _ = _disparity_rows(res.metrics["gender"])
    acc = next(r for r in rows if r["stem"] == "accuracy")
    assert fmt_p(acc["p_adjusted"]).startswith("<") and fmt_p(acc["p_value"]) == "<0.001"


# -- 3. one significance rule ------------------------------------------------------------------------------


def test_significance_rule_is_one_function():
    from auditor.checks.significance import significant

    assert significant(0.009, 0.05) is True and significant(0.05, 0.05) is False
    assert significant(None, 0.05) is None and significant(float("nan"), 0.05) is None


def test_an_explanation_difference_with_adjusted_p_below_alpha_is_significant():
    from auditor.checks._explanation_groups import findings

    def entry(p):
        return {"value": 0.3, "ci": [0.1, 0.5], "method": "saliency", "lowest": "a", "highest": "b", "groups_compared": 2,
                "p_value": p, "p_adjusted": None, "reason": None, "significant": None}

    metrics = {"race": {"scope": {"kind": "attribute"}, "deletion_auc_difference": entry(0.003),
                        "insertion_auc_difference": entry(0.5), "subject_share_difference": entry(0.6)}}
    found = findings(metrics, ["race"], 0.05)
    d = metrics["race"]["deletion_auc_difference"]
    assert d["p_adjusted"] == pytest.approx(0.009) and d["significant"] is True  # was null (issue 17)
    assert metrics["race"]["insertion_auc_difference"]["significant"] is False
    assert [f["metric"] for f in found] == ["deletion_auc_difference"]


def test_every_group_metrics_entry_with_an_adjusted_p_value_says_whether_it_is_significant():
    res = get_check("group_metrics")(n_boot=100, n_perm=500, alpha=0.05).run(_perfect_context())
    seen = 0
    for _, entry in _walk({"m": res.metrics, "g": res.by_group}):
        if entry.get("p_adjusted") is not None:
            seen += 1
            assert entry["significant"] is (entry["p_adjusted"] < 0.05)
    assert seen > 0


def test_spurious_candidates_carry_the_same_rule():
    from auditor.checks.spurious import _adjust

    cands = [{"p_value": 0.001, "confirmed": True, "on_subject": False}, {"p_value": 0.2, "confirmed": True, "on_subject": False}]
    _adjust(cands, 0.05)
    assert [c["significant"] for c in cands] == [True, False] and [c["confirmed"] for c in cands] == [True, False]


# -- 4. group-balanced samples ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces_1200():
    from probes import open_probe

    probe = open_probe("synth:faces:n=1200")
    return probe, {a: probe.table[a].to_numpy(dtype=object) for a in probe.attributes}


@pytest.mark.parametrize(("check", "param"), [("attacks", "n_images"), ("explanations", "n_group_images")])
def test_every_group_gets_enough_sampled_images_at_the_standard_budget(faces_1200, check, param):
    from auditor.checks.sampling import group_balanced_rows

    probe, labels = faces_1200
    cls = get_check(check)
    n = cls.params[param].budget[1]  # the standard budget's size
    rows = group_balanced_rows(labels, len(probe.table), n, 0, check)
    assert len(rows) == n == len(set(rows.tolist()))
    min_n = cls.params["min_group_size"].default
    for attribute in probe.attributes:
        counts = probe.table.loc[rows, attribute].value_counts()
        assert counts.min() >= min_n, (attribute, counts.to_dict())  # a 300-image group is never undecided
        assert counts.max() - counts.min() <= 1  # as even as the probe allows
    race = probe.table.loc[group_balanced_rows(labels, len(probe.table), 128, 0, "attacks"), "race"].value_counts()
    assert race.to_dict() == dict.fromkeys(race.index, 32)


def test_balanced_rows_are_seeded_keep_their_start_and_give_a_small_group_all_it_has(faces_1200):
    from auditor.checks.sampling import group_balanced_rows, random_rows

    probe, labels = faces_1200
    total = len(probe.table)
    a = group_balanced_rows(labels, total, 128, 0, "attacks")
    assert np.array_equal(a, group_balanced_rows(labels, total, 128, 0, "attacks"))
    assert not np.array_equal(a, group_balanced_rows(labels, total, 128, 1, "attacks"))
    start = np.arange(0, total, 23)
    b = group_balanced_rows(labels, total, 256, 0, "explanations-groups", start=start)
    assert len(b) == 256 and np.isin(start, b).all()
    assert probe.table.loc[b, "race"].value_counts().min() >= 60
    race = labels["race"].copy()
    small = np.flatnonzero(race == "asian")[10:]
    race[small] = "white"  # asian now has 10 images: it gives all 10, the others share the rest
    c = group_balanced_rows({"race": race}, total, 128, 0, "attacks")
    counts = {g: int((race[c] == g).sum()) for g in set(race)}
    assert counts["asian"] == 10 and sorted(v for g, v in counts.items() if g != "asian") == [39, 39, 40]
    assert np.array_equal(group_balanced_rows({}, total, 50, 0, "x"), random_rows(total, 50, 0, "x"))


def test_the_attacks_check_attacks_a_balanced_sample():
    import torch
    from torch import nn

    from tests.conftest import check_context

    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 2))
    ctx = check_context(model, probe=240)
    res = get_check("attacks")(n_images=32, steps=1, blackbox=False, eps_linf="4/255", eps_l2="0.5",
                               min_group_size=5).run(ctx)
    assert res.params["n_images"] == 32
    assert {g: v["n"] for g, v in res.by_group["race"].items()} == {"asian": 8, "black": 8, "indian": 8, "white": 8}


# -- 5. the undecided text names the real cause and remedy -------------------------------------------------


def _thin_results(budget="standard"):
    probe = {g: {"n": 300} for g in ("asian", "black", "indian", "white")} | {"other": {"n": 12}}
    sampled = {"asian": {"n": 28, "insufficient_data": True}, "black": {"n": 29, "insufficient_data": True},
               "indian": {"n": 35, "insufficient_data": False}, "white": {"n": 36, "insufficient_data": False},
               "other": {"n": 3, "insufficient_data": True}}
    return {"budget": budget, "checks": {
        "group_metrics": {"by_group": {"race": probe}},
        "attacks": {"params": {"n_images": 128, "min_group_size": 30}, "by_group": {"race": sampled}}}}


def test_the_undecided_text_blames_the_sample_and_names_a_larger_one():
    from auditor.report._format import sample_remedy

    text = sample_remedy(_thin_results(), "attacks", "race", ["asian", "black"])
    assert "enough images" in text and "asian 28 of 300" in text and "black 29 of 300" in text
    assert "--budget thorough" in text and "--param attacks.n_images=138" in text
    assert "min_group_size" not in text and "lower" not in text and "add images" not in text
    whole = sample_remedy(_thin_results("thorough"), "attacks", "race")  # every thin group, thorough budget
    assert "--budget" not in whole and "--param attacks.n_images=" in whole
    assert "add images of them to the probe" in whole and "other (n=12)" in whole
    assert sample_remedy(_thin_results(), "attacks", "gender") == ""


def test_an_undecided_robustness_clause_says_so_on_page_1():
    from auditor.report._findings import inconclusive_sentence

    clause = {"id": "robust-gap[race]", "metric": "checks.attacks.metrics.race.robust_accuracy_difference",
              "result": "insufficient_data", "reason": "two groups had too few images", "excluded_groups": ["asian", "black"]}
    text = inconclusive_sentence(_thin_results(), clause)
    assert "--param attacks.n_images=138" in text and "sample" in text


def test_an_explanations_clause_names_its_own_sample_parameter():
    from auditor.report._format import sample_remedy

    results = _thin_results()
    results["checks"]["explanations"] = {"params": {"n_group_images": 256, "min_group_size": 30},
                                         "by_group": {"race": {"asian": {"n": 20, "insufficient": True}}}}
    text = sample_remedy(results, "explanations", "race")
    assert "--param explanations.n_group_images=384" in text and "lower" not in text


def test_no_check_suggests_a_smaller_minimum_group_size():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "auditor"
    for path in [*(root / "checks").glob("*.py"), *(root / "report" / "sections").glob("*.py"), root / "report" / "_format.py"]:
        assert "lower min_group_size" not in path.read_text(), path


def test_a_group_short_in_the_probe_itself_needs_images_not_a_smaller_minimum():
    from auditor.report._format import sample_remedy

    results = {"checks": {"group_metrics": {"params": {"min_group_size": 30},
                                            "by_group": {"race": {"other": {"n": 12, "insufficient_data": True}}}}}}
    text = sample_remedy(results, "group_metrics", "race")
    assert "add images of them to the probe" in text and "other (n=12)" in text and "lower" not in text


def test_a_thin_explanations_sample_names_the_group_sample_parameter():
    from auditor.checks._explanation_groups import scope_differences

    labels = np.array(["a"] * 20 + ["b"] * 20, dtype=object)
    values = {k: np.linspace(0, 1, 40) for k in ("deletion_auc", "insertion_auc", "subject_share")}
    reason = scope_differences(labels, values, "saliency", 30, True, np.random.default_rng(0))["deletion_auc_difference"]["reason"]
    assert "--param explanations.n_group_images=N" in reason and "min_group_size" not in reason


def test_a_robust_gap_the_attacked_sample_cannot_measure_says_the_sample_is_the_cause():
    import torch
    from torch import nn

    from tests.conftest import check_context

    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 2))
    res = get_check("attacks")(n_images=16, steps=1, blackbox=False, eps_linf="4/255", eps_l2="0.5",
                               min_group_size=30).run(check_context(model, probe=240))
    reason = res.metrics["race"]["robust_accuracy_difference"]["reason"]
    assert "among the 16 attacked images" in reason and "--param attacks.n_images=N" in reason
