"""Page 1 of the report as a decision sheet: the verdict, each failing clause as a finding in plain words and
percentages, a key-numbers box, what the probe is, what the audit cannot say, the next steps with the exact
commands (`auditor.report._next_steps`), and the context and sign-off lines (`auditor.report._context`).

It reads results.json only (metric entries through `auditor.results.MetricEntry`), never raises on an odd
value, and returns plain text (the template escapes it).
"""
from __future__ import annotations

from typing import Any

from auditor.report._context import context_view
from auditor.report._findings import OPS, clause_sentence, clauses, failing_clauses, scope_label, verdict_sentence
from auditor.report._format import as_dict, as_list, dig, metric_value, short
from auditor.report._next_steps import LOW_ROBUSTNESS, next_steps
from auditor.report.presenter import presenter_names
from auditor.results import MetricEntry

__all__ = ["decision_sheet", "group_label", "key_numbers", "pct", "probe_nature", "region_words"]

STANDARD_ATTRIBUTES = ("gender", "age", "race")
MAX_WARNINGS = 2
"""Failing warning clauses page 1 words out; the rest are named in one line."""

# A gap or ratio metric -> the rate it compares (equal opportunity is a TPR gap, demographic parity a selection-rate one).
_RATE_OF = {"equal_opportunity": "tpr", "demographic_parity": "selection_rate", "equalized_odds": "tpr"}
_RATE_WORDS = {"accuracy": "Accuracy", "error_rate": "Error rate", "selection_rate": "Selection rate",
               "tpr": "True positive rate", "fnr": "False negative rate", "fpr": "False positive rate",
               "tnr": "True negative rate", "precision": "Precision", "robust_accuracy": "Robust accuracy",
               "subject_share": "Share of the explanation on the subject", "deletion_auc": "Deletion AUC of the explanations",
               "insertion_auc": "Insertion AUC of the explanations"}


def pct(x: Any) -> str:
    """0.5912 -> "59%"; 0.004 -> "0.4%"; None -> "n/a"."""
    v = metric_value(x)
    if v is None:
        return "n/a"
    p = 100 * v
    return f"{p:.0f}%" if abs(p) >= 1 or p == 0 else f"{p:.1f}%"


def pct_ci(x: Any) -> str:
    """ "59% (53–65%)" with the interval when there is one."""
    e = MetricEntry.read(x)
    if e is None or e.value is None:
        return "n/a"
    return pct(e.value) + (f" ({100 * e.ci[0]:.0f}–{100 * e.ci[1]:.0f}%)" if e.ci else "")


def group_label(name: Any) -> str:
    """A group's name as a reader writes it: "black" -> "Black", "female & black" -> "Female & black"."""
    text = short(name, 80)
    return text[:1].upper() + text[1:]


def _split(metric: str) -> tuple[str, str, str] | None:
    """``checks.<check>.metrics.<scope>.<name>`` -> (check, scope, name)."""
    parts = str(metric or "").split(".")
    if len(parts) == 5 and parts[0] == "checks" and parts[2] == "metrics":
        return parts[1], parts[3], parts[4]
    return None


def _rate_and_kind(name: str) -> tuple[str, str] | None:
    for suffix in ("_difference", "_ratio"):
        if name.endswith(suffix) and not name.endswith("_to_overall"):
            stem = name[: -len(suffix)]
            return _RATE_OF.get(stem, stem), suffix[1:]
    return None


def _group_value(results: dict[str, Any], check: str, scope: str, group: str, rate: str) -> Any:
    return dig(results, "checks", check, "by_group", scope, group, rate)


def _gap_finding(results: dict[str, Any], c: dict[str, Any], check: str, scope: str, name: str) -> str | None:
    """ "Accuracy by race: 59% for Black vs 100% for White (a 41-point gap; the policy allows at most 10 points)."""
    rk = _rate_and_kind(name)
    raw = dig(results, "checks", check, "metrics", scope, name)
    groups = [g for g in as_list(as_dict(raw).get("groups")) if isinstance(g, str)]
    if not rk or len(groups) < 2:
        return None
    rate, kind = rk
    lo_name, hi_name = groups[0], groups[-1]
    if check == "explanations":
        lo_name, hi_name = as_dict(raw).get("lowest") or lo_name, as_dict(raw).get("highest") or hi_name
    lo, hi = (_group_value(results, check, scope, g, rate) for g in (lo_name, hi_name))
    if metric_value(lo) is None or metric_value(hi) is None:
        return None
    what = _RATE_WORDS.get(rate, short(rate, 40).replace("_", " ").capitalize())
    text = f"{what} by {scope_label(scope)}: {pct(lo)} for {group_label(lo_name)} vs {pct(hi)} for {group_label(hi_name)}"
    measured, threshold = metric_value(c.get("value")), c.get("threshold")
    if kind == "difference" and measured is not None:
        text += f" (a {100 * measured:.0f}-point gap"
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            text += f"; the policy allows at most {100 * threshold:.0f} points"
        text += ")"
    elif measured is not None:
        text += f" (ratio {measured:.2f}"
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            text += f"; the policy requires at least {threshold:.2f}"
        text += ")"
    return text + "."


def region_words(box: Any, size: Any) -> str:
    """Where a box lies in the frame, in words: "the top-left corner", "the centre", "the bottom edge"."""
    b = [metric_value(v) for v in as_list(box)]
    hw = [metric_value(v) for v in as_list(size)]
    if len(b) != 4 or None in b or len(hw) != 2 or None in hw or not hw[0] or not hw[1]:
        return "one region of the image"
    cx, cy = (b[0] + b[2]) / 2 / hw[1], (b[1] + b[3]) / 2 / hw[0]  # type: ignore[operator]
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    if row and col:
        return f"the {row}-{col} corner"
    if row or col:
        return f"the {row or col} edge"
    return "the centre of the image"


def cue_findings(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The spurious check's confirmed off-subject cues: where, for which class, how often removing it flips a
    prediction, and the group where it flips most."""
    sp = as_dict(dig(results, "checks", "spurious"))
    size = dig(sp, "params", "input_size") or dig(results, "model", "input_size")
    out = []
    for f in as_list(dig(sp, "metrics", "findings")):
        f = as_dict(f)
        if f.get("confirmed") is False or f.get("on_subject") is True:
            continue
        worst: tuple[float, str, str] | None = None
        for attr, groups in as_dict(f.get("by_group")).items():
            for g, row in as_dict(groups).items():
                rate = metric_value(as_dict(row).get("removal_flip_rate"))
                if rate is not None and (worst is None or rate > worst[0]):
                    worst = (rate, str(attr), str(g))
        out.append({"where": region_words(f.get("box"), f.get("input_size") or size),
                    "cls": short(f.get("class"), 40) if f.get("class") not in (None, "") else None,
                    "flip": metric_value(f.get("removal_flip_rate")), "worst": worst,
                    "by_group": as_dict(f.get("by_group"))})
    return out


def _cue_text(cue: dict[str, Any]) -> str:
    text = f"Predictions depend on a mark in {cue['where']}"
    if cue["cls"]:
        text += f" (it pushes them towards “{cue['cls']}”)"
    if cue["flip"] is not None:
        text += f": removing it changes {pct(cue['flip'])} of the predictions it touches"
    if cue["worst"] is not None:
        rate, attr, g = cue["worst"]
        text += f", {pct(rate)} for {group_label(g)} ({short(attr, 40)})"
    return text + "."


def _finding(results: dict[str, Any], c: dict[str, Any]) -> str:
    """One failing clause in plain words; the clause's own sentence when it has no plainer reading."""
    parts = _split(str(c.get("metric") or ""))
    if parts:
        check, scope, name = parts
        if check == "spurious":
            cues = cue_findings(results)
            if cues:
                return " ".join(_cue_text(x) for x in cues[:2])
        elif scope != "overall":
            text = _gap_finding(results, c, check, scope, name)
            if text:
                return text
        elif check == "group_metrics" and name in ("accuracy", "tpr", "selection_rate"):
            return f"{_RATE_WORDS[name]} on all audited images is {pct_ci(c.get('value'))}; the policy asks for {OPS.get(str(c.get('op')), '')} {pct(c.get('threshold'))}."
    return clause_sentence(c)


def findings(results: dict[str, Any]) -> list[dict[str, str]]:
    """The failing clauses (blockers first) as ``{"id", "severity", "text"}``; clauses that say the same thing
    (one cue behind several clauses) once."""
    out, seen, more = [], set(), []
    for c in failing_clauses(results):
        text = _finding(results, c)
        if text in seen:
            continue
        seen.add(text)
        if c.get("severity") != "blocker" and sum(f["severity"] != "blocker" for f in out) >= MAX_WARNINGS:
            more.append(short(c.get("id") or "?", 60))
            continue
        out.append({"id": short(c.get("id") or "?"), "severity": short(c.get("severity") or "", 20), "text": text})
    if more:
        out.append({"id": "more", "severity": "warning",
                    "text": f"{len(more)} more warning clause{'s' if len(more) != 1 else ''} failed (in the clause table): "
                            f"{', '.join(more[:8])}{' …' if len(more) > 8 else ''}."})
    robust = _robust(results)
    if robust and metric_value(robust["value"]) is not None and metric_value(robust["value"]) <= LOW_ROBUSTNESS and not any(
            "robust_accuracy" in str(c.get("metric")) and "difference" not in str(c.get("metric")) for c in failing_clauses(results)):
        out.append({"id": "robustness", "severity": "note",
                    "text": f"Robust accuracy is {pct(robust['value'])} at {robust['eps']}: perturbations too small to see "
                            "change almost every prediction (the policy gates only the gap between groups)."})
    return out


def _robust(results: dict[str, Any]) -> dict[str, Any] | None:
    at = as_dict(dig(results, "checks", "attacks"))
    ra = dig(at, "metrics", "overall", "robust_accuracy")
    if MetricEntry.read(ra) is None:
        return None
    eps = metric_value(dig(at, "params", "reference_eps"))
    eps_text = f"L∞ {eps * 255:.0f}/255" if eps is not None and abs(eps * 255 - round(eps * 255)) < 1e-3 else (
        f"L∞ eps {eps:.3g}" if eps is not None else "the reference eps")
    return {"value": ra, "eps": eps_text}


def _worst_group(results: dict[str, Any]) -> tuple[str, Any] | None:
    worst: tuple[float, str, Any] | None = None
    for scope, groups in as_dict(dig(results, "checks", "group_metrics", "by_group")).items():
        if "+" in scope:
            continue
        for g, row in as_dict(groups).items():
            row = as_dict(row)
            v = metric_value(row.get("accuracy"))
            if v is not None and row.get("insufficient_data") is not True and (worst is None or v < worst[0]):
                worst = (v, f"{group_label(g)} ({scope_label(scope)})", row.get("accuracy"))
    return (worst[1], worst[2]) if worst else None


def key_numbers(results: dict[str, Any]) -> list[dict[str, str]]:
    """The key-numbers box: ``{"label", "value", "note"}`` for what was measured."""
    rows: list[dict[str, str]] = []
    acc = dig(results, "checks", "group_metrics", "metrics", "overall", "accuracy")
    if metric_value(acc) is not None:
        n = dig(results, "checks", "group_metrics", "metrics", "overall", "n")
        rows.append({"label": "Overall accuracy", "value": pct_ci(acc), "note": f"{n:,} images" if isinstance(n, int) else ""})
    worst = _worst_group(results)
    if worst:
        rows.append({"label": "Worst group", "value": pct_ci(worst[1]), "note": worst[0]})
    robust = _robust(results)
    if robust:
        rows.append({"label": "Robust accuracy", "value": pct_ci(robust["value"]), "note": f"under PGD at {robust['eps']}"})
    overall = as_dict(dig(results, "checks", "spurious", "metrics", "overall"))
    n_cues = metric_value(overall.get("n_findings"))
    if n_cues is not None:
        off = metric_value(overall.get("n_off_subject_findings"))
        rows.append({"label": "Confirmed spurious cues", "value": f"{n_cues:.0f}",
                     "note": f"{off:.0f} off the subject" if off is not None else ""})
    faithful = dig(results, "checks", "explanations", "metrics", "overall", "faithful_methods")
    if metric_value(faithful) is not None:
        of = as_dict(faithful).get("of")
        rows.append({"label": "Explanation faithfulness",
                     "value": f"{metric_value(faithful):.0f} of {of} methods" if isinstance(of, int) else f"{metric_value(faithful):.0f} methods",
                     "note": "beat a random pixel order"})
    return rows


def probe_nature(results: dict[str, Any]) -> dict[str, Any]:
    """What the probe is: synthetic or real, its source and size, in one sentence."""
    probe = as_dict(results.get("probe"))
    source = short(probe.get("source") or "not recorded", 200)
    n = probe.get("n")
    size = f"{n:,} images" if isinstance(n, int) else "an unrecorded number of images"
    synthetic = source.startswith("synth:") or probe.get("format") == "synth"
    if synthetic:
        text = (f"Synthetic: {size} generated by auditor ({source}). The numbers describe the model on generated "
                "images, not on real photographs.")
    else:
        kind = {"folder": "a folder", "csv": "a CSV file"}.get(str(probe.get("format")), "real images")
        text = f"Real images: {size} from {kind} ({source})."
    skipped = probe.get("n_skipped")
    if isinstance(skipped, int) and skipped:
        text += f" {skipped:,} could not be read and were skipped."
    return {"synthetic": synthetic, "text": text}


def cannot_say(results: dict[str, Any]) -> list[str]:
    """What this audit cannot say: groups not annotated, checks not run, undecided clauses, a synthetic probe."""
    out: list[str] = []
    probe = as_dict(results.get("probe"))
    attrs = set(as_dict(probe.get("attributes")))
    missing = [a for a in STANDARD_ATTRIBUTES if a not in attrs]
    if missing:
        one = len(missing) == 1
        out.append(f"Fairness across {', '.join(missing)}: no group of {'that attribute' if one else 'those attributes'} "
                   f"was compared (the probe has no {'/'.join(missing)} labels, or --sensitive left "
                   f"{'it' if one else 'them'} out).")
    ran = set(as_dict(results.get("checks")))
    not_run = [n for n in presenter_names() if n not in ran]
    if not_run:
        out.append(f"Checks not run: {', '.join(not_run)}; nothing is said about what they measure.")
    errored = [n for n, c in as_dict(results.get("checks")).items() if as_dict(c).get("status") == "error"]
    if errored:
        out.append(f"Checks that did not complete: {', '.join(map(str, errored))}.")
    undecided = [c for c in clauses(results) if c.get("result") in ("insufficient_data", "borderline")]
    if undecided:
        ids = ", ".join(short(c.get("id") or "?", 60) for c in undecided[:6]) + (f" and {len(undecided) - 6} more" if len(undecided) > 6 else "")
        out.append(f"{len(undecided)} clause{'s' if len(undecided) != 1 else ''} could not be decided "
                   f"(too few images, or an interval across the threshold): {ids}.")
    skipped = [c for c in clauses(results) if c.get("result") == "not_run"]
    if skipped:
        out.append(f"{len(skipped)} policy clause{'s' if len(skipped) != 1 else ''} not run (their checks were left out).")
    if probe_nature(results)["synthetic"]:
        out.append("How the model behaves on real photographs: the probe is synthetic.")
    if dig(results, "policy", "verdict") in (None, ""):
        out.append("Whether the model meets a policy: no policy was evaluated.")
    out.append("Anything outside this probe: other populations, image sources or uses than those audited.")
    return out


def decision_sheet(results: dict[str, Any]) -> dict[str, Any]:
    """Everything page 1 shows, as plain values."""
    results = as_dict(results)
    return {
        "verdict": verdict_sentence(results),
        "findings": findings(results),
        "key_numbers": key_numbers(results),
        "probe": probe_nature(results),
        "cannot_say": cannot_say(results),
        "next_steps": next_steps(results, cue_findings(results)),
        "context": context_view(results),
    }
