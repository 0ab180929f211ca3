"""What a policy is: threshold clauses, regression clauses, the policy that holds them, and the
vocabulary they share (operators, severities, clause results). A leaf: it imports nothing of the
policy package, so loading (`_load`), threshold evaluation (`_clauses`), regressions (`_regressions`)
and the verdict (`_verdict`) all build on it without a cycle.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = [
    "Clause", "Regression", "Policy", "OPERATORS", "RESULTS", "SEVERITIES", "REQUIRES", "SCOPE_SELECTORS",
    "DIRECTIONS", "CLAUSE_KEYS", "REGRESSION_KEYS", "POLICY_KEYS", "CHECK_DEFAULTS", "BORDERLINE",
]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
RESULTS = ("pass", "fail", "borderline", "insufficient_data", "not_run")
"""What a clause can come to; only the first four of a blocker count towards the verdict."""

SEVERITIES = ("blocker", "warning")
REQUIRES = ("point", "interval")
BORDERLINE = ("warn", "fail", "ignore")
"""What ``defaults.borderline`` makes of a clause whose interval crosses its threshold: ``warn`` (a pass
stays a pass, flagged ``borderline``), ``fail`` (the clause fails, whichever side its value is on) or
``ignore`` (a pass is a plain pass)."""
SCOPE_SELECTORS = ("attributes", "intersections", "all")
DIRECTIONS = {"higher_is_better": "max_drop", "lower_is_better": "max_rise"}
CLAUSE_KEYS = ("id", "description", "metric", "scope", "op", "threshold", "require", "severity", "maps_to")
REGRESSION_KEYS = ("id", "description", "metric", "scope", "direction", "max_drop", "max_rise", "significance",
                   "severity", "maps_to")
POLICY_KEYS = ("name", "version", "description", "requires", "defaults", "clauses", "regressions")
CHECK_DEFAULTS = ("min_group_size", "confidence", "n_boot", "correction", "alpha")
"""Policy defaults that run_audit passes to group_metrics as parameter defaults (--param still wins)."""


@dataclass(frozen=True)
class Clause:
    """``metric op threshold``. ``*`` as the metric's scope stands for each scope ``scope`` selects;
    ``require: interval`` asks the value's whole confidence interval to clear the threshold."""

    id: str
    metric: str
    op: str
    threshold: float
    severity: str = "blocker"
    description: str = ""
    maps_to: tuple[str, ...] = ()
    require: str = "point"
    scope: str | tuple[str, ...] | None = None


@dataclass(frozen=True)
class Regression:
    """At most ``allowance`` worsening of ``metric`` against a baseline (``max_drop`` when higher is
    better, ``max_rise`` when lower is better); with ``significance`` only a significant excess fails."""

    id: str
    metric: str
    direction: str
    allowance: float
    significance: bool = False
    severity: str = "blocker"
    description: str = ""
    maps_to: tuple[str, ...] = ()
    scope: str | tuple[str, ...] | None = None


@dataclass(frozen=True)
class Policy:
    """A loaded policy. ``source`` is where it came from as the user gave it (a file path, relative staying
    relative) or, for a shipped policy, its name (``shipped`` true); ``sha256`` is the hash of the file's bytes."""

    name: str
    version: str
    clauses: tuple[Clause, ...]
    source: str = ""
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    regressions: tuple[Regression, ...] = ()
    requires: tuple[str, ...] = ()
    """Checks a verdict needs: a run whose --checks leaves one out is refused before any work."""
    sha256: str = ""
    shipped: bool = False

    @property
    def check_params(self) -> dict[str, Any]:
        """The group_metrics parameter defaults this policy sets."""
        return {k: self.defaults[k] for k in CHECK_DEFAULTS if k in self.defaults}

    @property
    def borderline(self) -> str:
        """``warn``, ``fail`` or ``ignore``: see `BORDERLINE`."""
        return str(self.defaults.get("borderline", "warn"))

    @property
    def alpha(self) -> float:
        return float(self.defaults.get("alpha", 0.05))
