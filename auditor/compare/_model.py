"""The comparison itself: `compare_results` builds the header, verdicts, accuracy cost, the
gradient-masking flag, the summary and the sections from two results.json dicts (see the package
docstring for the rules).
"""
from __future__ import annotations

from typing import Any

from auditor.report import get_presenter
from auditor.report._format import NA, as_dict, clean_text, dig, fmt_num, short
from auditor.report._rows import EPS, keys_of, metric_row
from auditor.report._values import _jsonable, _real, _signed, _text
from auditor.report.presenter import ordered_presenters, presenter_names
from auditor.report.sections.attacks import MASKING_FLAG, MASKING_MIN_GAIN
from auditor.compare._rows import POLICY, POLICY_TITLE, _policy_rows, check_sections

__all__ = ["compare_results", "MASKING_FLAG", "MASKING_MIN_GAIN", "SCHEMA"]

SCHEMA = "auditor.compare/1"
_VERDICTS = {"pass", "fail", "inconclusive"}


# -- header, flags, summary ------------------------------------------------------------------------------


def _model(results: dict[str, Any]) -> dict[str, Any]:
    m = as_dict(results.get("model"))
    return {k: _text(m.get(k), 1000) for k in ("source", "name", "form", "sha256")}


def _verdict(results: dict[str, Any]) -> str:
    v = dig(results, "policy", "verdict")
    return v if isinstance(v, str) and v in _VERDICTS else "none"


def _header(before: dict[str, Any], after: dict[str, Any], method: str, settings: Any) -> dict[str, Any]:
    pb, pa = as_dict(before.get("probe")), as_dict(after.get("probe"))
    probe = {k: _text(pb.get(k) if pb.get(k) is not None else pa.get(k), 1000) for k in ("source", "sha256")}
    probe["n"] = _real(pb.get("n")) if _real(pb.get("n")) is not None else _real(pa.get("n"))
    header: dict[str, Any] = {
        "method": _text(method, 200) or NA,
        "settings": _jsonable(settings) if isinstance(settings, dict) else ({} if settings is None else
                                                                             {"value": _jsonable(settings)}),
        "before": {"model": _model(before), "created": _text(before.get("created"), 60),
                   "auditor_version": _text(before.get("auditor_version"), 60)},
        "after": {"model": _model(after), "created": _text(after.get("created"), 60),
                  "auditor_version": _text(after.get("auditor_version"), 60)},
        "probe": probe,
        "seed": _jsonable(before.get("seed")) if not isinstance(before.get("seed"), (dict, list)) else _text(before.get("seed")),
        "budget": _text(before.get("budget"), 60),
        "policy": _text(dig(before, "policy", "name") or dig(after, "policy", "name"), 200),
        "policy_version": _text(dig(before, "policy", "version") or dig(after, "policy", "version"), 60),
    }
    mismatches: list[str] = []

    def differ(what: str, x: Any, y: Any) -> None:
        if x is not None and y is not None and x != y:
            mismatches.append(f"{what} differs: {short(x, 80)} before, {short(y, 80)} after")

    differ("probe sha256", pb.get("sha256"), pa.get("sha256"))
    differ("seed", before.get("seed"), after.get("seed"))
    differ("budget", before.get("budget"), after.get("budget"))
    differ("policy", dig(before, "policy", "name"), dig(after, "policy", "name"))
    differ("policy version", dig(before, "policy", "version"), dig(after, "policy", "version"))
    header["mismatches"] = mismatches
    return header


def _checks_status(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    names = [n for n in keys_of(as_dict(before.get("checks")), as_dict(after.get("checks")))]
    for name in names:
        entry = {}
        for side, results in (("before", before), ("after", after)):
            c = dig(results, "checks", name)
            if c is None:
                entry[side] = "not run"
            else:
                status = dig(c, "status")
                entry[side] = short(status, 40) if isinstance(status, str) and status else "unknown"
        out[clean_text(name)] = entry
    return out


def _find(rows: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return next((r for r in rows if r.get("key") == key), None)


def _flags(rows: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Each compared check's flags (e.g. the attacks check's gradient-masking flag), from its presenter."""
    return [f for name in names for f in get_presenter(name).compare_flags(rows)]


def _accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline: the first presenter's accuracy row measured on both sides (group fairness's overall
    accuracy, else the attacks check's clean accuracy), else the first one's, empty."""
    candidates = [p for p in ordered_presenters(compare=True) if p.accuracy_key]
    r, source = None, None
    for i, p in enumerate(candidates):
        found = _find(rows, str(p.accuracy_key))
        if i == 0:
            r, source = found, p.name
        if found is not None and found.get("change") is not None:
            r, source = found, p.name
            break
    if r is None:
        r = metric_row(source or "accuracy", f"{source}.overall.accuracy", "overall: Accuracy", {"value": None},
                       {"value": None}, True) or {}
    head = {k: r.get(k) for k in ("before", "after", "change", "direction", "significance", "significant", "present")}
    change = r.get("change")
    head["source"] = source
    head["cost"] = None if change is None else max(0.0, -float(change))
    head["text"] = _cost_text(head)
    return head


def _summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = {"rows": len(rows), "improved": 0, "worsened": 0, "unchanged": 0, "changed": 0, "n/a": 0,
           "significant_improved": 0, "significant_worsened": 0}
    for r in rows:
        d = r.get("direction", "n/a")
        out[d] = out.get(d, 0) + 1
        if r.get("significant") and d in ("improved", "worsened"):
            out[f"significant_{d}"] += 1
    return out


def compare_results(before: dict[str, Any], after: dict[str, Any], *, method: str,
                    settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The before/after comparison of two ``results.json`` dicts (see the module docstring).

    Significance of a row: **significant** when the after value lies outside the before 95% interval AND
    the before value lies outside the after 95% interval (both intervals present); "not significant" when
    both intervals are present and that test fails; "no interval" when either interval is missing; "n/a"
    when either value is. Intervals that merely do not overlap are not the criterion.

    Never raises on odd input: a side that is not a dict is read as an empty audit, a metric that is
    missing, not a number, NaN or infinite is "n/a". The result is plain JSON (no NaN).
    """
    b, a = as_dict(before), as_dict(after)
    sections = []
    parts = [(POLICY, POLICY_TITLE, lambda: _policy_rows(b, a))] + check_sections(b, a)
    for sid, title, build in parts:
        try:
            rows = build()
        except Exception as exc:  # noqa: BLE001 - a comparison must render whatever the results hold
            rows = []
            note = f"could not compare this section: {exc.__class__.__name__}: {short(exc, 200)}"
        else:
            note = None
        sections.append({"id": sid, "title": title, "rows": rows, "note": note})
    all_rows = [r for s in sections for r in s["rows"]]
    cmp = {
        "schema": SCHEMA,
        "header": _header(b, a, method, settings),
        "verdict": {"before": _verdict(b), "after": _verdict(a)},
        "accuracy": _accuracy(all_rows),
        "flags": _flags(all_rows, [sid for sid, _, _ in parts[1:]]),
        "checks": _checks_status(b, a),
        "summary": _summary(all_rows),
        "sections": sections,
        "significance_rule": ("significant: the after value lies outside the before 95% interval and the before "
                              "value lies outside the after 95% interval (non-overlapping intervals are not the "
                              "criterion); not significant: both intervals present, test fails; no interval: an "
                              "interval is missing"),
    }
    return _jsonable(cmp)



def _cost_text(acc: dict[str, Any]) -> str:
    """The headline, from the numbers alone (nothing from the data to escape)."""
    bv, av, change = _real(dig(acc, "before", "value")), _real(dig(acc, "after", "value")), _real(acc.get("change"))
    if bv is None or av is None or change is None:
        return "Accuracy cost: n/a (overall accuracy was not measured on both models)"
    sig = acc.get("significance") if acc.get("significance") in ("significant", "not significant", "no interval") else NA
    source = acc.get("source")
    what = get_presenter(source).accuracy_what if isinstance(source, str) and source in presenter_names() else "overall accuracy"
    move = f"{what} {fmt_num(bv)} → {fmt_num(av)} ({_signed(change)}, {sig})"
    if change < -EPS:
        return f"Accuracy cost: {fmt_num(-change)} — {move}"
    return f"Accuracy cost: none — {move}"
