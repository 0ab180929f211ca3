"""Shared by the bench scripts: how a value over seeds is printed in their Markdown tables."""
from __future__ import annotations

import statistics


def mean_sd(values: list[float]) -> str:
    """``mean ± sample sd`` to 3 decimals (sd 0 for a single value)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"
