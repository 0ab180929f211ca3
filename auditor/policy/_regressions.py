"""Regression clauses: compare this audit's results.json with a baseline results.json (``--baseline``).

For each scope a regression clause covers, ``delta = new - old``; the worsening is ``-delta`` for a
``higher_is_better`` metric and ``delta`` for a ``lower_is_better`` one. The clause fails when the
worsening exceeds its allowance (``max_drop`` / ``max_rise``) and, with ``significance: true``, that
excess is significant at the policy's ``alpha`` in a one-sided z test:

    z = (worsening - allowance) / sqrt(se_new**2 + se_old**2),   p = 1 - Phi(z),

where each standard error is recovered from the value's confidence interval as
``se = (hi - lo) / (2 * z_{(1 + confidence) / 2})``. This is an approximation: it treats the
bootstrap percentile interval as a symmetric normal interval and the two audits as independent
samples (they are not when both ran on the same probe, which makes the test conservative).

A baseline made on a different probe (``probe.sha256`` differs) is still compared and the numbers
are recorded, but every regression result is ``insufficient_data``: a change in the data cannot be
told apart from a change in the model, so such a comparison neither passes nor fails a gate.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

from auditor.errors import BadInputError
from auditor.policy._clauses import (
    check_problem,
    lookup,
    no_scope_reason,
    not_run_reason,
    read_metric,
    select_scopes,
)
from auditor.policy.model import Regression
from auditor.results import read_results

__all__ = ["Baseline", "load_baseline", "baseline_info", "evaluate_regressions", "skipped_regressions",
           "se_from_interval", "one_sided_p"]

log = logging.getLogger(__name__)
_EPS = 1e-9  # values are rounded to 6 decimals: a drop of exactly max_drop is not an excess


@dataclass(frozen=True)
class Baseline:
    """A results.json from an earlier audit, read and checked by `load_baseline`."""

    path: str
    results: dict[str, Any]


def load_baseline(path: str | Path) -> Baseline:
    """Read ``--baseline``: a results.json (or a folder holding one) with at least one check."""
    p = Path(path)
    if p.is_dir():
        if not (p / "results.json").is_file():
            raise BadInputError(f"--baseline {p} is a folder without results.json; pass the results.json an earlier audit wrote")
        p = p / "results.json"
    try:
        data = read_results(p)
    except BadInputError as exc:
        raise BadInputError(f"--baseline {exc}") from None
    except OSError as exc:
        raise BadInputError(f"--baseline {p} cannot be read ({exc.strerror}); pass a readable results.json") from None
    checks = data.get("checks")
    if not isinstance(checks, dict) or not checks:
        raise BadInputError(f"--baseline {p} has no checks; pass the results.json of an audit that ran its checks")
    return Baseline(str(p), data)


def baseline_info(baseline: Baseline, results: dict[str, Any]) -> dict[str, Any]:
    """``results.policy.baseline``: where the baseline came from and whether it used the same probe."""
    old = baseline.results
    old_probe, new_probe = lookup(old, "probe.sha256"), lookup(results, "probe.sha256")
    return {"path": baseline.path, "model_sha256": lookup(old, "model.sha256"), "probe_sha256": old_probe,
            "same_probe": bool(old_probe) and old_probe == new_probe, "created": old.get("created")}


def skipped_regressions(regressions: tuple[Regression, ...]) -> list[dict[str, Any]]:
    """``results.policy.regressions_skipped`` when no baseline was given."""
    return [{"id": r.id, "metric": r.metric, "severity": r.severity,
             "reason": "no --baseline given; regression clauses compare with an earlier audit's results.json"}
            for r in regressions]


def se_from_interval(ci: list[float] | None, confidence: float) -> float | None:
    """Standard error implied by a two-sided ``confidence`` interval, read as a normal interval."""
    if ci is None:
        return None
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    return abs(ci[1] - ci[0]) / (2 * z)


def one_sided_p(excess: float, se: float) -> float:
    """P(Z >= excess / se): how likely a worsening this far beyond the allowance is by chance."""
    if se <= 0:
        return 0.0 if excess > _EPS else 1.0
    return 1.0 - NormalDist().cdf(excess / se)


def _confidence(results: dict[str, Any], check: str) -> float:
    conf = lookup(results, f"checks.{check}.params.confidence")
    return float(conf) if isinstance(conf, (int, float)) and 0 < conf < 1 else 0.95


def _entry(r: Regression, cid: str, path: str, scope: str | None) -> dict[str, Any]:
    key = "max_drop" if r.direction == "higher_is_better" else "max_rise"
    return {"id": cid, "kind": "regression", "description": r.description, "metric": path, "scope": scope,
            "direction": r.direction, key: r.allowance, "significance": r.significance,
            "op": ">=" if r.direction == "higher_is_better" else "<=", "threshold": None,
            "severity": r.severity, "maps_to": list(r.maps_to), "value": None, "ci": None,
            "baseline_value": None, "baseline_ci": None, "delta": None, "p_value": None,
            "result": "insufficient_data", "reason": None}


def _judge(r: Regression, e: dict[str, Any], new: dict[str, Any], old: dict[str, Any], alpha: float) -> dict[str, Any]:
    check = e["metric"].split(".")[1]
    now, then = read_metric(new, e["metric"]), read_metric(old, e["metric"])
    value, ci, base, base_ci = now.value, now.ci, then.value, then.ci
    e.update(value=value, ci=ci, baseline_value=base, baseline_ci=base_ci)
    if now.missing and not then.missing:
        e["reason"] = f"in the baseline but not in this audit ({now.reason})"
    elif then.missing and not now.missing:
        e["reason"] = f"in this audit but not in the baseline ({then.reason})"
    elif value is None or base is None:
        e["reason"] = f"no value in this audit: {now.reason}" if value is None else f"no value in the baseline: {then.reason}"
    if value is None or base is None:
        return e
    higher = r.direction == "higher_is_better"
    delta = value - base
    worsening = -delta if higher else delta
    excess = worsening - r.allowance
    e["delta"] = round(delta, 6)
    e["threshold"] = round(base - r.allowance if higher else base + r.allowance, 6)
    se_new, se_old = se_from_interval(ci, _confidence(new, check)), se_from_interval(base_ci, _confidence(old, check))
    if se_new is not None and se_old is not None:
        e["p_value"] = round(one_sided_p(excess, math.hypot(se_new, se_old)), 6)
    word = "dropped" if higher else "rose"
    if excess <= _EPS:
        e["result"] = "pass"
    elif not r.significance:
        e["result"] = "fail"
        e["reason"] = f"{word} by {abs(delta):.4g}, more than the allowed {r.allowance:g}"
    elif e["p_value"] is None:
        e["reason"] = ("significance: true needs a confidence interval on both values; run group_metrics with "
                       "n_boot > 0 in both audits")
    elif e["p_value"] < alpha:
        e["result"] = "fail"
        e["reason"] = (f"{word} by {abs(delta):.4g}, more than the allowed {r.allowance:g}, and the excess is "
                       f"significant (p = {e['p_value']:.3g} < alpha {alpha:g})")
    else:
        e["result"] = "pass"
        e["reason"] = (f"{word} by {abs(delta):.4g}, more than the allowed {r.allowance:g}, but the excess is not "
                       f"significant (p = {e['p_value']:.3g} >= alpha {alpha:g})")
    return e


def _evaluate_one(r: Regression, new: dict[str, Any], old: dict[str, Any], alpha: float) -> list[dict[str, Any]]:
    parts = r.metric.split(".")
    check = parts[1]
    skipped = not_run_reason(new, check)
    if skipped:  # left out of --checks in this audit: not_run, like a threshold clause
        e = _entry(r, r.id, r.metric, None if parts[3] == "*" else parts[3])
        e.update(result="not_run", reason=skipped)
        return [e]
    problem = check_problem(new, check, " in this audit") or check_problem(old, check, " in the baseline")
    if parts[3] != "*":
        e = _entry(r, r.id, r.metric, parts[3])
        if problem:
            e["reason"] = problem
            return [e]
        return [_judge(r, e, new, old, alpha)]
    new_m, old_m = lookup(new, f"checks.{check}.metrics"), lookup(old, f"checks.{check}.metrics")
    scopes = [] if problem else select_scopes(r.scope, new_m, old_m)
    if not scopes:
        e = _entry(r, r.id, r.metric, None)
        e["reason"] = problem or no_scope_reason(r.scope, new_m, old_m)
        return [e]
    head, tail = r.metric.split("*", 1)
    return [_judge(r, _entry(r, f"{r.id}[{s}]", f"{head}{s}{tail}", s), new, old, alpha) for s in scopes]


def evaluate_regressions(
    regressions: tuple[Regression, ...], results: dict[str, Any], baseline: Baseline, alpha: float, same_probe: bool,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Entries for ``results.policy.clauses`` (``kind: "regression"``) and warning strings."""
    entries = [e for r in regressions for e in _evaluate_one(r, results, baseline.results, alpha)]
    warnings: list[str] = []
    if not same_probe:
        old = str(lookup(baseline.results, "probe.sha256") or "not recorded")
        new = str(lookup(results, "probe.sha256") or "not recorded")
        warnings.append(f"baseline {baseline.path} was made on a different probe (sha256 {old[:12]} vs {new[:12]} now), "
                        "so regression clauses are insufficient_data; re-audit the baseline model on this probe to "
                        "compare like with like")
        for e in entries:
            if e["result"] in ("pass", "fail", "borderline"):
                e["reason"] = f"baseline made on a different probe (on its own numbers: {e['result']})"
                e["result"] = "insufficient_data"
    for w in warnings:
        log.warning("%s", w)
    return entries, warnings
