"""The short Markdown summary for a pull-request comment or a CI job summary: verdict badge, failing
clauses, regressions against the baseline, undecided clauses, the largest significant gaps.

Every string from the data is made inert with `md`: one line, cut to a readable length, and every
ASCII punctuation character backslash-escaped (CommonMark allows that for all of them), so a group
name cannot open a link, an image, HTML, a table cell, an @mention, an issue reference or an
autolink. The whole text stays under GitHub's 65,536-character comment limit: past `LIMIT` it is cut
at a line boundary (never inside an escape) with a note.
"""
from __future__ import annotations

import re
from typing import Any

from auditor.report._assumptions import assumption_rows
from auditor.report._findings import (
    OPS,
    clause_requirement,
    clauses,
    failing_clauses,
    UNDECIDED,
    inconclusive_sentence,
    not_run_sentence,
    scope_label,
    significant_gaps,
    verdict_of,
    verdict_sentence,
)
from auditor.report._format import (
    as_dict,
    as_list,
    dig,
    fmt_num,
    fmt_p,
    metric_label,
    metric_text,
    metric_value,
    short,
)
from auditor.report.sections import UNTRUSTED, attacks_view, explanations_view, spurious_view

__all__ = ["LIMIT", "md", "render_markdown"]

LIMIT = 60_000  # characters; GitHub refuses comments over 65,536
MAX_ROWS = 25
_BADGE = {"pass": "✅ PASS", "fail": "❌ FAIL", "inconclusive": "⚠️ INCONCLUSIVE", "none": "➖ NO VERDICT"}
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
_NUMBER = re.compile(r"-?\d+(\.\d+)?(e-?\d+)?")
_COLUMNS = ("accuracy_difference", "selection_rate_ratio", "tpr_difference", "fpr_difference",
            "equalized_odds_difference", "worst_group_accuracy")
_HEADERS = {"accuracy_difference": "Accuracy gap", "selection_rate_ratio": "Selection-rate ratio",
            "tpr_difference": "TPR gap", "fpr_difference": "FPR gap", "equalized_odds_difference": "Equalized-odds gap",
            "worst_group_accuracy": "Worst-group accuracy"}
TRUNCATED = "\n_… cut here to fit a comment; the full report is report.html (or report.pdf) in the audit output._\n"


def md(x: Any, width: int = 100) -> str:
    """Text made inert in GitHub/GitLab Markdown: one line, at most ``width`` characters, punctuation escaped."""
    return _PUNCT.sub(r"\\\1", short(x, width))


def _num(x: Any, digits: int = 3) -> str:
    """A metric as "0.410 [0.360, 0.460]": our own formatting of numbers, nothing to escape."""
    return metric_text(x, with_reason=False, digits=digits)


def _requirement(c: dict[str, Any]) -> str:
    text = clause_requirement(c)
    return text if str(c.get("op") or "") in OPS or c.get("kind") == "regression" and _NUMBER.fullmatch(
        str(c.get("max_drop", c.get("max_rise", "")))) else md(text)


def _measured(c: dict[str, Any]) -> str:
    text = _num({"value": c.get("value"), "ci": c.get("ci")})
    if c.get("p_adjusted") is not None:
        text += f" · p(adj.) {fmt_p(c.get('p_adjusted'))}" + (" ✱" if c.get("significant") is True else "")
    return text


def _rows(items: list[str], more: int, what: str) -> list[str]:
    return items + ([f"_… and {more} more {what}._", ""] if more > 0 else [""])


def _failing(results: dict[str, Any]) -> list[str]:
    failed = failing_clauses(results)
    if not failed:
        return ["No policy clause failed.", ""] if clauses(results) else []
    out = [f"### Failing clauses ({len(failed)})", "", "| Clause | Severity | Measured | Required | Maps to |",
           "|---|---|---:|---|---|"]
    for c in failed[:MAX_ROWS]:
        maps = "; ".join(short(m, 80) for m in as_list(c.get("maps_to")))
        out.append(f"| {md(c.get('id') or '?')} | {md(c.get('severity') or '')} | {_measured(c)} | "
                   f"{_requirement(c)} | {md(maps, 200)} |")
    return _rows(out, len(failed) - MAX_ROWS, "failing clauses")


def _regressions(results: dict[str, Any]) -> list[str]:
    regs = [c for c in clauses(results) if c.get("kind") == "regression"]
    if not regs:
        return []
    base = as_dict(dig(results, "policy", "baseline"))
    out = ["### Against the baseline", ""]
    if base.get("path"):
        out += [f"Baseline: {md(base['path'], 200)}" + (f", created {md(base['created'], 40)}" if base.get("created") else ""), ""]
    out += ["| Clause | Baseline | Now | Change | Allowed | Result |", "|---|---:|---:|---:|---|---|"]
    for c in regs[:MAX_ROWS]:
        delta = metric_value(c.get("delta"))
        change = "n/a" if delta is None else ("+" if delta > 0 else "−" if delta < 0 else "±") + fmt_num(abs(delta))
        out.append(f"| {md(c.get('id') or '?')} | {fmt_num(metric_value(c.get('baseline_value')))} | "
                   f"{fmt_num(metric_value(c.get('value')))} | {change} | {_requirement(c)} | "
                   f"{md(str(c.get('result') or '?').replace('_', ' '), 30)} |")
    return _rows(out, len(regs) - MAX_ROWS, "regression clauses")


def _undecided(results: dict[str, Any]) -> list[str]:
    undecided = [c for c in clauses(results) if c.get("result") in UNDECIDED]
    undecided.sort(key=lambda c: c.get("severity") != "blocker")
    if not undecided:
        return []
    out = [f"### Could not be decided ({len(undecided)})", ""]
    out += [f"- {md(inconclusive_sentence(results, c), 600)}" for c in undecided[:MAX_ROWS]]
    return _rows(out, len(undecided) - MAX_ROWS, "undecided clauses")


def _not_run(results: dict[str, Any]) -> list[str]:
    text = not_run_sentence(results)
    return [f"_{md(text, 800)}_", ""] if text else []


def _gaps(results: dict[str, Any]) -> list[str]:
    gaps, more = significant_gaps(results, limit=8)
    if not gaps:
        return []
    tested = gaps[0]["tested"]
    out = ["### Largest significant gaps between groups" if tested else "### Largest gaps between groups", "",
           "| Scope | Metric | Lowest group | Highest group | Gap [interval] | p (adj.) |", "|---|---|---|---|---:|---:|"]
    by_group = as_dict(dig(results, "checks", "group_metrics", "by_group"))
    for g in gaps:
        m = g["entry"]
        names = g["groups"] + ["", ""]
        cells = []
        for name in names[:2]:
            value = dig(by_group, g["scope"], name, g["rate"])
            cells.append(md(name, 60) + (f" {_num(value, 2)}" if name else ""))
        p = fmt_p(m.get("p_adjusted")) + (" ✱" if m.get("significant") is True else "") if m.get("p_adjusted") is not None else "n/a"
        out.append(f"| {md(scope_label(g['scope']), 60)} | {md(metric_label(g['rate']))} | {cells[0]} | {cells[1]} | "
                   f"{_num(m)} | {p} |")
    return _rows(out, more, "significant gaps in the full report")


def _attribute_table(results: dict[str, Any]) -> list[str]:
    metrics = as_dict(dig(results, "checks", "group_metrics", "metrics"))
    scopes = {s: t for s, t in metrics.items() if s != "overall" and isinstance(t, dict)
              and as_dict(t.get("scope")).get("kind", "attribute") == "attribute"}
    cols = [c for c in _COLUMNS if any(c in t for t in scopes.values())]
    if not scopes or not cols:
        return []
    out = ["### Disparities by attribute", "", "| Attribute | " + " | ".join(_HEADERS[c] for c in cols) + " |",
           "|---|" + "---:|" * len(cols)]
    for scope, table in list(scopes.items())[:MAX_ROWS]:
        cells = []
        for c in cols:
            m = table.get(c)
            text = _num(m) if c in table else ""
            cells.append(text + (" ✱" if as_dict(m).get("significant") is True else ""))
        out.append(f"| {md(scope, 60)} | " + " | ".join(cells) + " |")
    n_inter = sum(1 for s, t in metrics.items() if as_dict(as_dict(t).get("scope")).get("kind") == "intersection")
    out += [""] + ([f"{n_inter} intersections (e.g. gender × race) are in the full report."] if n_inter else [])
    out.append("Values: estimate [interval]; ✱ significant after correction for multiple comparisons.")
    return out + [""]


def _spurious(results: dict[str, Any]) -> list[str]:
    check = as_dict(dig(results, "checks", "spurious"))
    sp = spurious_view(check, []) if check and check.get("status") != "error" else None
    if sp is None:
        return []
    out = ["### Spurious cues", "", f"{md(sp['summary'], 600)}", ""]
    for f in sp["findings"]:  # at most MAX_FINDINGS
        out.append(f"- **{md(f['cls'], 60)}**: region {f['box']}, off-subject share {f['off_subject_text']}, "
                   f"removal flip {f['removal']['text']}, transplant flip {f['transplant']['text']}, "
                   f"p {fmt_p(f['p_value'])}")
    return _rows(out, sp["findings_more"], "confirmed cues in the full report") if sp["findings"] else out


def _rate(m: Any) -> str:
    """A metric's number and interval, "n/a" for anything that is not a number (never text from the data)."""
    return _num(m) if metric_value(m) is not None else "n/a"


def _attacks(results: dict[str, Any]) -> list[str]:
    check = as_dict(dig(results, "checks", "attacks"))
    at = attacks_view(check, [], charts=False) if check and check.get("status") != "error" else None
    if at is None:
        return []
    overall = as_dict(dig(check, "metrics", "overall"))
    trust = at["trust"]
    out = ["### Adversarial robustness", ""]
    if trust["reliable"] is False:
        out += [f"⚠️ **{UNTRUSTED}:** {md(trust['summary'], 600)}", ""]
        out += [f"- {md(f, 400)}" for f in trust["flags"]] + ([""] if trust["flags"] else [])
    else:
        out += ["No sign of gradient masking." if trust["reliable"] else md(trust["summary"], 300), ""]
    out.append(f"- Clean accuracy {_rate(overall.get('clean_accuracy'))}; robust accuracy at {at['ref']} (PGD, L∞) "
               f"{_rate(overall.get('robust_accuracy'))}.")
    scopes = [s for s in at["attributes"] if metric_value(s["worst"]) is not None] or [
        s for s in at["intersections"] if metric_value(s["worst"]) is not None]
    if scopes:
        s = min(scopes, key=lambda s: metric_value(s["worst"]) or 0.0)
        gap = f"; gap to the best group {_rate(s['difference'])}" if metric_value(s["difference"]) is not None else ""
        p = f", p (adj.) {fmt_p(s['p_adjusted'])}" + (" ✱" if s["significant"] else "") if s["p_adjusted"] is not None else ""
        out.append(f"- Worst group: {md(s['worst_group'], 80)} ({md(s['label'], 60)}) at {_rate(s['worst'])}{gap}{p}.")
    return out + [""]


def _explanations(results: dict[str, Any]) -> list[str]:
    check = as_dict(dig(results, "checks", "explanations"))
    ex = explanations_view(check, [], charts=False) if check and check.get("status") != "error" else None
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
            sanity += f" (final rank correlation {_rate(s['final'])})"
        out.append(f"- **{md(m['label'], 60)}**: deletion AUC {_rate(m['deletion'])}, insertion AUC {_rate(m['insertion'])}; "
                   f"{faithful}; {sanity}")
    if ex["random"]:
        random = ex["random"]
        out.append(f"- Random order: deletion AUC {_rate(random['deletion'])}, insertion AUC {_rate(random['insertion'])}")
    out.append("")
    if ex["findings"]:
        out += ["Differences between groups:", ""] + [f"- {md(f, 600)}" for f in ex["findings"]]
        out = _rows(out, ex["findings_more"], "findings in the full report")
    return out


def _errors(results: dict[str, Any]) -> list[str]:
    errors = [(n, as_dict(c).get("error")) for n, c in as_dict(results.get("checks")).items() if as_dict(c).get("status") == "error"]
    if not errors:
        return []
    out = ["### Checks that errored", ""]
    return out + [f"- **{md(n, 60)}**: {md(e or 'no error message recorded', 400)}" for n, e in errors[:MAX_ROWS]] + [""]


def _fit(text: str, limit: int = LIMIT) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit - len(TRUNCATED))
    return text[: max(cut, 0)] + "\n" + TRUNCATED


def render_markdown(results: dict[str, Any]) -> str:
    """A short summary for a PR comment (under GitHub's size limit); the HTML/PDF report holds the detail."""
    results = as_dict(results)
    verdict = verdict_of(results)
    model = as_dict(results.get("model"))
    name = model.get("name") or model.get("source") or "unnamed model"
    out = [f"## Audit report: {_BADGE.get(verdict, md(verdict.upper(), 30))}", "", f"**{md(verdict_sentence(results), 400)}**", ""]
    facts = [f"**Model:** {md(name, 80)}"]
    if dig(results, "probe", "source"):
        facts.append(f"**Probe:** {md(dig(results, 'probe', 'source'), 80)}")
    if model.get("sha256"):
        facts.append(f"**Model SHA-256:** {md(str(model['sha256'])[:12], 12)}…")
    out += [" · ".join(facts), ""]
    taken = assumption_rows(results)
    if taken:
        out += ["**What the audit took the model to be:** " + "; ".join(
            f"{r['fact'].lower()} {md(r['value'], 120)} ({md(r['how'], 200)})" for r in taken), ""]
    for part in (_failing, _regressions, _undecided, _not_run, _gaps, _attribute_table, _spurious, _attacks, _explanations, _errors):
        out += part(results)
    skipped = dig(results, "probe", "n_skipped")
    if isinstance(skipped, int) and skipped > 0:
        out += [f"{skipped} probe image(s) could not be read and were skipped.", ""]
    for w in as_list(dig(results, "policy", "warnings"))[:MAX_ROWS]:
        out += [f"> Policy warning: {md(w, 400)}", ""]
    out.append("_Full report: report.html (or report.pdf) in the audit output; the record is results.json._")
    return _fit("\n".join(out) + "\n")
