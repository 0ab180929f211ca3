"""How the reports write numbers, metric values and names: shared by the HTML, PDF, Markdown and JUnit reports.

Every function here accepts whatever a (possibly partial or hand-edited) ``results.json`` holds
and never raises on an unexpected type: a report must render whatever the run managed to record.
Names that come from the data (groups, attributes, clause ids) go through `clean_text` first: control
characters and lone surrogates (invalid in XML, invisible in HTML) become U+FFFD, and `short` caps
their length for display (both from `auditor.plotting`, so figures show names the same way); escaping
for each format is the format's job.
"""
from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup, escape

from auditor.plotting import MAX_NAME, clean_text, short
from auditor.results import MetricEntry

__all__ = [
    "MAX_NAME",
    "NA",
    "as_dict",
    "as_list",
    "clause_scope",
    "clean_text",
    "dig",
    "fmt_num",
    "fmt_p",
    "fmt_p_of",
    "fmt_plain",
    "fmt_prose",
    "is_metric",
    "metric_ci",
    "metric_html",
    "metric_label",
    "metric_text",
    "metric_value",
    "p_at_floor",
    "p_phrase_of",
    "p_shown",
    "sample_remedy",
    "short",
]

NA = "n/a"

# Readable names for the metric stems the checks write; anything else is de-snake-cased.
_LABELS = {
    "accuracy": "Accuracy",
    "error_rate": "Error rate",
    "selection_rate": "Selection rate",
    "tpr": "True positive rate",
    "fnr": "False negative rate",
    "fpr": "False positive rate",
    "tnr": "True negative rate",
    "precision": "Precision",
    "ece": "Expected calibration error",
    "brier": "Brier score",
    "equalized_odds": "Equalized odds",
    "equal_opportunity": "Equal opportunity (TPR)",
    "demographic_parity": "Demographic parity (selection rate)",
    "worst_group_accuracy": "Worst-group accuracy",
    "four_fifths_violations": "Groups below four-fifths of the top selection rate",
    "n": "n",
}
_SUFFIXES = {
    "_max_abs_difference_to_overall": " largest gap to overall",
    "_difference": " difference",
    "_ratio": " ratio",
}
_METRIC_KEYS = {"value", "ci", "groups", "reason", "p_value", "p_adjusted", "significant", "power",
                "excluded_groups", "driven_by", "rule", "p_floor"}


def as_dict(x: Any) -> dict[str, Any]:
    """``x`` if it is a dict, else an empty one."""
    return x if isinstance(x, dict) else {}


def as_list(x: Any) -> list[Any]:
    """``x`` if it is a list or tuple, else an empty list."""
    return list(x) if isinstance(x, (list, tuple)) else []


def dig(x: Any, *keys: str) -> Any:
    """``x[k1][k2]...`` or None as soon as a level is missing or not a dict."""
    for k in keys:
        if not isinstance(x, dict):
            return None
        x = x.get(k)
    return x


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def fmt_num(x: Any, digits: int = 3) -> str:
    """A table number: floats to ``digits`` decimals, ints as they are, None/NaN as "n/a"."""
    if x is None:
        return NA
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return NA
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        text = f"{x:.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"
    return short(x, 400)


def fmt_plain(x: Any) -> str:
    """A configured value (threshold, parameter) as the user wrote it: 0.8 stays "0.8"."""
    if isinstance(x, float) and math.isfinite(x):
        return f"{x:.6g}"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(fmt_plain(v) for v in x) + "]"
    if x is None:
        return NA
    return fmt_num(x)


def fmt_prose(x: Any) -> str:
    """A number in a sentence: two decimals, three when two would hide a non-zero value."""
    if not _is_real(x) or isinstance(x, float) and not math.isfinite(x):
        return fmt_num(x)
    if isinstance(x, int):
        return str(x)
    return fmt_num(x, 2) if abs(x) >= 0.005 or x == 0 else fmt_num(x, 3)


class PBound(float):
    """A p-value that is only an upper bound: a permutation p-value at its floor 1 / (B + 1), or an adjusted
    p-value computed from one. `fmt_p` writes it "<0.0001"; anywhere else it is the number it holds."""

    __slots__ = ()


def _bound(x: float) -> str:
    """``x`` rounded up to two significant digits, in plain decimals: 1/10001 -> "0.0001", 0.0023 -> "0.0023"."""
    if x <= 0:
        return "0"
    e = math.floor(math.log10(x)) - 1
    v = math.ceil(x / 10**e * (1 - 1e-9)) * 10**e
    return f"{v:.{max(0, -e)}f}".rstrip("0").rstrip(".") if e < 0 else f"{v:g}"


def fmt_p(x: Any, floor: Any = None) -> str:
    """A p-value: "<0.001" below a thousandth, else two significant digits ("0.012", "0.34").

    A p-value at or below ``floor`` (a permutation test's smallest possible p-value, 1 / (B + 1)) or a
    `PBound` is only a bound: "<0.0001" for B = 10,000 permutations, never an exact-looking number.
    """
    if not _is_real(x) or not math.isfinite(x):
        return NA
    if isinstance(x, PBound) or (_is_real(floor) and math.isfinite(floor) and x <= floor * (1 + 1e-6)):
        return "<" + _bound(float(x) if isinstance(x, PBound) or not _is_real(floor) else max(float(x), float(floor)))
    if x < 0.001:
        return "<0.001"
    return f"{x:.2g}" if x < 0.1 else f"{x:.2f}"


def p_at_floor(entry: Any) -> bool:
    """Whether an entry's raw permutation p-value sits at its ``p_floor`` (no permutation reached the gap)."""
    if dig(entry, "p_at_floor") is True:  # a clause entry says so (its own p_value names another test)
        return True
    p, floor = dig(entry, "p_value"), dig(entry, "p_floor")
    return (_is_real(p) and _is_real(floor) and math.isfinite(p) and math.isfinite(floor)
            and p <= floor * (1 + 1e-6))


def p_shown(entry: Any, key: str = "p_adjusted") -> float | None:
    """The entry's ``key`` p-value for display: a `PBound` when the raw p-value is at the permutation floor
    (an adjusted p-value is then the floor times the correction's factor: a bound too), else the number."""
    x = dig(entry, key)
    if not _is_real(x) or not math.isfinite(x):
        return None
    return PBound(x) if p_at_floor(entry) else float(x) if isinstance(x, float) else x


def fmt_p_of(entry: Any, key: str = "p_adjusted") -> str:
    """`fmt_p` of an entry's ``p_adjusted`` (or ``key``), written "<x" when its raw p-value is at ``p_floor``."""
    return fmt_p(p_shown(entry, key))


def p_phrase_of(entry: Any, key: str = "p_adjusted") -> str:
    """"p < 0.0001" (a bound: at the permutation floor, or below 0.001) or "p = 0.03", from an entry."""
    text = fmt_p_of(entry, key)
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


def is_metric(x: Any) -> bool:
    """True for a ``{value, ci, ...}`` metric object."""
    return isinstance(x, dict) and "value" in x and set(x) <= _METRIC_KEYS


def metric_value(x: Any) -> float | None:
    """The number inside a metric object (or a bare number); None when absent or not finite."""
    entry = MetricEntry.read(x)
    return None if entry is None or entry.value is None else float(entry.value)


def metric_ci(x: Any) -> tuple[float, float] | None:
    """The ``[lo, hi]`` interval of a metric object, or None when absent or malformed."""
    entry = MetricEntry.read(x)
    return None if entry is None else entry.ci


def _reason(x: Any) -> str | None:
    reason = x.get("reason") if isinstance(x, dict) else None
    return short(reason, 300) if reason not in (None, "") else None


def metric_text(x: Any, with_reason: bool = True, digits: int = 3) -> str:
    """Plain text of a metric: "0.912 [0.880, 0.940]", or "n/a (reason)"."""
    v = x.get("value") if isinstance(x, dict) else x
    if v is None or (isinstance(v, float) and math.isnan(v)):
        reason = _reason(x) if with_reason else None
        return f"{NA} ({reason})" if reason else NA
    if isinstance(v, (dict, list)):
        return short(v, 200)
    text = fmt_num(v, digits)
    ci = metric_ci(x)
    if ci is not None:
        text += f" [{fmt_num(ci[0], digits)}, {fmt_num(ci[1], digits)}]"
    return text


def metric_html(x: Any) -> Markup:
    """HTML of a metric: the value, the interval in a quieter type, or "n/a" with its reason."""
    v = x.get("value") if isinstance(x, dict) else x
    if v is None or (isinstance(v, float) and math.isnan(v)):
        reason = _reason(x)
        out = Markup('<span class="na">n/a</span>')
        if reason:
            out += Markup(' <span class="reason">(%s)</span>') % reason
        return out
    if isinstance(v, (dict, list)):
        return escape(short(v, 200))
    out = Markup('<span class="num">%s</span>') % fmt_num(v)
    ci = metric_ci(x)
    if ci is not None:
        out += Markup(' <span class="ci">[%s, %s]</span>') % (fmt_num(ci[0]), fmt_num(ci[1]))
    return out


def metric_label(name: Any) -> str:
    """A readable name for a metric key: "tpr" -> "True positive rate", "tpr_ratio" -> "True positive rate ratio"."""
    key = short(name, 80)
    if key in _LABELS:
        return _LABELS[key]
    for suffix, words in _SUFFIXES.items():
        stem = key[: -len(suffix)]
        if key.endswith(suffix) and stem in _LABELS:
            return _LABELS[stem] + words
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else key


def clause_scope(c: Any) -> str | None:
    """The scope a policy clause entry reads: its ``scope``, else ``checks.CHECK.metrics.SCOPE.METRIC``'s SCOPE."""
    c = as_dict(c)
    if c.get("scope") not in (None, ""):
        return str(c["scope"])
    parts = str(c.get("metric") or "").split(".")
    return parts[3] if len(parts) > 4 and parts[0] == "checks" else None


SAMPLE_PARAMS = {"attacks": "n_images", "explanations": "n_group_images"}
"""The parameter that sizes each costly check's group sample (the checks that do not see every probe image)."""
_LARGER_BUDGET = {"quick": "standard", "standard": "thorough"}


def _count(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def sample_remedy(results: Any, check: Any, scope: Any, groups: Any = None) -> str:
    """Why groups of ``scope`` were too small for ``check`` and what would fix it, as a sentence ("" when
    nothing is known). Never a smaller minimum group size: that would weaken the gate, not decide it.

    When the probe holds enough images of a group (its group-metrics ``n``) but the check's sample gave it
    fewer, the cause is the sample: a larger budget or ``--param CHECK.PARAM=N`` decides it. When the probe
    itself is short of a group, images of it must be added. ``groups``: the groups to explain (default: every
    group the check marks too small in that scope).
    """
    node = as_dict(dig(results, "checks", check))
    sampled = as_dict(dig(node, "by_group", scope))
    probe = as_dict(dig(results, "checks", "group_metrics", "by_group", scope))
    min_n = _count(dig(node, "params", "min_group_size"))
    if min_n is None:
        return ""
    names = [str(g) for g in as_list(groups)] or [
        str(g) for g, v in sampled.items() if as_dict(v).get("insufficient_data") or as_dict(v).get("insufficient")]
    rows = [(g, _count(dig(sampled, g, "n")), _count(dig(probe, g, "n"))) for g in names]
    rows = [(g, n, total) for g, n, total in rows if n is not None and n < min_n]
    if not rows:
        return ""
    short_in_probe = [(g, total) for g, _, total in rows if total is not None and total < min_n]
    by_sample = [(g, n, total) for g, n, total in rows if total is None or total >= min_n]
    parts = []
    param = SAMPLE_PARAMS.get(str(check))
    if by_sample and param:
        listed = ", ".join(f"{short(g, 60)} {n}" + (f" of {total:,}" if total is not None else "") for g, n, total in by_sample[:4])
        size = _count(dig(node, "params", param))
        smallest = min(n for _, n, _ in by_sample)
        need = -(-(size or 0) * min_n // max(smallest, 1)) if size else None
        budget = _LARGER_BUDGET.get(str(dig(results, "budget")))
        how = f"--budget {budget} or " if budget else ""
        how += f"--param {check}.{param}={need}" if need else f"a larger --param {check}.{param}"
        parts.append(f"the probe has enough images of these groups, but the {check} check's sample"
                     + (f" of {size:,}" if size else "") + f" gave them fewer than {min_n} ({listed}); "
                     f"rerun with a larger sample: {how}")
    elif by_sample:
        parts.append(f"the {check} check's sample gave " + ", ".join(short(g, 60) for g, _, _ in by_sample[:4])
                     + f" fewer than {min_n} images; rerun with a larger sample or budget")
    if short_in_probe:
        parts.append("the probe itself has fewer than " + f"{min_n} images of "
                     + ", ".join(f"{short(g, 60)} (n={total})" for g, total in short_in_probe[:4])
                     + "; add images of them to the probe")
    text = "; ".join(parts)
    return " " + text[:1].upper() + text[1:] + "."
