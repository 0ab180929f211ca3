"""The one orchestrator: load model -> load probe -> validate the pair -> predict -> checks ->
results.json -> policy -> reports -> exit code. The CLI calls `audit`; so will the service.

No global state: every input is in `AuditConfig`; progress goes through a callback; cancellation is
polled between batches; outputs are written atomically.

Inside: ``_config`` (`AuditConfig`, `ModelOptions` and their validation), ``_predict`` (the model's
classes and the prediction pass), ``_checks`` (which checks run with what parameters, and running
them), ``_run`` (`run_audit`, step by step) and ``_audit`` (`audit`, the Python API).
"""
from __future__ import annotations

from auditor.api._audit import audit
from auditor.api._config import BUDGETS, FORMATS, AuditConfig, AuditOutcome, ModelOptions, declared_from, split_list
from auditor.api._predict import resolve_classes
from auditor.api._run import run_audit
from auditor.result import AuditResult

__all__ = [
    "AuditConfig",
    "AuditOutcome",
    "AuditResult",
    "BUDGETS",
    "FORMATS",
    "ModelOptions",
    "audit",
    "declared_from",
    "resolve_classes",
    "run_audit",
    "split_list",
]
