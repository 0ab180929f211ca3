"""Threshold clauses evaluated against results.json, and the scope expansion of ``*`` that
regression clauses share.

A clause's metric path is ``checks.CHECK.metrics.SCOPE.LEAF``. ``*`` as SCOPE stands for each scope
the check reported that the clause's ``scope`` selects, by ``metrics[SCOPE]["scope"]["kind"]``
(``attribute`` or ``intersection``; a scope without that key counts as an attribute); it never
stands for ``overall``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditor.policy.model import OPERATORS, Clause
from auditor.results import MetricEntry

__all__ = ["lookup", "check_problem", "not_run_reason", "scope_kind", "select_scopes", "no_scope_reason", "Reading",
           "read_metric", "evaluate_clause"]

_KINDS = {"attributes": ("attribute",), "intersections": ("intersection",), "all": ("attribute", "intersection")}
COPIED = ("p_adjusted", "significant")
"""Fields of a metric node copied into its clause entry (the report shows them)."""


def lookup(results: dict[str, Any], path: str) -> Any:
    node: Any = results
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_problem(results: dict[str, Any], check: str, where: str = "") -> str | None:
    """Why ``check``'s metrics cannot be read from ``results`` (None when they can)."""
    status = lookup(results, f"checks.{check}.status")
    if status is None:
        return f"check {check} was not run{where}"
    if status != "ok":
        return f"check {check} ended with an error{where}"
    return None


def scope_kind(node: Any) -> str:
    """``attribute`` or ``intersection``; a scope that does not say is an attribute."""
    scope = node.get("scope") if isinstance(node, dict) else None
    kind = scope.get("kind") if isinstance(scope, dict) else None
    return str(kind) if kind else "attribute"


def _reported(metrics: Any) -> dict[str, str]:
    """Scope name -> kind, in results order, without ``overall``."""
    if not isinstance(metrics, dict):
        return {}
    return {str(s): scope_kind(node) for s, node in metrics.items() if s != "overall"}


def select_scopes(selector: str | tuple[str, ...] | None, *metrics: Any) -> list[str]:
    """The scopes of one or more ``checks.CHECK.metrics`` nodes that ``selector`` picks, in order.

    A list selector keeps its own order and its names even when no node reports them (the caller
    turns those into insufficient_data entries); a named selector picks by kind.
    """
    if isinstance(selector, tuple):
        return list(selector)
    kinds = _KINDS[selector or "attributes"]
    out: dict[str, None] = {}
    for m in metrics:
        for s, kind in _reported(m).items():
            if kind in kinds:
                out[s] = None
    return list(out)


def no_scope_reason(selector: str | tuple[str, ...] | None, *metrics: Any) -> str:
    """Why ``*`` matched nothing, naming what was reported."""
    reported: dict[str, str] = {}
    for m in metrics:
        reported.update(_reported(m))
    have = ", ".join(f"{s} ({k})" for s, k in reported.items()) or "none"
    wanted = {"attributes": "attribute", "intersections": "intersection", "all": "attribute or intersection"}
    return f"no {wanted[str(selector or 'attributes')]} scope in the results (scopes reported: {have})"


def _leaf_path(path: str) -> str:
    return path.removesuffix(".value")


@dataclass(frozen=True)
class Reading:
    """One metric read from results.json: ``missing`` when the scope or leaf is absent altogether;
    ``reason`` says why ``value`` is None."""

    node: Any = None
    value: float | None = None
    ci: list[float] | None = None
    reason: str | None = None
    missing: bool = False


def read_metric(results: dict[str, Any], path: str) -> Reading:
    """The node, value and interval at a concrete path (``...SCOPE.LEAF`` or ``...SCOPE.LEAF.value``)."""
    parts = path.split(".")
    scope_node = lookup(results, ".".join(parts[:4]))
    if scope_node is None:
        return Reading(reason=f"scope {parts[3]!r} is not in the results", missing=True)
    node = lookup(results, _leaf_path(path))
    if node is None:
        why = scope_node.get("reason") if isinstance(scope_node, dict) else None
        return Reading(reason=why or f"{parts[4]} is not in the results for scope {parts[3]!r}", missing=why is None)
    entry = MetricEntry.read(node)
    if entry is None or entry.value is None:
        why = node.get("reason") if isinstance(node, dict) else None
        return Reading(node, None, None, why or "no value (not enough data)")
    return Reading(node, float(entry.value), None if entry.ci is None else list(entry.ci))


def _interval_clears(op: str, ci: list[float], threshold: float) -> bool:
    """Whether every value in ``ci`` satisfies ``value op threshold``."""
    lo, hi = ci
    if op in ("<", "<="):
        return OPERATORS[op](hi, threshold)
    if op in (">", ">="):
        return OPERATORS[op](lo, threshold)
    if op == "==":
        return lo == threshold == hi
    return not lo <= threshold <= hi  # "!=": the interval excludes the threshold


def _interval_misses(op: str, ci: list[float], threshold: float) -> bool:
    """Whether no value in ``ci`` satisfies ``value op threshold``: the whole interval is on the wrong side."""
    lo, hi = ci
    if op in ("<", "<="):
        return not OPERATORS[op](lo, threshold)
    if op in (">", ">="):
        return not OPERATORS[op](hi, threshold)
    if op == "==":
        return not lo <= threshold <= hi
    return lo == threshold == hi  # "!=": every value in the interval equals the threshold


def not_run_reason(results: dict[str, Any], check: str) -> str | None:
    """Why ``check`` has no entry in ``results["checks"]`` (it was not selected), or None when it has one.

    An audit records every check it ran, a failing one included, so a missing check was left out of
    ``--checks``."""
    checks = results.get("checks") if isinstance(results, dict) else None
    if isinstance(checks, dict) and check in checks:
        return None
    return f"check {check} was not run (not in --checks)"


def _entry(clause: Clause, cid: str, path: str, scope: str | None) -> dict[str, Any]:
    return {"id": cid, "kind": "threshold", "description": clause.description, "metric": path, "scope": scope,
            "op": clause.op, "threshold": clause.threshold, "require": clause.require, "severity": clause.severity,
            "maps_to": list(clause.maps_to), "value": None, "ci": None, "result": "insufficient_data",
            "borderline": False, "reason": None}


def _span(ci: list[float]) -> str:
    return f"[{ci[0]:g}, {ci[1]:g}]"


def _decide(clause: Clause, entry: dict[str, Any], value: float, ci: list[float] | None) -> None:
    """Set ``result`` (and ``reason``) from the point value and its interval: a fail must hold up.

    ``borderline`` records that the interval crosses the threshold: a pass of ``require: point`` (its
    value clears the threshold, not its whole interval) or an undecided ``borderline`` result."""
    op, thr = clause.op, clause.threshold
    need = f"{op} {thr:g}"
    point_ok = OPERATORS[op](value, thr)
    if clause.require == "point":
        if point_ok and (ci is None or _interval_clears(op, ci, thr)):
            entry["result"] = "pass"
        elif point_ok:
            entry["result"], entry["borderline"] = "pass", True
            entry["reason"] = (f"{value:g} clears {need} but its interval {_span(ci)} crosses the threshold "
                               "(borderline: a larger probe could show it fails)")
        elif ci is None or _interval_misses(op, ci, thr):
            entry["result"] = "fail"
        else:
            entry["result"], entry["borderline"] = "borderline", True
            entry["reason"] = f"{value:g} misses {need} but its interval {_span(ci)} reaches the threshold"
    elif ci is None:
        entry["reason"] = "no interval: require: interval needs a confidence interval (run the check with n_boot > 0)"
    elif point_ok and _interval_clears(op, ci, thr):
        entry["result"] = "pass"
    elif _interval_misses(op, ci, thr):
        entry["result"] = "fail"
    else:
        entry["result"], entry["borderline"] = "borderline", True
        verb = "clears" if point_ok else "misses"
        entry["reason"] = (f"{value:g} {verb} {need} but its interval {_span(ci)} is not wholly on either side of "
                           "the threshold (require: interval)")


def _apply_borderline(entry: dict[str, Any], mode: str) -> None:
    """What the policy's ``defaults.borderline`` makes of an entry whose interval crosses its threshold."""
    if not entry["borderline"]:
        return
    if mode == "fail":
        entry["result"] = "fail"
        entry["reason"] = f"{entry['reason']}; the policy sets borderline: fail"
    elif mode == "ignore" and entry["result"] == "pass":
        entry["borderline"], entry["reason"] = False, None


SAMPLING_CHECKS = ("attacks", "explanations")
"""Checks that measure a sample of the probe (its size set by --budget or their n_images), not all of it."""


def small_group_remedy(metric: str) -> str:
    """What to do about groups too small to judge: a larger sample when the check samples the probe, else more
    images of them in the probe (never a smaller minimum group size, which only weakens the gate)."""
    check = metric.split(".")[1] if metric.count(".") >= 1 else ""
    if check in SAMPLING_CHECKS:
        return (f"the {check} check measures a sample of the probe: give those groups more of it with --budget "
                f"thorough or --param {check}.n_images=N (the sample is balanced across groups), or add images of them")
    return "add images of them to the probe"


def _judge(clause: Clause, entry: dict[str, Any], results: dict[str, Any], judge_every_group: bool,
           borderline: str) -> dict[str, Any]:
    got = read_metric(results, entry["metric"])
    value, ci = got.value, got.ci
    entry["value"], entry["ci"] = value, ci
    if isinstance(got.node, dict):
        entry.update({k: got.node[k] for k in COPIED if k in got.node})
        p, floor = got.node.get("p_value"), got.node.get("p_floor")
        if isinstance(p, (int, float)) and isinstance(floor, (int, float)) and p <= floor * (1 + 1e-6):
            entry["p_at_floor"] = True  # the permutation test's smallest p: the adjusted p is a bound
    if value is None:
        entry["reason"] = got.reason
        return entry
    _decide(clause, entry, value, ci)
    _apply_borderline(entry, borderline)
    excluded = got.node.get("excluded_groups") if isinstance(got.node, dict) else None
    if excluded:  # small groups are left out of the gap: say so, and undecide a pass only when the policy asks
        shown = ", ".join(str(g) for g in excluded[:5]) + (f" and {len(excluded) - 5} more" if len(excluded) > 5 else "")
        entry["excluded_groups"] = list(excluded)
        entry["note"] = (f"{len(excluded)} group(s) had fewer images than min_group_size and were left out ({shown}); "
                         "the result covers the other groups")
        if entry["result"] == "pass" and judge_every_group:
            entry["result"], entry["borderline"] = "insufficient_data", False
            entry["reason"] = (f"passes on the groups large enough to judge, but {len(excluded)} group(s) had too few "
                               f"images and were left out ({shown}); {small_group_remedy(entry['metric'])} "
                               "(the policy sets judge_every_group)")
    return entry


def evaluate_clause(clause: Clause, results: dict[str, Any], *, judge_every_group: bool = False,
                    borderline: str = "warn") -> list[dict[str, Any]]:
    """One entry per scope the clause covers; one entry when ``*`` matches none or the check was not run.

    Results: ``pass``; ``fail`` only when the evidence says so (the whole interval on the wrong side
    of the threshold, or the point value when there is no interval); ``borderline`` when the interval
    straddles the threshold; ``insufficient_data`` when there is no value (or ``require: interval``
    has no interval); ``not_run`` when the check is not in the results (left out of ``--checks``).
    ``borderline: true`` marks an entry whose interval crosses the threshold: a ``pass`` of
    ``require: point`` that its interval does not back (``borderline="warn"``, the default), or a
    ``borderline`` result. ``borderline="fail"`` fails both; ``"ignore"`` leaves such a pass unmarked.
    A group below min_group_size is left out of the gap with a ``note``; with ``judge_every_group``
    a pass that left groups out is insufficient_data instead.
    """
    parts = clause.metric.split(".")
    check = parts[1]
    skipped = not_run_reason(results, check)
    problem = skipped or check_problem(results, check)
    if parts[3] != "*":
        entry = _entry(clause, clause.id, clause.metric, parts[3])
        if problem:
            entry["reason"] = problem
            entry["result"] = "not_run" if skipped else entry["result"]
            return [entry]
        return [_judge(clause, entry, results, judge_every_group, borderline)]
    metrics = lookup(results, f"checks.{check}.metrics")
    scopes = [] if problem else select_scopes(clause.scope, metrics)
    if not scopes:
        entry = _entry(clause, clause.id, clause.metric, None)
        entry["reason"] = problem or no_scope_reason(clause.scope, metrics)
        entry["result"] = "not_run" if skipped else entry["result"]
        return [entry]
    head, tail = clause.metric.split("*", 1)
    return [_judge(clause, _entry(clause, f"{clause.id}[{s}]", f"{head}{s}{tail}", s), results, judge_every_group,
                   borderline) for s in scopes]
