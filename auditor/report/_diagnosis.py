"""The diagnosis: for each failing gap between groups, what else in the audit bears on it — the confirmed cue's
flip rates in those groups, the groups' robust accuracy, the explanations' differences for that attribute — and
the mitigation to try, with its command (`auditor.report._next_steps`). Plain text, from results.json only.
"""
from __future__ import annotations

from typing import Any

from auditor.report._decision import cue_findings, group_label, pct
from auditor.report._findings import failing_clauses, scope_label
from auditor.report._format import as_dict, as_list, dig, metric_value, short
from auditor.report._next_steps import next_steps

__all__ = ["diagnosis"]

MAX_ITEMS = 4
_EX = {"deletion_auc_difference": "deletion AUC", "insertion_auc_difference": "insertion AUC",
       "subject_share_difference": "share of the explanation on the subject"}


def _gap_groups(results: dict[str, Any], c: dict[str, Any]) -> tuple[str, str, str, list[str]] | None:
    """(check, attribute, metric, [lowest, highest]) of a failing gap clause on a single attribute."""
    parts = str(c.get("metric") or "").split(".")
    if len(parts) != 5 or parts[0] != "checks" or parts[3] in ("overall",) or "+" in parts[3] or parts[1] == "spurious":
        return None
    raw = as_dict(dig(results, *parts))
    groups = [g for g in as_list(raw.get("groups")) if isinstance(g, str)]
    if raw.get("lowest") and raw.get("highest"):
        groups = [str(raw["lowest"]), str(raw["highest"])]
    return (parts[1], parts[3], parts[4], [groups[0], groups[-1]]) if len(groups) >= 2 else None


def _evidence(results: dict[str, Any], attr: str, groups: list[str]) -> list[str]:
    out: list[str] = []
    for cue in cue_findings(results):
        rows = as_dict(cue["by_group"].get(attr))
        rates = [(g, metric_value(as_dict(rows.get(g)).get("removal_flip_rate")), as_dict(rows.get(g)).get("n_removal")) for g in groups]
        known = [(g, r, n) for g, r, n in rates if r is not None]
        if known:
            out.append(f"Spurious cue in {cue['where']}: removing it flips " + ", ".join(
                f"{pct(r)} of {group_label(g)}'s predictions" + (f" (n={n})" if isinstance(n, int) else "") for g, r, n in known)
                + ". A cue that flips one group's predictions and not the other's explains a gap between them.")
    robust = [(g, dig(results, "checks", "attacks", "by_group", attr, g)) for g in groups]
    shown = [(g, as_dict(row)) for g, row in robust if metric_value(as_dict(row).get("robust_accuracy")) is not None]
    if shown:
        out.append("Robust accuracy at the reference eps: " + ", ".join(
            f"{group_label(g)} {pct(row.get('robust_accuracy'))} (n={row.get('n')})" for g, row in shown) + ".")
    for key, words in _EX.items():
        d = as_dict(dig(results, "checks", "explanations", "metrics", attr, key))
        if metric_value(d) is not None and d.get("lowest") and d.get("highest"):
            out.append(f"Explanations by {scope_label(attr)}: the {words} differs by {metric_value(d):.2f} between "
                       f"{group_label(d['lowest'])} (lowest) and {group_label(d['highest'])} (highest).")
    return out


def diagnosis(results: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"title", "evidence": [sentences], "steps": [next steps]}`` per failing gap on one attribute (at most
    `MAX_ITEMS`, blockers first); empty when no gap failed."""
    results = as_dict(results)
    steps = next_steps(results, cue_findings(results))
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for c in failing_clauses(results):
        found = _gap_groups(results, c)
        if found is None or found[1] in seen:
            continue
        check, attr, metric, groups = found
        seen.add(attr)
        mine = [s for s in steps if s["words"] and "--bias" in s["words"] and s["words"][s["words"].index("--bias") + 1] == attr]
        items.append({"title": f"{short(c.get('id') or '?')}: {group_label(groups[0])} vs {group_label(groups[1])} "
                               f"({scope_label(attr)})",
                      "evidence": _evidence(results, attr, groups) or ["No other check measured these groups."],
                      "steps": mine})
        if len(items) >= MAX_ITEMS:
            break
    return items
