"""Group metrics: accuracy, selection rate, TPR and FPR per group of each sensitive attribute, with
the disparities between groups (difference and ratio), computed with fairlearn's `MetricFrame`.

Binary models use the positive class; multi-class models use one-vs-rest rates averaged over the
classes (macro). Groups smaller than ``min_group_size`` are reported but flagged
``insufficient_data`` and left out of the disparities. Every value carries a seeded percentile
bootstrap interval (``ci``), computed from multinomial resamples of the confusion cells
(`auditor.checks.bootstrap`).
"""
from __future__ import annotations

import functools
import logging
import time
import zlib
from typing import Any, Callable

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import accuracy_score

from auditor.checks import bootstrap as boot
from auditor.checks.base import Check, CheckContext, CheckResult, Param
from auditor.checks.registry import register_check

__all__ = ["GroupMetrics", "RATE_METRICS", "DISPARITY_METRICS"]

log = logging.getLogger(__name__)

RATE_METRICS: tuple[str, ...] = ("accuracy", "selection_rate", "tpr", "fpr")
DISPARITY_METRICS: tuple[str, ...] = tuple(
    f"{m}_{kind}" for m in RATE_METRICS for kind in ("difference", "ratio")
) + ("equalized_odds_difference", "worst_group_accuracy")


def _value(x: float | None) -> dict[str, Any]:
    v = None if x is None or not np.isfinite(x) else round(float(x), 6)
    return {"value": v, "ci": None}


def _binary_frame(y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series, pos: int) -> pd.DataFrame:
    """Per-group selection rate, TPR, FPR for class ``pos`` one-vs-rest; NaN where undefined."""
    yt = (y_true == pos).astype(int)
    yp = (y_pred == pos).astype(int)
    metrics: dict[str, Callable[..., float]] = {
        "selection_rate": functools.partial(selection_rate, pos_label=1),
        "tpr": functools.partial(true_positive_rate, pos_label=1),
        "fpr": functools.partial(false_positive_rate, pos_label=1),
        "positives": lambda t, p: float(np.sum(t == 1)),
        "negatives": lambda t, p: float(np.sum(t == 0)),
    }
    frame = MetricFrame(metrics=metrics, y_true=yt, y_pred=yp, sensitive_features=groups).by_group
    # fairlearn returns 0 for a rate with an empty denominator; undefined is the honest answer.
    frame.loc[frame["positives"] == 0, "tpr"] = np.nan
    frame.loc[frame["negatives"] == 0, "fpr"] = np.nan
    return frame[["selection_rate", "tpr", "fpr"]]


def per_group_table(
    y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series, classes: int, positive: int | None
) -> pd.DataFrame:
    """One row per group with ``n``, accuracy, selection_rate, tpr, fpr (float, NaN where undefined)."""
    base = MetricFrame(
        metrics={"n": lambda t, p: float(len(t)), "accuracy": accuracy_score},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    ).by_group
    if classes == 2 or positive is not None:
        rates = _binary_frame(y_true, y_pred, groups, 1 if positive is None else positive)
    else:
        per_class = [_binary_frame(y_true, y_pred, groups, k) for k in range(classes)]
        rates = pd.concat(per_class).groupby(level=0).mean()  # nan-aware macro mean
    out = base.join(rates)
    out.index = out.index.astype(str)
    return out


def disparities(table: pd.DataFrame, min_group_size: int) -> dict[str, dict[str, Any]]:
    """Difference (max - min) and ratio (min / max) of each rate over the groups with enough data."""
    eligible = table[table["n"] >= min_group_size]
    out: dict[str, dict[str, Any]] = {}
    for metric in RATE_METRICS:
        col = eligible[metric].dropna()
        if len(col) < 2:
            reason = f"fewer than two groups with at least {min_group_size} samples and a defined {metric}"
            for kind in ("difference", "ratio"):
                out[f"{metric}_{kind}"] = {"value": None, "ci": None, "groups": [], "reason": reason}
            continue
        lo_g, hi_g = str(col.idxmin()), str(col.idxmax())
        if lo_g == hi_g:  # every group equal: name two different groups
            lo_g, hi_g = str(col.index[0]), str(col.index[-1])
        lo, hi = float(col.min()), float(col.max())
        out[f"{metric}_difference"] = {**_value(hi - lo), "groups": [lo_g, hi_g]}
        ratio = lo / hi if hi > 0 else (1.0 if lo == hi else None)
        out[f"{metric}_ratio"] = {**_value(ratio), "groups": [lo_g, hi_g]}
    tpr_d, fpr_d = out["tpr_difference"]["value"], out["fpr_difference"]["value"]
    if tpr_d is None or fpr_d is None:
        out["equalized_odds_difference"] = {"value": None, "ci": None, "groups": [], "reason": "TPR or FPR gap undefined"}
    else:
        pick = out["tpr_difference"] if tpr_d >= fpr_d else out["fpr_difference"]
        out["equalized_odds_difference"] = {**_value(max(tpr_d, fpr_d)), "groups": pick["groups"]}
    acc = eligible["accuracy"].dropna()
    if len(acc):
        out["worst_group_accuracy"] = {**_value(float(acc.min())), "groups": [str(acc.idxmin())]}
    else:
        out["worst_group_accuracy"] = {"value": None, "ci": None, "groups": [], "reason": "no group is large enough"}
    return out


def _add_intervals(
    by_group: dict[str, Any], disp: dict[str, dict[str, Any]], table: pd.DataFrame, y_true: np.ndarray,
    y_pred: np.ndarray, groups: pd.Series, k: int, positive: int | None, min_n: int, n_boot: int, level: float,
    rng: np.random.Generator,
) -> None:
    """Fill the ``ci`` of each per-group rate and each disparity from one vectorised bootstrap."""
    names = [str(g) for g in table.index]
    codes = groups.map({g: i for i, g in enumerate(names)}).to_numpy()
    draws = boot.rates_from_cells(boot.resample_cells(boot.confusion_cells(y_true, y_pred, codes, len(names), k), n_boot, rng), positive)
    for gi, g in enumerate(names):
        for m in RATE_METRICS:
            if by_group[g][m]["value"] is not None:
                by_group[g][m]["ci"] = boot.interval(draws[m][:, gi], level)
    eligible = np.array([table.loc[g, "n"] >= min_n for g in table.index])
    if eligible.sum() < 2:
        return
    spreads = {m: boot.disparity_draws(draws[m][:, eligible]) for m in RATE_METRICS}
    for m in RATE_METRICS:
        for kind in ("difference", "ratio"):
            if disp[f"{m}_{kind}"]["value"] is not None:
                disp[f"{m}_{kind}"]["ci"] = boot.interval(spreads[m][kind], level)
    if disp["equalized_odds_difference"]["value"] is not None:
        eo = np.fmax(spreads["tpr"]["difference"], spreads["fpr"]["difference"])
        disp["equalized_odds_difference"]["ci"] = boot.interval(eo, level)
    if disp["worst_group_accuracy"]["value"] is not None:
        disp["worst_group_accuracy"]["ci"] = boot.interval(spreads["accuracy"]["min"], level)


def _rng(seed: int, name: str) -> np.random.Generator:
    """A generator per attribute, fixed by the audit seed and the attribute's name."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


@register_check
class GroupMetrics(Check):
    """Per-group rates and their disparities for each sensitive attribute (fairlearn `MetricFrame`)."""

    name = "group_metrics"
    description = "Accuracy, selection rate, TPR and FPR per group, with differences and ratios between groups."
    order = 10
    params = {
        "min_group_size": Param(int, 30, "groups smaller than this are flagged insufficient_data and left out of disparities", low=1),
        "n_boot": Param(int, 1000, "bootstrap resamples for the intervals (0: no intervals)", low=0, high=100_000),
        "confidence": Param(float, 0.95, "confidence level of the intervals", low=0.5, high=0.999),
    }
    metric_names = RATE_METRICS + DISPARITY_METRICS + ("n",)

    def run(self, ctx: CheckContext) -> CheckResult:
        start = time.perf_counter()
        pred = ctx.predictions
        n_classes = len(ctx.classes)
        positive = ctx.positive_class if n_classes == 2 else None
        min_n = self.config["min_group_size"]
        table = ctx.probe.table.loc[pred.index]
        result = CheckResult(params={**self.config, "positive_class": ctx.classes[ctx.positive_class] if positive is not None else None,
                                     "averaging": "binary" if positive is not None else "macro one-vs-rest"})

        n_boot, level = self.config["n_boot"], self.config["confidence"]
        everyone = pd.Series(["all"] * len(pred), index=table.index)
        overall_tab = per_group_table(pred.y_true, pred.y_pred, everyone, n_classes, positive)
        overall = {"all": {m: _value(overall_tab.iloc[0][m]) for m in RATE_METRICS}}
        if n_boot:
            _add_intervals(overall, {}, overall_tab, pred.y_true, pred.y_pred, everyone, n_classes, positive, min_n,
                           n_boot, level, _rng(ctx.seed, "overall"))
        result.metrics["overall"] = {"n": int(overall_tab.iloc[0]["n"]), **overall["all"]}
        for done, attr in enumerate(ctx.attributes):
            ctx.report(self.name, done, len(ctx.attributes))
            col = table[attr]
            known = col.notna().to_numpy()
            if not known.any():
                result.metrics[attr] = {"reason": f"no sample has a value for {attr}"}
                result.by_group[attr] = {}
                continue
            groups = col[known].astype(str)
            tab = per_group_table(pred.y_true[known], pred.y_pred[known], groups, n_classes, positive)
            result.by_group[attr] = {
                str(g): {
                    "n": int(row["n"]),
                    "insufficient_data": bool(row["n"] < min_n),
                    **{m: _value(row[m]) for m in RATE_METRICS},
                }
                for g, row in tab.iterrows()
            }
            result.metrics[attr] = disparities(tab, min_n)
            if n_boot:
                _add_intervals(result.by_group[attr], result.metrics[attr], tab, pred.y_true[known], pred.y_pred[known],
                               groups, n_classes, positive, min_n, n_boot, level, _rng(ctx.seed, attr))
        ctx.report(self.name, len(ctx.attributes), len(ctx.attributes))
        result.seconds = time.perf_counter() - start
        return result
