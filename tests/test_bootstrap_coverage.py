"""Coverage of the bootstrap intervals (confusion_cells -> resample_cells -> rates_from_cells ->
interval at 0.95) on data simulated from a known model: two groups of 200 rows, half of them positive,
with known TPR and FPR, so accuracy = (TPR + 1 - FPR) / 2.

Bounds: 300 datasets give a coverage estimate with sd ~0.013 around 0.95, and percentile intervals at
n = 200 run slightly low (measured over 1,000-3,000 datasets: 0.925-0.95 for accuracy, TPR, FPR and a
real gap). The interval [0.90, 0.99] holds that with 2-3 sd to spare and still fails an interval that
is off by several points. The max - min difference is biased upwards, so when the true gap is 0 its interval never
covers it (documented below, with the signed difference from the same resamples for contrast).
"""
from __future__ import annotations

import numpy as np
import pytest

from auditor.checks import bootstrap as boot

N_DATASETS, N_PER_GROUP, N_BOOT, LEVEL = 300, 200, 500, 0.95
COVERAGE_BOUNDS = (0.90, 0.99)


def _simulate(rng: np.random.Generator, tpr: tuple[float, float], fpr: tuple[float, float]) -> np.ndarray:
    codes = np.repeat([0, 1], N_PER_GROUP)
    y_true = (rng.random(codes.size) < 0.5).astype(int)
    u = rng.random(codes.size)
    y_pred = np.where(y_true == 1, u < np.asarray(tpr)[codes], u < np.asarray(fpr)[codes]).astype(int)
    return boot.confusion_cells(y_true, y_pred, codes, 2, 2)


def _coverage(tpr: tuple[float, float], fpr: tuple[float, float], seed: int) -> dict[str, float]:
    """Share of simulated datasets whose 95% interval contains the true value, per quantity."""
    acc = [(t + 1 - f) / 2 for t, f in zip(tpr, fpr)]
    truth = {"accuracy_a": acc[0], "accuracy_b": acc[1], "tpr_a": tpr[0], "fpr_b": fpr[1],
             "accuracy_difference": abs(acc[0] - acc[1]), "signed_accuracy_difference": acc[0] - acc[1]}
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(truth, 0)
    for _ in range(N_DATASETS):
        rates = boot.rates_from_cells(boot.resample_cells(_simulate(rng, tpr, fpr), N_BOOT, rng), 1)
        draws = {"accuracy_a": rates["accuracy"][:, 0], "accuracy_b": rates["accuracy"][:, 1],
                 "tpr_a": rates["tpr"][:, 0], "fpr_b": rates["fpr"][:, 1],
                 "accuracy_difference": boot.disparity_draws(rates["accuracy"])["difference"],
                 "signed_accuracy_difference": rates["accuracy"][:, 0] - rates["accuracy"][:, 1]}
        for name, d in draws.items():
            ci = boot.interval(d, LEVEL)
            hits[name] += ci is not None and ci[0] <= truth[name] <= ci[1]
    return {name: h / N_DATASETS for name, h in hits.items()}


@pytest.fixture(scope="module")
def real_gap() -> dict[str, float]:
    """Accuracy 0.825 vs 0.725: a gap of 0.10, about 2.4 standard errors."""
    return _coverage(tpr=(0.85, 0.70), fpr=(0.20, 0.25), seed=0)


@pytest.fixture(scope="module")
def no_gap() -> dict[str, float]:
    """Both groups at accuracy 0.80."""
    return _coverage(tpr=(0.80, 0.80), fpr=(0.20, 0.20), seed=1)


@pytest.mark.parametrize("name", ["accuracy_a", "accuracy_b", "tpr_a", "fpr_b"])
def test_group_rate_intervals_cover_the_true_rate_at_about_95_percent(real_gap, name):
    lo, hi = COVERAGE_BOUNDS
    assert lo <= real_gap[name] <= hi


def test_accuracy_difference_interval_covers_a_real_gap_at_about_95_percent(real_gap):
    lo, hi = COVERAGE_BOUNDS
    assert lo <= real_gap["accuracy_difference"] <= hi


def test_group_accuracy_intervals_still_cover_when_the_groups_are_equal(no_gap):
    lo, hi = COVERAGE_BOUNDS
    assert lo <= no_gap["accuracy_a"] <= hi
    assert lo <= no_gap["accuracy_b"] <= hi


def test_accuracy_difference_interval_does_not_cover_a_zero_gap(no_gap):
    # Known limitation, measured: max - min >= 0 in every resample and is > 0 in almost all, so the
    # 2.5% quantile is above 0 and the interval misses a true gap of 0 (0 of 1,000 datasets covered).
    # The miss fades as the gap grows: coverage 0.59 at a gap of 0.002, 0.89 at 0.005, 0.95 at 0.01
    # (standard error of the gap ~0.04). A confidence interval of max - min is therefore no test of
    # "no gap"; use a permutation or exact test (auditor.checks.significance) for that.
    assert no_gap["accuracy_difference"] <= 0.02


def test_signed_difference_of_the_same_resamples_covers_a_zero_gap(no_gap):
    lo, hi = COVERAGE_BOUNDS
    assert lo <= no_gap["signed_accuracy_difference"] <= hi
