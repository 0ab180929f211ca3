"""The checks of one audit: which run, with what parameters, and running them one after another.

A check that raises is recorded as ``status: error`` and the others still run; a cancellation stops them all.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from auditor.checks import CheckContext, CheckResult, check_names, get_check
from auditor.checks.base import ProgressFn
from auditor.cost import CostPlan, PassCounter
from auditor.errors import AuditCancelled
from auditor.policy import Policy, load_policy, required_left_out
from auditor.api._config import AuditConfig
from auditor.validation import ParameterError

__all__ = ["CheckRuns", "check_params", "run_checks", "select_checks"]

log = logging.getLogger(__name__)


def select_checks(cfg: AuditConfig) -> list[str]:
    """The checks to run: ``cfg.checks`` (None: every registered check), each known; ``cfg.check_params`` only for
    those. A partial run that leaves out a check the policy requires is said now (its verdict is inconclusive)."""
    names = list(cfg.checks) if cfg.checks else check_names()
    for n in names:
        get_check(n)  # raises with a suggestion
    for n in cfg.check_params:
        if n not in names:
            raise ParameterError(f"parameters given for check {n!r}, which is not selected; add it to --checks")
    if cfg.checks:
        policy = load_policy(cfg.policy)
        left_out = required_left_out(policy, names)
        if left_out:
            log.warning("policy %s requires %s, which --checks leaves out: the verdict will be inconclusive (add it, "
                        "or pass a policy that does not require it)", policy.name, ", ".join(left_out))
    return names


def check_params(names: list[str], given: dict[str, dict[str, Any]], policy: Policy) -> dict[str, dict[str, Any]]:
    """Each check's parameters: those ``given``, with the ``policy``'s defaults where it sets them; each check is
    built once here, so bad parameters fail before any work."""
    params = {n: dict(given.get(n, {})) for n in names}
    _apply_policy_defaults(params, policy)
    for n in names:
        get_check(n)(**params[n])
    return params


def _apply_policy_defaults(params: dict[str, dict[str, Any]], policy: Policy) -> None:
    """The policy's ``defaults`` are group_metrics parameters; an explicit parameter still wins."""
    if "group_metrics" not in params:
        return
    declared = get_check("group_metrics").params
    for key, value in policy.check_params.items():
        if key in declared:
            params["group_metrics"].setdefault(key, value)
        else:
            log.warning("policy %s sets defaults.%s, which group_metrics does not take; ignored", policy.name, key)


@dataclass
class CheckRuns:
    """What the checks gave: results.json's ``checks``, the passes each made as planned and as counted, and seconds."""

    results: dict[str, Any] = field(default_factory=dict)
    actual: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    forward: int = 0
    backward: int = 0


def run_checks(names: list[str], params: dict[str, dict[str, Any]], ctx: CheckContext, plan: CostPlan,
               progress: ProgressFn | None) -> CheckRuns:
    """Run the checks ``names`` in order, each at its planned budget, counting its passes through the model."""
    runs = CheckRuns()
    for n in names:
        planned = plan.checks[n]
        with PassCounter(ctx.model.module, n, planned.forward + planned.backward, progress) as counted:
            result = _run_check(n, params[n], dataclasses.replace(ctx, budget=planned.budget or ctx.budget))
        runs.actual[n] = {"forward": counted.forward, "backward": counted.backward, "seconds": round(result.seconds, 4)}
        runs.results[n] = result.to_dict()
        runs.seconds[n] = result.seconds
        runs.forward += result.forward_passes
        runs.backward += result.backward_passes
    return runs


def _run_check(name: str, params: dict[str, Any], ctx: CheckContext) -> CheckResult:
    check = get_check(name)(**params)
    start = time.perf_counter()
    try:
        result = check.run(ctx)
    except AuditCancelled:
        raise
    except Exception as exc:  # a failing check is recorded, the other checks still run
        log.exception("check %s failed", name)
        result = CheckResult(status="error", params=check.config, error=f"{exc.__class__.__name__}: {exc}")
    result.seconds = time.perf_counter() - start
    return result
