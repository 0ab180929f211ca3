"""The explanations part of the report: whether each attribution method is faithful to the model
(deletion and insertion against a random pixel order) and sane (cascading model randomisation), how
the attributions differ between groups, the first-layer filters, the class models and the notes, as
plain values.

The check's parts (`PARTS`: methods, random baseline, findings, ...) live under ``metrics.overall``; every
other key of ``metrics`` is an attribute scope (``{"scope": {"kind": "attribute"}, "<metric>_difference":
{...}}``), as the policy engine reads them. A ``checks.explanations`` entry that is not in the check's
schema (none of `SCHEMA_KEYS` in ``metrics.overall``) gives None, and the report falls back to the generic
tree, so nothing recorded is hidden. Every string is left unescaped (the template
escapes it) and cut to a readable length; every list is capped.
"""
from __future__ import annotations

from typing import Any

from auditor.explain import LABELS
from auditor.report._charts import embeddable_figures
from auditor.report._curves import faithfulness_curves, sanity_chart
from auditor.report._findings import scope_label
from auditor.report._format import (
    NA, as_dict, as_list, fmt_num, fmt_plain, fmt_prose, metric_ci, metric_label, metric_value, p_shown, short,
    clause_scope, sample_remedy,
)

from auditor.report._markdown import md, md_rate, md_rows
from auditor.report._rows import add_row, higher_is_better, keys_of, leaf_rows, metric_row, row_label
from auditor.report.presenter import Presenter, ran, register_presenter
from auditor.report.sections._explanations_text import methodology as ex_methodology, limitations as ex_limitations

__all__ = ["LABELS", "ExplanationsPresenter", "explanations_view", "finding_text", "method_label"]

SCHEMA_KEYS = ("methods", "summary", "random_baseline", "findings")  # any of them in metrics.overall
PARTS = ("methods", "reference_method", "random_baseline", "curve_fractions", "findings", "first_layer", "class_models",
         "notes", "summary")  # read from metrics.overall only
DIFFERENCES = {"subject_share_difference": "Subject share", "deletion_auc_difference": "Deletion AUC",
               "insertion_auc_difference": "Insertion AUC"}
SANITY = {"passed": "passed", "failed": "failed", "not_run": "not run"}
FIGURES = {"attributions": "Attribution maps: a row per image, the image and then each method's map",
           "sanity_cascade": "Sanity check: each method's map on the original model, then after each randomisation stage",
           "first_layer_filters": "The first layer's filters",
           "class_models": "Class models: an input optimised to raise each class's score"}
MAX_METHODS = 12
MAX_STAGES = 12
MAX_ATTRIBUTES = 10
MAX_DIFFERENCES = 40
MAX_FINDINGS = 20
MAX_GROUPS = 20  # per attribute
MAX_CLASSES = 40
MAX_NOTES = 20
MAX_POINTS = 101  # of a curve


def _metric(x: Any) -> dict[str, Any] | None:
    """A ``{value, ci, reason}`` for the template's cell macro; None when the key is absent."""
    if x is None:
        return None
    return x if isinstance(x, dict) else {"value": x}


def _int(x: Any) -> int | None:
    v = metric_value(x)
    return int(v) if v is not None and v == int(v) else None


def _text(x: Any, width: int = 400) -> str | None:
    return short(x, width) if isinstance(x, str) and x.strip() else None


def method_label(key: Any, methods: dict[str, Any] | None = None) -> str:
    """The method's label as the check recorded it, else a known name, else the key de-snake-cased."""
    recorded = as_dict(as_dict(methods).get(key)).get("label") if isinstance(key, str) else None
    if isinstance(recorded, str) and recorded.strip():
        return short(recorded, 60)
    return LABELS.get(key, metric_label(key)) if isinstance(key, str) else short(key, 60)


def _sanity(s: Any) -> dict[str, Any]:
    """A method's sanity verdict: status (passed/failed/not_run/unknown), its word, the reason, the final ρ."""
    s = as_dict(s)
    status = s["status"] if isinstance(s.get("status"), str) and s["status"] in SANITY else "unknown" if s else "none"
    return {"status": status, "word": SANITY.get(status, NA), "reason": _text(s.get("reason"), 300),
            "final": _metric(s.get("final_rank_correlation"))}


def _method(key: str, m: dict[str, Any], methods: dict[str, Any]) -> dict[str, Any]:
    """One row of the faithfulness table."""
    status = m.get("status")
    method_ran = status in (None, "ok")
    faithful = m.get("faithful")
    return {
        "key": key, "label": method_label(key, methods), "ran": method_ran,
        "status": "not run" if status == "not_run" else short(status, 30).replace("_", " ") if status else "ok",
        "reason": _text(m.get("reason"), 400),
        "deletion": _metric(m.get("deletion_auc")), "insertion": _metric(m.get("insertion_auc")),
        "deletion_gain": _metric(m.get("deletion_gain")), "insertion_gain": _metric(m.get("insertion_gain")),
        "faithful": faithful if isinstance(faithful, bool) else None,
        "sanity": _sanity(m.get("sanity")),
        "subject_share": _metric(m.get("subject_share")),
    }


def _curve(x: Any) -> list[float | None]:
    """A curve's points as finite floats or None (the chart skips those), capped."""
    return [metric_value(v) for v in as_list(x)[:MAX_POINTS]]


def _curves_chart(methods: dict[str, Any], rows: list[dict[str, Any]], random: dict[str, Any], fractions: Any) -> str | None:
    lines = [[r["label"], _curve(as_dict(methods.get(r["key"])).get("deletion_curve")),
              _curve(as_dict(methods.get(r["key"])).get("insertion_curve"))] for r in rows if r["ran"]]
    base = [_curve(random.get("deletion_curve")), _curve(random.get("insertion_curve"))]
    return faithfulness_curves(_curve(fractions), lines, base)


def _cascade(methods: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The cascade as a table: stages (number, layer) and a row of rank correlations per method."""
    stages: dict[int, str] = {}
    series = []
    for r in rows:
        points: dict[int, dict[str, Any]] = {}
        for i, step in enumerate(as_list(as_dict(as_dict(methods.get(r["key"])).get("sanity")).get("cascade"))):
            step = as_dict(step)
            stage = _int(step.get("stage"))
            stage = i + 1 if stage is None else stage
            if not step or stage in points:
                continue
            points[stage] = _metric(step.get("rank_correlation")) or {"value": None}
            layer = step.get("layer")
            stages.setdefault(stage, short(layer, 40) if layer not in (None, "") else "")
        if points:
            series.append((r["label"], points))
    order = sorted(stages)[:MAX_STAGES]
    return {"stages": [{"stage": s, "layer": stages[s]} for s in order],
            "rows": [{"label": label, "cells": [points.get(s) for s in order]} for label, points in series],
            "chart_lines": [[label, [[s, metric_value(points[s]), *(metric_ci(points[s]) or (None, None))]
                                     for s in order if s in points]] for label, points in series]}


def _overall_rows(overall: dict[str, Any], methods: dict[str, Any]) -> list[dict[str, Any]]:
    """(label, metric or text, note) rows of the key/value table."""
    rows: list[dict[str, Any]] = []

    def of(key: str) -> str | None:
        n, total = _int(overall.get(key)), _int(as_dict(overall.get(key)).get("of"))
        return None if n is None else f"{n} of {total}" if total is not None else str(n)

    if "n_images" in overall:
        rows.append({"label": "Images explained", "metric": _metric(overall["n_images"]), "text": None, "note": ""})
    if "faithful_methods" in overall:
        rows.append({"label": "Faithful methods", "metric": _metric(overall["faithful_methods"]), "text": of("faithful_methods"),
                     "note": "beat a random pixel order on deletion (the gain's interval above 0)"})
    if "methods_failing_sanity" in overall:
        names = [method_label(n, methods) for n in as_list(as_dict(overall["methods_failing_sanity"]).get("names"))[:MAX_METHODS]]
        rows.append({"label": "Methods failing the sanity check", "metric": _metric(overall["methods_failing_sanity"]),
                     "text": of("methods_failing_sanity"), "note": ", ".join(names)})
    if "best_deletion_auc" in overall:
        best = as_dict(overall["best_deletion_auc"]).get("method")
        rows.append({"label": "Best deletion AUC", "metric": _metric(overall["best_deletion_auc"]), "text": None,
                     "note": (method_label(best, methods) + "; " if best not in (None, "") else "") + "lower is better"})
    if "first_layer_smoothness" in overall:
        rows.append({"label": "First-layer smoothness", "metric": _metric(overall["first_layer_smoothness"]), "text": None,
                     "note": ""})
    return rows


def _summary(parts: dict[str, Any], overall: dict[str, Any]) -> str:
    """The check's sentence, or one made from the overall counts."""
    text = _text(parts.get("summary"), 800)
    if text:
        return text
    said = []
    n, of = _int(overall.get("faithful_methods")), _int(as_dict(overall.get("faithful_methods")).get("of"))
    if n is not None:
        said.append(f"{n}{f' of {of}' if of is not None else ''} methods beat a random pixel order on deletion")
    n, of = _int(overall.get("methods_failing_sanity")), _int(as_dict(overall.get("methods_failing_sanity")).get("of"))
    if n is not None:
        said.append(f"{n}{f' of {of}' if of is not None else ''} failed the sanity check")
    return ("; ".join(said) + ".") if said else "The check recorded no summary."


def _group_names(d: dict[str, Any]) -> str:
    lo, hi = d.get("lowest"), d.get("highest")
    return f"{short(lo, 60)} → {short(hi, 60)}" if lo not in (None, "") and hi not in (None, "") else ""


def _differences(metrics: dict[str, Any], methods: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """A row per (attribute, difference) of the metrics' attribute scopes (every key but ``overall``); capped."""
    rows = []
    for attr, table in metrics.items():
        if attr == "overall" or not isinstance(table, dict):
            continue
        keys = [k for k in DIFFERENCES if k in table] + [k for k in table if k not in DIFFERENCES]
        scope = []
        for key in keys:
            d = table[key]
            if not (isinstance(d, dict) and "value" in d) and metric_value(d) is None:
                continue  # e.g. the scope's description
            d = as_dict(d) or {"value": d}
            method = d.get("method")
            scope.append({"attribute": scope_label(attr), "label": DIFFERENCES.get(key) or metric_label(key),
                          "method": method_label(method, methods) if method not in (None, "") else "",
                          "difference": d, "groups": _group_names(d), "compared": _int(d.get("groups_compared")),
                          "p_adjusted": p_shown(d), "significant": d.get("significant")})
        reasons = {_text(r["difference"].get("reason")) for r in scope if metric_value(r["difference"]) is None}
        if len(scope) > 1 and all(metric_value(r["difference"]) is None for r in scope) and len(reasons) == 1:
            scope = [{**scope[0], "label": "Every difference", "method": ""}]  # one "n/a (why)" for the attribute
        rows += scope
    return rows[:MAX_DIFFERENCES], max(0, len(rows) - MAX_DIFFERENCES)


def finding_text(f: Any, methods: dict[str, Any] | None = None) -> str:
    """A finding's sentence as recorded, or one made from its fields."""
    f = as_dict(f)
    text = _text(f.get("text"), 600)
    if text:
        return text
    key = f.get("metric") if isinstance(f.get("metric"), str) else "difference"
    what = DIFFERENCES[key] + " difference" if key in DIFFERENCES else metric_label(key)
    method = f.get("method")
    text = what + (f" for {method_label(method, methods)}" if method not in (None, "") else "")
    if f.get("attribute") not in (None, ""):
        text += f" between {scope_label(f['attribute'])} groups"
    names = _group_names(f)
    v = metric_value(f)
    if v is not None:
        ci = metric_ci(f)
        text += f": {fmt_prose(v)}" + (f" [{fmt_prose(ci[0])}, {fmt_prose(ci[1])}]" if ci else "")
    return text + (f" ({names})" if names else "") + "."


def _by_group(by_group: dict[str, Any], order: list[str], methods: dict[str, Any]) -> list[dict[str, Any]]:
    """Per attribute, a block of rows per group: n, too few images, each method's numbers."""
    out = []
    for attr, groups in list(by_group.items())[:MAX_ATTRIBUTES]:
        if not isinstance(groups, dict):
            continue
        rows = []
        for name, g in list(groups.items())[:MAX_GROUPS]:
            g = as_dict(g)
            ms = as_dict(g.get("methods"))
            keys = [k for k in order if k in ms] + [k for k in ms if k not in order]
            rows.append({"name": short(name), "n": _int(g.get("n")), "thin": True in (g.get("insufficient"), g.get("insufficient_data")),
                         "methods": [{"label": method_label(k, methods), "deletion": _metric(as_dict(ms[k]).get("deletion_auc")),
                                      "insertion": _metric(as_dict(ms[k]).get("insertion_auc")),
                                      "share": _metric(as_dict(ms[k]).get("subject_share"))}
                                     for k in keys[:MAX_METHODS]]})
        if rows:
            out.append({"attribute": scope_label(attr), "rows": rows, "more": max(0, len(groups) - MAX_GROUPS)})
    return out


def _size(x: Any) -> str:
    dims = [_int(v) for v in as_list(x)]
    return "×".join(str(d) for d in dims) if dims and None not in dims else NA


def _first_layer(fl: Any, figures: dict[str, dict[str, str]]) -> dict[str, Any] | None:
    if not isinstance(fl, dict):
        return None
    noisy = fl.get("noisy")
    facts = [("Layer", short(fl["layer"], 80) if fl.get("layer") not in (None, "") else NA),
             ("Filters", fmt_num(_int(fl.get("n_filters")))), ("Kernel", _size(fl.get("kernel"))),
             ("Input channels", fmt_num(_int(fl.get("in_channels")))),
             ("Smoothness", fmt_num(metric_value(fl.get("smoothness")))),
             ("Noisy", fmt_num(noisy) if isinstance(noisy, bool) else NA)]
    return {"verdict": _text(fl.get("verdict"), 600), "noisy": noisy is True, "facts": facts,
            "figure": _figure(figures, fl.get("figure"), "first_layer_filters")}


def _class_models(cm: Any, figures: dict[str, dict[str, str]]) -> dict[str, Any] | None:
    if not isinstance(cm, dict):
        return None
    classes, probs = as_list(cm.get("classes")), as_list(cm.get("final_probability"))
    rows = [{"cls": short(c, 80), "p": metric_value(probs[i]) if i < len(probs) else None}
            for i, c in enumerate(classes[:MAX_CLASSES])]
    return {"rows": rows, "more": max(0, len(classes) - MAX_CLASSES), "steps": _int(cm.get("steps")),
            "figure": _figure(figures, cm.get("figure"), "class_models")}


def _figure(figures: dict[str, dict[str, str]], name: Any, default: str) -> dict[str, str] | None:
    """The check's figure named ``name`` (else ``default``), with our caption for a schema figure that brought none."""
    fig = figures.get(short(name)) if isinstance(name, str) and name.strip() else None
    fig = fig or figures.get(default)
    if fig is None:
        return None
    if fig["caption"] == fig["name"] and fig["name"] in FIGURES:  # a bare data URI under a schema name
        return {**fig, "caption": FIGURES[fig["name"]]}
    return fig


def explanations_view(check: dict[str, Any], figures: list[dict[str, str]] | dict[str, Any],
                      charts: bool = True) -> dict[str, Any] | None:
    """What the template shows for a ``checks.explanations`` entry; None when it is not in the check's schema.

    ``figures``: the check's embeddable figures (`embeddable_figures`), or its raw ``figures`` dict. The
    schema's own figures are shown next to their part; the rest are ``other_figures``, which the report
    shows after the check. ``charts``: False leaves out the charts (the Markdown summary has none).
    ``reference_method`` in the view: the label of the method the attribute differences were computed for
    (``metrics.overall.reference_method``), for the differences' heading ("compared under …"), or None."""
    check = as_dict(check)
    metrics = as_dict(check.get("metrics"))
    overall = as_dict(metrics.get("overall"))
    if not any(k in overall for k in SCHEMA_KEYS):
        return None
    if isinstance(figures, dict):
        figures = embeddable_figures(figures)[0]
    by_name = {f["name"]: f for f in figures if isinstance(f, dict) and "name" in f}
    params = as_dict(check.get("params"))
    parts = {k: overall[k] for k in PARTS if k in overall}
    methods = {str(k): v for k, v in as_dict(parts.get("methods")).items()}
    keys = list(methods)
    rows = [_method(k, as_dict(methods[k]), methods) for k in keys[:MAX_METHODS]]
    random = as_dict(parts.get("random_baseline"))
    cascade = _cascade(methods, rows)
    threshold = metric_value(params.get("sanity_threshold"))
    findings = [f for f in as_list(parts.get("findings")) if isinstance(f, dict) or _text(f)]
    notes = [_text(n, 600) for n in as_list(parts.get("notes")) if _text(n)]
    differences, differences_more = _differences(metrics, methods)
    reference = parts.get("reference_method")
    placed = {
        "attributions": _figure(by_name, None, "attributions"),
        "sanity": _figure(by_name, None, "sanity_cascade"),
        "first_layer": _first_layer(parts.get("first_layer"), by_name),
        "class_models": _class_models(parts.get("class_models"), by_name),
    }
    used = {id(by_name.get(f["name"])) for f in (placed["attributions"], placed["sanity"],
                                                 as_dict(placed["first_layer"]).get("figure"),
                                                 as_dict(placed["class_models"]).get("figure")) if f}
    return {
        "summary": _summary(parts, overall),
        "flagged": bool(findings) or any(r["sanity"]["status"] == "failed" for r in rows),
        "overall": _overall_rows(overall, methods),
        "methods": rows, "methods_more": max(0, len(keys) - MAX_METHODS),
        "random": {"deletion": _metric(random.get("deletion_auc")), "insertion": _metric(random.get("insertion_auc"))}
        if random else None,
        "curves_chart": _curves_chart(methods, rows, random, parts.get("curve_fractions")) if charts else None,
        "attributions": placed["attributions"],
        "threshold": fmt_plain(threshold) if threshold is not None else None,
        "cascade": cascade,
        "sanity_chart": sanity_chart([[s["stage"], s["layer"]] for s in cascade["stages"]], cascade["chart_lines"], threshold)
        if charts else None,
        "sanity_figure": placed["sanity"],
        "differences": differences, "differences_more": differences_more,
        "reference_method": method_label(reference, methods) if isinstance(reference, str) and reference.strip() else None,
        "findings": [finding_text(f, methods) if isinstance(f, dict) else short(f, 600) for f in findings[:MAX_FINDINGS]],
        "findings_more": max(0, len(findings) - MAX_FINDINGS),
        "by_group": _by_group(as_dict(check.get("by_group")), keys, methods),
        "min_group_size": _int(params.get("min_group_size")),
        "first_layer": placed["first_layer"], "class_models": placed["class_models"],
        "notes": notes[:MAX_NOTES], "notes_more": max(0, len(notes) - MAX_NOTES),
        "other_figures": [f for f in figures if id(f) not in used],
    }


def _markdown(check: dict[str, Any]) -> list[str]:
    ex = explanations_view(check, [], charts=False) if ran(check) else None
    if ex is None:
        return []
    out = ["### Explanations", "", md(ex["summary"], 800), ""]
    for m in ex["methods"]:  # at most MAX_METHODS
        if not m["ran"]:
            reason = f" ({md(m['reason'], 300)})" if m["reason"] else ""
            out.append(f"- **{md(m['label'], 60)}**: {md(m['status'], 30)}{reason}")
            continue
        faithful = {True: "faithful", False: "not faithful"}.get(m["faithful"], "faithfulness n/a")
        s = m["sanity"]
        sanity = ("⚠️ " if s["status"] == "failed" else "") + f"sanity {s['word']}"
        if metric_value(s["final"]) is not None:
            sanity += f" (final rank correlation {md_rate(s['final'])})"
        out.append(f"- **{md(m['label'], 60)}**: deletion AUC {md_rate(m['deletion'])}, insertion AUC {md_rate(m['insertion'])}; "
                   f"{faithful}; {sanity}")
    if ex["random"]:
        random = ex["random"]
        out.append(f"- Random order: deletion AUC {md_rate(random['deletion'])}, insertion AUC {md_rate(random['insertion'])}")
    out.append("")
    if ex["findings"]:
        out += ["Differences between groups:", ""] + [f"- {md(f, 600)}" for f in ex["findings"]]
        out = md_rows(out, ex["findings_more"], "findings in the full report")
    return out


@register_presenter
class ExplanationsPresenter(Presenter):
    """Explanations: whether each attribution method is faithful and sane, and how the maps differ by group."""

    name = "explanations"
    title = "Explanations"
    order = 40
    template_name = "report_macros.html.j2"
    macro = "explanations"
    method_title = "How the explanations are checked"
    labels = {"faithful_methods": "Faithful attribution methods", "methods_failing_sanity": "Methods failing the sanity check",
              "subject_share_difference": "Subject-share difference"}
    directions = {"faithful_methods": True, "insertion_auc": True, "deletion_gain": True, "insertion_gain": True,
                  "best_insertion_auc": True, "methods_failing_sanity": False, "deletion_auc": False,
                  "best_deletion_auc": False}

    def view(self, check: dict[str, Any], figures: list[dict[str, str]]) -> dict[str, Any] | None:
        return explanations_view(check, figures)

    def figures_left(self, view: dict[str, Any], figures: list[dict[str, str]]) -> list[dict[str, str]]:
        return view["other_figures"]  # the schema's figures are shown next to their parts

    def markdown(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        return _markdown(check)

    def junit(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        ex = explanations_view(check, [], charts=False) if ran(check) else None
        return [ex["summary"]] if ex is not None else []

    def clause_hint(self, check: dict[str, Any], results: dict[str, Any], clause: dict[str, Any]) -> str:
        """An undecided clause whose groups the sample left thin: the sample is the cause, a larger one the remedy."""
        scope = clause_scope(clause)
        return sample_remedy(results, "explanations", scope, clause.get("excluded_groups")) if scope else ""

    def methodology(self, check: dict[str, Any], results: dict[str, Any]) -> list[dict[str, str]]:
        return ex_methodology(as_dict(check.get("params")))

    def limitations(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        return ex_limitations(check)

    def compare_rows(self, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        mb, ma = as_dict(before.get("metrics")), as_dict(after.get("metrics"))
        ob, oa = as_dict(mb.get("overall")), as_dict(ma.get("overall"))
        rows: list[dict[str, Any]] = []
        for key in ("faithful_methods", "methods_failing_sanity"):
            add_row(rows, metric_row(self.name, f"{self.name}.overall.{key}", row_label(key), ob.get(key), oa.get(key),
                                     higher_is_better(key), key_metric=key == "faithful_methods", scope="overall", metric=key))
        for scope in keys_of(mb, ma):
            if scope != "overall":
                leaf_rows(self.name, scope, mb.get(scope), ma.get(scope), rows, {"subject_share_difference"})
        return rows
