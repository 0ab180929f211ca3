"""The short Markdown summary for a pull-request comment or a CI job summary: verdict badge, failing
clauses, regressions against the baseline, undecided clauses, borderline passes, then each check's lines
from its presenter (`Presenter.markdown`; e.g. the largest significant gaps), in the presenters' order.

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
    OPS, borderline_passes, borderline_sentence, clause_requirement, clauses, failing_clauses, UNDECIDED, checks_in_order, inconclusive_sentence,
    not_run_sentence, verdict_of, verdict_sentence
)
from auditor.report._format import as_dict, as_list, dig, fmt_num, fmt_p, fmt_p_of, metric_text, metric_value, short
from auditor.report.presenter import get_presenter

__all__ = ["LIMIT", "MAX_ROWS", "md", "md_metric", "md_rate", "md_rows", "render_markdown"]

LIMIT = 60_000  # characters; GitHub refuses comments over 65,536
MAX_ROWS = 25
_BADGE = {"pass": "✅ PASS", "fail": "❌ FAIL", "inconclusive": "⚠️ INCONCLUSIVE", "none": "➖ NO VERDICT"}
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
_NUMBER = re.compile(r"-?\d+(\.\d+)?(e-?\d+)?")
TRUNCATED = "\n_… cut here to fit a comment; the full report is report.html (or report.pdf) in the audit output._\n"


def md(x: Any, width: int = 100) -> str:
    """Text made inert in GitHub/GitLab Markdown: one line, at most ``width`` characters, punctuation escaped."""
    return _PUNCT.sub(r"\\\1", short(x, width))


def md_metric(x: Any, digits: int = 3) -> str:
    """A metric as "0.410 [0.360, 0.460]": our own formatting of numbers, nothing to escape."""
    return metric_text(x, with_reason=False, digits=digits)


def _requirement(c: dict[str, Any]) -> str:
    text = clause_requirement(c)
    return text if str(c.get("op") or "") in OPS or c.get("kind") == "regression" and _NUMBER.fullmatch(
        str(c.get("max_drop", c.get("max_rise", "")))) else md(text)


def _measured(c: dict[str, Any]) -> str:
    text = md_metric({"value": c.get("value"), "ci": c.get("ci")})
    if c.get("p_adjusted") is not None:
        text += f" · p(adj.) {fmt_p_of(c)}" + (" ✱" if c.get("significant") is True else "")
    return text


def md_rows(items: list[str], more: int, what: str) -> list[str]:
    """``items`` and, when ``more`` were left out, a line that says so; then a blank line."""
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
    return md_rows(out, len(failed) - MAX_ROWS, "failing clauses")


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
    return md_rows(out, len(regs) - MAX_ROWS, "regression clauses")


def _listed(title: str, items: list[dict[str, Any]], sentence: Any, what: str) -> list[str]:
    """A "### title (n)" list of one sentence per clause, at most `MAX_ROWS`, then how many were left out."""
    if not items:
        return []
    out = [f"### {title} ({len(items)})", ""] + [f"- {md(sentence(c), 600)}" for c in items[:MAX_ROWS]]
    return md_rows(out, len(items) - MAX_ROWS, what)


def _undecided(results: dict[str, Any]) -> list[str]:
    undecided = sorted((c for c in clauses(results) if c.get("result") in UNDECIDED), key=lambda c: c.get("severity") != "blocker")
    return _listed("Could not be decided", undecided, lambda c: inconclusive_sentence(results, c), "undecided clauses")


def _borderline(results: dict[str, Any]) -> list[str]:
    return _listed("Borderline passes", borderline_passes(results), borderline_sentence, "borderline passes")


def _not_run(results: dict[str, Any]) -> list[str]:
    text = not_run_sentence(results)
    return [f"_{md(text, 800)}_", ""] if text else []


def md_rate(m: Any) -> str:
    """A metric's number and interval, "n/a" for anything that is not a number (never text from the data)."""
    return md_metric(m) if metric_value(m) is not None else "n/a"


def _checks(results: dict[str, Any]) -> list[str]:
    """Each check's lines, from its presenter, in the presenters' order."""
    return [line for name, check in checks_in_order(results) for line in get_presenter(name).markdown(check, results)]


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
    for part in (_failing, _regressions, _undecided, _borderline, _not_run, _checks, _errors):
        out += part(results)
    skipped = dig(results, "probe", "n_skipped")
    if isinstance(skipped, int) and skipped > 0:
        out += [f"{skipped} probe image(s) could not be read and were skipped.", ""]
    for w in as_list(dig(results, "policy", "warnings"))[:MAX_ROWS]:
        out += [f"> Policy warning: {md(w, 400)}", ""]
    out.append("_Full report: report.html (or report.pdf) in the audit output; the record is results.json._")
    return _fit("\n".join(out) + "\n")
