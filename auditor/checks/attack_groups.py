"""Robust accuracy per group and intersection: the group-metrics check run on the adversarial answers.

An attack leaves, for each attacked image, the class the model gives the adversarial image. Robust
accuracy is the accuracy of those answers; its intervals, the gaps between groups and their tests are
exactly the group-metrics ones (`auditor.checks.group_metrics`), so robustness and fairness numbers
read the same way and share one implementation.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from auditor.checks.base import CheckContext, Predictions
from auditor.checks.group_metrics import GroupMetrics

__all__ = ["robust_accuracy_by_group", "GAP_METRICS"]

GAP_METRICS = ("accuracy_difference", "accuracy_ratio", "worst_group_accuracy")


def robust_accuracy_by_group(
    ctx: CheckContext, rows: np.ndarray, adv_logits: np.ndarray, *, n_boot: int = 1000, n_perm: int = 2000,
    min_group_size: int = 30, max_intersection_order: int = 3,
) -> dict[str, Any]:
    """Robust accuracy of ``ctx.predictions`` rows ``rows`` whose adversarial logits are ``adv_logits``
    (``(len(rows), C)``; one-hot scores do for label-only attacks).

    Returns ``{"overall": {n, accuracy}, "scopes": {SCOPE: {GAP: {...}, "groups": {GROUP: {n,
    insufficient_data, accuracy}}}}}`` with every value as group metrics writes it (``{value, ci, ...}``).
    """
    rows = np.asarray(rows, dtype=np.int64)
    adv_logits = np.asarray(adv_logits, dtype=float)
    if adv_logits.ndim != 2 or len(adv_logits) != len(rows):
        raise ValueError(f"The 'adv_logits' parameter must have shape ({len(rows)}, C). Got {adv_logits.shape} instead.")
    pred = ctx.predictions
    attacked = Predictions(index=pred.index[rows], logits=adv_logits, y_true=pred.y_true[rows],
                           y_pred=adv_logits.argmax(axis=1))
    check = GroupMetrics(n_boot=n_boot, n_perm=n_perm, min_group_size=min_group_size,
                         max_intersection_order=max_intersection_order)
    result = check.run(dataclasses.replace(ctx, predictions=attacked, progress=None))
    out: dict[str, Any] = {"overall": {"n": result.metrics["overall"]["n"],
                                       "accuracy": result.metrics["overall"]["accuracy"]}, "scopes": {}}
    for scope, metrics in result.metrics.items():
        if scope == "overall":
            continue
        entry = {m: metrics[m] for m in GAP_METRICS if m in metrics}
        if "reason" in metrics:
            entry["reason"] = metrics["reason"]
        entry["scope"] = metrics.get("scope")
        entry["groups"] = {g: {"n": v["n"], "insufficient_data": v["insufficient_data"], "accuracy": v["accuracy"]}
                           for g, v in result.by_group.get(scope, {}).items()}
        out["scopes"][scope] = entry
    return out
