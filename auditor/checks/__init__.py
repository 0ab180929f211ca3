"""Checks: one module per check, all registered in one registry (`auditor checks` lists them)."""
from __future__ import annotations

from auditor.checks.base import Check, CheckContext, CheckResult, Param, Predictions
from auditor.checks.registry import check_names, get_check, list_checks, register_check

# Built-in checks register themselves on import.
from auditor.checks import group_metrics as _group_metrics  # noqa: E402,F401
from auditor.checks import spurious as _spurious  # noqa: E402,F401
from auditor.checks import attacks as _attacks  # noqa: E402,F401
from auditor.checks import explanations as _explanations  # noqa: E402,F401

__all__ = [
    "Check",
    "CheckContext",
    "CheckResult",
    "Param",
    "Predictions",
    "register_check",
    "get_check",
    "list_checks",
    "check_names",
]
