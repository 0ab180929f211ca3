"""The comparison rendered: a defensive view of it (it may come from compare.json), the HTML page (in the
report's one Jinja environment), the Markdown summary, and the files (`write_comparison`, through the
report's one writer, `auditor.report.write_files`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from auditor.report import environment, get_presenter, html_to_pdf, write_files
from auditor.report._format import NA, as_dict, as_list, dig, fmt_num, fmt_plain, short
from auditor.report._jinja import stylesheet
from auditor.report._markdown import md
from auditor.report._values import _jsonable, _real, _signed
from auditor.report.presenter import ordered_presenters, presenter_names
from auditor.results import MetricEntry
from auditor.compare._model import _VERDICTS, _cost_text
from auditor.compare._rows import POLICY, POLICY_TITLE

__all__ = ["COMPARE_FILES", "render_comparison_html", "render_comparison_markdown", "write_comparison"]

TEMPLATE = "compare.html.j2"
STYLESHEET = "compare.css"
COMPARE_FILES = {"json": "compare.json", "html": "compare.html", "md": "compare.md", "pdf": "compare.pdf"}
MD_LIMIT = 60_000
MD_MAX_ROWS = 40
_OPS = {"<=", ">=", "<", ">", "==", "!="}


def _metric_text(m: Any) -> str:
    entry = MetricEntry.read(m) if isinstance(m, dict) else None
    if entry is None or entry.value is None:
        return NA
    text = fmt_num(entry.value)
    if entry.ci is not None:
        text += f" [{fmt_num(entry.ci[0])}, {fmt_num(entry.ci[1])}]"
    return text


def _row_view(r: Any) -> dict[str, Any] | None:
    if not isinstance(r, dict):
        return None
    direction = r.get("direction") if r.get("direction") in ("improved", "worsened", "unchanged", "changed") else "n/a"
    sig = r.get("significance") if r.get("significance") in ("significant", "not significant", "no interval") else "n/a"
    thr = r.get("threshold")
    requirement = ""
    if r.get("op") is not None or thr is not None:
        requirement = f"{short(r.get('op') or '', 10)} {fmt_plain(thr) if _real(thr) is not None else short(thr or '', 60)}".strip()
    return {
        "label": short(r.get("label") if r.get("label") is not None else r.get("key", "?"), 160),
        "metric": short(r.get("metric"), 200) if r.get("metric") is not None else "",
        "before": _metric_text(r.get("before")), "after": _metric_text(r.get("after")),
        "reason_before": short(dig(r, "before", "reason"), 200) if dig(r, "before", "reason") else "",
        "reason_after": short(dig(r, "after", "reason"), 200) if dig(r, "after", "reason") else "",
        "change": _signed(r.get("change")), "direction": direction, "significance": sig,
        "sig_class": sig.replace(" ", "-").replace("/", ""), "significant": sig == "significant",
        "result_before": short(r.get("result_before") or NA, 40).replace("_", " "),
        "result_after": short(r.get("result_after") or NA, 40).replace("_", " "),
        "requirement": requirement, "plain_requirement": r.get("op") in _OPS and _real(thr) is not None,
        "severity": short(r.get("severity") or "", 40),
        "scope_kind": r.get("scope_kind") if r.get("scope_kind") in ("attribute", "intersection", "overall") else "",
        "key_metric": r.get("key_metric") is True, "present": r.get("present") if isinstance(r.get("present"), str) else "",
    }


def _settings_items(settings: Any) -> list[tuple[str, str]]:
    if not isinstance(settings, dict):
        return [] if settings in (None, "") else [("value", short(settings, 300))]
    out = []
    for k, v in list(settings.items())[:60]:
        text = fmt_plain(v) if isinstance(v, (int, float, list, tuple)) and not isinstance(v, bool) or v is None \
            else short(json.dumps(_jsonable(v)) if isinstance(v, dict) else v, 300)
        out.append((short(k, 80), text))
    return out


def _view(cmp: Any) -> dict[str, Any]:
    """What the HTML and Markdown show, read defensively from a comparison (possibly loaded from compare.json)."""
    c = as_dict(cmp)
    h = as_dict(c.get("header"))
    acc = as_dict(c.get("accuracy"))
    verdict = as_dict(c.get("verdict"))

    def model(side: str) -> dict[str, str]:
        m = as_dict(dig(h, side, "model"))
        return {k: short(m.get(k), 300) if m.get(k) is not None else NA for k in ("source", "name", "sha256")}

    sections = []
    for s in as_list(c.get("sections")):
        if not isinstance(s, dict):
            continue
        rows = [v for v in (_row_view(r) for r in as_list(s.get("rows"))) if v is not None]
        sid = s.get("id") if s.get("id") == POLICY or s.get("id") in presenter_names() else "other"
        title = POLICY_TITLE if sid == POLICY else get_presenter(sid).heading if sid != "other" else short(s.get("title") or "Other", 80)
        sections.append({"id": sid, "title": title,
                         "rows": [r for r in rows if r["scope_kind"] != "intersection"],
                         "intersection_rows": [r for r in rows if r["scope_kind"] == "intersection"],
                         "note": short(s.get("note"), 300) if s.get("note") else ""})
    flags = []
    for f in as_list(c.get("flags")):
        if isinstance(f, dict):
            title = short(f.get("title") or f.get("id") or "flag", 200)
            message = short(f.get("message") or "", 1500)
            if message.startswith(title + ": "):  # the JSON message stands alone; the reports show the title above it
                message = message[len(title) + 2:]
                message = message[:1].upper() + message[1:]
            flags.append({"title": title, "message": message,
                          "severity": "warning" if f.get("severity") == "warning" else "note"})
    summary = {k: (v if isinstance(v, int) else 0) for k, v in as_dict(c.get("summary")).items()}

    def verdict_of(side: str) -> str:
        v = verdict.get(side)
        return v if v in _VERDICTS else "none"

    probe = as_dict(h.get("probe"))
    return {
        "method": short(h.get("method") or NA, 200),
        "settings": _settings_items(h.get("settings")),
        "before_model": model("before"), "after_model": model("after"),
        "probe_source": short(probe.get("source") or NA, 300), "probe_sha256": short(probe.get("sha256") or NA, 100),
        "probe_n": fmt_num(_real(probe.get("n"))),
        "seed": short(h.get("seed"), 60) if h.get("seed") is not None else NA,
        "budget": short(h.get("budget") or NA, 60),
        "policy": short(h.get("policy") or NA, 200) + (f" v{short(h['policy_version'], 30)}" if h.get("policy_version") else ""),
        "mismatches": [short(m, 300) for m in as_list(h.get("mismatches"))],
        "verdict_before": verdict_of("before"), "verdict_after": verdict_of("after"),
        "accuracy": {"before": _metric_text(acc.get("before")), "after": _metric_text(acc.get("after")),
                     "change": _signed(acc.get("change")), "text": _cost_text(acc),
                     "significance": short(acc.get("significance") or NA, 40),
                     "direction": acc.get("direction") if acc.get("direction") in ("improved", "worsened", "unchanged")
                     else "n/a"},
        "flags": flags,
        "checks": [(short(k, 80), short(as_dict(v).get("before") or NA, 40), short(as_dict(v).get("after") or NA, 40))
                   for k, v in as_dict(c.get("checks")).items()],
        "summary": summary,
        "sections": sections,
        "rule": short(c.get("significance_rule") or "", 600),
    }


def render_comparison_html(cmp: dict[str, Any]) -> str:
    """The comparison as one self-contained HTML page (inline CSS, no script, nothing fetched, all escaped)."""
    return environment().get_template(TEMPLATE).render(v=_view(cmp), css=stylesheet(STYLESHEET))


def _md_row(r: dict[str, Any]) -> str:
    mark = " ✱" if r["significant"] else ""
    return (f"| {md(r['label'], 120)} | {r['before']} | {r['after']} | {r['change']} | "
            f"{r['direction']}{mark} | {r['significance']} |")


def render_comparison_markdown(cmp: dict[str, Any]) -> str:
    """A short Markdown summary (PR comment): verdicts, the accuracy cost, flags, clauses, key and significant rows."""
    v = _view(cmp)
    badge = {"pass": "✅ PASS", "fail": "❌ FAIL", "inconclusive": "⚠️ INCONCLUSIVE", "none": "➖ NO VERDICT"}
    out = [f"## Mitigation comparison: {md(v['method'], 80)}", "",
           f"**Verdict:** {badge[v['verdict_before']]} → {badge[v['verdict_after']]}", "",
           f"**{v['accuracy']['text']}**", "",
           (f"Model before: {md(v['before_model']['source'], 200)} · after: {md(v['after_model']['source'], 200)} · "
           f"probe {md(v['probe_source'], 200)} · seed {md(v['seed'], 40)} · budget {md(v['budget'], 40)} · "
           f"policy {md(v['policy'], 120)}"), ""]
    if v["settings"]:
        out += ["Settings: " + ", ".join(f"{md(k, 60)} = {md(val, 120)}" for k, val in v["settings"]), ""]
    for m in v["mismatches"]:
        out += [f"> ⚠️ Not like for like: {md(m, 300)}", ""]
    for f in v["flags"]:
        own = {t for p in ordered_presenters() for t in p.flag_titles}  # our own text: not escaped
        title = f["title"] if f["title"] in own else md(f["title"], 200)
        out += [f"> {'⚠️' if f['severity'] == 'warning' else 'ℹ️'} **{title}**: {md(f['message'], 1500)}", ""]
    s = v["summary"]
    out += [(f"{s.get('improved', 0)} improved ({s.get('significant_improved', 0)} significantly), "
            f"{s.get('worsened', 0)} worsened ({s.get('significant_worsened', 0)} significantly), "
            f"{s.get('unchanged', 0)} unchanged, {s.get('n/a', 0)} not comparable."), ""]
    clauses = next((sec["rows"] for sec in v["sections"] if sec["id"] == "policy"), [])
    if clauses:
        out += ["### Policy clauses", "", "| Clause | Required | Before | Result | After | Result | Change |",
                "|---|---|---:|---|---:|---|---:|"]
        for r in clauses[:MD_MAX_ROWS]:
            req = r["requirement"] if r["plain_requirement"] else md(r["requirement"], 60)
            out.append(f"| {md(r['label'], 120)} | {req} | {r['before']} | "
                       f"{md(r['result_before'], 30)} | {r['after']} | {md(r['result_after'], 30)} | {r['change']} |")
        if len(clauses) > MD_MAX_ROWS:
            out.append(f"_… and {len(clauses) - MD_MAX_ROWS} more clauses._")
        out.append("")
    others = [r for sec in v["sections"] if sec["id"] != "policy" for r in sec["rows"] + sec["intersection_rows"]
              if r["key_metric"] or r["significant"]]
    if others:
        out += ["### Key metrics and significant changes", "",
                "| Metric | Before | After | Change | Direction | Significance |", "|---|---:|---:|---:|---|---|"]
        out += [_md_row(r) for r in others[:MD_MAX_ROWS]]
        if len(others) > MD_MAX_ROWS:
            out.append(f"_… and {len(others) - MD_MAX_ROWS} more; see compare.html._")
        out.append("")
    out += ["✱ significant: " + md(v["rule"], 600) if v["rule"] else "", ""]
    text = "\n".join(out)
    if len(text) > MD_LIMIT:
        cut = text.rfind("\n", 0, MD_LIMIT - 100)
        text = text[: max(cut, 0)] + "\n_… cut here to fit a comment; the full comparison is compare.html._\n"
    return text


def write_comparison(cmp: dict[str, Any], out_dir: str | os.PathLike[str],
                     formats: Iterable[str] = ("html", "md", "json", "pdf")) -> dict[str, Path]:
    """Atomically write ``compare.json`` / ``compare.html`` / ``compare.md`` / ``compare.pdf`` (the PDF is the
    HTML laid out by weasyprint, as for the audit report) into ``out_dir``; returns format -> path. The PDF
    is written last, so a missing weasyprint (`PdfUnavailableError`) leaves the other files written."""
    wanted = [f.strip().lower() for f in formats]
    unknown = [f for f in wanted if f not in COMPARE_FILES]
    if unknown:
        raise ValueError(f"unknown comparison format(s) {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(COMPARE_FILES)}")
    html = render_comparison_html(cmp) if {"html", "pdf"} & set(wanted) else ""
    rendered = {"json": lambda: json.dumps(_jsonable(cmp), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                "html": html, "md": lambda: render_comparison_markdown(cmp), "pdf": lambda: html_to_pdf(html)}
    return write_files(Path(out_dir), COMPARE_FILES, {f: rendered[f] for f in COMPARE_FILES if f in wanted})
