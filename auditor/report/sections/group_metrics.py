"""The group_metrics part of the report: one view per scope (attribute or intersection), plain values.

Attribute scopes show every group; intersection scopes can have many small groups, so they show a
heatmap of every cell, a table of only the groups with enough images (lowest accuracy first, capped),
and a one-line list of the groups that had too few. Disparity rows carry the gap, its interval, the
adjusted p-value with the significance mark, the ratio and the largest gap to the overall rate.
"""
from __future__ import annotations

from typing import Any

from auditor.report._charts import heatmap_chart, rate_bars
from auditor.report._findings import scope_label
from auditor.report._format import as_dict, as_list, dig, fmt_p_of, metric_label, metric_value, p_shown, short
from auditor.report._markdown import MAX_ROWS, md, md_metric, md_rows
from auditor.report._rows import add_row, higher_is_better, is_metric_entry, keys_of, leaf_rows, metric_row, row_label
from auditor.report.presenter import Presenter, register_presenter
from auditor.report.sections._group_text import (
    methodology as gm_methodology, findings as gm_findings, notes as gm_notes, clause_hint as gm_clause_hint,
    _significant, significant_gaps,
)

__all__ = ["KEY_RATES", "RATE_ORDER", "GroupMetricsPresenter", "group_metrics_view", "significant_gaps"]

KEY_RATES = ("accuracy", "selection_rate", "tpr", "fpr")
QUALITY_RATES = ("precision", "ece", "brier")
RATE_ORDER = ("accuracy", "error_rate", "selection_rate", "tpr", "fnr", "fpr", "tnr", "precision", "ece", "brier")
# Disparity rows: error rate, FNR and TNR gaps equal the accuracy, TPR and FPR gaps (their ratios are in
# results.json), so they are left out unless nothing else is there; equalized odds pairs like a rate.
DISPARITY_STEMS = ("accuracy", "selection_rate", "tpr", "fpr", "precision", "ece", "brier", "equalized_odds")
TWINS = ("error_rate", "fnr", "tnr")
ALIASES = {"demographic_parity": "selection_rate", "equal_opportunity": "tpr"}
SUMMARY_KEYS = ("worst_group_accuracy", "four_fifths_violations")
SKIP_KEYS = {"scope", "n_groups", "n_eligible", "reason"}
MAX_INTERSECTION_ROWS = 40
MAX_THIN_LISTED = 40
MAX_CLASSES = 10
MAX_N_MORE = 100_000  # beyond this many more images, "gap too small to resolve" says it better
MD_COLUMNS = ("accuracy_difference", "selection_rate_ratio", "tpr_difference", "fpr_difference",
              "equalized_odds_difference", "worst_group_accuracy")
MD_HEADERS = {"accuracy_difference": "Accuracy gap", "selection_rate_ratio": "Selection-rate ratio",
              "tpr_difference": "TPR gap", "fpr_difference": "FPR gap", "equalized_odds_difference": "Equalized-odds gap",
              "worst_group_accuracy": "Worst-group accuracy"}
KEY_COMPARED = {"accuracy_difference", "selection_rate_ratio", "tpr_ratio", "equalized_odds_difference", "worst_group_accuracy"}


def _suffixes(stem: str) -> tuple[str, ...]:
    return (f"{stem}_difference", f"{stem}_ratio", f"{stem}_max_abs_difference_to_overall")


def _power_note(m: dict[str, Any]) -> str:
    """"power 0.42; ~120 more images" for an untested-as-significant gap that lacked power."""
    power = as_dict(m.get("power"))
    achieved, n_more = power.get("achieved"), power.get("n_more")
    if m.get("significant") is True or metric_value(achieved) is None:
        return ""
    text = f"power {metric_value(achieved):.2f}"
    if isinstance(n_more, int) and 0 < n_more <= MAX_N_MORE:
        text += f", +{n_more:,} img"
    elif isinstance(n_more, int) and n_more > MAX_N_MORE:
        text += ", gap too small to resolve"
    return text


def _between(m: Any) -> str:
    groups = [short(g, 60) for g in as_list(as_dict(m).get("groups"))]
    return " → ".join(groups)


def _disparity_rows(table: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per rate: gap, p, ratio, gap to overall), (the summary metrics and anything unknown)."""
    rows = []
    used: set[str] = set(SKIP_KEYS)
    for stem in DISPARITY_STEMS:
        diff, ratio, far = (table.get(k) for k in _suffixes(stem))
        used.update(_suffixes(stem))
        if diff is None and ratio is None and far is None:
            continue
        d = as_dict(diff)
        rows.append({
            "stem": stem, "label": metric_label(stem), "difference": diff, "ratio": ratio, "to_overall": far,
            "to_overall_group": _between(far), "groups": _between(diff) or _between(ratio),
            "p_value": p_shown(d, "p_value"), "p_adjusted": p_shown(d), "significant": d.get("significant"),
            "power": _power_note(d), "note": f"driven by {metric_label(d['driven_by'])}" if d.get("driven_by") else "",
        })
    for stem in TWINS:
        used.update(_suffixes(stem))
    for alias, base in ALIASES.items():
        for kind in ("difference", "ratio"):
            key = f"{alias}_{kind}"
            if metric_value(table.get(key)) == metric_value(table.get(f"{base}_{kind}")):
                used.add(key)  # the same number under its fairness name: said once, in the glossary
    others = []
    for key in list(SUMMARY_KEYS) + [k for k in table if k not in SUMMARY_KEYS]:
        if key in used or key not in table or not isinstance(table[key], dict):
            continue
        used.add(key)
        m = as_dict(table[key])
        note = short(m.get("rule"), 200) if m.get("rule") else ""
        if m.get("driven_by"):
            note = f"driven by {metric_label(m['driven_by'])}"
        others.append({"label": metric_label(key), "value": m, "groups": _between(m), "note": note,
                       "p_adjusted": p_shown(m), "significant": m.get("significant")})
    return rows, others


def _to_minimum(g: dict[str, Any], min_n: Any) -> int | None:
    """Images a small group lacks to reach the minimum size (the check's n_needed when that is unknown)."""
    n = g.get("n")
    if isinstance(min_n, int) and isinstance(n, int) and not isinstance(n, bool):
        return max(0, min_n - n) or None
    needed = g.get("n_needed")
    return needed if isinstance(needed, int) and needed > 0 else None


def _group_row(name: str, g: dict[str, Any], columns: tuple[str, ...], min_n: Any = None) -> dict[str, Any]:
    return {
        "name": short(name), "n": g.get("n"), "thin": bool(g.get("insufficient_data")),
        "n_needed": _to_minimum(g, min_n) if g.get("insufficient_data") else None,
        "cells": {c: g.get(c) for c in columns},
        "sig": {c: as_dict(g.get(c)).get("significant") is True for c in columns},
    }


def _per_class(groups: dict[str, Any]) -> dict[str, Any] | None:
    """Per-class true positive rate (recall) of each group, for multi-class models."""
    classes: list[str] = []
    for g in groups.values():
        for cls in as_dict(as_dict(g).get("per_class")):
            if cls not in classes:
                classes.append(cls)
    if not classes:
        return None
    shown = classes[:MAX_CLASSES]
    rows = [{"name": short(n), "cells": [dig_tpr(g, c) for c in shown]} for n, g in groups.items()]
    return {"classes": [short(c, 30) for c in shown], "more": len(classes) - len(shown), "rows": rows}


def dig_tpr(g: Any, cls: str) -> Any:
    return as_dict(as_dict(as_dict(g).get("per_class")).get(cls)).get("tpr")


def _scope_view(name: str, table: dict[str, Any], groups: dict[str, Any], overall: dict[str, Any], i: int,
                min_n: Any) -> dict[str, Any]:
    info = as_dict(table.get("scope"))
    kind = str(info.get("kind") or ("intersection" if "+" in name else "attribute"))
    attributes = [str(a) for a in as_list(info.get("attributes"))] or name.split("+")
    quality = tuple(c for c in QUALITY_RATES if any(c in as_dict(g) for g in groups.values()))
    pairs, others = _disparity_rows(table)
    has_p = any(r.get("p_adjusted") is not None for r in pairs + others)
    values = [r.get("difference") for r in pairs] + [r.get("ratio") for r in pairs] + [r.get("value") for r in others]
    undefined = bool(pairs or others) and all(metric_value(v) is None for v in values)
    if undefined:  # one sentence instead of a table of n/a
        reasons = [as_dict(v).get("reason") for v in values if as_dict(v).get("reason")]
        why = str(reasons[0]) if reasons else "no value was recorded"
        table = {**table, "reason": table.get("reason") or f"No disparity could be computed: {why}."}
        pairs, others = [], []
    has_far = any(r.get("to_overall") is not None for r in pairs)
    view: dict[str, Any] = {
        "name": short(name), "label": scope_label(name), "kind": kind, "anchor": f"gm-scope-{i}",
        "attributes": [short(a, 60) for a in attributes],
        "n_groups": table.get("n_groups", len(groups)), "n_eligible": table.get("n_eligible"),
        "reason": short(table["reason"], 300) if isinstance(table.get("reason"), str) else None,
        "columns": KEY_RATES + quality, "pairs": pairs, "others": others, "has_p": has_p, "has_far": has_far,
        "chart": None, "heatmap": None, "rows": [], "thin": [], "thin_more": 0, "rows_note": "", "per_class": None,
    }
    columns = KEY_RATES + quality
    if kind == "intersection":
        big = [(g, as_dict(v)) for g, v in groups.items() if not as_dict(v).get("insufficient_data")]
        big.sort(key=lambda gv: metric_value(gv[1].get("accuracy")) if metric_value(gv[1].get("accuracy")) is not None else 2.0)
        view["rows"] = [_group_row(str(g), v, columns) for g, v in big[:MAX_INTERSECTION_ROWS]]
        if big:
            view["rows_note"] = (f"The {len(view['rows'])} of {len(groups)} groups with at least {min_n} images"
                                 if min_n is not None else f"The {len(view['rows'])} groups with enough images")
            view["rows_note"] += (f" ({len(big) - len(view['rows'])} more with enough images are in results.json)"
                                  if len(big) > len(view["rows"]) else "") + ", lowest accuracy first."
        thin = [(str(g), as_dict(v)) for g, v in groups.items() if as_dict(v).get("insufficient_data")]
        view["thin"] = [{"name": short(g, 80), "n": v.get("n"), "n_needed": _to_minimum(v, min_n)} for g, v in thin[:MAX_THIN_LISTED]]
        view["thin_more"] = max(0, len(thin) - MAX_THIN_LISTED)
        view["heatmap"] = heatmap_chart(name, attributes, groups)
    else:
        view["rows"] = [_group_row(str(g), as_dict(v), columns, min_n) for g, v in groups.items()]
        view["chart"] = rate_bars(name, groups, overall, KEY_RATES)
        view["per_class"] = _per_class(groups)
    return view


def group_metrics_view(check: dict[str, Any]) -> dict[str, Any]:
    """What the template shows for a group_metrics check of any schema vintage."""
    metrics, by_group = as_dict(check.get("metrics")), as_dict(check.get("by_group"))
    overall = as_dict(metrics.get("overall"))
    params = as_dict(check.get("params"))
    names = list(dict.fromkeys([str(s) for s in metrics if s != "overall"] + [str(s) for s in by_group]))
    scopes = [_scope_view(s, as_dict(metrics.get(s)), as_dict(by_group.get(s)), overall, i, params.get("min_group_size"))
              for i, s in enumerate(names)]
    alpha = params.get("alpha")
    return {
        "overall": overall,
        "overall_columns": tuple(c for c in KEY_RATES + QUALITY_RATES if c in overall) or KEY_RATES,
        "attributes": [s for s in scopes if s["kind"] != "intersection"],
        "intersections": [s for s in scopes if s["kind"] == "intersection"],
        "alpha": alpha if metric_value(alpha) is not None else None,
        "correction": short(params["correction"], 20) if params.get("correction") else None,
        "min_group_size": params.get("min_group_size"),
    }


def _md_gaps(check: dict[str, Any]) -> list[str]:
    gaps, more = _significant(check, limit=8)
    if not gaps:
        return []
    tested = gaps[0]["tested"]
    out = ["### Largest significant gaps between groups" if tested else "### Largest gaps between groups", "",
           "| Scope | Metric | Lowest group | Highest group | Gap [interval] | p (adj.) |", "|---|---|---|---|---:|---:|"]
    by_group = as_dict(check.get("by_group"))
    for g in gaps:
        m = g["entry"]
        names = g["groups"] + ["", ""]
        cells = []
        for name in names[:2]:
            value = dig(by_group, g["scope"], name, g["rate"])
            cells.append(md(name, 60) + (f" {md_metric(value, 2)}" if name else ""))
        p = fmt_p_of(m) + (" ✱" if m.get("significant") is True else "") if m.get("p_adjusted") is not None else "n/a"
        out.append(f"| {md(scope_label(g['scope']), 60)} | {md(metric_label(g['rate']))} | {cells[0]} | {cells[1]} | "
                   f"{md_metric(m)} | {p} |")
    return md_rows(out, more, "significant gaps in the full report")


def _md_attribute_table(check: dict[str, Any]) -> list[str]:
    metrics = as_dict(check.get("metrics"))
    scopes = {s: t for s, t in metrics.items() if s != "overall" and isinstance(t, dict)
              and as_dict(t.get("scope")).get("kind", "attribute") == "attribute"}
    cols = [c for c in MD_COLUMNS if any(c in t for t in scopes.values())]
    if not scopes or not cols:
        return []
    out = ["### Disparities by attribute", "", "| Attribute | " + " | ".join(MD_HEADERS[c] for c in cols) + " |",
           "|---|" + "---:|" * len(cols)]
    for scope, table in list(scopes.items())[:MAX_ROWS]:
        cells = []
        for c in cols:
            m = table.get(c)
            text = md_metric(m) if c in table else ""
            cells.append(text + (" ✱" if as_dict(m).get("significant") is True else ""))
        out.append(f"| {md(scope, 60)} | " + " | ".join(cells) + " |")
    n_inter = sum(1 for s, t in metrics.items() if as_dict(as_dict(t).get("scope")).get("kind") == "intersection")
    out += [""] + ([f"{n_inter} intersections (e.g. gender × race) are in the full report."] if n_inter else [])
    out.append("Values: estimate [interval]; ✱ significant after correction for multiple comparisons.")
    return out + [""]


@register_presenter
class GroupMetricsPresenter(Presenter):
    """Group fairness: rates and disparities per group, the largest significant gaps on page 1."""

    name = "group_metrics"
    title = "Group fairness"
    order = 10
    template_name = "report_macros.html.j2"
    macro = "group_metrics"
    method_title = "How the numbers are computed"
    directions = {"worst_group_accuracy": True, "four_fifths_violations": False}
    accuracy_key = "group_metrics.overall.accuracy"

    def view(self, check: dict[str, Any], figures: list[dict[str, str]]) -> dict[str, Any]:
        return group_metrics_view(check)

    def markdown(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        return _md_gaps(check) + _md_attribute_table(check)

    def junit(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        overall = as_dict(dig(check, "metrics", "overall"))
        gaps, more = _significant(check)
        return [f"overall {metric_label(k).lower()}: {md_metric(overall[k])}" for k in KEY_RATES if k in overall] + [
            f"significant gaps between groups: {len(gaps) + more}"]

    def methodology(self, check: dict[str, Any], results: dict[str, Any]) -> list[dict[str, str]]:
        return gm_methodology(as_dict(check.get("params")))

    def findings(self, check: dict[str, Any], results: dict[str, Any]) -> list[dict[str, Any]]:
        return gm_findings(check)

    def notes(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        return gm_notes(check)

    def clause_hint(self, check: dict[str, Any], results: dict[str, Any], clause: dict[str, Any]) -> str:
        return gm_clause_hint(check, clause)

    def compare_rows(self, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        mb, ma = as_dict(before.get("metrics")), as_dict(after.get("metrics"))
        rows: list[dict[str, Any]] = []
        ob, oa = as_dict(mb.get("overall")), as_dict(ma.get("overall"))
        for key in keys_of(ob, oa):
            bx, ax = ob.get(key), oa.get(key)
            if not is_metric_entry(bx) and not is_metric_entry(ax):
                continue
            add_row(rows, metric_row(self.name, f"{self.name}.overall.{key}", f"overall: {row_label(key)}", bx, ax,
                                     higher_is_better(key), key_metric=key == "accuracy", scope="overall",
                                     scope_kind="overall", metric=key))
        for scope in keys_of(mb, ma):
            if scope != "overall":
                leaf_rows(self.name, scope, mb.get(scope), ma.get(scope), rows, KEY_COMPARED)
        return rows
