"""Comparison rows: one metric of a check before and after (change, direction, significance), and the
primitives a presenter builds its rows from (`metric_row`, `leaf_rows`, `keys_of`). They live here, in the
report layer, so that each check's presenter can build its own rows; `auditor.compare` assembles them.

Which way is better and how a metric is called come from the presenters (`Presenter.directions`,
`Presenter.labels`), then from the rules for common names (accuracy, ratios, differences).
"""
from __future__ import annotations

import math
from typing import Any

from auditor.report._format import as_dict, clean_text, dig, metric_label
from auditor.report._values import _metric
from auditor.report._registry import metric_direction, presenter_label

__all__ = ["EPS", "add_row", "higher_is_better", "is_metric_entry", "keys_of", "leaf_rows", "metric_row", "row_label",
           "significance"]

EPS = 1e-9  # changes smaller than this are "unchanged"

# Which way is better for the rates every classifier has (a presenter names its own metrics).
_HIGHER = {"accuracy", "tpr", "tnr", "precision"}
_LOWER = {"error_rate", "fnr", "fpr", "ece", "brier"}
_ALIASES = {"demographic_parity_": "selection_rate_", "equal_opportunity_": "tpr_"}


def higher_is_better(key: Any) -> bool | None:
    """Whether a larger value of metric ``key`` is better: True, False, or None when neither (selection rate)."""
    k = str(key)
    known = metric_direction(k)
    if known is not None:
        return known
    if k in _HIGHER:
        return True
    if k in _LOWER:
        return False
    if k.endswith("_ratio"):
        return True  # min/max ratios: 1 is parity
    if "difference" in k or k.endswith("_gap"):
        return False
    if k.endswith("_accuracy"):
        return True
    return None


def row_label(key: str) -> str:
    """A metric's name in a comparison: the presenter's label, else the report's."""
    return presenter_label(key) or metric_label(key)


def significance(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """"significant" when the after value lies outside the before interval AND the before value lies outside
    the after interval (both intervals present); "not significant" when both intervals are present and that
    fails; "no interval" when a value has no interval; "n/a" when a value is missing. Non-overlapping
    intervals are not used as the criterion."""
    bv, av = dig(before, "value"), dig(after, "value")
    if bv is None or av is None:
        return "n/a"
    bci, aci = dig(before, "ci"), dig(after, "ci")
    if not bci or not aci:
        return "no interval"
    outside_before = not (bci[0] <= av <= bci[1])
    outside_after = not (aci[0] <= bv <= aci[1])
    return "significant" if outside_before and outside_after else "not significant"


def _change(bv: Any, av: Any) -> float | int | None:
    if bv is None or av is None:
        return None
    d = av - bv
    if isinstance(d, float):
        d = round(d, 12)
        if not math.isfinite(d):
            return None
    return d


def _direction(change: Any, hib: bool | None) -> str:
    if change is None:
        return "n/a"
    if abs(change) <= EPS:
        return "unchanged"
    if hib is None:
        return "changed"
    return "improved" if (change > 0) == hib else "worsened"


def metric_row(section: str, key: str, label: str, before: Any, after: Any, hib: bool | None, *,
               key_metric: bool = False, **extra: Any) -> dict[str, Any] | None:
    """A comparison row, or None when neither side has the metric."""
    b, a = _metric(before), _metric(after)
    if b is None and a is None:
        return None
    present = "both" if b is not None and a is not None else "before" if b is not None else "after"
    b = b or {"value": None, "ci": None}
    a = a or {"value": None, "ci": None}
    change = _change(b["value"], a["value"])
    sig = significance(b, a)
    row = {"section": section, "key": key, "label": label, "present": present, "before": b, "after": a,
           "change": change, "higher_is_better": hib, "direction": _direction(change, hib),
           "significance": sig, "significant": sig == "significant", "key_metric": key_metric}
    row.update(extra)
    return row


def add_row(rows: list[dict[str, Any]], row: dict[str, Any] | None) -> None:
    """Append ``row`` unless it is None (neither side had the metric)."""
    if row is not None:
        rows.append(row)


def keys_of(*dicts: Any) -> list[str]:
    """The keys of the dicts in first-seen order (before's order, then after's new keys)."""
    seen: dict[str, None] = {}
    for d in dicts:
        for k in as_dict(d):
            if isinstance(k, str):
                seen.setdefault(k, None)
    return list(seen)


def _scope_kind(scope: str, *entries: Any) -> str:
    for e in entries:
        kind = dig(e, "scope", "kind")
        if isinstance(kind, str):
            return "intersection" if kind == "intersection" else "attribute"
    return "intersection" if "+" in scope else "attribute"


def _alias_of(key: str) -> str | None:
    """The key an alias repeats ("demographic_parity_ratio" -> "selection_rate_ratio"), else None."""
    for alias, base in _ALIASES.items():
        if key.startswith(alias):
            return base + key[len(alias):]
    return None


def is_metric_entry(x: Any) -> bool:
    """Whether ``x`` is a metric object (a dict with a ``value``)."""
    return isinstance(x, dict) and "value" in x


def leaf_rows(section: str, scope: str, b: Any, a: Any, rows: list[dict[str, Any]],
              key_metrics: set[str] | None = None) -> None:
    """A row for each ``{value, ...}`` leaf of the scope ``scope`` on either side."""
    kind = _scope_kind(scope, b, a)
    keys = keys_of(b, a)
    for key in keys:
        if key == "scope" or _alias_of(key) in keys:  # demographic_parity_* repeats selection_rate_*, etc.
            continue
        bx, ax = as_dict(b).get(key), as_dict(a).get(key)
        if not is_metric_entry(bx) and not is_metric_entry(ax):
            continue
        add_row(rows, metric_row(section, f"{section}.{scope}.{key}", f"{clean_text(scope)}: {row_label(key)}", bx, ax,
                                 higher_is_better(key), key_metric=key_metrics is not None and key in key_metrics and
                                 kind == "attribute", scope=clean_text(scope), scope_kind=kind, metric=key))
