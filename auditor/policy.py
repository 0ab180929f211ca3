"""Policies: YAML files of clauses (metric path, operator, threshold, severity, regulation) evaluated
against results.json to give a verdict: ``pass``, ``fail`` or ``inconclusive``."""
from __future__ import annotations

import difflib
import operator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from auditor.errors import PolicyError

__all__ = ["Clause", "Policy", "load_policy", "default_policy_path", "evaluate_policy", "OPERATORS"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
SEVERITIES = ("blocker", "warning")
CLAUSE_KEYS = {"id", "description", "metric", "op", "threshold", "severity", "maps_to"}
POLICY_KEYS = {"name", "version", "description", "defaults", "clauses"}


@dataclass(frozen=True)
class Clause:
    """One requirement: ``metric op threshold``; ``*`` in the metric path stands for each attribute."""

    id: str
    metric: str
    op: str
    threshold: float
    severity: str = "blocker"
    description: str = ""
    maps_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    name: str
    version: str
    clauses: tuple[Clause, ...]
    source: str = ""
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


def default_policy_path() -> Path:
    """The shipped default policy file."""
    return Path(str(resources.files("auditor") / "policies" / "default.yaml"))


def _metric_error(path: str, where: str, why: str, valid: list[str]) -> PolicyError:
    close = difflib.get_close_matches(path, valid, n=3, cutoff=0.5)
    near = close or valid[:6]
    return PolicyError(f"{where}: metric {path!r} {why}; valid paths near it: {', '.join(near)}")


def _validate_metric(path: str, where: str) -> None:
    from auditor.checks.registry import check_names, get_check

    parts = path.split(".")
    names = check_names()
    valid: list[str] = []
    for n in names:
        for leaf in get_check(n).metric_names:
            valid.append(f"checks.{n}.metrics.*.{leaf}")
            valid.append(f"checks.{n}.metrics.overall.{leaf}")
    if len(parts) < 5 or parts[0] != "checks" or parts[2] != "metrics":
        raise _metric_error(path, where, "is not of the form checks.CHECK.metrics.SCOPE.METRIC", valid)
    if parts[1] not in names:
        raise _metric_error(path, where, f"names no registered check {parts[1]!r}", valid)
    leaf = parts[4]
    if leaf not in get_check(parts[1]).metric_names or len(parts) > 6 or (len(parts) == 6 and parts[5] != "value"):
        raise _metric_error(path, where, f"names no metric of {parts[1]}", valid)


def _parse_clause(raw: Any, i: int, src: str) -> Clause:
    where = f"{src}: clause {i + 1}"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be a mapping with keys {', '.join(sorted(CLAUSE_KEYS))}")
    cid = str(raw.get("id") or f"clause-{i + 1}")
    where = f"{src}: clause {cid!r}"
    unknown = sorted(set(raw) - CLAUSE_KEYS)
    if unknown:
        raise PolicyError(f"{where} has unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(CLAUSE_KEYS))}")
    for key in ("metric", "op", "threshold"):
        if key not in raw:
            raise PolicyError(f"{where} is missing {key!r}; every clause needs metric, op and threshold")
    op = str(raw["op"])
    if op not in OPERATORS:
        raise PolicyError(f"{where} has operator {op!r}; use one of {', '.join(OPERATORS)}")
    thr = raw["threshold"]
    if isinstance(thr, bool) or not isinstance(thr, (int, float)):
        raise PolicyError(f"{where} has threshold {thr!r}; it must be a number")
    sev = str(raw.get("severity", "blocker"))
    if sev not in SEVERITIES:
        raise PolicyError(f"{where} has severity {sev!r}; use blocker or warning")
    maps_to = raw.get("maps_to", [])
    maps = (maps_to,) if isinstance(maps_to, str) else tuple(str(m) for m in maps_to or ())
    metric = str(raw["metric"])
    _validate_metric(metric, where)
    return Clause(cid, metric, op, float(thr), sev, str(raw.get("description", "")), maps)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy YAML (the shipped default when ``path`` is None)."""
    p = Path(path) if path is not None else default_policy_path()
    if not p.is_file():
        raise PolicyError(f"policy file {p} does not exist; pass an existing YAML file to --policy or leave it out for the default")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0]
        raise PolicyError(f"policy file {p} is not valid YAML ({reason}); fix the syntax") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"policy file {p} must be a mapping with keys name, version, clauses")
    unknown = sorted(set(raw) - POLICY_KEYS)
    if unknown:
        raise PolicyError(f"policy file {p} has unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(POLICY_KEYS))}")
    clauses = raw.get("clauses")
    if not isinstance(clauses, list) or not clauses:
        raise PolicyError(f"policy file {p} has no clauses; add a 'clauses' list")
    parsed = tuple(_parse_clause(c, i, str(p)) for i, c in enumerate(clauses))
    ids = [c.id for c in parsed]
    dup = next((x for x in ids if ids.count(x) > 1), None)
    if dup:
        raise PolicyError(f"policy file {p} has two clauses with id {dup!r}; ids must be unique")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise PolicyError(f"policy file {p}: 'defaults' must be a mapping (e.g. min_group_size: 30)")
    return Policy(str(raw.get("name", p.stem)), str(raw.get("version", "1")), parsed, str(p), str(raw.get("description", "")), defaults)


def _lookup(results: dict[str, Any], path: str) -> Any:
    node: Any = results
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _expand(clause: Clause, results: dict[str, Any]) -> list[tuple[str, str]]:
    """(clause id, concrete path) pairs; ``*`` becomes each attribute the check reported."""
    if "*" not in clause.metric:
        return [(clause.id, clause.metric)]
    head, tail = clause.metric.split("*", 1)
    scopes = _lookup(results, head.rstrip(".")) or {}
    attrs = [a for a in scopes if a != "overall"] if isinstance(scopes, dict) else []
    if not attrs:
        return [(clause.id, clause.metric)]
    return [(f"{clause.id}[{a}]", f"{head}{a}{tail}") for a in attrs]


def _evaluate_one(clause: Clause, cid: str, path: str, results: dict[str, Any]) -> dict[str, Any]:
    check = path.split(".")[1]
    entry = {"id": cid, "description": clause.description, "metric": path, "op": clause.op,
             "threshold": clause.threshold, "severity": clause.severity, "maps_to": list(clause.maps_to),
             "value": None, "ci": None, "result": "insufficient_data", "reason": None}
    status = _lookup(results, f"checks.{check}.status")
    if status is None:
        entry["reason"] = f"check {check} was not run"
        return entry
    if status != "ok":
        entry["reason"] = f"check {check} ended with an error"
        return entry
    node = _lookup(results, path)
    value = node.get("value") if isinstance(node, dict) else node
    if isinstance(node, dict):
        entry["ci"] = node.get("ci")
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        entry["reason"] = (node.get("reason") if isinstance(node, dict) else None) or "no value (not enough data)"
        return entry
    entry["value"] = float(value)
    entry["result"] = "pass" if OPERATORS[clause.op](float(value), clause.threshold) else "fail"
    return entry


def evaluate_policy(policy: Policy, results: dict[str, Any]) -> dict[str, Any]:
    """The ``policy`` block of results.json: each clause's value and result, and the verdict.

    Verdict: ``fail`` if a blocker clause fails; else ``inconclusive`` if a blocker clause lacks data;
    else ``pass``. Warning clauses are reported but never change the verdict.
    """
    clauses = [
        _evaluate_one(c, cid, path, results) for c in policy.clauses for cid, path in _expand(c, results)
    ]
    blockers = [c for c in clauses if c["severity"] == "blocker"]
    if any(c["result"] == "fail" for c in blockers):
        verdict = "fail"
    elif any(c["result"] == "insufficient_data" for c in blockers):
        verdict = "inconclusive"
    else:
        verdict = "pass"
    return {"name": policy.name, "version": policy.version, "source": policy.source,
            "description": policy.description, "verdict": verdict, "clauses": clauses}
