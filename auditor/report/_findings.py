"""The findings that matter, in plain sentences: what the executive summary, the Markdown comment and
the JUnit messages say. Plain text only (each format escapes it).

Findings: the verdict in words; the failed blocking clauses; the largest statistically significant
gaps between groups, with both groups' values and intervals; the clauses that could not be decided,
with how many more images would settle them (from the check's power estimates); errored checks,
skipped images and policy warnings.
"""
from __future__ import annotations

from typing import Any

from auditor.report._assumptions import assumption_rows
from auditor.report._format import (
    as_dict,
    as_list,
    dig,
    fmt_p,
    fmt_plain,
    fmt_prose,
    metric_ci,
    metric_label,
    metric_value,
    short,
)

__all__ = [
    "FINDING_RATES",
    "OPS",
    "UNDECIDED",
    "clause_brief",
    "clause_requirement",
    "clause_sentence",
    "clauses",
    "failing_clauses",
    "gap_sentence",
    "inconclusive_sentence",
    "not_run_sentence",
    "p_phrase",
    "scope_label",
    "significant_gaps",
    "summary",
    "verdict_of",
    "verdict_sentence",
]

OPS = {">=": "≥", "<=": "≤", "!=": "≠", "==": "=", "<": "<", ">": ">"}
# Rates worth a finding; error rate, FNR and TNR mirror accuracy, TPR and FPR, and the named
# disparities (demographic parity, equal opportunity) repeat selection rate and TPR.
FINDING_RATES = ("accuracy", "selection_rate", "tpr", "fpr", "precision", "ece", "brier")
MAX_GAPS = 5
MAX_PER_SCOPE = 2
MAX_THIN_NAMED = 3


UNDECIDED = ("borderline", "insufficient_data")
"""Clause results that leave a blocker undecided (the verdict is then inconclusive)."""


def verdict_of(results: dict[str, Any]) -> str:
    """``pass``, ``fail``, ``inconclusive``, or ``none`` when no policy was evaluated."""
    v = dig(results, "policy", "verdict")
    return str(v).lower() if v not in (None, "") else "none"


def clauses(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in as_list(dig(results, "policy", "clauses")) if isinstance(c, dict)]


def failing_clauses(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The policy clauses whose result is ``fail``, blockers first, in policy order."""
    failed = [c for c in clauses(results) if str(c.get("result")).lower() == "fail"]
    return sorted(failed, key=lambda c: c.get("severity") != "blocker")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def scope_label(scope: Any) -> str:
    """``race`` -> "race"; ``gender+race`` -> "gender × race"."""
    return short(scope).replace("+", " × ")


def _policy_name(results: dict[str, Any]) -> str:
    policy = as_dict(results.get("policy"))
    if not policy.get("name"):
        return "the policy"
    version = f" (version {short(policy['version'], 40)})" if policy.get("version") not in (None, "") else ""
    return f"policy “{short(policy['name'], 80)}”{version}"


def verdict_sentence(results: dict[str, Any]) -> str:
    """The verdict in plain words."""
    verdict = verdict_of(results)
    blockers = [c for c in clauses(results) if c.get("severity") == "blocker"]
    failed = [c for c in blockers if c.get("result") == "fail"]
    undecided = [c for c in blockers if c.get("result") in UNDECIDED]
    name = _policy_name(results)
    if verdict == "pass":
        return f"PASS: the model meets every blocking requirement of {name}."
    if verdict == "fail":
        n = len(failed)
        what = f"{_plural(n, 'blocking requirement')}" if n else "its blocking requirements"
        return f"FAIL: the model does not meet {what} of {name}."
    if verdict == "inconclusive":
        n = len(undecided)
        missing = [short(str(m), 60) for m in as_list(as_dict(results.get("policy")).get("missing_required"))]
        if missing:
            return (f"INCONCLUSIVE: {name} requires {_plural(len(missing), 'check')} this run left out "
                    f"({', '.join(missing)}), so it cannot pass; an inconclusive audit fails the gate unless "
                    "--allow-inconclusive is given.")
        if not n and blockers and all(c.get("result") == "not_run" for c in blockers):
            return (f"INCONCLUSIVE: no blocking requirement of {name} was measured (their checks were not in "
                    "--checks); an inconclusive audit fails the gate unless --allow-inconclusive is given.")
        what = _plural(n, "blocking requirement") if n else "some blocking requirements"
        if any(c.get("result") == "borderline" for c in undecided):
            return (f"INCONCLUSIVE: no blocking requirement of {name} failed, but {what} could not be decided "
                    "(an interval straddles the threshold, or the probe has too little data); an inconclusive "
                    "audit fails the gate unless --allow-inconclusive is given.")
        return (f"INCONCLUSIVE: no blocking requirement of {name} failed, but the probe has too little data "
                f"to decide {what}; an inconclusive audit fails the gate unless --allow-inconclusive is given.")
    if verdict == "none":
        return "No policy was evaluated, so this audit has no verdict."
    return f"Verdict “{short(verdict, 40)}” for {name}."


def clause_requirement(c: dict[str, Any]) -> str:
    """What a clause demands: "≤ 0.1", "≤ 0.1 (whole interval)", "drop ≤ 0.02 from baseline"."""
    if c.get("kind") == "regression":
        for key, word in (("max_drop", "drop"), ("max_rise", "rise")):
            if key in c:
                sig = ", if significant" if c.get("significance") else ""
                return f"{word} ≤ {fmt_plain(c.get(key))} from baseline{sig}"
    op = str(c.get("op") or "")
    text = f"{OPS.get(op, short(op, 4))} {fmt_plain(c.get('threshold'))}".strip()
    if c.get("require") == "interval":
        text += " (whole interval)"
    return text


def _measured(c: dict[str, Any]) -> str:
    value = fmt_prose(metric_value(c)) if metric_value(c) is not None else "n/a"
    ci = metric_ci(c)
    return value + (f" [{fmt_prose(ci[0])}, {fmt_prose(ci[1])}]" if ci else "")


def clause_sentence(c: dict[str, Any]) -> str:
    """One line about a failed clause: what it asks, what was measured, and how sure that is."""
    cid = short(c.get("id") or "?")
    desc = short(c.get("description") or c.get("metric") or "", 300)
    text = f"{cid}: {desc}".rstrip()
    if not text.endswith((".", "!", "?")):
        text += "."
    if c.get("kind") == "regression" and metric_value(c.get("baseline_value")) is not None:
        delta = metric_value(c.get("delta"))
        text += (f" Measured {_measured(c)}, baseline {fmt_prose(metric_value(c.get('baseline_value')))}"
                 + (f" (change {delta:+.2f})" if delta is not None else "") + f"; allowed: {clause_requirement(c)}.")
    else:
        text += f" Measured {_measured(c)}; required {clause_requirement(c)}."
    if c.get("p_adjusted") is not None:
        sig = c.get("significant")
        word = "significant" if sig is True else "not significant" if sig is False else "significance unknown"
        text += f" Adjusted {p_phrase(c.get('p_adjusted'))} ({word})."
    elif c.get("p_value") is not None:
        text += f" {p_phrase(c.get('p_value'))[0].upper()}{p_phrase(c.get('p_value'))[1:]}."
    if c.get("reason") and c.get("result") == "fail":
        reason = short(c["reason"], 300)
        text += f" {reason[:1].upper()}{reason[1:]}" + ("" if reason.endswith(".") else ".")
    return text


def p_phrase(p: Any) -> str:
    """"p < 0.001" or "p = 0.03"."""
    text = fmt_p(p)
    return "p < 0.001" if text == "<0.001" else f"p = {text}"


def clause_brief(c: dict[str, Any]) -> str:
    """One short line about a failed clause: "id: 0.49 [0.41, 0.57], required ≤ 0.1 (significant)"."""
    text = f"{short(c.get('id') or '?')}: {_measured(c)}, required {clause_requirement(c)}"
    if c.get("significant") is True:
        text += " (significant)"
    elif c.get("significant") is False:
        text += " (not significant)"
    return text + "."


def _gm(results: dict[str, Any]) -> dict[str, Any]:
    return as_dict(dig(results, "checks", "group_metrics"))


def _group_rate(results: dict[str, Any], scope: str, group: str, rate: str) -> Any:
    return dig(_gm(results), "by_group", scope, group, rate)


def _with_ci(m: Any) -> str:
    v = metric_value(m)
    if v is None:
        return "n/a"
    ci = metric_ci(m)
    return fmt_prose(v) + (f" [{fmt_prose(ci[0])}, {fmt_prose(ci[1])}]" if ci else "")


def significant_gaps(results: dict[str, Any], limit: int = MAX_GAPS) -> tuple[list[dict[str, Any]], int]:
    """The largest significant max-min gaps (at most `MAX_PER_SCOPE` per scope; attributes first, then
    intersections, at most half of ``limit`` for the intersections when there are both), and how many more.

    A gap the check marks ``practical: false`` (below its floor, `auditor.checks.significance.PRACTICAL_FLOORS`)
    is never listed, however small its p-value. When the results carry no significance at all (an older
    file), the largest gap of each scope is given instead, marked untested.
    """
    metrics = as_dict(_gm(results).get("metrics"))
    tested = any("significant" in as_dict(m) for t in metrics.values() for m in as_dict(t).values())
    found: list[dict[str, Any]] = []
    intersections: list[dict[str, Any]] = []
    for scope, table in metrics.items():
        if scope == "overall" or not isinstance(table, dict):
            continue
        rows = []
        for rate in FINDING_RATES:
            m = as_dict(table.get(f"{rate}_difference"))
            gap = metric_value(m)
            if gap is None or gap <= 0 or (tested and m.get("significant") is not True) or m.get("practical") is False:
                continue
            rows.append({"scope": str(scope), "rate": rate, "gap": gap, "entry": m, "tested": tested,
                         "groups": [str(g) for g in as_list(m.get("groups"))[:2]]})
        rows.sort(key=lambda r: -r["gap"])
        kind = dig(table, "scope", "kind") or ("intersection" if "+" in str(scope) else "attribute")
        (intersections if kind == "intersection" else found).extend(rows[:MAX_PER_SCOPE] if tested else rows[:1])
    # the attributes' gaps first: small intersectional groups give the largest gaps, which would crowd them out
    found.sort(key=lambda r: -r["gap"])
    intersections.sort(key=lambda r: -r["gap"])
    half = max(1, limit // 2)
    shown = found[: limit - min(half, len(intersections))] if intersections else found[:limit]
    shown += intersections[: limit - len(shown)]
    return shown, len(found) + len(intersections) - len(shown)


def gap_sentence(results: dict[str, Any], gap: dict[str, Any]) -> str:
    """"Accuracy differs between race groups black (0.59 [0.54, 0.64]) and white (1.00 [..]): gap 0.41 [..], adjusted p < 0.001."""
    m = gap["entry"]
    label = metric_label(gap["rate"])
    scope = scope_label(gap["scope"])
    text = f"{label} differs between {scope} groups"
    if len(gap["groups"]) == 2:
        parts = [f"{short(g)} ({_with_ci(_group_rate(results, gap['scope'], g, gap['rate']))})" for g in gap["groups"]]
        text += f" {parts[0]} and {parts[1]}"
    text += f": gap {_with_ci(m)}"
    if m.get("p_adjusted") is not None:
        text += f", adjusted {p_phrase(m['p_adjusted'])}"
    elif not gap["tested"]:
        text += " (significance not tested)"
    return text + "."


def _thin_groups(results: dict[str, Any], scope: str) -> list[tuple[str, dict[str, Any]]]:
    groups = as_dict(dig(_gm(results), "by_group", scope))
    thin = [(str(g), as_dict(v)) for g, v in groups.items() if as_dict(v).get("insufficient_data")]
    return sorted(thin, key=lambda gv: (gv[1].get("n_needed") if isinstance(gv[1].get("n_needed"), int) else 10**9))


def _scope_of(c: dict[str, Any]) -> str | None:
    if c.get("scope") not in (None, ""):
        return str(c["scope"])
    parts = str(c.get("metric") or "").split(".")
    return parts[3] if len(parts) > 4 and parts[0] == "checks" else None


def _thin_needs(results: dict[str, Any], scope: str, named: list[tuple[str, dict[str, Any]]], n_thin: int) -> str:
    """" To decide it: about 2 more images of female & 60+ (n=48), ... to reach the minimum of 50; ..."."""
    params = as_dict(_gm(results).get("params"))
    min_n = params.get("min_group_size")
    sized = isinstance(min_n, int) and all(isinstance(v.get("n"), int) for _, v in named)
    if sized:  # what reaching the minimum takes, fewest first; the check's n_needed may add power on top
        named = sorted(named, key=lambda gv: min_n - gv[1]["n"])
    shown = named[:MAX_THIN_NAMED]
    counts = [(min_n - v["n"]) if sized else v["n_needed"] for _, v in shown]
    parts = [f"{k:,} of {short(g)} (n={v.get('n', '?')})" for k, (g, v) in zip(counts, shown)]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    text = f" To decide it: about {listed.replace(' of ', ' more images of ', 1)}"
    text += f" to reach the minimum of {min_n}" if sized else ""
    more = n_thin - len(shown)
    text += f", and more for {_plural(more, 'other small group')} of {scope_label(scope)}" if more > 0 else f" ({scope_label(scope)})"
    power_need = max(v["n_needed"] for _, v in shown)
    if sized and power_need > max(counts):
        target = params.get("power")
        at = f" at {target * 100:g}% power" if isinstance(target, (int, float)) and not isinstance(target, bool) else ""
        text += f"; telling their accuracy from the rest's{at} would take up to about {power_need:,} more each"
    return text + "."


def _more_images(results: dict[str, Any], c: dict[str, Any]) -> str:
    """How many more images would settle an undecided clause, from the check's power estimates."""
    scope = _scope_of(c)
    if scope is None or scope == "overall":
        return ""
    thin = _thin_groups(results, scope)
    named = [(g, v) for g, v in thin if isinstance(v.get("n_needed"), int) and v["n_needed"] > 0]
    if named:
        return _thin_needs(results, scope, named, len(thin))
    leaf = str(c.get("metric") or "").split(".")[-1]
    power = as_dict(dig(_gm(results), "metrics", scope, leaf, "power"))
    n_more, per_group = power.get("n_more"), power.get("n_per_group_needed")
    groups = [short(g) for g in as_list(dig(_gm(results), "metrics", scope, leaf, "groups"))[:2]]
    if isinstance(n_more, int) and n_more > 0 and len(groups) == 2:
        return (f" To tell this gap from chance: about {n_more} more images in all, at least {per_group} in each of"
                f" groups {groups[0]} and {groups[1]}.")
    return ""


def not_run_sentence(results: dict[str, Any]) -> str:
    """Which clauses were not run (their checks were left out of --checks); "" when none."""
    skipped = [c for c in clauses(results) if c.get("result") == "not_run"]
    if not skipped:
        return ""
    parts = [str(c.get("metric") or "").split(".") for c in skipped]
    checks = list(dict.fromkeys(short(p[1] if len(p) > 1 else "?", 40) for p in parts))
    ids = [short(c.get("id") or "?") for c in skipped[:12]] + ([f"{len(skipped) - 12} more"] if len(skipped) > 12 else [])
    return (f"{_plural(len(skipped), 'clause')} not run, so not counted in the verdict "
            f"({'check' if len(checks) == 1 else 'checks'} {', '.join(checks)} not in --checks): {', '.join(ids)}.")


def inconclusive_sentence(results: dict[str, Any], c: dict[str, Any]) -> str:
    """Why a clause could not be decided, and what would decide it."""
    reason = short(c.get("reason") or "not enough data", 300)
    sev = " (blocker)" if c.get("severity") == "blocker" else ""
    return f"{short(c.get('id') or '?')}{sev} could not be decided: {reason}.{_more_images(results, c)}"


def _notes(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    by_group = as_dict(_gm(results).get("by_group"))
    metrics = as_dict(_gm(results).get("metrics"))
    thin_attr, thin_inter = [], 0
    for scope, groups in by_group.items():
        kind = dig(metrics, scope, "scope", "kind") or ("intersection" if "+" in str(scope) else "attribute")
        for g, v in as_dict(groups).items():
            if as_dict(v).get("insufficient_data"):
                if kind == "attribute":
                    thin_attr.append(f"{short(scope)} {short(g)} (n={as_dict(v).get('n', '?')})")
                else:
                    thin_inter += 1
    for row in assumption_rows(results):
        if row["verdict"] == "undecided":
            out.append(f"{row['fact']} {row['value']} was assumed and the probe could not confirm it (no alternative "
                       "was better beyond doubt); declare it with the model's flag if it was trained otherwise.")
    if thin_attr:
        out.append("Too few images for reliable metrics, so left out of the disparities: " + ", ".join(thin_attr) + ".")
    if thin_inter:
        out.append(f"{_plural(thin_inter, 'intersectional group')} also had too few images (marked in the heatmaps).")
    for cname, check in as_dict(results.get("checks")).items():
        status = str(as_dict(check).get("status") or "unknown")
        if status == "error":
            msg = short(as_dict(check).get("error") or "no error message was recorded", 300)
            out.append(f"The {short(cname)} check did not complete: {msg}")
        elif status not in ("ok", "unknown"):
            out.append(f"The {short(cname)} check has status “{short(status, 40)}”.")
    skipped = as_dict(results.get("probe")).get("n_skipped")
    if isinstance(skipped, int) and skipped > 0:
        verb = "was" if skipped == 1 else "were"
        out.append(f"{_plural(skipped, 'probe image')} could not be read and {verb} skipped (listed under Reproducibility).")
    for w in as_list(dig(results, "policy", "warnings")):
        out.append(f"Policy warning: {short(w, 400)}")
    if not_run_sentence(results):
        out.append(not_run_sentence(results))
    return out


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The executive summary as plain sentences, grouped for the templates."""
    results = as_dict(results)
    cl = clauses(results)
    failed = failing_clauses(results)
    undecided = sorted((c for c in cl if c.get("result") in UNDECIDED), key=lambda c: c.get("severity") != "blocker")
    counts = ""
    if cl:
        by_sev: dict[str, int] = {}
        for c in failed:
            sev = str(c.get("severity") or "unspecified")
            by_sev[sev] = by_sev.get(sev, 0) + 1
        counts = f"{len(failed)} of {_plural(len(cl), 'clause')} failed"
        if by_sev:
            counts += " (" + ", ".join(_plural(n, short(s, 20)) for s, n in sorted(by_sev.items(), key=lambda kv: (kv[0] != "blocker", kv[0]))) + ")"
        n_border = sum(1 for c in undecided if c.get("result") == "borderline")
        if n_border:
            counts += f"; {n_border} borderline (the interval straddles the threshold)"
        if len(undecided) - n_border:
            counts += f"; {len(undecided) - n_border} could not be decided for lack of data"
        n_not_run = sum(1 for c in cl if c.get("result") == "not_run")
        if n_not_run:
            counts += f"; {n_not_run} not run"
        counts += "."
    gaps, more = significant_gaps(results)
    return {
        "verdict": verdict_sentence(results),
        "counts": counts,
        "blockers": [clause_sentence(c) for c in failed if c.get("severity") == "blocker"],
        "warnings": [clause_brief(c) for c in failed if c.get("severity") != "blocker"],
        "gaps": [gap_sentence(results, g) for g in gaps],
        "gaps_more": more,
        "gaps_tested": bool(gaps) and gaps[0]["tested"],
        "gaps_searched": any(s != "overall" for s in as_dict(_gm(results).get("metrics"))),
        "inconclusive": [inconclusive_sentence(results, c) for c in undecided],
        "notes": _notes(results),
    }
