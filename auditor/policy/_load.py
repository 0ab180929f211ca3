"""Reading a policy: resolve ``--policy`` (a path, a shipped name, or None for the default), parse its
YAML and validate every clause, regression clause and default, with a message that says what to fix.
The file format is documented in the README (Policies).
"""
from __future__ import annotations

import difflib
import hashlib
import math
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from auditor.checks.base import Param
from auditor.errors import PolicyError
from auditor.validation import Instance, ParameterError
from auditor.policy.model import (
    BORDERLINE,
    CHECK_DEFAULTS,
    CLAUSE_KEYS,
    DIRECTIONS,
    OPERATORS,
    POLICY_KEYS,
    REGRESSION_KEYS,
    REQUIRES,
    SCOPE_SELECTORS,
    SEVERITIES,
    Clause,
    Policy,
    Regression,
)

__all__ = ["load_policy", "default_policy_path", "shipped_policies", "resolve_policy_path"]

def _default_params() -> dict[str, Param]:
    """What each key of a policy's ``defaults`` may hold: the group_metrics parameters it sets, declared (and
    so validated) by the check itself, and the policy's own three."""
    from auditor.checks import get_check  # lazy, as in _parse_requires: the registry loads every check

    declared = get_check("group_metrics").params
    return {**{k: declared[k] for k in CHECK_DEFAULTS},
            "require": Param(str, "point", "what a clause requires by default", choices=REQUIRES),
            "judge_every_group": Param(bool, False, "judge every group, not only the worst",
                                       satisfies=Instance(bool, "true or false")),
            "borderline": Param(str, "warn", "what a clause whose interval crosses its threshold becomes",
                                choices=BORDERLINE)}


def _policies_dir() -> Path:
    return Path(str(resources.files("auditor.policy") / "shipped"))


def default_policy_path() -> Path:
    """The shipped default policy file."""
    return _policies_dir() / "default.yaml"


def shipped_policies() -> list[str]:
    """Names of the policies shipped in ``auditor/policy/shipped`` (usable as ``--policy NAME``)."""
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
    # Lazy: the registry loads every check, and with them torch; only validating a metric needs it.
    from auditor.checks import check_names, get_check

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
    specs = _default_params()
    for key, value in raw.items():
        if key not in specs:
            raise _unknown_key(f"policy file {src}: defaults", str(key), tuple(specs))
        try:
            out[key] = specs[key].validate(key, "policy", value)
        except ParameterError:
            raise PolicyError(f"policy file {src}: defaults.{key} must be {specs[key].constraint()}; got {value!r}") from None
    return out


def _parse_requires(raw: Any, src: str) -> tuple[str, ...]:
    # Lazy: the registry loads every check, and with them torch; only validating requires needs it.
    from auditor.checks import check_names

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
        data = p.read_bytes()
        raw = yaml.safe_load(data.decode("utf-8"))
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
    source, shipped = _source(path, p)
    return Policy(str(raw.get("name", p.stem)), str(raw.get("version", "1")), parsed, source,
                  str(raw.get("description", "")), defaults, parsed_r, requires,
                  sha256=hashlib.sha256(data).hexdigest(), shipped=shipped)


def _source(given: str | Path | None, p: Path) -> tuple[str, bool]:
    """Where the policy came from, for results.json: a shipped policy by its name (and True), any other file
    as the user gave it (a relative path stays relative; never resolved to a local absolute one)."""
    if p.resolve().parent == _policies_dir().resolve():  # None, a shipped name, or a path into the shipped folder
        return p.stem, True
    return str(given), False
