"""How the report writes numbers, metric values and names: shared by the HTML and Markdown reports.

Every function here accepts whatever a (possibly partial or hand-edited) ``results.json`` holds
and never raises on an unexpected type: a report must render whatever the run managed to record.
"""
from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup, escape

__all__ = [
    "NA",
    "as_dict",
    "as_list",
    "dig",
    "fmt_num",
    "fmt_plain",
    "fmt_prose",
    "is_metric",
    "metric_html",
    "metric_label",
    "metric_text",
    "metric_value",
]

NA = "n/a"

# Readable names for the metric stems the checks write; anything else is de-snake-cased.
_LABELS = {
    "accuracy": "Accuracy",
    "selection_rate": "Selection rate",
    "tpr": "True positive rate",
    "fpr": "False positive rate",
    "equalized_odds": "Equalized odds",
    "worst_group_accuracy": "Worst-group accuracy",
    "n": "n",
}
_METRIC_KEYS = {"value", "ci", "groups", "reason"}


def as_dict(x: Any) -> dict[str, Any]:
    """``x`` if it is a dict, else an empty one."""
    return x if isinstance(x, dict) else {}


def as_list(x: Any) -> list[Any]:
    """``x`` if it is a list or tuple, else an empty list."""
    return list(x) if isinstance(x, (list, tuple)) else []


def dig(x: Any, *keys: str) -> Any:
    """``x[k1][k2]...`` or None as soon as a level is missing or not a dict."""
    for k in keys:
        if not isinstance(x, dict):
            return None
        x = x.get(k)
    return x


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def fmt_num(x: Any, digits: int = 3) -> str:
    """A table number: floats to ``digits`` decimals, ints as they are, None/NaN as "n/a"."""
    if x is None:
        return NA
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return NA
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        text = f"{x:.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"
    return str(x)


def fmt_plain(x: Any) -> str:
    """A configured value (threshold, parameter) as the user wrote it: 0.8 stays "0.8"."""
    if isinstance(x, float) and math.isfinite(x):
        return f"{x:.6g}"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(fmt_plain(v) for v in x) + "]"
    if x is None:
        return NA
    return fmt_num(x)


def fmt_prose(x: Any) -> str:
    """A number in a sentence: two decimals, three when two would hide a non-zero value."""
    if not _is_real(x) or isinstance(x, float) and not math.isfinite(x):
        return fmt_num(x)
    if isinstance(x, int):
        return str(x)
    return fmt_num(x, 2) if abs(x) >= 0.005 or x == 0 else fmt_num(x, 3)


def is_metric(x: Any) -> bool:
    """True for a ``{value, ci, ...}`` metric object."""
    return isinstance(x, dict) and "value" in x and set(x) <= _METRIC_KEYS


def metric_value(x: Any) -> float | None:
    """The number inside a metric object (or a bare number); None when absent or not finite."""
    v = x.get("value") if isinstance(x, dict) else x
    if _is_real(v) and math.isfinite(v):
        return float(v)
    return None


def _ci(x: Any) -> tuple[Any, Any] | None:
    ci = x.get("ci") if isinstance(x, dict) else None
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_is_real(v) for v in ci):
        return ci[0], ci[1]
    return None


def _reason(x: Any) -> str | None:
    reason = x.get("reason") if isinstance(x, dict) else None
    return str(reason) if reason not in (None, "") else None


def metric_text(x: Any, with_reason: bool = True) -> str:
    """Plain text of a metric: "0.912 [0.880, 0.940]", or "n/a (reason)"."""
    v = x.get("value") if isinstance(x, dict) else x
    if v is None or (isinstance(v, float) and math.isnan(v)):
        reason = _reason(x) if with_reason else None
        return f"{NA} ({reason})" if reason else NA
    text = fmt_num(v)
    ci = _ci(x)
    if ci is not None:
        text += f" [{fmt_num(ci[0])}, {fmt_num(ci[1])}]"
    return text


def metric_html(x: Any) -> Markup:
    """HTML of a metric: the value, the interval in a quieter type, or "n/a" with its reason."""
    v = x.get("value") if isinstance(x, dict) else x
    if v is None or (isinstance(v, float) and math.isnan(v)):
        reason = _reason(x)
        out = Markup('<span class="na">n/a</span>')
        if reason:
            out += Markup(' <span class="reason">(%s)</span>') % reason
        return out
    if isinstance(v, (dict, list)):
        return escape(str(v))
    out = Markup('<span class="num">%s</span>') % fmt_num(v)
    ci = _ci(x)
    if ci is not None:
        out += Markup(' <span class="ci">[%s, %s]</span>') % (fmt_num(ci[0]), fmt_num(ci[1]))
    return out


def metric_label(name: Any) -> str:
    """A readable name for a metric key: "tpr" -> "True positive rate", "foo_bar" -> "Foo bar"."""
    key = str(name)
    if key in _LABELS:
        return _LABELS[key]
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else key
