"""auditor: fairness and robustness audits of PyTorch image classifiers.

In a notebook::

    import auditor
    result = auditor.audit(my_module, "probe/", classes=["male", "female"])
    result.verdict, result.by_group("accuracy", "race")

`audit` and `AuditResult` are imported on first use, so ``import auditor`` stays light.
"""
from __future__ import annotations

from typing import Any

from auditor.results import auditor_version

__version__ = auditor_version()
__all__ = ["__version__", "audit", "AuditResult"]


def __getattr__(name: str) -> Any:
    if name == "audit":
        from auditor.api import audit

        return audit
    if name == "AuditResult":
        from auditor.result import AuditResult

        return AuditResult
    raise AttributeError(f"module 'auditor' has no attribute {name!r}")
