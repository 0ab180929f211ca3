"""Bootstrap intervals of group_metrics: coverage of the point, determinism, agreement with a naive
row-resampling loop, and robustness to groups that vanish from a resample."""
from __future__ import annotations

import numpy as np
import pytest

from auditor.checks import get_check
from auditor.checks import bootstrap as boot
from tests.test_group_metrics import _context


def _random_context(n=600, seed=0, groups=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, n)
    flip = rng.random(n) < 0.2
    y_pred = np.where(flip, 1 - y_true, y_true)
    return _context(list(y_true), list(y_pred), list(rng.choice(groups, n)))


def test_every_group_interval_contains_its_point_estimate():
    res = get_check("group_metrics")(n_boot=500).run(_random_context())
    for group in res.by_group["gender"].values():
        for metric in ("accuracy", "selection_rate", "tpr", "fpr"):
            lo, hi = group[metric]["ci"]
            assert lo <= group[metric]["value"] <= hi


def test_disparity_intervals_are_present_and_ordered():
    m = get_check("group_metrics")(n_boot=500).run(_random_context()).metrics["gender"]
    for name in ("accuracy_difference", "selection_rate_ratio", "equalized_odds_difference", "worst_group_accuracy"):
        lo, hi = m[name]["ci"]
        assert lo <= hi


def test_same_seed_gives_the_same_intervals_and_another_seed_does_not():
    check = get_check("group_metrics")(n_boot=300)
    # a gap's interval is a bootstrap one (a group's rate has Wilson's, which no seed moves)
    a = check.run(_random_context()).metrics["gender"]["accuracy_difference"]["ci"]
    b = check.run(_random_context()).metrics["gender"]["accuracy_difference"]["ci"]
    ctx = _random_context()
    ctx.seed = 99
    c = check.run(ctx).metrics["gender"]["accuracy_difference"]["ci"]
    assert a == b
    assert a != c


def test_intervals_narrow_as_the_probe_grows():
    small = get_check("group_metrics")(n_boot=500).run(_random_context(n=200)).metrics["overall"]["accuracy"]["ci"]
    large = get_check("group_metrics")(n_boot=500).run(_random_context(n=5000)).metrics["overall"]["accuracy"]["ci"]
    assert (large[1] - large[0]) < (small[1] - small[0]) / 2


def test_multinomial_resampling_agrees_with_a_naive_row_resampling_loop():
    rng = np.random.default_rng(1)
    n = 800
    y_true = rng.integers(0, 2, n)
    y_pred = np.where(rng.random(n) < 0.25, 1 - y_true, y_true)
    codes = rng.integers(0, 2, n)
    fast = boot.rates_from_cells(boot.resample_cells(boot.confusion_cells(y_true, y_pred, codes, 2, 2), 4000, rng), 1)
    naive = []
    for _ in range(4000):
        idx = rng.integers(0, n, n)
        g = codes[idx] == 0
        naive.append((y_true[idx][g] == y_pred[idx][g]).mean())
    assert boot.interval(fast["accuracy"][:, 0], 0.95) == pytest.approx(boot.interval(np.array(naive), 0.95), abs=0.01)


def test_a_group_that_vanishes_from_resamples_does_not_break_the_intervals():
    y_true = [1, 0] * 100 + [1]
    y_pred = [1, 0] * 100 + [0]
    groups = ["big"] * 200 + ["tiny"]
    res = get_check("group_metrics")(n_boot=400, min_group_size=1).run(_context(y_true, y_pred, groups))
    assert res.by_group["gender"]["tiny"]["accuracy"]["value"] == 0.0
    assert res.metrics["gender"]["accuracy_difference"]["ci"] is not None


def test_zero_resamples_turns_intervals_off():
    res = get_check("group_metrics")(n_boot=0).run(_random_context())
    assert res.by_group["gender"]["a"]["accuracy"]["ci"] is None
