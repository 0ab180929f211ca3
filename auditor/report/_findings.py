"""The findings that matter, in plain sentences: what the executive summary, the Markdown comment and
the JUnit messages say. Plain text only (each format escapes it).

Findings: the verdict in words (a pass says which blockers pass only at the measured value, their
interval crossing the threshold); the failed blocking clauses, in plain words where the metric has them
(`plain_words`: "robust accuracy under a 4/255 attack is 0%..."); each check's own findings, from its
presenter (e.g. the largest statistically significant gaps between groups); the clauses that could not be
decided, with what would settle them (the presenter's `clause_hint`); borderline passes, errored checks,
skipped images and policy warnings.
"""
from __future__ import annotations

from typing import Any

from auditor.report._assumptions import assumption_rows
from auditor.report.presenter import get_presenter, ordered_presenters
from auditor.report._format import (
    as_dict, as_list, dig, fmt_p, fmt_plain, p_phrase_of, fmt_prose, metric_ci, metric_label, metric_value, short
)

__all__ = [
    "OPS",
    "UNDECIDED",
    "borderline_passes",
    "borderline_sentence",
    "clause_brief",
    "clause_requirement",
    "clause_sentence",
    "clauses",
    "failing_clauses",
    "inconclusive_sentence",
    "not_run_sentence",
    "p_phrase",
    "check_of",
    "plain_words",
    "plural",
    "scope_label",
    "summary",
    "verdict_of",
    "verdict_sentence",
]

OPS = {">=": "≥", "<=": "≤", "!=": "≠", "==": "=", "<": "<", ">": ">"}


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


def borderline_passes(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The passing clauses whose interval crosses the threshold (``borderline: true``), blockers first."""
    found = [c for c in clauses(results) if str(c.get("result")).lower() == "pass" and c.get("borderline") is True]
    return sorted(found, key=lambda c: c.get("severity") != "blocker")


def plural(n: int, word: str) -> str:
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
        shaky = [c for c in borderline_passes(results) if c.get("severity") == "blocker"]
        if not shaky:
            return f"PASS: the model meets every blocking requirement of {name}."
        ids = ", ".join(short(c.get("id") or "?", 60) for c in shaky[:5]) + (f" and {len(shaky) - 5} more" if len(shaky) > 5 else "")
        return (f"PASS: the model meets every blocking requirement of {name}, but "
                f"{f'{len(shaky)} of them' if len(shaky) > 1 else 'one'} ({ids}) only at the measured value: "
                "the interval crosses the threshold (borderline), so a larger probe could show a fail.")
    if verdict == "fail":
        n = len(failed)
        what = f"{plural(n, 'blocking requirement')}" if n else "its blocking requirements"
        return f"FAIL: the model does not meet {what} of {name}."
    if verdict == "inconclusive":
        n = len(undecided)
        missing = [short(str(m), 60) for m in as_list(as_dict(results.get("policy")).get("missing_required"))]
        if missing:
            return (f"INCONCLUSIVE: {name} requires {plural(len(missing), 'check')} this run left out "
                    f"({', '.join(missing)}), so it cannot pass; an inconclusive audit fails the gate unless "
                    "--allow-inconclusive is given.")
        if not n and blockers and all(c.get("result") == "not_run" for c in blockers):
            return (f"INCONCLUSIVE: no blocking requirement of {name} was measured (their checks were not in "
                    "--checks); an inconclusive audit fails the gate unless --allow-inconclusive is given.")
        what = plural(n, "blocking requirement") if n else "some blocking requirements"
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


def _eps_words(results: dict[str, Any] | None) -> str:
    """The attacks check's reference eps as "4/255" (or "0.02"); "the reference" when it is not known."""
    eps = metric_value(dig(results or {}, "checks", "attacks", "params", "reference_eps"))
    if eps is None or eps <= 0:
        return "the reference"
    k = eps * 255
    if abs(k - round(k)) > 1e-6 or round(k) < 1:
        return f"an eps {fmt_plain(eps)}"
    n = round(k)
    return f"{'an' if str(n).startswith('8') or n in (11, 18) else 'a'} {n}/255"


def plain_words(c: dict[str, Any], results: dict[str, Any] | None = None) -> str:
    """What a failed clause means, in plain words and without a closing full stop, for the metrics that have
    them ("" for the others): an absolute robust-accuracy floor says how easily the model is fooled."""
    metric = str(c.get("metric") or "")
    value = metric_value(c)
    if metric == "checks.attacks.metrics.overall.robust_accuracy" and value is not None:
        pct = f"{value:.0%}"
        head = f"Robust accuracy under {_eps_words(results)} attack is {pct}"
        if pct == "0%":
            return f"{head}: any imperceptible perturbation flips the model's answers"
        return f"{head}: an imperceptible perturbation makes the model wrong on {1 - value:.0%} of the images"
    return ""


def borderline_sentence(c: dict[str, Any]) -> str:
    """Why a passing clause is borderline: its value clears the threshold, its interval does not."""
    sev = " (blocker)" if c.get("severity") == "blocker" else ""
    ci = metric_ci(c)
    span = f" but its interval [{fmt_prose(ci[0])}, {fmt_prose(ci[1])}]" if ci else " but its interval"
    return (f"{short(c.get('id') or '?')}{sev} passes at {fmt_prose(metric_value(c))}{span} crosses the threshold "
            f"{clause_requirement(c)}: borderline, a larger probe could show it fails.")


def clause_sentence(c: dict[str, Any], results: dict[str, Any] | None = None) -> str:
    """One line about a failed clause: what it asks, what was measured, and how sure that is; first, for the
    metrics that have them, the plain words of `plain_words`."""
    plain = plain_words(c, results)
    if plain:
        return f"{plain} ({short(c.get('id') or '?')}: measured {_measured(c)}; required {clause_requirement(c)})."
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
        text += f" Adjusted {p_phrase_of(c)} ({word})."
    elif c.get("p_value") is not None:
        phrase = p_phrase_of(c, "p_value")
        text += f" {phrase[0].upper()}{phrase[1:]}."
    if isinstance(c.get("reason"), str) and c["reason"].strip() and c.get("result") == "fail":
        reason = short(c["reason"], 300)
        text += f" {reason[:1].upper()}{reason[1:]}" + ("" if reason.endswith(".") else ".")
    return text


def p_phrase(p: Any) -> str:
    """"p < 0.001" (a bound) or "p = 0.03"."""
    text = fmt_p(p)
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


def clause_brief(c: dict[str, Any], results: dict[str, Any] | None = None) -> str:
    """One short line about a failed clause: "id: 0.49 [0.41, 0.57], required ≤ 0.1 (significant)"; the plain
    words of `plain_words` first where the metric has them."""
    plain = plain_words(c, results)
    if plain:
        return f"{plain} ({short(c.get('id') or '?')}: {_measured(c)}, required {clause_requirement(c)})."
    text = f"{short(c.get('id') or '?')}: {_measured(c)}, required {clause_requirement(c)}"
    if c.get("significant") is True:
        text += " (significant)"
    elif c.get("significant") is False:
        text += " (not significant)"
    return text + "."


def not_run_sentence(results: dict[str, Any]) -> str:
    """Which clauses were not run (their checks were left out of --checks); "" when none."""
    skipped = [c for c in clauses(results) if c.get("result") == "not_run"]
    if not skipped:
        return ""
    parts = [str(c.get("metric") or "").split(".") for c in skipped]
    checks = list(dict.fromkeys(short(p[1] if len(p) > 1 else "?", 40) for p in parts))
    ids = [short(c.get("id") or "?") for c in skipped[:12]] + ([f"{len(skipped) - 12} more"] if len(skipped) > 12 else [])
    return (f"{plural(len(skipped), 'clause')} not run, so not counted in the verdict "
            f"({'check' if len(checks) == 1 else 'checks'} {', '.join(checks)} not in --checks): {', '.join(ids)}.")


def inconclusive_sentence(results: dict[str, Any], c: dict[str, Any]) -> str:
    """Why a clause could not be decided, and what would decide it."""
    reason = short(c["reason"] if isinstance(c.get("reason"), str) and c["reason"].strip() else "not enough data", 300)
    sev = " (blocker)" if c.get("severity") == "blocker" else ""
    name = check_of(c)
    hint = get_presenter(name).clause_hint(as_dict(dig(results, "checks", name)), results, c) if name else ""
    return f"{short(c.get('id') or '?')}{sev} could not be decided: {reason}.{hint}"


def check_of(c: dict[str, Any]) -> str | None:
    """The check a clause reads (``checks.<check>.metrics...``), or None."""
    parts = str(c.get("metric") or "").split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "checks" and parts[1] else None


def _notes(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for row in assumption_rows(results):
        if row["verdict"] == "undecided":
            out.append(f"{row['fact']} {row['value']} was assumed and the probe could not confirm it (no alternative "
                       "was better beyond doubt); declare it with the model's flag if it was trained otherwise.")
    for name, check in checks_in_order(results):
        out += get_presenter(name).notes(check, results)
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
        out.append(f"{plural(skipped, 'probe image')} could not be read and {verb} skipped (listed under Reproducibility).")
    for w in as_list(dig(results, "policy", "warnings")):
        out.append(f"Policy warning: {short(w, 400)}")
    if not_run_sentence(results):
        out.append(not_run_sentence(results))
    return out


def checks_in_order(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The checks of ``results`` as (name, entry), in their presenters' order (ties as recorded)."""
    checks = {str(n): as_dict(c) for n, c in as_dict(results.get("checks")).items()}
    return [(p.name, checks[p.name]) for p in ordered_presenters(checks)]


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
        counts = f"{len(failed)} of {plural(len(cl), 'clause')} failed"
        if by_sev:
            counts += " (" + ", ".join(plural(n, short(s, 20)) for s, n in sorted(by_sev.items(), key=lambda kv: (kv[0] != "blocker", kv[0]))) + ")"
        n_border = sum(1 for c in undecided if c.get("result") == "borderline")
        if n_border:
            counts += f"; {n_border} borderline (the interval straddles the threshold)"
        if len(undecided) - n_border:
            counts += f"; {len(undecided) - n_border} could not be decided for lack of data"
        n_shaky = len(borderline_passes(results))
        if n_shaky:
            counts += (f"; {n_shaky} passed only at the measured value (borderline: the interval crosses the "
                       "threshold)")
        n_not_run = sum(1 for c in cl if c.get("result") == "not_run")
        if n_not_run:
            counts += f"; {n_not_run} not run"
        counts += "."
    return {
        "verdict": verdict_sentence(results),
        "counts": counts,
        "blockers": [clause_sentence(c, results) for c in failed if c.get("severity") == "blocker"],
        "warnings": [clause_brief(c, results) for c in sorted(
            (c for c in failed if c.get("severity") != "blocker"), key=lambda c: not plain_words(c, results))],
        "findings": [f for name, check in checks_in_order(results) for f in get_presenter(name).findings(check, results)],
        "inconclusive": [inconclusive_sentence(results, c) for c in undecided],
        "notes": [borderline_sentence(c) for c in borderline_passes(results)] + _notes(results),
    }
