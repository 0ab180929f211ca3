"""Policies: YAML files of threshold clauses (metric path, operator, threshold, severity, regulation)
and regression clauses (allowed worsening against a baseline results.json), evaluated against
results.json to give a verdict: ``pass``, ``fail`` or ``inconclusive``.

This module parses and validates a policy; `auditor.policy_eval` evaluates threshold clauses and
`auditor.baseline` regression clauses. The file format is documented in the README (Policies).
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import yaml

from auditor.baseline import (
    Baseline,
    baseline_info,
    evaluate_regressions,
    load_baseline,
    skipped_regressions,
)
from auditor.errors import PolicyError, UsageError
from auditor.policy_eval import OPERATORS, RESULTS, evaluate_clause

__all__ = [
    "Clause", "Regression", "Policy", "load_policy", "default_policy_path", "shipped_policies",
    "resolve_policy_path", "required_left_out", "evaluate_policy", "load_baseline", "Baseline", "OPERATORS", "RESULTS", "CHECK_DEFAULTS",
]

SEVERITIES = ("blocker", "warning")
REQUIRES = ("point", "interval")
SCOPE_SELECTORS = ("attributes", "intersections", "all")
DIRECTIONS = {"higher_is_better": "max_drop", "lower_is_better": "max_rise"}
CLAUSE_KEYS = ("id", "description", "metric", "scope", "op", "threshold", "require", "severity", "maps_to")
REGRESSION_KEYS = ("id", "description", "metric", "scope", "direction", "max_drop", "max_rise", "significance",
                   "severity", "maps_to")
POLICY_KEYS = ("name", "version", "description", "requires", "defaults", "clauses", "regressions")
CHECK_DEFAULTS = ("min_group_size", "confidence", "n_boot", "correction", "alpha")
"""Policy defaults that run_audit passes to group_metrics as parameter defaults (--param still wins)."""

# key -> (kind, low, high, choices, constraint text)
_DEFAULT_SPECS: dict[str, tuple[type | None, float | None, float | None, tuple[str, ...] | None, str]] = {
    "min_group_size": (int, 1, None, None, "an integer >= 1"),
    "confidence": (float, 0.5, 0.999, None, "a number in [0.5, 0.999]"),
    "n_boot": (int, 0, 100_000, None, "an integer in [0, 100000] (0: no intervals)"),
    "correction": (None, None, None, ("holm", "bh"), "one of holm, bh"),
    "alpha": (float, 0.0, 0.5, None, "a number in (0, 0.5]"),
    "require": (None, None, None, REQUIRES, "one of point, interval"),
    "judge_every_group": (bool, None, None, None, "true or false"),
}


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
    name: str
    version: str
    clauses: tuple[Clause, ...]
    source: str = ""
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    regressions: tuple[Regression, ...] = ()
    requires: tuple[str, ...] = ()
    """Checks a verdict needs: a run whose --checks leaves one out is refused before any work."""

    @property
    def check_params(self) -> dict[str, Any]:
        """The group_metrics parameter defaults this policy sets."""
        return {k: self.defaults[k] for k in CHECK_DEFAULTS if k in self.defaults}

    @property
    def alpha(self) -> float:
        return float(self.defaults.get("alpha", 0.05))


def _policies_dir() -> Path:
    return Path(str(resources.files("auditor") / "policies"))


def default_policy_path() -> Path:
    """The shipped default policy file."""
    return _policies_dir() / "default.yaml"


def shipped_policies() -> list[str]:
    """Names of the policies shipped in ``auditor/policies`` (usable as ``--policy NAME``)."""
    return sorted(p.stem for p in _policies_dir().glob("*.yaml"))


def resolve_policy_path(policy: str | Path | None) -> Path:
    """A policy file from a path, a shipped name (``strict-ci``), or None (the shipped default)."""
    if policy is None:
        return default_policy_path()
    p = Path(policy)
    if p.is_file():
        return p
    shipped = shipped_policies()
    text = str(policy)
    looks_like_name = "/" not in text and "\\" not in text and p.suffix not in (".yaml", ".yml")
    if looks_like_name and text in shipped:
        return _policies_dir() / f"{text}.yaml"
    if looks_like_name:
        close = difflib.get_close_matches(text, shipped, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise PolicyError(f"unknown policy {text!r}: {hint}shipped policies: {', '.join(shipped)}; or pass the path of a YAML file")
    raise PolicyError(f"policy file {p} does not exist; pass an existing YAML file or a shipped policy "
                      f"({', '.join(shipped)}) to --policy, or leave it out for the default")


def _unknown_key(where: str, key: str, valid: tuple[str, ...]) -> PolicyError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return PolicyError(f"{where} has unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")


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
        check = get_check(n)
        overall = check.overall_metric_names if check.overall_metric_names is not None else check.metric_names
        if check.scoped:
            valid += [f"checks.{n}.metrics.*.{leaf}" for leaf in check.metric_names]
        valid += [f"checks.{n}.metrics.overall.{leaf}" for leaf in overall]
    if len(parts) < 5 or parts[0] != "checks" or parts[2] != "metrics":
        raise _metric_error(path, where, "is not of the form checks.CHECK.metrics.SCOPE.METRIC", valid)
    if parts[1] not in names:
        raise _metric_error(path, where, f"names no registered check {parts[1]!r}", valid)
    leaf = parts[4]
    check = get_check(parts[1])
    overall = check.overall_metric_names
    known = set(check.metric_names) | set(overall or ())
    if leaf not in known or len(parts) > 6 or (len(parts) == 6 and parts[5] != "value"):
        raise _metric_error(path, where, f"names no metric of {parts[1]}", valid)
    if parts[3] != "overall" and not check.scoped:
        raise _metric_error(path, where, f"has a scope, but {parts[1]} reports only overall metrics", valid)
    if parts[3] != "overall" and leaf not in check.metric_names:
        raise _metric_error(path, where, f"is an overall value of {parts[1]}; write checks.{parts[1]}.metrics.overall.{leaf}", valid)
    if parts[3] == "overall" and overall is not None and leaf not in overall:
        raise _metric_error(path, where, f"has no overall value ({leaf} compares groups; use * or a scope name)", valid)
    if "*" in parts[3] and parts[3] != "*" or any("*" in p for p in parts[:3] + parts[4:]):
        raise _metric_error(path, where, "may use * only as the whole SCOPE part", valid)


def _scope(raw: Any, metric: str, where: str) -> str | tuple[str, ...] | None:
    wildcard = metric.split(".")[3] == "*"
    if raw is None:
        return "attributes" if wildcard else None
    if not wildcard:
        raise PolicyError(f"{where} sets 'scope' but its metric names one scope ({metric.split('.')[3]!r}); "
                          "use * as the metric's scope, or remove 'scope'")
    if isinstance(raw, str):
        if raw in SCOPE_SELECTORS:
            return raw
        close = difflib.get_close_matches(raw, SCOPE_SELECTORS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else f"a single scope name goes in a list: [{raw}]; "
        raise PolicyError(f"{where} has scope {raw!r}; {hint}use attributes, intersections, all, or a list of "
                          "scope names")
    names = raw
    if not isinstance(names, list) or not names or not all(isinstance(s, str) and s.strip() for s in names):
        raise PolicyError(f"{where} has scope {raw!r}; use attributes, intersections, all, or a list of scope "
                          "names such as [race, gender+race]")
    if "overall" in names:
        raise PolicyError(f"{where} lists scope 'overall'; * never stands for overall: write a separate clause "
                          "on checks.CHECK.metrics.overall.METRIC")
    return tuple(names)


def _common(raw: Any, i: int, src: str, kind: str, keys: tuple[str, ...]) -> tuple[str, str, dict[str, Any]]:
    where = f"{src}: {kind} {i + 1}"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be a mapping with keys {', '.join(keys)}")
    cid = str(raw.get("id") or f"{kind}-{i + 1}")
    where = f"{src}: {kind} {cid!r}"
    for key in raw:
        if key not in keys:
            raise _unknown_key(where, str(key), keys)
    if "metric" not in raw:
        raise PolicyError(f"{where} is missing 'metric'; give a path such as checks.group_metrics.metrics.*.accuracy_difference")
    sev = str(raw.get("severity", "blocker"))
    if sev not in SEVERITIES:
        raise PolicyError(f"{where} has severity {sev!r}; use blocker or warning")
    return cid, where, raw


def _maps_to(raw: dict[str, Any]) -> tuple[str, ...]:
    maps_to = raw.get("maps_to", [])
    return (maps_to,) if isinstance(maps_to, str) else tuple(str(m) for m in maps_to or ())


def _number(value: Any, where: str, key: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PolicyError(f"{where} has {key} {value!r}; it must be a number")
    if minimum is not None and value < minimum:
        raise PolicyError(f"{where} has {key} {value!r}; it must be >= {minimum}")
    return float(value)


def _parse_clause(raw: Any, i: int, src: str, require_default: str) -> Clause:
    cid, where, raw = _common(raw, i, src, "clause", CLAUSE_KEYS)
    for key in ("op", "threshold"):
        if key not in raw:
            raise PolicyError(f"{where} is missing {key!r}; every clause needs metric, op and threshold")
    op = str(raw["op"])
    if op not in OPERATORS:
        raise PolicyError(f"{where} has operator {op!r}; use one of {', '.join(OPERATORS)}")
    thr = _number(raw["threshold"], where, "threshold")
    require = str(raw.get("require", require_default))
    if require not in REQUIRES:
        raise PolicyError(f"{where} has require {require!r}; use point (the value clears the threshold) or "
                          "interval (its whole confidence interval does)")
    metric = str(raw["metric"])
    _validate_metric(metric, where)
    return Clause(cid, metric, op, thr, str(raw.get("severity", "blocker")), str(raw.get("description", "")),
                  _maps_to(raw), require, _scope(raw.get("scope"), metric, where))


def _parse_regression(raw: Any, i: int, src: str) -> Regression:
    cid, where, raw = _common(raw, i, src, "regression", REGRESSION_KEYS)
    direction = raw.get("direction")
    if direction not in DIRECTIONS:
        raise PolicyError(f"{where} has direction {direction!r}; use higher_is_better (with max_drop) or "
                          "lower_is_better (with max_rise)")
    key = DIRECTIONS[str(direction)]
    other = "max_rise" if key == "max_drop" else "max_drop"
    if other in raw:
        raise PolicyError(f"{where} sets {other} but its direction is {direction}; use {key}")
    if key not in raw:
        raise PolicyError(f"{where} is missing {key!r}; give the worsening it allows, e.g. {key}: 0.02")
    allowance = _number(raw[key], where, key, minimum=0)
    significance = raw.get("significance", False)
    if not isinstance(significance, bool):
        raise PolicyError(f"{where} has significance {significance!r}; use true or false")
    metric = str(raw["metric"])
    _validate_metric(metric, where)
    return Regression(cid, metric, str(direction), allowance, significance, str(raw.get("severity", "blocker")),
                      str(raw.get("description", "")), _maps_to(raw), _scope(raw.get("scope"), metric, where))


def _parse_defaults(raw: Any, src: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PolicyError(f"policy file {src}: 'defaults' must be a mapping (e.g. min_group_size: 30)")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _DEFAULT_SPECS:
            raise _unknown_key(f"policy file {src}: defaults", str(key), tuple(_DEFAULT_SPECS))
        kind, low, high, choices, text = _DEFAULT_SPECS[key]
        ok = True
        if kind is bool:
            ok = isinstance(value, bool)
        elif choices is not None:
            ok = value in choices
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or kind is int and not isinstance(value, int):
            ok = False
        elif key == "alpha":
            ok = 0.0 < value <= 0.5
        else:
            ok = (low is None or value >= low) and (high is None or value <= high)
        if not ok:
            raise PolicyError(f"policy file {src}: defaults.{key} must be {text}; got {value!r}")
        out[key] = float(value) if kind is float else value
    return out


def _parse_requires(raw: Any, src: str) -> tuple[str, ...]:
    from auditor.checks.registry import check_names

    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else raw
    names = check_names()
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise PolicyError(f"policy file {src}: 'requires' must be a list of check names, e.g. [group_metrics]")
    for x in items:
        if x not in names:
            close = difflib.get_close_matches(x, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise PolicyError(f"policy file {src}: requires names no check {x!r}; {hint}checks: {', '.join(names)}")
    return tuple(dict.fromkeys(items))


def _yaml_problem(exc: Exception) -> str:
    """yaml's first line of complaint, with the line and column it points at (1-based)."""
    reason = (getattr(exc, "problem", None) or str(exc).splitlines()[0]).strip()
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        reason += f" at line {mark.line + 1}, column {mark.column + 1}"
    return reason


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy: a YAML path, a shipped name, or None for the shipped default."""
    p = resolve_policy_path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = _yaml_problem(exc)
        raise PolicyError(f"policy file {p} is not valid YAML ({reason}); fix the syntax") from None
    except OSError as exc:
        raise PolicyError(f"policy file {p} cannot be read ({exc.strerror}); pass a readable YAML file") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"policy file {p} must be a mapping with keys name, version, clauses")
    for key in raw:
        if key not in POLICY_KEYS:
            raise _unknown_key(f"policy file {p}", str(key), POLICY_KEYS)
    defaults = _parse_defaults(raw.get("defaults"), str(p))
    requires = _parse_requires(raw.get("requires"), str(p))
    clauses, regressions = raw.get("clauses") or [], raw.get("regressions") or []
    for key, items in (("clauses", clauses), ("regressions", regressions)):
        if not isinstance(items, list):
            raise PolicyError(f"policy file {p}: '{key}' must be a list of mappings")
    if not clauses and not regressions:
        raise PolicyError(f"policy file {p} has no clauses; add a 'clauses' list (or a 'regressions' list)")
    parsed = tuple(_parse_clause(c, i, str(p), defaults.get("require", "point")) for i, c in enumerate(clauses))
    parsed_r = tuple(_parse_regression(r, i, str(p)) for i, r in enumerate(regressions))
    ids = [c.id for c in parsed] + [r.id for r in parsed_r]
    dup = next((x for x in ids if ids.count(x) > 1), None)
    if dup:
        raise PolicyError(f"policy file {p} has two clauses with id {dup!r}; ids must be unique across clauses and regressions")
    return Policy(str(raw.get("name", p.stem)), str(raw.get("version", "1")), parsed, str(p),
                  str(raw.get("description", "")), defaults, parsed_r, requires)


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


def evaluate_policy(policy: Policy, results: dict[str, Any], baseline: Baseline | None = None) -> dict[str, Any]:
    """The ``policy`` block of results.json: each clause's value and result, and the verdict.

    Clause results: ``pass``, ``fail`` (the evidence says so: the whole interval on the wrong side),
    ``borderline`` (the interval straddles the threshold), ``insufficient_data`` (no value), and
    ``not_run`` (the clause's check was left out of ``--checks``). Verdict: ``fail`` if a blocker
    clause (threshold or regression) fails; else ``inconclusive`` if a check the policy ``requires`` was
    not run (``missing_required``), a blocker is borderline or lacks data, or every blocker was not run;
    else ``pass``. ``not_run`` clauses and warning clauses never
    change the verdict. Regression clauses are evaluated only with a ``baseline``; without one they
    are listed under ``regressions_skipped`` and do not count.
    """
    every = bool(policy.defaults.get("judge_every_group", False))
    entries = [e for c in policy.clauses for e in evaluate_clause(c, results, judge_every_group=every)]
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
    return {"name": policy.name, "version": policy.version, "source": policy.source,
            "description": policy.description, "requires": list(policy.requires), "missing_required": missing,
            "verdict": _verdict(entries, missing),
            "regressed": bool(regressed), "clauses": entries,
            "borderline": [c["id"] for c in entries if c["result"] == "borderline"],
            "not_run": [c["id"] for c in entries if c["result"] == "not_run"],
            "baseline": info, "regressions_skipped": skipped, "warnings": warnings}
