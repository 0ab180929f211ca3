"""The presenters registered so far, by check name, and what the comparison rows read of them (labels and
directions of metrics). Kept apart from `auditor.report.presenter` so that the row primitives (`_rows`)
can read it while the generic presenter builds rows with them."""
from __future__ import annotations

from typing import Any

__all__ = ["REGISTRY", "metric_direction", "presenter_label"]

REGISTRY: dict[str, Any] = {}
"""Check name -> its presenter (a `Presenter`, not imported here: that would be a cycle); written by
`auditor.report.presenter.register_presenter`."""


def metric_direction(key: str) -> bool | None:
    """Whether a larger value of metric ``key`` is better, as a registered presenter declares it; None if none does."""
    for p in REGISTRY.values():
        if key in p.directions:
            return p.directions[key]
    return None


def presenter_label(key: str) -> str | None:
    """The comparison label a registered presenter gives metric ``key``, else None."""
    for p in REGISTRY.values():
        if key in p.labels:
            return p.labels[key]
    return None
