"""The short Markdown summary posted as a pull-request comment: verdict, failing clauses, disparities."""
from __future__ import annotations

import re
from typing import Any

from auditor._report_format import as_dict, dig, fmt_plain, metric_text
from auditor._report_view import OPS, failing_clauses, verdict_of, worst_disparities

__all__ = ["render_markdown"]

# Columns of the disparities table, in this order, when the check wrote them.
_COLUMNS = (
    "accuracy_difference",
    "selection_rate_ratio",
    "tpr_difference",
    "fpr_difference",
    "equalized_odds_difference",
    "worst_group_accuracy",
)
_HEADERS = {
    "accuracy_difference": "Accuracy diff.",
    "selection_rate_ratio": "Selection-rate ratio",
    "tpr_difference": "TPR diff.",
    "fpr_difference": "FPR diff.",
    "equalized_odds_difference": "Equalized-odds diff.",
    "worst_group_accuracy": "Worst-group accuracy",
}
_BADGE = {"pass": "✅ PASS", "fail": "❌ FAIL", "inconclusive": "⚠️ INCONCLUSIVE", "none": "No verdict (no policy)"}
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def md(x: Any) -> str:
    """Text made inert in Markdown (and in the HTML GitHub allows in it): one line, specials escaped."""
    text = " ".join(str(x).split())
    return _SPECIAL.sub(r"\\\1", text.replace("&", "&amp;"))


def code(x: Any) -> str:
    """Text for a code span (where backslash escapes do not work): one line, no backticks, no pipes."""
    return " ".join(str(x).split()).replace("`", "'").replace("|", "/")


def _clause_line(c: dict[str, Any]) -> str:
    value = metric_text({"value": c.get("value"), "ci": c.get("ci"), "reason": c.get("reason")})
    op = str(c.get("op") or "")
    test = f"{OPS.get(op, op)} {fmt_plain(c.get('threshold'))}".strip()
    line = f"- **{md(c.get('id') or '?')}** ({md(c.get('severity') or 'unspecified')}): {md(c.get('description') or '')}"
    line += f" — `{code(c.get('metric') or '')}` = {md(value)}, required {md(test)}"
    maps = c.get("maps_to")
    if isinstance(maps, list) and maps:
        line += f" ({md('; '.join(str(m) for m in maps))})"
    return line


def _disparity_table(results: dict[str, Any]) -> list[str]:
    metrics = as_dict(dig(results, "checks", "group_metrics", "metrics"))
    attrs = {a: t for a, t in metrics.items() if a != "overall" and isinstance(t, dict)}
    cols = [c for c in _COLUMNS if any(c in t for t in attrs.values())]
    if not attrs or not cols:
        return []
    lines = ["| Attribute | " + " | ".join(_HEADERS[c] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for attr, table in attrs.items():
        cells = [md(metric_text(table[c], with_reason=False)) if c in table else "" for c in cols]
        lines.append(f"| {md(attr)} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    """A few lines for a PR comment; the HTML report holds the detail."""
    results = as_dict(results)
    verdict = verdict_of(results)
    model = as_dict(results.get("model"))
    name = model.get("name") or model.get("source") or "unnamed model"
    out = [f"## Audit report: {_BADGE.get(verdict, md(verdict.upper()))}", ""]
    facts = [f"**Model:** {md(name)}"]
    if dig(results, "probe", "source"):
        facts.append(f"**Probe:** {md(dig(results, 'probe', 'source'))}")
    policy = as_dict(results.get("policy"))
    if policy.get("name"):
        facts.append(f"**Policy:** {md(policy['name'])}" + (f" v{md(policy['version'])}" if policy.get("version") else ""))
    out += [" · ".join(facts), ""]
    failed = failing_clauses(results)
    if failed:
        out += [f"### Failing clauses ({len(failed)})", ""] + [_clause_line(c) for c in failed] + [""]
    elif policy.get("clauses"):
        out += ["No policy clause failed.", ""]
    errors = [(n, as_dict(c).get("error")) for n, c in as_dict(results.get("checks")).items()
              if as_dict(c).get("status") == "error"]
    if errors:
        out += ["### Checks that errored", ""]
        out += [f"- **{md(n)}**: {md(e or 'no error message recorded')}" for n, e in errors] + [""]
    table = _disparity_table(results)
    if table:
        out += ["### Disparities between groups", ""] + table + [""]
        out += [f"- {md(s)}" for s in worst_disparities(results)] + [""]
    skipped = dig(results, "probe", "n_skipped")
    if isinstance(skipped, int) and skipped > 0:
        out += [f"{skipped} probe image(s) could not be read and were skipped.", ""]
    out.append("_Full report: report.html in the audit output folder._")
    return "\n".join(out) + "\n"

