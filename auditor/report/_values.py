"""Reading odd values from two results.json files: finite numbers, intervals, metric objects, cleaned
strings, plain JSON. Nothing here raises: what cannot be read is None.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

from auditor.report._format import NA, clean_text, fmt_num, short
from auditor.results import MetricEntry

__all__: list[str] = []  # private helpers of the comparison rows (`_rows`) and of `auditor.compare`


def _real(x: Any) -> float | int | None:
    """A finite number (bools read as 1/0, ints stay ints), else None."""
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x if abs(x) < 2**53 else float(x)
    if isinstance(x, float) and math.isfinite(x):
        return x
    return None


def _metric(x: Any) -> dict[str, Any] | None:
    """``{"value", "ci"[, "reason"]}`` of a metric object or bare number; None when the metric is absent."""
    if x is None:
        return None
    entry = MetricEntry.read(x)
    if entry is None:
        return None if isinstance(x, dict) else {"value": None, "ci": None}
    out: dict[str, Any] = {"value": entry.value, "ci": list(entry.ci) if entry.ci else None}
    if entry.value is None and entry.reason:
        out["reason"] = short(entry.reason, 300)
    return out


def _text(x: Any, width: int = 2000) -> str | None:
    """A string from the data, cleaned of control characters (None stays None)."""
    if x is None:
        return None
    return short(x, width) if isinstance(x, (str, int, float, bool)) else short(json.dumps(_jsonable(x)), width)


def _jsonable(x: Any, depth: int = 0) -> Any:
    """``x`` as plain JSON: NaN/inf -> None, strings cleaned, keys as strings, unknown objects as text."""
    if depth > 20:
        return short(x, 200)
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, str):
        return clean_text(x)
    if isinstance(x, dict):
        return {clean_text(k): _jsonable(v, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in x]
    if isinstance(x, os.PathLike):
        return clean_text(os.fspath(x))
    return short(x, 200)



def _signed(x: Any) -> str:
    v = _real(x)
    if v is None:
        return NA
    return ("+" if v > 0 else "−" if v < 0 else "±") + fmt_num(abs(v))
