"""Vectorised bootstrap intervals for counting metrics.

Accuracy and the one-vs-rest rates depend only on each group's confusion counts, so a resample of the
N audited rows is one multinomial draw over the (group x true class x predicted class) cells: B
resamples cost O(B x cells), whatever N is, with no Python loop per resample. A group can vanish from
a resample (its rates are then NaN and left out of that resample's disparities).
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from auditor.results import metric, no_metric

__all__ = [
    "COUNT_RATES", "ONE_VS_REST", "confusion_cells", "resample_cells", "one_vs_rest_counts", "rates_from_cells",
    "proportion_counts", "ratio_of", "disparity_draws", "mean_draws", "interval", "mean_summary", "rounded",
    "rounded_list", "wilson", "wilson_ci", "share",
]


def confusion_cells(y_true: np.ndarray, y_pred: np.ndarray, group_codes: np.ndarray, n_groups: int, k: int) -> np.ndarray:
    """Counts ``C[g, i, j]``: rows of group ``g`` with true class ``i`` predicted as ``j``."""
    flat = (group_codes * k + y_true) * k + y_pred
    return np.bincount(flat, minlength=n_groups * k * k).reshape(n_groups, k, k).astype(np.int64)


def resample_cells(cells: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` bootstrap resamples of all rows: shape ``(n_boot, G, K, K)``."""
    total = int(cells.sum())
    p = cells.reshape(-1) / total
    return rng.multinomial(total, p, size=n_boot).reshape((n_boot, *cells.shape))


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


COUNT_RATES: tuple[str, ...] = ("accuracy", "error_rate", "selection_rate", "tpr", "fnr", "fpr", "tnr", "precision")
"""Rates that depend only on the confusion counts, in report order."""
ONE_VS_REST: tuple[str, ...] = ("selection_rate", "tpr", "fnr", "fpr", "tnr", "precision")
"""Rates defined per class (one-vs-rest); multi-class models average them over classes (macro)."""


def one_vs_rest_counts(c: np.ndarray, pos: int) -> dict[str, np.ndarray]:
    """TP, FP, FN, TN of class ``pos`` one-vs-rest from counts ``(..., K, K)`` (float arrays)."""
    tp = c[..., pos, pos].astype(float)
    pred_pos = c[..., :, pos].sum(axis=-1).astype(float)
    actual_pos = c[..., pos, :].sum(axis=-1).astype(float)
    n = c.sum(axis=(-2, -1)).astype(float)
    return {"tp": tp, "fp": pred_pos - tp, "fn": actual_pos - tp, "tn": n - pred_pos - actual_pos + tp}


def _ovr_rates(c: np.ndarray, pos: int) -> dict[str, np.ndarray]:
    q = one_vs_rest_counts(c, pos)
    n = q["tp"] + q["fp"] + q["fn"] + q["tn"]
    return {
        "selection_rate": _div(q["tp"] + q["fp"], n),
        "tpr": _div(q["tp"], q["tp"] + q["fn"]),
        "fnr": _div(q["fn"], q["tp"] + q["fn"]),
        "fpr": _div(q["fp"], q["fp"] + q["tn"]),
        "tnr": _div(q["tn"], q["fp"] + q["tn"]),
        "precision": _div(q["tp"], q["tp"] + q["fp"]),
    }


def rates_from_cells(c: np.ndarray, positive: int | None, per_class: bool = False) -> dict[str, np.ndarray]:
    """Per-group rates (`COUNT_RATES`) and ``n`` from counts ``(..., G, K, K)``; NaN where undefined.

    ``positive`` is the class for binary rates; ``None`` averages the one-vs-rest rates over classes
    (NaN-aware macro mean). With ``per_class``, ``out["per_class"][rate]`` has shape ``(..., G, K)``.
    """
    k = c.shape[-1]
    n = c.sum(axis=(-2, -1)).astype(float)
    acc = _div(np.trace(c, axis1=-2, axis2=-1).astype(float), n)
    out: dict[str, Any] = {"accuracy": acc, "error_rate": np.where(np.isnan(acc), np.nan, 1.0 - acc)}
    classes: Sequence[int] = [positive] if positive is not None else range(k)
    rows = [_ovr_rates(c, pos) for pos in classes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: a class absent from a group
        for m in ONE_VS_REST:
            stacked = np.stack([r[m] for r in rows], axis=-1)
            out[m] = stacked[..., 0] if positive is not None else np.nanmean(stacked, axis=-1)
            if per_class:
                out.setdefault("per_class", {})[m] = stacked
    out["n"] = n
    return out


def proportion_counts(c: np.ndarray, positive: int | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(successes, trials) per group for each rate that is one proportion, from counts ``(G, K, K)``.

    These feed the exact tests. Macro averages of several classes are not one proportion, so
    multi-class models get only accuracy (and its complement, the error rate).
    """
    n = c.sum(axis=(-2, -1)).astype(np.int64)
    correct = np.trace(c, axis1=-2, axis2=-1).astype(np.int64)
    out = {"accuracy": (correct, n), "error_rate": (n - correct, n)}
    if positive is None:
        return out
    q = {key: v.astype(np.int64) for key, v in one_vs_rest_counts(c, positive).items()}
    out.update({
        "selection_rate": (q["tp"] + q["fp"], n),
        "tpr": (q["tp"], q["tp"] + q["fn"]),
        "fnr": (q["fn"], q["tp"] + q["fn"]),
        "fpr": (q["fp"], q["fp"] + q["tn"]),
        "tnr": (q["tn"], q["fp"] + q["tn"]),
        "precision": (q["tp"], q["tp"] + q["fp"]),
    })
    return out


def ratio_of(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``lo / hi`` elementwise; 1 where both are 0, NaN where only ``hi`` is (or either is NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hi > 0, lo / np.where(hi > 0, hi, 1), np.where(lo == hi, 1.0, np.nan))


def disparity_draws(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per resample: difference (max - min), ratio (min / max) and min over the group axis (last)."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample where every group vanished
        lo = np.nanmin(values, axis=-1)
        hi = np.nanmax(values, axis=-1)
        return {"difference": hi - lo, "ratio": ratio_of(lo, hi), "min": lo}


def mean_draws(values: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """``n_boot`` bootstrap means of ``values`` (1-D, non-empty): each a mean of a resample with replacement."""
    return values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)


def interval(draws: np.ndarray, level: float) -> list[float] | None:
    """Percentile interval of the finite draws at ``level`` (e.g. 0.95); None when under half are finite."""
    finite = draws[np.isfinite(draws)]
    if finite.size < max(2, draws.size // 2):
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return [round(float(lo), 6), round(float(hi), 6)]


def wilson(successes: Any, trials: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (Wilson 1927; Newcombe 1998, method 3) of ``successes / trials``, elementwise.

    Unlike a percentile bootstrap it does not collapse at 0 or 1 (0/300 gives [0, 0.0126], not [0, 0]),
    and it stays inside [0, 1]. NaN where ``trials`` is 0.
    """
    from statistics import NormalDist

    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    bad = ~(n > 0)
    return np.where(bad, np.nan, np.where(k <= 0, 0.0, lo)), np.where(bad, np.nan, np.where(k >= n, 1.0, hi))


def wilson_ci(successes: Any, trials: Any, level: float = 0.95) -> list[float] | None:
    """`wilson` of one proportion as a results.json interval ``[lo, hi]`` (6 places); None when ``trials`` is 0."""
    lo, hi = wilson(successes, trials, level)
    return None if not np.isfinite(lo) else [round(float(lo), 6), round(float(hi), 6)]


def share(flags: Any, level: float = 0.95, reason: str = "no image") -> dict[str, Any]:
    """The share of True in a bool array with its `wilson_ci` interval, or no value and ``reason`` when empty."""
    v = np.asarray(flags, dtype=bool).ravel()
    if v.size == 0:
        return no_metric(reason)
    return metric(rounded(v.mean()), wilson_ci(int(v.sum()), v.size, level))


def mean_summary(values: Any, rng: np.random.Generator, reason: str, n_boot: int = 1000, level: float = 0.95) -> dict[str, Any]:
    """``{value, ci, reason}``: the mean of the finite values with a seeded percentile bootstrap interval,
    or ``value`` None and ``reason`` when there is none."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return no_metric(reason)
    return metric(rounded(v.mean()), interval(mean_draws(v, rng, n_boot), level), reason=None)


def rounded(x: Any) -> float | None:
    """A float rounded to 6 places for results.json; None for None, NaN or infinity."""
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def rounded_list(xs: Any) -> list[float | None]:
    """`rounded` over a flattened array."""
    return [rounded(v) for v in np.asarray(xs, dtype=float).ravel()]
