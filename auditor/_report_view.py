"""Turn a ``results.json`` dict into what the report template shows: plain values, no HTML.

Every part of the results may be missing (a partial run, an older file): each builder returns an
empty section rather than raising. Escaping is the template's job (autoescape); numbers that carry
markup (metric values with intervals) come from `metric_html`, which escapes what it inserts.
"""
from __future__ import annotations

import re
from typing import Any

from auditor._report_figures import accuracy_chart, embeddable_figures
from auditor._report_format import (
    as_dict,
    as_list,
    dig,
    fmt_plain,
    fmt_prose,
    metric_label,
    metric_value,
)

__all__ = ["OPS", "build_context", "verdict_of", "worst_disparities", "failing_clauses"]

RATES = ("accuracy", "selection_rate", "tpr", "fpr")
MAX_SKIPPED = 50
OPS = {">=": "≥", "<=": "≤", "!=": "≠", "==": "="}


def verdict_of(results: dict[str, Any]) -> str:
    """``pass``, ``fail``, ``inconclusive``, or ``none`` when no policy was evaluated."""
    v = dig(results, "policy", "verdict")
    return str(v).lower() if v not in (None, "") else "none"


def _clauses(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in as_list(dig(results, "policy", "clauses")) if isinstance(c, dict)]


def failing_clauses(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The policy clauses whose result is ``fail``, in policy order."""
    return [c for c in _clauses(results) if str(c.get("result")).lower() == "fail"]


def _group_value(results: dict[str, Any], attr: str, group: str, rate: str) -> float | None:
    return metric_value(dig(results, "checks", "group_metrics", "by_group", attr, group, rate))


def worst_disparities(results: dict[str, Any], limit: int = 5) -> list[str]:
    """One sentence per attribute about its largest ``*_difference``, largest first."""
    found: list[tuple[float, str]] = []
    for attr, table in as_dict(dig(results, "checks", "group_metrics", "metrics")).items():
        if attr == "overall" or not isinstance(table, dict):
            continue
        diffs = [(metric_value(m), k[: -len("_difference")], as_dict(m)) for k, m in table.items()
                 if str(k).endswith("_difference") and metric_value(m) is not None]
        if not diffs:
            continue
        value, stem, m = max(diffs, key=lambda d: d[0])
        groups = [str(g) for g in as_list(m.get("groups"))]
        label = metric_label(stem)
        if stem in RATES and len(groups) == 2:
            vals = [(g, _group_value(results, attr, g, stem)) for g in groups]
            vals.sort(key=lambda gv: -(gv[1] if gv[1] is not None else -1.0))
            named = " and ".join(g if v is None else f"{g} ({fmt_prose(v)})" for g, v in vals)
            text = f"{label} differs by {fmt_prose(value)} between {attr} groups {named}."
        elif len(groups) == 2:
            text = f"{label} difference is {fmt_prose(value)} for {attr} (between {groups[0]} and {groups[1]})."
        else:
            text = f"{label} differs by {fmt_prose(value)} across {attr} groups."
        found.append((value, text))
    found.sort(key=lambda f: -f[0])
    return [text for _, text in found[:limit]]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _summary(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    verdict = verdict_of(results)
    policy = as_dict(results.get("policy"))
    name = policy.get("name")
    under = f" under policy “{name}”" + (f" (version {policy['version']})" if policy.get("version") else "") if name else ""
    if verdict == "none":
        out.append("No policy was evaluated, so this audit has no verdict.")
    else:
        out.append(f"Verdict: {verdict.upper()}{under}.")
    clauses = _clauses(results)
    if clauses:
        failed = failing_clauses(results)
        by_sev: dict[str, int] = {}
        for c in failed:
            sev = str(c.get("severity") or "unspecified")
            by_sev[sev] = by_sev.get(sev, 0) + 1
        text = f"{len(failed)} of {_plural(len(clauses), 'clause')} failed"
        if by_sev:
            text += " (" + ", ".join(_plural(n, s) for s, n in sorted(by_sev.items(), key=lambda kv: (kv[0] != "blocker", kv[0]))) + ")"
        unknown = sum(1 for c in clauses if str(c.get("result")).lower() == "insufficient_data")
        if unknown:
            text += f"; {unknown} could not be evaluated for lack of data"
        out.append(text + ".")
        for c in failed:
            if c.get("severity") == "blocker":
                op = str(c.get("op") or "")
                out.append(f"Blocking failure {c.get('id')}: {c.get('description') or c.get('metric')} "
                           f"Measured {fmt_plain(c.get('value'))}; required {OPS.get(op, op)} {fmt_plain(c.get('threshold'))}.")
    out.extend(worst_disparities(results))
    thin = [f"{attr} {g} (n={as_dict(v).get('n', '?')})"
            for attr, groups in as_dict(dig(results, "checks", "group_metrics", "by_group")).items()
            for g, v in as_dict(groups).items() if as_dict(v).get("insufficient_data")]
    if thin:
        out.append("Too few images for reliable metrics, so left out of the disparities: " + ", ".join(thin) + ".")
    for cname, check in as_dict(results.get("checks")).items():
        status = str(as_dict(check).get("status") or "unknown")
        if status == "error":
            msg = as_dict(check).get("error") or "no error message was recorded"
            out.append(f"The {cname} check did not complete: {msg}.")
        elif status not in ("ok", "unknown"):
            out.append(f"The {cname} check has status “{status}”.")
    skipped = as_dict(results.get("probe")).get("n_skipped")
    if isinstance(skipped, int) and skipped > 0:
        verb = "was" if skipped == 1 else "were"
        out.append(f"{_plural(skipped, 'probe image')} could not be read and {verb} skipped (listed under Provenance).")
    return out


def _clause_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for c in _clauses(results):
        op = str(c.get("op") or "")
        maps = c.get("maps_to")
        rows.append({
            "id": str(c.get("id") or "?"),
            "description": str(c.get("description") or ""),
            "metric": str(c.get("metric") or ""),
            "test": f"{OPS.get(op, op)} {fmt_plain(c.get('threshold'))}".strip(),
            "value": {"value": c.get("value"), "ci": c.get("ci"), "reason": c.get("reason")},
            "result": str(c.get("result") or "unknown").lower(),
            "severity": str(c.get("severity") or ""),
            "maps_to": "; ".join(str(m) for m in maps) if isinstance(maps, list) else str(maps or ""),
        })
    return rows


def _slug(name: str, i: int) -> str:
    return f"check-{i}-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _columns(groups: dict[str, Any]) -> list[str]:
    """The metric columns of a group table: the four rates, then any other metric the check wrote."""
    cols = list(RATES)
    for g in groups.values():
        for k, v in as_dict(g).items():
            if k not in cols and k not in ("n", "insufficient_data") and isinstance(v, dict) and "value" in v:
                cols.append(k)
    return cols


def _disparity_rows(table: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(difference/ratio pairs by stem, other disparity metrics) of one attribute."""
    pairs: dict[str, dict[str, Any]] = {}
    others = []
    for key, m in table.items():
        key = str(key)
        if not isinstance(m, dict):
            continue
        for kind in ("difference", "ratio"):
            if key.endswith("_" + kind):
                pairs.setdefault(key[: -len(kind) - 1], {})[kind] = m
                break
        else:
            others.append({"label": metric_label(key), "value": m, "groups": _between(m)})
    rows = []
    for stem, pair in pairs.items():
        g_diff, g_ratio = _between(pair.get("difference")), _between(pair.get("ratio"))
        groups = g_diff if g_ratio in ("", g_diff) else (g_ratio if not g_diff else f"difference: {g_diff}; ratio: {g_ratio}")
        rows.append({"label": metric_label(stem), "difference": pair.get("difference"), "ratio": pair.get("ratio"), "groups": groups})
    return rows, others


def _between(m: Any) -> str:
    return " vs ".join(str(g) for g in as_list(as_dict(m).get("groups")))


def _check_view(name: str, check: Any, i: int) -> dict[str, Any]:
    c = as_dict(check)
    status = str(c.get("status") or "unknown").lower()
    figures, refused = embeddable_figures(c.get("figures"))
    view: dict[str, Any] = {
        "name": name, "anchor": _slug(name, i), "status": status, "seconds": c.get("seconds"),
        "params": as_dict(c.get("params")), "error": c.get("error"), "figures": figures,
        "refused_figures": refused, "metrics": c.get("metrics"), "by_group": c.get("by_group"),
        "kind": "generic",
    }
    if status == "error" and not view["error"]:
        view["error"] = "The check failed but recorded no error message."
    if name == "group_metrics":
        view.update(kind="group_metrics", **_group_metrics_view(c))
    return view


def _group_metrics_view(c: dict[str, Any]) -> dict[str, Any]:
    metrics, by_group = as_dict(c.get("metrics")), as_dict(c.get("by_group"))
    overall = as_dict(metrics.get("overall"))
    attrs = list(dict.fromkeys([a for a in metrics if a != "overall"] + list(by_group)))
    views = []
    for attr in attrs:
        groups, table = as_dict(by_group.get(attr)), as_dict(metrics.get(attr))
        pairs, others = _disparity_rows(table)
        views.append({
            "name": str(attr),
            "columns": _columns(groups),
            "groups": [{"name": str(g), **as_dict(v)} for g, v in groups.items()],
            "pairs": pairs, "others": others,
            "reason": table.get("reason") if isinstance(table.get("reason"), str) else None,
            "chart": accuracy_chart(str(attr), groups, overall.get("accuracy")),
        })
    return {"overall": overall, "attributes": views}


def _provenance(results: dict[str, Any]) -> dict[str, Any]:
    probe = as_dict(results.get("probe"))
    skipped = as_list(probe.get("skipped"))
    run = {k: results.get(k) for k in ("command", "seed", "budget", "device", "auditor_version", "created", "schema_version")
           if results.get(k) not in (None, "")}
    cost = as_dict(results.get("cost"))
    return {
        "model": as_dict(results.get("model")),
        "probe": probe,
        "skipped": [as_dict(s) if isinstance(s, dict) else {"path": str(s)} for s in skipped[:MAX_SKIPPED]],
        "skipped_more": max(0, len(skipped) - MAX_SKIPPED),
        "attributes": {str(a): as_dict(g) for a, g in as_dict(probe.get("attributes")).items()},
        "run": run,
        "environment": as_dict(results.get("environment")),
        "cost": cost,
        "cost_seconds": as_dict(cost.get("seconds")),
    }


def build_context(results: dict[str, Any]) -> dict[str, Any]:
    """Everything the template needs, from a results dict of any completeness."""
    results = as_dict(results)
    model = as_dict(results.get("model"))
    checks = as_dict(results.get("checks"))
    return {
        "model_name": model.get("name") or model.get("source") or "unnamed model",
        "model_source": model.get("source"),
        "probe_source": dig(results, "probe", "source"),
        "created": results.get("created"),
        "verdict": verdict_of(results),
        "policy": as_dict(results.get("policy")),
        "summary": _summary(results),
        "clauses": _clause_rows(results),
        "checks": [_check_view(str(n), c, i) for i, (n, c) in enumerate(checks.items())],
        "prov": _provenance(results),
    }
