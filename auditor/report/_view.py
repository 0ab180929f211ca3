"""Turn a ``results.json`` dict into what the report template shows: plain values, no HTML.

Every part of the results may be missing (a partial run, an older file): each builder returns an
empty section rather than raising. A check's section is its presenter's view and macro
(`auditor.report.presenter`); without one, or outside its schema, the generic tree. Escaping is the template's job (autoescape); numbers that carry
markup (metric values with intervals) come from `metric_html`, which escapes what it inserts.
"""
from __future__ import annotations

import re
from typing import Any

from auditor.report._assumptions import assumption_rows
from auditor.report._charts import embeddable_figures
from auditor.report._decision import decision_sheet
from auditor.report._diagnosis import diagnosis
from auditor.report._findings import clause_requirement, clauses, summary, verdict_of
from auditor.report._format import as_dict, as_list, dig, p_shown, short
from auditor.report._method import methodology
from auditor.report.presenter import get_presenter

__all__ = ["build_context", "verdict_of"]

MAX_SKIPPED = 50
SPLIT = frozenset({"group_metrics", "spurious", "attacks", "explanations"})
"""Checks whose section macro (in ``report_macros.html.j2``) takes a part, "main" or "appendix": their
per-group tables and details go to the appendix."""
MAX_CLAUSES = 500


def _clause_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for c in clauses(results)[:MAX_CLAUSES]:
        maps = c.get("maps_to")
        regression = c.get("kind") == "regression"
        rows.append({
            "id": short(c.get("id") or "?"),
            "description": short(c.get("description") or "", 400),
            "metric": short(c.get("metric") or "", 300),
            "kind": "regression" if regression else "threshold",
            "requirement": clause_requirement(c),
            "value": {"value": c.get("value"), "ci": c.get("ci"),
                      "reason": (c.get("reason") if c.get("result") != "pass" else None) or c.get("note")},
            "result": str(c.get("result") or "unknown").lower(),
            "borderline": c.get("borderline") is True,
            "severity": short(c.get("severity") or "", 20),
            "maps_to": [short(m, 200) for m in (maps if isinstance(maps, list) else [maps] if maps else [])],
            "p_adjusted": p_shown(c),
            "p_value": c.get("p_value") if regression else None,
            "significant": c.get("significant"),
            "baseline": {"value": c.get("baseline_value"), "ci": c.get("baseline_ci")} if regression else None,
            "delta": c.get("delta") if regression else None,
        })
    return rows


def _slug(name: str, i: int) -> str:
    return f"check-{i}-" + re.sub(r"[^a-z0-9]+", "-", short(name, 40).lower()).strip("-")


def _check_view(name: str, check: Any, i: int) -> dict[str, Any]:
    c = as_dict(check)
    status = short(c.get("status") or "unknown", 30).lower()
    figures, refused = embeddable_figures(c.get("figures"))
    error = c.get("error")
    view: dict[str, Any] = {
        "name": short(name), "anchor": _slug(name, i), "status": status,
        "seconds": c.get("seconds") if isinstance(c.get("seconds"), (int, float)) else None,
        "params": {short(k, 60): v for k, v in as_dict(c.get("params")).items()},
        "error": short(error, 2000) if error not in (None, "") else None, "figures": figures,
        "refused_figures": refused, "metrics": c.get("metrics"), "by_group": c.get("by_group"), "kind": "generic", "split": False,
    }
    if status == "error" and not view["error"]:
        view["error"] = "The check failed but recorded no error message."
    presenter = get_presenter(name)
    section = presenter.view(c, figures) if status != "error" else None
    if section is not None:  # None: not in the check's schema (or no presenter), shown as the generic tree
        view.update(kind=presenter.name, template=presenter.section_template(), macro=presenter.macro, view=section,
                    split=presenter.name in SPLIT and presenter.section_template() == "report_macros.html.j2",
                    figures=presenter.figures_left(section, figures))
    return view


def _reproducibility(results: dict[str, Any]) -> dict[str, Any]:
    probe = as_dict(results.get("probe"))
    skipped = as_list(probe.get("skipped"))
    run = {k: results.get(k) for k in ("command", "seed", "budget", "device", "auditor_version", "created", "schema_version")
           if results.get(k) not in (None, "")}
    cost = as_dict(results.get("cost"))
    policy = as_dict(results.get("policy"))
    return {
        "model": as_dict(results.get("model")),
        "probe": probe,
        "skipped": [as_dict(s) if isinstance(s, dict) else {"path": str(s)} for s in skipped[:MAX_SKIPPED]],
        "skipped_more": max(0, len(skipped) - MAX_SKIPPED),
        "attributes": {short(a, 60): as_dict(g) for a, g in as_dict(probe.get("attributes")).items()},
        "run": run,
        "policy": {k: policy.get(k) for k in ("name", "version", "source", "sha256") if policy.get(k) not in (None, "")},
        "policy_shipped": policy.get("shipped") is True,
        "baseline": as_dict(policy.get("baseline")),
        "regressions_skipped": [as_dict(r) for r in as_list(policy.get("regressions_skipped"))],
        "environment": as_dict(results.get("environment")),
        "cost": cost,
        "cost_seconds": as_dict(cost.get("seconds")),
    }


def build_context(results: dict[str, Any]) -> dict[str, Any]:
    """Everything the template needs, from a results dict of any completeness."""
    results = as_dict(results)
    model = as_dict(results.get("model"))
    checks = as_dict(results.get("checks"))
    policy = as_dict(results.get("policy"))
    name = model.get("name") or model.get("source") or "unnamed model"
    views = [_check_view(str(n), c, i) for i, (n, c) in enumerate(checks.items())]
    return {
        "model_name": short(name),
        "model_short": short(name, 50),
        "model_source": short(model.get("source"), 300) if model.get("source") else None,
        "probe_source": short(dig(results, "probe", "source"), 300) if dig(results, "probe", "source") else None,
        "created": short(results["created"], 40) if results.get("created") else None,
        "verdict": verdict_of(results),
        "policy": {"name": short(policy.get("name"), 80) if policy.get("name") else None,
                   "version": short(policy.get("version"), 40) if policy.get("version") not in (None, "") else None,
                   "description": short(policy.get("description"), 400) if policy.get("description") else None,
                   "sha256": short(policy.get("sha256"), 100) if isinstance(policy.get("sha256"), str) and policy.get("sha256") else None},
        "decision": decision_sheet(results),
        "diagnosis": diagnosis(results),
        "summary": summary(results),
        "assumptions": assumption_rows(results),
        "clauses": _clause_rows(results),
        "clauses_more": max(0, len(clauses(results)) - MAX_CLAUSES),
        "has_regressions": any(c.get("kind") == "regression" for c in clauses(results)),
        "checks": views,
        "method": methodology(results),
        "prov": _reproducibility(results),
    }
