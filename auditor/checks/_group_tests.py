"""The group-metrics check's p-values: how they are rounded, how many permutations a test can afford,
their adjustment within a family of tests, and the complementary rates that share a test."""
from __future__ import annotations

from typing import Any

import numpy as np

from auditor.checks import significance as sig

__all__ = ["TWIN", "CALIBRATION_PERMUTATIONS", "MAX_DRAWS", "rounded_p", "affordable", "adjust", "copy_twins"]

TWIN = {"error_rate": "accuracy", "fnr": "tpr", "tnr": "fpr"}
"""Rates whose test is their complement's (error rate shares accuracy's, FNR TPR's, TNR FPR's)."""
CALIBRATION_PERMUTATIONS = 2000
"""At most this many permutations for ECE and Brier gaps: their cells are groups x bins x correct."""
MAX_DRAWS = 3_000_000
"""Hypergeometric draws one permutation test may take (about 0.5 s on one core): many groups x many
classes or confidence bins get fewer permutations (at least 1,000)."""


def rounded_p(x: Any) -> float | None:
    """A p-value to 4 significant digits (never rounded to 0 as fixed decimals would); None if not finite."""
    return None if x is None or not np.isfinite(x) else float(f"{float(x):.4g}")


def affordable(n_perm: int, cells: np.ndarray) -> int:
    """``n_perm``, or fewer (at least 1,000) when the groups x live cells would cost more than `MAX_DRAWS`."""
    flat = cells.reshape(len(cells), -1)
    per_perm = max(1, (len(cells) - 1) * (int((flat.sum(axis=0) > 0).sum()) - 1))
    return int(min(n_perm, max(min(n_perm, 1000), MAX_DRAWS // per_perm)))


def adjust(tested: list[tuple[list[dict[str, Any]], float]], method: str, alpha: float) -> None:
    """Adjust one family's p-values together (``holm`` or ``bh``): every entry that shares a test gets its
    ``p_adjusted`` and whether that is below ``alpha`` (``significant``)."""
    if not tested:
        return
    adj = sig.adjust_pvalues(np.array([p for _, p in tested]), method)
    for (entries, _), a in zip(tested, adj):
        for e in entries:
            e["p_adjusted"] = rounded_p(a)
            e["significant"] = sig.significant(e["p_adjusted"], alpha)  # the recorded value decides


def copy_twins(by_group: dict[str, Any]) -> None:
    """Error rate, FNR and TNR share the exact test of accuracy, TPR and FPR (their complements)."""
    for groups in by_group.values():
        for entry in groups.values():
            for m, twin in TWIN.items():
                if isinstance(entry.get(m), dict) and entry[m].get("p_value") is not None:
                    entry[m]["p_adjusted"] = entry[twin].get("p_adjusted")
                    entry[m]["significant"] = entry[twin].get("significant")
