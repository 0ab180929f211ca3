"""`audit`: the Python API a notebook and the CLI call; it builds an `AuditConfig` and returns an `AuditResult`."""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from auditor.api._config import AuditConfig
from auditor.api._run import PlanFn, run_audit
from auditor.checks.base import ProgressFn
from auditor.result import AuditResult
from auditor.validation import ParameterError, invalid

__all__ = ["audit"]

_NOT_OPTIONS = {"out_dir", "check_params"}  # given as ``out`` and ``params``


def audit(
    model: str | Path | torch.nn.Module,
    probe: str | Path = "synth:faces",
    *,
    classes: str | Sequence[str] | None = None,
    positive_class: str | int | None = None,
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
    input_size: int | str | Sequence[int] | None = None,
    checks: str | Sequence[str] | None = None,
    policy: str | Path | None = None,
    out: str | Path | None = None,
    formats: str | Sequence[str] = ("json", "html"),
    force: bool = False,
    params: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
    on_plan: PlanFn | None = None,
    **options: Any,
) -> AuditResult:
    """Audit ``model`` on ``probe`` against ``policy`` and return an `AuditResult`; the CLI's `audit` calls this.

    ``model``: a file path, ``torchvision:NAME``, a model spec, or an in-memory ``nn.Module`` (audited as a
    copy, in eval mode; give ``classes`` in output order, and ``mean``/``std``/``input_size`` when it does
    not normalise its input itself — what is not given is assumed and verified, as on the command line).
    ``probe``: a folder, CSV or ``synth:faces[:n=N,...]``. Lists may be lists or comma strings. ``out``:
    write results.json and the reports in ``formats`` there (None: write nothing; call ``.report()``).
    Further ``options`` are `AuditConfig` fields (``budget``, ``device``, ``seed``, ``sensitive``, ``target``,
    ``baseline``, ``max_minutes``, ``threads``, ``batch_size`` ...). Raises `auditor.errors.AuditorError`
    subclasses with a one-line message on bad input.
    """
    _refuse_unknown(options)
    cfg = AuditConfig(model=model, probe=probe, classes=classes, positive_class=positive_class, mean=mean, std=std,
                      input_size=input_size, checks=checks, policy=policy, out_dir=out, formats=formats, force=force,
                      check_params=_params(params), **options)
    outcome = run_audit(cfg, progress=progress, cancel=cancel, on_plan=on_plan)
    return AuditResult(results=outcome.results, exit_code=outcome.exit_code, paths=outcome.paths)


def _refuse_unknown(options: dict[str, Any]) -> None:
    """An option that is no `AuditConfig` field is refused, naming the closest one."""
    fields = {f.name for f in dataclasses.fields(AuditConfig)}
    unknown = sorted(set(options) - fields | (_NOT_OPTIONS & set(options)))
    if unknown:
        known = sorted(fields - _NOT_OPTIONS - {"model", "probe"})
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(f"audit() got an unknown option {unknown[0]!r}{hint}; options: {', '.join(known)}")


def _params(params: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Check parameters as ``{"group_metrics": {"n_boot": 200}}`` or ``{"group_metrics.n_boot": 200}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in (params or {}).items():
        if isinstance(value, dict):
            out.setdefault(str(key), {}).update(value)
        elif "." in str(key):
            check, name = str(key).split(".", 1)
            out.setdefault(check, {})[name] = value
        else:
            raise invalid("params", "audit", "keyed {'CHECK.PARAM': value} or {'CHECK': {'PARAM': value}}", key)
    return out
