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
