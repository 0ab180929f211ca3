"""The ``policy`` block of results.json: every clause (threshold and regression) evaluated, and the
verdict they come to: ``pass``, ``fail`` or ``inconclusive``.
"""
from __future__ import annotations

from typing import Any, Sequence

from auditor.policy._clauses import evaluate_clause
from auditor.policy._regressions import Baseline, baseline_info, evaluate_regressions, skipped_regressions
from auditor.policy.model import RESULTS, Policy

__all__ = ["evaluate_policy", "required_left_out"]


def required_left_out(policy: Policy, names: Sequence[str]) -> list[str]:
    """The checks ``policy`` requires that a run of checks ``names`` leaves out (its verdict is then inconclusive)."""
    return [n for n in policy.requires if n not in names]


def _verdict(entries: list[dict[str, Any]], missing_required: list[str]) -> str:
    blockers = [c for c in entries if c["severity"] == "blocker"]
    if any(c["result"] == "fail" for c in blockers):
        return "fail"
    if missing_required:
        return "inconclusive"  # a check the policy needs for a verdict was not run
    if any(c["result"] in ("borderline", "insufficient_data") for c in blockers):
        return "inconclusive"
    if blockers and all(c["result"] == "not_run" for c in blockers):
        return "inconclusive"  # nothing the gate blocks on was measured: never a pass on nothing
    return "pass"


def _counts(entries: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Clause results by severity: ``{"blocker": {"pass": 3, "borderline_pass": 1, ...}, "warning": {...}}``;
    ``borderline_pass`` counts the passes among ``pass`` whose interval crosses the threshold."""
    out: dict[str, dict[str, int]] = {}
    for sev in ("blocker", "warning"):
        mine = [c for c in entries if c["severity"] == sev]
        out[sev] = {r: sum(1 for c in mine if c["result"] == r) for r in RESULTS}
        out[sev]["borderline_pass"] = sum(1 for c in mine if c["result"] == "pass" and c.get("borderline"))
    return out


def evaluate_policy(policy: Policy, results: dict[str, Any], baseline: Baseline | None = None) -> dict[str, Any]:
    """The ``policy`` block of results.json: each clause's value and result, and the verdict.

    Clause results: ``pass``, ``fail`` (the evidence says so: the whole interval on the wrong side),
    ``borderline`` (the interval straddles the threshold), ``insufficient_data`` (no value), and
    ``not_run`` (the clause's check was left out of ``--checks``). Verdict: ``fail`` if a blocker
    clause (threshold or regression) fails; else ``inconclusive`` if a check the policy ``requires`` was
    not run (``missing_required``), a blocker is borderline or lacks data, or every blocker was not run;
    else ``pass``. ``not_run`` clauses and warning clauses never change the verdict. A pass whose
    interval crosses its threshold is flagged ``borderline: true`` and listed under ``borderline_passes``
    (``counts``, by severity, has them as ``borderline_pass``); a policy's ``defaults.borderline: fail``
    fails every clause whose interval crosses its threshold instead. Regression clauses are evaluated
    only with a ``baseline``; without one they are listed under ``regressions_skipped`` and do not count.
    """
    every = bool(policy.defaults.get("judge_every_group", False))
    entries = [e for c in policy.clauses
               for e in evaluate_clause(c, results, judge_every_group=every, borderline=policy.borderline)]
    warnings: list[str] = []
    info = None
    skipped: list[dict[str, Any]] = []
    if baseline is None:
        skipped = skipped_regressions(policy.regressions)
    else:
        info = baseline_info(baseline, results)
        if not policy.regressions:
            warnings.append(f"--baseline {baseline.path} was given but policy {policy.name} has no regression "
                            "clauses, so it was not compared")
        else:
            found, more = evaluate_regressions(policy.regressions, results, baseline, policy.alpha, info["same_probe"])
            entries += found
            warnings += more
    regressed = [c["id"] for c in entries
                 if c["kind"] == "regression" and c["severity"] == "blocker" and c["result"] == "fail"]
    missing = required_left_out(policy, [n for n in policy.requires if n in (results.get("checks") or {})])
    return {"name": policy.name, "version": policy.version, "source": policy.source, "sha256": policy.sha256,
            "shipped": policy.shipped,
            "description": policy.description, "requires": list(policy.requires), "missing_required": missing,
            "verdict": _verdict(entries, missing),
            "regressed": bool(regressed), "clauses": entries,
            "borderline": [c["id"] for c in entries if c["result"] == "borderline"],
            "borderline_passes": [c["id"] for c in entries if c["result"] == "pass" and c.get("borderline")],
            "counts": _counts(entries),
            "not_run": [c["id"] for c in entries if c["result"] == "not_run"],
            "baseline": info, "regressions_skipped": skipped, "warnings": warnings}
