"""Significance tests and power for group disparities, vectorised over draws and groups.

- `permute_cells`: the permutation null of "group does not matter" on count cells ``(G, ...)``,
  drawn as sequential hypergeometrics (no Python loop per permutation).
- `permutation_pvalue`: one-sided p-value of an observed statistic against such a null;
  `permutation_floor`: the smallest p-value that null can give, 1 / (B + 1).
- `significant`: the one significance rule of every check (adjusted p-value below alpha).
- `group_vs_rest_exact`: two-sided Fisher exact test of each group against the others pooled.
- `adjust_pvalues`: Holm (family-wise error) or Benjamini-Hochberg (false discovery rate).
- `two_proportion_power` / `two_proportion_n`: normal-approximation power and sample size.
- `PRACTICAL_FLOORS` / `clears_floor`: the smallest gap worth reporting, whatever its p-value (a large
  probe makes a gap of 0.0003 "significant"; it still matters to nobody).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ADJUST_METHODS",
    "PRACTICAL_FLOORS",
    "RATIO_FLOOR",
    "adjust_pvalues",
    "clears_floor",
    "floors_text",
    "group_vs_rest_exact",
    "permutation_floor",
    "permutation_pvalue",
    "permute_cells",
    "significant",
    "two_proportion_n",
    "two_proportion_power",
]

ADJUST_METHODS: tuple[str, ...] = ("holm", "bh")
PRACTICAL_FLOORS: dict[str, float] = {
    **dict.fromkeys(("accuracy", "error_rate", "selection_rate", "tpr", "fnr", "fpr", "tnr", "precision",
                     "equalized_odds"), 0.02),
    "ece": 0.01,
    "brier": 0.01,
}
"""The smallest max-min difference of each metric that counts as a practical gap: 2 points of a rate,
0.01 of expected calibration error or Brier score. A gap below its floor is never headlined, however
small its p-value."""
RATIO_FLOOR = 0.02
"""A min/max ratio counts as a practical gap only when it is at least this far below 1 (<= 0.98) and
its difference clears the metric's floor."""
_TIE_TOL = 1e-9  # null draws within this (relative) distance of the observed value count as ties


def _counts(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "iub" or np.any(a < 0):
        raise ValueError(f"The {name!r} parameter must be non-negative integer counts. Got dtype {a.dtype}.")
    return a.astype(np.int64)


def permute_cells(cells: np.ndarray, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """``n_perm`` draws of the cells with group labels permuted across rows: ``(n_perm, G, ...)``.

    ``cells`` holds counts per group and cell, e.g. confusion cells ``(G, K, K)`` or calibration
    cells ``(G, bins, 2)``.

    Each draw keeps every group's size and the pooled count of every (true, predicted) cell; given
    those margins a label permutation is a multivariate hypergeometric draw per group from the rows
    not yet assigned, taken here cell by cell with ``rng.hypergeometric`` over the ``n_perm`` axis.
    """
    c = _counts(cells, "cells")
    if c.ndim < 2:
        raise ValueError(f"The 'cells' parameter must have shape (G, ...) with one count per cell. Got {c.shape} instead.")
    if not isinstance(n_perm, (int, np.integer)) or n_perm < 0:
        raise ValueError(f"The 'n_perm' parameter must be a non-negative int. Got {n_perm!r} instead.")
    g_count, cell_shape = c.shape[0], c.shape[1:]
    flat = c.reshape(g_count, -1)
    out = np.zeros((n_perm, g_count, flat.shape[1]), dtype=np.int64)
    if g_count == 0:
        return out.reshape(n_perm, 0, *cell_shape)
    pooled = flat.sum(axis=0)
    live = np.flatnonzero(pooled)  # a cell empty in the pool is empty in every draw
    pool = np.repeat(pooled[live, None], n_perm, axis=1)  # unassigned rows per live cell (rows) and draw
    for g, size in enumerate(flat.sum(axis=1)[:-1]):
        if size == 0:
            continue
        need = np.full(n_perm, size, dtype=np.int64)
        after = pool.sum(axis=0)
        for j, cell in enumerate(live[:-1]):
            after -= pool[j]  # rows in the cells after j
            draw = rng.hypergeometric(pool[j], after, need)
            out[:, g, cell] = draw
            pool[j] -= draw
            need -= draw
        out[:, g, live[-1]] = need
        pool[-1] -= need
    if g_count:
        out[:, -1, live] = pool.T
    return out.reshape(n_perm, g_count, *cell_shape)


def permutation_pvalue(observed: float | None, null: np.ndarray) -> float | None:
    """One-sided p-value ``(1 + #{null >= observed}) / (1 + #finite null)``, ties within 1e-9.

    NaN draws are ignored; None when ``observed`` is None or not finite or no draw is finite.
    """
    if observed is None or not math.isfinite(observed):
        return None
    draws = np.asarray(null, dtype=float).reshape(-1)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return None
    hits = int(np.count_nonzero(draws >= observed - _TIE_TOL * max(1.0, abs(observed))))
    return (1 + hits) / (1 + draws.size)


def permutation_floor(null: np.ndarray) -> float | None:
    """The smallest p-value `permutation_pvalue` can give against ``null``: ``1 / (1 + #finite draws)``.

    A p-value at the floor means "no permutation reached the observed value": the true p-value is
    below it, by an amount B permutations cannot resolve. None when no draw is finite.
    """
    draws = np.asarray(null, dtype=float).reshape(-1)
    finite = int(np.count_nonzero(np.isfinite(draws)))
    return 1 / (1 + finite) if finite else None


def significant(p_adjusted: float | None, alpha: float) -> bool | None:
    """Whether an adjusted p-value is below ``alpha``: the rule every check writes as ``significant`` next
    to its ``p_adjusted``; None when there is no (finite) adjusted p-value."""
    if p_adjusted is None or not math.isfinite(p_adjusted):
        return None
    return bool(p_adjusted < alpha)


def _search(sign: float, d: np.ndarray, lo: np.ndarray, hi: np.ndarray, law: tuple[np.ndarray, ...]) -> np.ndarray:
    """Scipy's ``_binary_search_for_binom_tst`` run as many searches at once (same steps, same result).

    Per search ``i``: the ``x`` in ``[lo, hi]`` with ``a(x) <= d < a(x + 1)``, where
    ``a = sign * hypergeom.pmf(., *law[i])``.
    """
    from scipy.stats import hypergeom  # imported when run: keeps `auditor checks` fast

    lo, hi = lo.copy(), hi.copy()
    out = np.zeros_like(lo)
    done = np.zeros(lo.shape, dtype=bool)
    while True:
        i = np.flatnonzero(~done & (lo < hi))
        if i.size == 0:
            break
        mid = lo[i] + (hi[i] - lo[i]) // 2
        val = sign * hypergeom.pmf(mid, *(a[i] for a in law))
        below, above = val < d[i], val > d[i]
        lo[i[below]] = mid[below] + 1
        hi[i[above]] = mid[above] - 1
        hit = ~below & ~above
        out[i[hit]], done[i[hit]] = mid[hit], True
    i = np.flatnonzero(~done)
    last = sign * hypergeom.pmf(lo[i], *(a[i] for a in law))
    out[i] = np.where(last <= d[i], lo[i], lo[i] - 1)
    return out


def _fisher_two_sided(x: np.ndarray, m: np.ndarray, n1: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``fisher_exact``'s two-sided p for tables with ``x`` at top left, ``m`` rows, first row ``n1``,
    first column ``n`` (all margins non-empty): the mass of tables no likelier than the observed one."""
    from scipy.stats import hypergeom  # imported when run: keeps `auditor checks` fast

    law = (m, n1, n)
    mode = ((n + 1) * (n1 + 1) / (m + 2)).astype(np.int64)
    pexact, pmode = hypergeom.pmf(x, *law), hypergeom.pmf(mode, *law)
    gamma = 1 + 1e-14
    p = np.ones(x.shape)  # at the mode: p = 1
    off_mode = np.abs(pexact - pmode) / np.maximum(pexact, pmode) > 1e-14
    # Observed below the mode: its lower tail, plus the upper tail from where the pmf drops to pexact.
    lo = off_mode & (x < mode)
    p[lo] = hypergeom.cdf(x[lo], m[lo], n1[lo], n[lo])
    far = np.flatnonzero(lo & ~(hypergeom.pmf(n, *law) > pexact * gamma))
    at = _search(-1.0, -pexact[far] * gamma, mode[far], n[far], tuple(a[far] for a in law))
    p[far] += hypergeom.sf(at, m[far], n1[far], n[far])
    # Observed at or above the mode: the mirror image.
    up = off_mode & (x >= mode)
    p[up] = hypergeom.sf(x[up] - 1, m[up], n1[up], n[up])
    far = np.flatnonzero(up & ~(hypergeom.pmf(0, *law) > pexact * gamma))
    at = _search(1.0, pexact[far] * gamma, np.zeros_like(far), mode[far], tuple(a[far] for a in law))
    p[far] += hypergeom.cdf(at, m[far], n1[far], n[far])
    return np.minimum(p, 1.0)


def group_vs_rest_exact(success: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Two-sided Fisher exact p-value of each group against all other groups pooled, shape ``(G,)``.

    Group ``g``'s table is ``[[s_g, t_g - s_g], [S - s_g, (T - t_g) - (S - s_g)]]``. The p-values equal
    ``scipy.stats.fisher_exact(table).pvalue`` (its algorithm, vectorised over groups): 1.0 when no row
    or every row is a success; NaN when the group or the rest of the rows is empty.
    """
    s, t = _counts(success, "success"), _counts(total, "total")
    if s.ndim != 1 or s.shape != t.shape or np.any(s > t):
        raise ValueError("The 'success' and 'total' parameters must be 1-D counts of equal length with "
                         f"success <= total. Got shapes {s.shape} and {t.shape}.")
    big_s, big_t = int(s.sum()), int(t.sum())
    p = np.full(s.shape, np.nan)
    defined = (t > 0) & (t < big_t)
    if big_s in (0, big_t):
        p[defined] = 1.0  # a column of every table is empty: scipy's p is 1
        return p
    i = np.flatnonzero(defined)
    p[i] = _fisher_two_sided(s[i], np.full(i.size, big_t), t[i], np.full(i.size, big_s))
    return p


def adjust_pvalues(p: np.ndarray, method: str) -> np.ndarray:
    """Multiplicity-adjusted p-values: ``"holm"`` (Holm-Bonferroni step-down, controls the family-wise
    error) or ``"bh"`` (Benjamini-Hochberg step-up, controls the false discovery rate).

    Both are monotone in the raw p-values and capped at 1. NaN entries stay NaN and do not count in the
    family size.
    """
    if method not in ADJUST_METHODS:
        raise ValueError(f"The 'method' parameter of adjust_pvalues must be one of {list(ADJUST_METHODS)}. "
                         f"Got {method!r} instead.")
    arr = np.asarray(p, dtype=float)
    finite = ~np.isnan(arr)
    vals = arr[finite]
    if np.any((vals < 0) | (vals > 1)):
        raise ValueError("The 'p' parameter of adjust_pvalues must hold p-values in [0, 1] or NaN.")
    m = vals.size
    order = np.argsort(vals, kind="stable")
    ranked = vals[order]
    rank = np.arange(1, m + 1)
    if method == "holm":  # (m - i + 1) p_(i), running max from the smallest
        adj = np.maximum.accumulate((m - rank + 1) * ranked)
    else:  # m p_(i) / i, running min from the largest
        adj = np.minimum.accumulate((m * ranked / rank)[::-1])[::-1]
    out = np.full(arr.shape, np.nan)
    sorted_back = np.empty(m)
    sorted_back[order] = np.minimum(adj, 1.0)
    out[finite] = sorted_back
    return out


def clears_floor(metric: str, difference: float | None, ratio: float | None = None) -> bool | None:
    """Whether a max-min gap of ``metric`` is large enough to matter: ``difference >=
    PRACTICAL_FLOORS[metric]`` and, for a ratio node, also ``ratio <= 1 - RATIO_FLOOR`` (a ratio of two
    tiny rates, say ECE 0.0007 / 0.0010, is far from 1 yet no gap). None when a value is None/NaN."""
    if metric not in PRACTICAL_FLOORS:
        raise ValueError(f"The 'metric' parameter of clears_floor must be one of {sorted(PRACTICAL_FLOORS)}. "
                         f"Got {metric!r} instead.")
    if difference is None or not math.isfinite(difference) or ratio is not None and not math.isfinite(ratio):
        return None
    big = difference >= PRACTICAL_FLOORS[metric] - 1e-12
    return bool(big if ratio is None else big and 1.0 - ratio >= RATIO_FLOOR - 1e-12)


def floors_text() -> str:
    """The floors in one line, as results.json records them."""
    by_value: dict[float, list[str]] = {}
    for metric, floor in PRACTICAL_FLOORS.items():
        by_value.setdefault(floor, []).append(metric)
    diffs = "; ".join(f"{', '.join(ms)} >= {floor:g}" for floor, ms in by_value.items())
    return f"a gap is practical when its difference is {diffs} (a ratio: also <= {1 - RATIO_FLOOR:g})"


def _rates(p1: float | None, p2: float | None, alpha: float) -> tuple[float, float] | None:
    """Both rates as floats, or None when either is None/NaN; raises on values out of range."""
    if not 0 < alpha < 1:
        raise ValueError(f"The 'alpha' parameter must be in (0, 1). Got {alpha!r} instead.")
    if p1 is None or p2 is None or math.isnan(p1) or math.isnan(p2):
        return None
    if not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        raise ValueError(f"The 'p1' and 'p2' parameters must be proportions in [0, 1]. Got {p1!r}, {p2!r}.")
    return float(p1), float(p2)


def two_proportion_power(p1: float | None, p2: float | None, n1: int, n2: int, alpha: float = 0.05) -> float | None:
    """Power of the two-sided two-proportion z test at level ``alpha`` (normal approximation).

    With ``d = p1 - p2``, ``s0 = sqrt(pbar (1 - pbar) (1/n1 + 1/n2))`` (pooled, ``pbar`` the
    size-weighted mean rate) and ``s1 = sqrt(p1 q1 / n1 + p2 q2 / n2)``, the power is
    ``Phi((|d| - z s0) / s1) + Phi((-|d| - z s0) / s1)``, ``z = Phi^-1(1 - alpha / 2)``. None when a
    rate is None/NaN or a group is empty.
    """
    from scipy.stats import norm  # imported when run: keeps `auditor checks` fast

    rates = _rates(p1, p2, alpha)
    if rates is None or n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = rates
    z = norm.ppf(1 - alpha / 2)
    pbar = (n1 * p1 + n2 * p2) / (n1 + n2)
    s0 = math.sqrt(pbar * (1 - pbar) * (1 / n1 + 1 / n2))
    s1 = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    d = abs(p1 - p2)
    if s1 == 0:  # both rates are 0 or 1: the statistic is deterministic
        return 1.0 if d > z * s0 else 0.0
    return float(norm.cdf((d - z * s0) / s1) + norm.cdf((-d - z * s0) / s1))


def two_proportion_n(p1: float | None, p2: float | None, alpha: float = 0.05, power: float = 0.8,
                     ratio: float = 1.0) -> int | None:
    """Size ``n1`` of the first group (``n2 = ceil(ratio * n1)``) for the two-sided z test at level
    ``alpha`` to detect ``p1 != p2`` with the given power.

    Fleiss' formula (pooled variance under H0, unpooled under H1, no continuity correction)::

        n1 = (z_a sqrt(pbar qbar (1 + 1/r)) + z_b sqrt(p1 q1 + p2 q2 / r))^2 / (p1 - p2)^2

    with ``pbar = (p1 + r p2) / (1 + r)``, ``z_a = Phi^-1(1 - alpha/2)``, ``z_b = Phi^-1(power)``;
    rounded up, then raised while `two_proportion_power` is still below ``power`` (rarely by more than
    one). None when ``p1 == p2`` (no gap to detect) or a rate is None/NaN.
    """
    from scipy.stats import norm  # imported when run: keeps `auditor checks` fast

    if not 0 < power < 1:
        raise ValueError(f"The 'power' parameter must be in (0, 1). Got {power!r} instead.")
    if not ratio > 0 or not math.isfinite(ratio):
        raise ValueError(f"The 'ratio' parameter must be a positive number. Got {ratio!r} instead.")
    rates = _rates(p1, p2, alpha)
    if rates is None or rates[0] == rates[1]:
        return None
    p1, p2 = rates
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    pbar = (p1 + ratio * p2) / (1 + ratio)
    root = za * math.sqrt(pbar * (1 - pbar) * (1 + 1 / ratio)) + zb * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2) / ratio)
    n1 = max(1, math.ceil(root**2 / (p1 - p2) ** 2))
    for _ in range(10_000):  # guard: the approximation is monotone in n, so this stops within a few steps
        achieved = two_proportion_power(p1, p2, n1, math.ceil(ratio * n1), alpha)
        if achieved is not None and achieved >= power:
            break
        n1 += 1
    return n1
