"""Vectorised bootstrap intervals for counting metrics.

Accuracy and the one-vs-rest rates depend only on each group's confusion counts, so a resample of the
N audited rows is one multinomial draw over the (group x true class x predicted class) cells: B
resamples cost O(B x cells), whatever N is, with no Python loop per resample. A group can vanish from
a resample (its rates are then NaN and left out of that resample's disparities).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

__all__ = ["confusion_cells", "resample_cells", "rates_from_cells", "disparity_draws", "interval"]


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


def rates_from_cells(c: np.ndarray, positive: int | None) -> dict[str, np.ndarray]:
    """Per-group accuracy, selection rate, TPR, FPR from counts ``(..., G, K, K)``.

    ``positive`` is the class for binary rates; ``None`` averages the one-vs-rest rates over classes
    (NaN-aware, like the point estimates).
    """
    k = c.shape[-1]
    n = c.sum(axis=(-2, -1)).astype(float)
    acc = _div(np.trace(c, axis1=-2, axis2=-1).astype(float), n)
    classes: Sequence[int] = [positive] if positive is not None else range(k)
    sel, tpr, fpr = [], [], []
    for pos in classes:
        pred_pos = c[..., :, pos].sum(axis=-1).astype(float)
        tp = c[..., pos, pos].astype(float)
        actual_pos = c[..., pos, :].sum(axis=-1).astype(float)
        sel.append(_div(pred_pos, n))
        tpr.append(_div(tp, actual_pos))
        fpr.append(_div(pred_pos - tp, n - actual_pos))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: a class absent from a group
        out = {"accuracy": acc, "selection_rate": np.nanmean(sel, axis=0), "tpr": np.nanmean(tpr, axis=0),
               "fpr": np.nanmean(fpr, axis=0)}
    out["n"] = n
    return out


def disparity_draws(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per resample: difference (max - min), ratio (min / max) and min over the group axis (last)."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample where every group vanished
        lo = np.nanmin(values, axis=-1)
        hi = np.nanmax(values, axis=-1)
        ratio = np.where(hi > 0, lo / np.where(hi > 0, hi, 1), np.where(lo == hi, 1.0, np.nan))
        return {"difference": hi - lo, "ratio": ratio, "min": lo}


def interval(draws: np.ndarray, level: float) -> list[float] | None:
    """Percentile interval of the finite draws at ``level`` (e.g. 0.95); None when under half are finite."""
    finite = draws[np.isfinite(draws)]
    if finite.size < max(2, draws.size // 2):
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return [round(float(lo), 6), round(float(hi), 6)]
