"""The group_metrics check in words: its page-1 findings (the largest significant gaps between groups,
the groups too small to measure), what would decide a clause left undecided, and its methodology
paragraphs, read from the run's own parameters. Plain sentences; each output escapes them.
"""
from __future__ import annotations

from typing import Any

from auditor.report._findings import plural, scope_label
from auditor.report._format import (
    as_dict, as_list, dig, fmt_plain, fmt_prose, metric_ci, metric_label, metric_value, p_phrase_of, short,
)
from auditor.report._method import count_or, pct

__all__ = ["FINDING_RATES", "clause_hint", "findings", "gap_sentence", "methodology", "notes", "significant_gaps"]

# Rates worth a finding; error rate, FNR and TNR mirror accuracy, TPR and FPR, and the named
# disparities (demographic parity, equal opportunity) repeat selection rate and TPR.
FINDING_RATES = ("accuracy", "selection_rate", "tpr", "fpr", "precision", "ece", "brier")
MAX_GAPS = 5
MAX_PER_SCOPE = 2
MAX_THIN_NAMED = 3
_CORRECTIONS = {
    "holm": "Holm's step-down method, which keeps the chance of any false alarm among them at alpha",
    "bh": "the Benjamini-Hochberg method, which keeps the expected share of false alarms among the flagged gaps at alpha",
}


def _group_rate(check: dict[str, Any], scope: str, group: str, rate: str) -> Any:
    return dig(check, "by_group", scope, group, rate)


def _with_ci(m: Any) -> str:
    v = metric_value(m)
    if v is None:
        return "n/a"
    ci = metric_ci(m)
    return fmt_prose(v) + (f" [{fmt_prose(ci[0])}, {fmt_prose(ci[1])}]" if ci else "")


def _significant(check: dict[str, Any], limit: int = MAX_GAPS) -> tuple[list[dict[str, Any]], int]:
    """The largest significant max-min gaps (at most `MAX_PER_SCOPE` per scope; attributes first, then
    intersections, at most half of ``limit`` for the intersections when there are both), and how many more.

    A gap the check marks ``practical: false`` (below its floor, `auditor.checks.significance.PRACTICAL_FLOORS`)
    is never listed, however small its p-value. When the results carry no significance at all (an older
    file), the largest gap of each scope is given instead, marked untested.
    """
    metrics = as_dict(check.get("metrics"))
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


def gap_sentence(check: dict[str, Any], gap: dict[str, Any]) -> str:
    """"Accuracy differs between race groups black (0.59 [0.54, 0.64]) and white (1.00 [..]): gap 0.41 [..], adjusted p < 0.001."""
    m = gap["entry"]
    label = metric_label(gap["rate"])
    scope = scope_label(gap["scope"])
    text = f"{label} differs between {scope} groups"
    if len(gap["groups"]) == 2:
        parts = [f"{short(g)} ({_with_ci(_group_rate(check, gap['scope'], g, gap['rate']))})" for g in gap["groups"]]
        text += f" {parts[0]} and {parts[1]}"
    text += f": gap {_with_ci(m)}"
    if m.get("p_adjusted") is not None:
        text += f", adjusted {p_phrase_of(m)}"
    elif not gap["tested"]:
        text += " (significance not tested)"
    return text + "."


def significant_gaps(results: dict[str, Any], limit: int = MAX_GAPS) -> tuple[list[dict[str, Any]], int]:
    """`_significant` for the group_metrics check of ``results``."""
    return _significant(as_dict(dig(results, "checks", "group_metrics")), limit)


def _thin_groups(check: dict[str, Any], scope: str) -> list[tuple[str, dict[str, Any]]]:
    groups = as_dict(dig(check, "by_group", scope))
    thin = [(str(g), as_dict(v)) for g, v in groups.items() if as_dict(v).get("insufficient_data")]
    return sorted(thin, key=lambda gv: (gv[1].get("n_needed") if isinstance(gv[1].get("n_needed"), int) else 10**9))


def _thin_needs(check: dict[str, Any], scope: str, named: list[tuple[str, dict[str, Any]]], n_thin: int) -> str:
    """" To decide it: about 2 more images of female & 60+ (n=48), ... to reach the minimum of 50; ..."."""
    params = as_dict(check.get("params"))
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
    text += f", and more for {plural(more, 'other small group')} of {scope_label(scope)}" if more > 0 else f" ({scope_label(scope)})"
    power_need = max(v["n_needed"] for _, v in shown)
    if sized and power_need > max(counts):
        target = params.get("power")
        at = f" at {target * 100:g}% power" if isinstance(target, (int, float)) and not isinstance(target, bool) else ""
        text += f"; telling their accuracy from the rest's{at} would take up to about {power_need:,} more each"
    return text + "."


def clause_hint(check: dict[str, Any], c: dict[str, Any]) -> str:
    """How many more images would settle an undecided clause, from the check's power estimates; "" if unknown."""
    scope = _scope_of(c)
    if scope is None or scope == "overall":
        return ""
    thin = _thin_groups(check, scope)
    named = [(g, v) for g, v in thin if isinstance(v.get("n_needed"), int) and v["n_needed"] > 0]
    if named:
        return _thin_needs(check, scope, named, len(thin))
    leaf = str(c.get("metric") or "").split(".")[-1]
    power = as_dict(dig(check, "metrics", scope, leaf, "power"))
    n_more, per_group = power.get("n_more"), power.get("n_per_group_needed")
    groups = [short(g) for g in as_list(dig(check, "metrics", scope, leaf, "groups"))[:2]]
    if isinstance(n_more, int) and n_more > 0 and len(groups) == 2:
        return (f" To tell this gap from chance: about {n_more} more images in all, at least {per_group} in each of"
                f" groups {groups[0]} and {groups[1]}.")
    return ""


def _scope_of(c: dict[str, Any]) -> str | None:
    if c.get("scope") not in (None, ""):
        return str(c["scope"])
    parts = str(c.get("metric") or "").split(".")
    return parts[3] if len(parts) > 4 and parts[0] == "checks" else None


def notes(check: dict[str, Any]) -> list[str]:
    """Page-1 notes: the groups with too few images for reliable metrics."""
    out: list[str] = []
    by_group = as_dict(check.get("by_group"))
    metrics = as_dict(check.get("metrics"))
    thin_attr, thin_inter = [], 0
    for scope, groups in by_group.items():
        kind = dig(metrics, scope, "scope", "kind") or ("intersection" if "+" in str(scope) else "attribute")
        for g, v in as_dict(groups).items():
            if as_dict(v).get("insufficient_data"):
                if kind == "attribute":
                    thin_attr.append(f"{short(scope)} {short(g)} (n={as_dict(v).get('n', '?')})")
                else:
                    thin_inter += 1
    if thin_attr:
        out.append("Too few images for reliable metrics, so left out of the disparities: " + ", ".join(thin_attr) + ".")
    if thin_inter:
        out.append(f"{plural(thin_inter, 'intersectional group')} also had too few images (marked in the heatmaps).")
    return out


def findings(check: dict[str, Any]) -> list[dict[str, Any]]:
    """The page-1 block of the largest significant gaps (or the sentence that none is significant)."""
    gaps, more = _significant(check)
    tested = bool(gaps) and gaps[0]["tested"]
    searched = any(s != "overall" for s in as_dict(check.get("metrics")))
    return [{"title": "Largest significant gaps between groups" if tested else "Largest gaps between groups",
             "lines": [gap_sentence(check, g) for g in gaps],
             "more": f"… and {more} more significant gaps, listed under Check details." if more else "",
             "empty_title": "Gaps between groups" if searched else "",
             "empty": "No gap between groups is statistically significant." if searched else ""}]


def methodology(params: dict[str, Any]) -> list[dict[str, str]]:
    """(title, text) paragraphs for the group metrics check, read from its parameters."""
    out = []
    min_n = params.get("min_group_size")
    conf, n_boot = params.get("confidence"), params.get("n_boot")
    if n_boot == 0:
        out.append({"title": "Intervals", "text": "No intervals were computed (n_boot = 0): every value is a point estimate."})
    else:
        out.append({"title": "Intervals", "text": (
            f"Every rate and every disparity carries a {pct(conf)} interval. A group's rate that is one proportion "
            "(accuracy, error rate, and for a binary model selection rate, TPR, FNR, FPR, TNR and precision; "
            "worst-group accuracy is its group's accuracy) uses the Wilson score interval, which stays inside "
            "[0, 1] and does not collapse to a point at 0 or 1: 300 correct answers out of 300 give [0.987, 1], "
            "not [1, 1]. Gaps, ratios, macro averages and calibration use a percentile bootstrap interval from "
            f"{count_or(n_boot)} resamples of the audited images, drawn as multinomial resamples of each group's "
            "confusion counts and seeded by the run's seed, so a re-run gives the same intervals. An interval "
            "describes the sampling uncertainty of this probe, not how the model would do on other data. The "
            "interval of a gap follows the two groups behind it through every resample, so it can reach below 0 "
            "(a ratio above 1) when the order of the two groups is uncertain. Those two groups were picked as the "
            "extremes, which makes the observed gap lean upward; whether a gap is real is judged by its test, "
            "which accounts for that choice, not by its interval.")})
    if not any(k in params for k in ("n_perm", "correction", "alpha")):
        out.append({"title": "Tests", "text": "This run recorded no significance tests: gaps are reported with their "
                    "intervals only, and no gap is called significant."})
        return out + _rest(params, min_n, None)
    tests = ("Each group's rate is compared with the rest of its scope by a two-sided Fisher exact test "
             "(the p-values next to group values).")
    if params.get("n_perm"):
        tests += (f" Each gap between the highest and the lowest group is tested against {count_or(params['n_perm'])} random "
                  "permutations of the group labels that keep every group's size: the p-value is the share of "
                  "permutations with a gap at least as large (one-sided). Calibration gaps (ECE, Brier) and scopes "
                  "with many groups and cells use fewer permutations, at least 1,000 (recorded per scope in "
                  "results.json as n_perm and n_perm_calibration). A test with B permutations cannot give a p-value "
                  "below its floor 1/(B + 1) (recorded as p_floor): a p-value at the floor is printed as “<” that "
                  "floor, and an adjusted p-value computed from one as “<” the adjusted value, because the true "
                  "p-value is smaller than B permutations can resolve.")
    corr = str(params.get("correction") or "")
    alpha = params.get("alpha")
    if corr:
        tests += (f" Because many comparisons are made, the p-values are adjusted by "
                  f"{_CORRECTIONS.get(corr, short(corr, 40))}; a gap is called significant when its adjusted "
                  f"p-value is below alpha = {fmt_plain(alpha)}.")
    out.append({"title": "Tests and corrections", "text": tests})
    return out + _rest(params, min_n, alpha)


def _rest(params: dict[str, Any], min_n: Any, alpha: Any) -> list[dict[str, str]]:
    paragraphs = {
        "Minimum group size": None if min_n is None else (
            f"Groups (and intersections) with fewer than {fmt_plain(min_n)} images are marked “insufficient data”: "
            "their values are shown but they are left out of every disparity, and a clause that needs them is "
            "inconclusive, never a silent pass."),
        "Power and sample size": None if params.get("power") is None else (
            f"For each gap of a rate that is a single proportion, the power of a two-sided two-proportion z-test at "
            f"level {fmt_plain(alpha)} to detect the observed gap with the current group sizes, and the group size "
            f"needed for {pct(params.get('power'))} power (Fleiss' formula, normal approximation). “About N more "
            "images” is that size minus what the probe has; for a small group it is also at least what reaches the "
            "minimum group size. It assumes the observed rates are the true ones, so treat it as an order of magnitude."),
        "Calibration": None if params.get("ece_bins") is None else (
            f"Expected calibration error (ECE) bins the predicted probability of the predicted class into "
            f"{fmt_plain(params['ece_bins'])} equal-width bins and averages |accuracy − confidence| weighted by bin size; "
            "the Brier score is the mean squared error of the predicted probabilities. Lower is better for both."),
    }
    out = [{"title": title, "text": text} for title, text in paragraphs.items() if text is not None]
    avg = params.get("averaging")
    pos = params.get("positive_class")
    if avg == "binary" or pos is not None:
        out.append({"title": "Positive class", "text": (
            f"Selection rate, TPR, FPR and precision are computed for the positive class “{short(pos, 80)}”: "
            "selection rate is the share of images predicted positive; TPR the share of positive images predicted "
            "positive; FPR the share of negative images predicted positive. Error rate, FNR and TNR are 1 − accuracy, "
            "1 − TPR and 1 − FPR.")})
    elif avg:
        out.append({"title": "Averaging", "text": (
            f"The model has more than two classes: selection rate, TPR, FPR and precision are {short(avg, 40)} "
            "one-vs-rest means over the classes; the per-class values are in the per-class tables and results.json.")})
    order = params.get("max_intersection_order")
    if isinstance(order, int) and order >= 2:
        out.append({"title": "Intersections", "text": (
            f"Intersections of up to {order} attributes are measured as groups of their own (e.g. female & black), "
            "because a model can treat an intersection worse than either attribute alone would suggest. They split "
            "the probe thinly: many have too few images, which the heatmaps mark.")})
    return out
