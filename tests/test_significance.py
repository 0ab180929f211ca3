"""Significance module: the permutation null keeps its margins and gives uniform p-values, Fisher's test
matches scipy, Holm/BH match hand-computed fixtures, and power matches simulation."""
from __future__ import annotations


import numpy as np
import pytest
from scipy import stats

from auditor.checks import bootstrap as boot
from auditor.checks import significance as sig


def _cells(rng: np.random.Generator, sizes: list[int], acc: list[float]) -> np.ndarray:
    """Binary confusion cells ``(G, 2, 2)``: balanced true labels, group ``g`` right with prob ``acc[g]``."""
    codes = np.repeat(np.arange(len(sizes)), sizes)
    y_true = rng.integers(0, 2, codes.size)
    right = rng.random(codes.size) < np.asarray(acc)[codes]
    return boot.confusion_cells(y_true, np.where(right, y_true, 1 - y_true), codes, len(sizes), 2)


def _accuracy_gap(cells: np.ndarray) -> np.ndarray:
    return boot.disparity_draws(boot.rates_from_cells(cells, 1)["accuracy"])["difference"]


# permute_cells ----------------------------------------------------------------------------------


def test_every_permutation_keeps_group_sizes_and_pooled_cells():
    cells = np.array([  # K=3, an empty group, zero cells
        [[5, 0, 1], [0, 3, 0], [2, 0, 0]],
        [[0, 0, 0], [0, 0, 0], [0, 0, 0]],
        [[1, 4, 0], [0, 0, 0], [7, 0, 9]],
        [[0, 0, 0], [0, 2, 0], [0, 0, 1]],
    ])
    null = sig.permute_cells(cells, 500, np.random.default_rng(0))
    assert null.shape == (500, 4, 3, 3)
    assert (null >= 0).all()
    assert (null.sum(axis=(2, 3)) == cells.sum(axis=(1, 2))).all()
    assert (null.sum(axis=1) == cells.sum(axis=0)).all()
    assert (null[:, 1] == 0).all()
    assert (null[:, :, 1, 2] == 0).all()  # empty in the pool, empty in every permutation


def test_a_single_group_permutes_to_itself():
    cells = np.array([[[3, 1], [2, 4]]])
    assert (sig.permute_cells(cells, 7, np.random.default_rng(0)) == cells).all()


def test_zero_permutations_give_an_empty_null():
    assert sig.permute_cells(np.ones((3, 2, 2), dtype=int), 0, np.random.default_rng(0)).shape == (0, 3, 2, 2)


def test_permuted_cells_have_the_multivariate_hypergeometric_moments():
    # Rows of group g in cell c: mean n_g P_c / N, variance n_g (P_c/N)(1 - P_c/N)(N - n_g)/(N - 1).
    cells = np.array([[[10, 2], [3, 5]], [[1, 9], [6, 4]], [[20, 0], [0, 30]]])
    n_perm = 20_000
    null = sig.permute_cells(cells, n_perm, np.random.default_rng(1)).reshape(n_perm, 3, 4)
    sizes, pooled, total = cells.sum(axis=(1, 2))[:, None], cells.sum(axis=0).reshape(1, 4), cells.sum()
    share = pooled / total
    mean = sizes * share
    var = sizes * share * (1 - share) * (total - sizes) / (total - 1)
    np.testing.assert_array_less(np.abs(null.mean(axis=0) - mean), 5 * np.sqrt(var / n_perm) + 1e-12)
    np.testing.assert_allclose(null.var(axis=0), var, rtol=0.05)


def test_permuted_cells_match_shuffling_the_group_labels_of_the_rows():
    rng = np.random.default_rng(2)
    codes = np.repeat([0, 1, 2], [40, 70, 30])
    y_true = rng.integers(0, 2, codes.size)
    y_pred = np.where(rng.random(codes.size) < 0.25, 1 - y_true, y_true)
    cells = boot.confusion_cells(y_true, y_pred, codes, 3, 2)
    naive = np.stack([boot.confusion_cells(y_true, y_pred, rng.permutation(codes), 3, 2) for _ in range(3000)])
    fast = sig.permute_cells(cells, 3000, rng)
    assert stats.ks_2samp(_accuracy_gap(naive), _accuracy_gap(fast)).pvalue > 0.01
    for g, i, j in [(0, 1, 1), (2, 0, 1)]:
        assert stats.ks_2samp(naive[:, g, i, j], fast[:, g, i, j]).pvalue > 0.01


def test_the_same_seed_gives_the_same_permutations():
    cells = np.array([[[10, 2], [3, 5]], [[1, 9], [6, 4]]])
    a = sig.permute_cells(cells, 50, np.random.default_rng(5))
    assert (a == sig.permute_cells(cells, 50, np.random.default_rng(5))).all()


def test_permute_cells_takes_any_cell_shape_per_group():
    cells = np.random.default_rng(3).integers(0, 20, (3, 15, 2))  # calibration cells: group x bin x correct
    out = sig.permute_cells(cells, 200, np.random.default_rng(4))
    assert out.shape == (200, 3, 15, 2)
    assert (out.sum(axis=(2, 3)) == cells.sum(axis=(1, 2))).all()
    assert (out.sum(axis=1) == cells.sum(axis=0)).all()


def test_permute_cells_rejects_cells_that_are_not_counts():
    with pytest.raises(ValueError, match="'cells'"):
        sig.permute_cells(np.ones(4, dtype=int), 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="'cells'"):
        sig.permute_cells(np.full((2, 2, 2), 0.5), 10, np.random.default_rng(0))


# permutation_pvalue ---------------------------------------------------------------------------


def test_pvalue_counts_draws_at_least_as_extreme_with_the_plus_one_correction():
    assert sig.permutation_pvalue(0.2, np.array([0.1, 0.2, 0.3, np.nan])) == (1 + 2) / (1 + 3)
    assert sig.permutation_pvalue(0.5, np.array([0.1, 0.2, 0.3])) == 1 / 4
    assert sig.permutation_pvalue(0.0, np.array([0.1, 0.2, 0.3])) == 1.0


def test_pvalue_counts_float_ties_as_at_least_as_extreme():
    assert 0.1 + 0.2 > 0.3
    assert sig.permutation_pvalue(0.1 + 0.2, np.array([0.3])) == 1.0


@pytest.mark.parametrize("observed, null", [(None, [0.1]), (np.nan, [0.1]), (0.1, [np.nan, np.nan]), (0.1, [])])
def test_pvalue_is_none_when_undefined(observed, null):
    assert sig.permutation_pvalue(observed, np.array(null, dtype=float)) is None


def test_permutation_pvalues_are_uniform_when_groups_do_not_differ():
    rng = np.random.default_rng(4)
    pvals = []
    for _ in range(300):
        cells = _cells(rng, [150, 100, 120], [0.8, 0.8, 0.8])
        pvals.append(sig.permutation_pvalue(float(_accuracy_gap(cells)), _accuracy_gap(sig.permute_cells(cells, 199, rng))))
    p = np.array(pvals)
    # A permutation test is exact: P(p <= a) <= a, with only discreteness below a. With 300 datasets the
    # rejection count at 0.05 has sd ~3.8 around 15.
    assert 0.02 <= np.mean(p <= 0.05) <= 0.09
    assert 0.42 <= np.mean(p <= 0.5) <= 0.58
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_a_real_accuracy_gap_gives_the_smallest_possible_pvalue():
    rng = np.random.default_rng(6)
    cells = _cells(rng, [200, 200], [0.9, 0.7])
    null = _accuracy_gap(sig.permute_cells(cells, 999, rng))
    assert sig.permutation_pvalue(float(_accuracy_gap(cells)), null) == 1 / 1000


# group_vs_rest_exact -----------------------------------------------------------------------------


def _scipy_vs_rest(success: np.ndarray, total: np.ndarray, g: int) -> float:
    s, t = success.sum(), total.sum()
    return stats.fisher_exact([[success[g], total[g] - success[g]], [s - success[g], t - total[g] - s + success[g]]]).pvalue


def test_fisher_matches_scipys_documented_example():
    # scipy's docs: table [[6, 2], [1, 4]] has two-sided p = 0.10256410256410257.
    np.testing.assert_allclose(sig.group_vs_rest_exact(np.array([6, 1]), np.array([8, 5])), [0.10256410256410257] * 2)


@pytest.mark.parametrize("seed", range(6))
def test_fisher_matches_scipy_on_random_groups(seed):
    rng = np.random.default_rng(seed)
    g = int(rng.integers(2, 12))
    total = rng.integers(1, [8, 60, 600, 20_000][seed % 4], g)
    success = rng.binomial(total, rng.uniform(0.02, 0.98, g))
    expected = [_scipy_vs_rest(success, total, i) for i in range(g)]
    np.testing.assert_allclose(sig.group_vs_rest_exact(success, total), expected, rtol=1e-12, atol=0)


def test_fisher_matches_scipy_at_the_extremes():
    success = np.array([0, 10, 5, 0, 3])
    total = np.array([10, 10, 5, 1, 30])
    expected = [_scipy_vs_rest(success, total, i) for i in range(5)]
    np.testing.assert_allclose(sig.group_vs_rest_exact(success, total), expected, rtol=1e-12, atol=0)


def test_fisher_is_nan_for_an_empty_group_or_an_empty_rest():
    p = sig.group_vs_rest_exact(np.array([3, 0, 5]), np.array([10, 0, 12]))
    assert np.isnan(p[1]) and np.isfinite(p[[0, 2]]).all()
    assert np.isnan(sig.group_vs_rest_exact(np.array([0, 4]), np.array([0, 9]))).all()
    assert np.isnan(sig.group_vs_rest_exact(np.array([4]), np.array([9]))).all()


def test_fisher_is_one_when_nobody_or_everybody_succeeds():
    assert (sig.group_vs_rest_exact(np.array([0, 0, 0]), np.array([4, 5, 6])) == 1.0).all()
    assert (sig.group_vs_rest_exact(np.array([4, 5, 6]), np.array([4, 5, 6])) == 1.0).all()


def test_fisher_rejects_more_successes_than_trials():
    with pytest.raises(ValueError, match="success <= total"):
        sig.group_vs_rest_exact(np.array([3, 6]), np.array([4, 5]))


# adjust_pvalues ----------------------------------------------------------------------------------

RAW = np.array([0.01, 0.04, 0.03, 0.005])
# Sorted: 0.005, 0.01, 0.03, 0.04 (m = 4).
# Holm: 4*0.005 = 0.02, 3*0.01 = 0.03, 2*0.03 = 0.06, 1*0.04 = 0.04 -> running max 0.02, 0.03, 0.06, 0.06.
HOLM = np.array([0.03, 0.06, 0.06, 0.02])
# BH: 4/1*0.005 = 0.02, 4/2*0.01 = 0.02, 4/3*0.03 = 0.04, 4/4*0.04 = 0.04 -> running min from the top: same.
BH = np.array([0.02, 0.04, 0.04, 0.02])


def test_holm_matches_the_hand_computed_fixture():
    np.testing.assert_allclose(sig.adjust_pvalues(RAW, "holm"), HOLM)


def test_bh_matches_the_hand_computed_fixture():
    np.testing.assert_allclose(sig.adjust_pvalues(RAW, "bh"), BH)


def test_holm_and_bh_enforce_monotonicity_and_cap_at_one():
    # Holm: 3*0.02 = 0.06, 2*0.5 = 1.0, 1*0.6 = 0.6 -> running max 0.06, 1.0, 1.0.
    np.testing.assert_allclose(sig.adjust_pvalues(np.array([0.6, 0.02, 0.5]), "holm"), [1.0, 0.06, 1.0])
    # BH: 3/1*0.02 = 0.06, 3/2*0.5 = 0.75, 3/3*0.6 = 0.6 -> running min from the top 0.06, 0.6, 0.6.
    np.testing.assert_allclose(sig.adjust_pvalues(np.array([0.6, 0.02, 0.5]), "bh"), [0.6, 0.06, 0.6])
    np.testing.assert_allclose(sig.adjust_pvalues(np.array([0.9, 0.8]), "holm"), [1.0, 1.0])


def test_bh_agrees_with_scipy_false_discovery_control():
    p = np.random.default_rng(7).beta(0.4, 1.0, 200)
    np.testing.assert_allclose(sig.adjust_pvalues(p, "bh"), stats.false_discovery_control(p, method="bh"), rtol=1e-12)


@pytest.mark.parametrize("method", sig.ADJUST_METHODS)
def test_adjusted_pvalues_keep_the_order_of_the_raw_ones_and_never_shrink(method):
    p = np.random.default_rng(8).uniform(0, 0.2, 50)
    adj = sig.adjust_pvalues(p, method)
    assert (np.diff(adj[np.argsort(p)]) >= 0).all()
    assert (adj >= p).all() and (adj <= 1).all()


@pytest.mark.parametrize("method, expected", [("holm", HOLM), ("bh", BH)])
def test_nan_pvalues_stay_nan_and_do_not_count_in_the_family(method, expected):
    raw = np.array([0.01, np.nan, 0.04, 0.03, np.nan, 0.005])
    adj = sig.adjust_pvalues(raw, method)
    assert np.isnan(adj[[1, 4]]).all()
    np.testing.assert_allclose(adj[[0, 2, 3, 5]], expected)


def test_an_unknown_method_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"\['holm', 'bh'\].*'bonferroni'"):
        sig.adjust_pvalues(RAW, "bonferroni")


# power --------------------------------------------------------------------------------------------


def test_sample_size_matches_the_textbook_value():
    # 0.6 vs 0.4, alpha 0.05, power 0.8, equal groups: (1.96*sqrt(.5)+0.8416*sqrt(.48))^2 / 0.04 = 96.9 -> 97.
    assert sig.two_proportion_n(0.6, 0.4) == 97


def test_power_at_no_gap_is_the_test_level():
    assert sig.two_proportion_power(0.3, 0.3, 120, 80, alpha=0.05) == pytest.approx(0.05)


@pytest.mark.parametrize("p1, p2, ratio, power", [(0.7, 0.8, 1.0, 0.8), (0.9, 0.8, 2.5, 0.9), (0.05, 0.15, 0.5, 0.8)])
def test_the_suggested_size_is_the_smallest_that_reaches_the_power(p1, p2, ratio, power):
    n1 = sig.two_proportion_n(p1, p2, power=power, ratio=ratio)
    assert sig.two_proportion_power(p1, p2, n1, int(np.ceil(ratio * n1))) >= power
    assert sig.two_proportion_power(p1, p2, n1 - 1, int(np.ceil(ratio * (n1 - 1)))) < power


@pytest.mark.parametrize("p1, p2, n1, n2", [(0.7, 0.8, 290, 290), (0.85, 0.75, 150, 400), (0.1, 0.2, 120, 60)])
def test_formula_power_matches_simulated_z_tests(p1, p2, n1, n2):
    rng = np.random.default_rng(9)
    x1, x2 = rng.binomial(n1, p1, 4000), rng.binomial(n2, p2, 4000)
    pooled = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    rejected = np.mean(np.abs(z) > stats.norm.ppf(0.975))
    # Monte Carlo sd about 0.007; the normal approximation itself is off by up to ~0.015 with unequal
    # groups (0.85 vs 0.75 at 150/400: formula 0.727, simulated 0.73-0.75 over five seeds).
    assert rejected == pytest.approx(sig.two_proportion_power(p1, p2, n1, n2), abs=0.035)


@pytest.mark.parametrize("p1, p2", [(0.3, 0.3), (None, 0.3), (0.3, float("nan"))])
def test_no_sample_size_without_a_defined_gap(p1, p2):
    assert sig.two_proportion_n(p1, p2) is None


def test_power_is_none_for_an_undefined_rate_or_an_empty_group():
    assert sig.two_proportion_power(float("nan"), 0.3, 10, 10) is None
    assert sig.two_proportion_power(0.2, 0.3, 0, 10) is None


def test_power_rejects_rates_outside_zero_one():
    with pytest.raises(ValueError, match="proportions"):
        sig.two_proportion_power(1.2, 0.3, 10, 10)
