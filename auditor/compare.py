"""Before/after comparison of two audits: the original model and its mitigated copy (``auditor mitigate``),
audited with the same probe, seed and policy.

`compare_results` turns the two ``results.json`` dicts into one JSON-serialisable comparison: a header (the
two models, the probe, seed, budget, policy, the mitigation method and its settings), the verdicts, the
accuracy cost as a headline, and rows for every metric either audit measured, grouped by section:

- ``policy``: the policy's clauses, matched by clause id (value, interval and result on each side);
- ``group_metrics``: overall accuracy and every ``{value, ci}`` leaf of each attribute (and intersection) scope;
- ``attacks``: clean/robust accuracy, attack success rate, the black-box attacks (Square, HopSkipJump,
  transfer) and whether the robustness measurement was reliable; per-attribute robust-accuracy gaps;
- ``spurious``: confirmed findings, off-subject findings, the off-subject share of the evidence;
- ``explanations``: faithful methods, methods failing the sanity check, per-attribute differences.

Each row holds ``before`` and ``after`` (``{"value", "ci"}``, value None shown as "n/a" when that side did
not measure it), ``change`` (after - before), ``higher_is_better`` and ``direction`` (improved / worsened /
unchanged; "changed" for a metric with no better direction; "n/a" when a side is missing) and
``significance``.

Significance rule. Two 95% intervals that merely fail to overlap are *not* what is claimed here, and
overlapping intervals do not prove "no change" either. A change is called **significant** only when
both intervals are present, the after value lies outside the before interval, AND the before value lies
outside the after interval. With both intervals present but that test failing it is "not significant";
with a value but an interval missing on either side it is "no interval" (nothing is claimed); with a
value missing it is "n/a". The audits are on the same probe, so the samples are paired and this is a
conservative screen, not a test: the report says "significant" only where each point estimate is
implausible under the other model's interval.

Gradient masking. When the white-box robust accuracy rises (by at least `MASKING_MIN_GAIN`, or
significantly) but a black-box or transfer attack's robust accuracy rises by less than half as much, or
the robustness measurement's own reliability drops (``reliable`` 1 -> 0, or more masking flags), the
comparison carries the flag "gradient masking suspected: the gain is not robustness". This is the
typical signature of defensive distillation: the gradients vanish, white-box attacks stall, and attacks
that do not use the model's gradients succeed as before.

Nothing here raises on odd results (missing keys, wrong types, NaN/inf, hostile strings): a metric that
cannot be read is missing. Strings from the data are kept (control characters replaced) and escaped by
each renderer: HTML through jinja2 autoescape, Markdown with `auditor.report._markdown.md`.

    >>> cmp = compare_results({}, {}, method="distillation")
    >>> cmp["accuracy"]["direction"]
    'n/a'
"""
from __future__ import annotations

import functools
import importlib.resources
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from auditor.report._format import (
    NA,
    as_dict,
    as_list,
    clean_text,
    dig,
    fmt_num,
    fmt_plain,
    metric_label,
    short,
)
from auditor.report._markdown import md
from auditor.atomic import atomic_write_bytes, atomic_write_text

__all__ = [
    "COMPARE_FILES",
    "MASKING_FLAG",
    "MASKING_MIN_GAIN",
    "compare_results",
    "render_comparison_html",
    "render_comparison_markdown",
    "write_comparison",
]

SCHEMA = "auditor.compare/1"
TEMPLATE = "compare.html.j2"
STYLESHEET = "compare.css"
COMPARE_FILES = {"json": "compare.json", "html": "compare.html", "md": "compare.md", "pdf": "compare.pdf"}
MASKING_FLAG = "gradient masking suspected: the gain is not robustness"
NOT_CONFIRMED = "white-box gain not confirmed by a black-box attack"
_OWN_TITLES = {MASKING_FLAG, NOT_CONFIRMED}
MASKING_MIN_GAIN = 0.05  # white-box robust accuracy gain (absolute) that counts as a gain without a significant interval
EPS = 1e-9  # changes smaller than this are "unchanged"
MD_LIMIT = 60_000
MD_MAX_ROWS = 40

SECTION_TITLES = {
    "policy": "Policy clauses",
    "group_metrics": "Group fairness",
    "attacks": "Adversarial robustness",
    "spurious": "Spurious cues",
    "explanations": "Explanations",
}
CHECKS = ("group_metrics", "attacks", "spurious", "explanations")

# Which way is better, by metric key (exact names first, then suffixes).
_HIGHER = {"accuracy", "clean_accuracy", "robust_accuracy", "worst_group_accuracy", "worst_group_robust_accuracy",
           "tpr", "tnr", "precision", "faithful_methods", "reliable", "median_minimal_eps", "insertion_auc",
           "deletion_gain", "insertion_gain", "best_insertion_auc"}
_LOWER = {"error_rate", "fnr", "fpr", "ece", "brier", "attack_success_rate", "success_rate", "n_findings",
          "n_off_subject_findings", "off_subject_share", "four_fifths_violations", "methods_failing_sanity",
          "n_masking_flags", "deletion_auc", "best_deletion_auc", "not_converged"}
_LABELS = {
    "clean_accuracy": "Clean accuracy", "robust_accuracy": "Robust accuracy (white-box)",
    "attack_success_rate": "Attack success rate", "median_minimal_eps": "Median minimal eps",
    "reliable": "Robustness measurement reliable (1 = yes)", "n_masking_flags": "Gradient-masking flags",
    "n_findings": "Confirmed spurious cues", "n_off_subject_findings": "Off-subject cues",
    "off_subject_share": "Evidence share off the subject", "faithful_methods": "Faithful attribution methods",
    "methods_failing_sanity": "Methods failing the sanity check",
    "subject_share_difference": "Subject-share difference", "robust_accuracy_difference": "Robust accuracy difference",
    "robust_accuracy_ratio": "Robust accuracy ratio", "worst_group_robust_accuracy": "Worst-group robust accuracy",
}
_BLACKBOX = {"square": "Square (black-box) robust accuracy", "hopskipjump": "HopSkipJump (black-box) robust accuracy",
             "transfer": "Transfer attack robust accuracy"}
_KEY_GROUP_METRICS = {"accuracy_difference", "selection_rate_ratio", "tpr_ratio", "equalized_odds_difference", "worst_group_accuracy"}
_VERDICTS = {"pass", "fail", "inconclusive"}
_OPS = {"<=", ">=", "<", ">", "==", "!="}


# -- reading odd values ----------------------------------------------------------------------------------


def _real(x: Any) -> float | int | None:
    """A finite number (bools read as 1/0, ints stay ints), else None."""
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x if abs(x) < 2**53 else float(x)
    if isinstance(x, float) and math.isfinite(x):
        return x
    return None


def _ci(x: Any) -> list[float] | None:
    ci = x.get("ci") if isinstance(x, dict) else None
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        lo, hi = _real(ci[0]), _real(ci[1])
        if lo is not None and hi is not None:
            return [float(min(lo, hi)), float(max(lo, hi))]
    return None


def _metric(x: Any) -> dict[str, Any] | None:
    """``{"value", "ci"[, "reason"]}`` of a metric object or bare number; None when the metric is absent."""
    if x is None:
        return None
    if isinstance(x, dict):
        if "value" not in x:
            return None
        out: dict[str, Any] = {"value": _real(x.get("value")), "ci": _ci(x)}
        if out["value"] is None:
            out["ci"] = None
            if isinstance(x.get("reason"), str) and x["reason"]:
                out["reason"] = short(x["reason"], 300)
        return out
    if isinstance(x, (bool, int, float)):
        return {"value": _real(x), "ci": None}
    return {"value": None, "ci": None}


def _text(x: Any, width: int = 2000) -> str | None:
    """A string from the data, cleaned of control characters (None stays None)."""
    if x is None:
        return None
    return short(x, width) if isinstance(x, (str, int, float, bool)) else short(json.dumps(_jsonable(x)), width)


def _jsonable(x: Any, depth: int = 0) -> Any:
    """``x`` as plain JSON: NaN/inf -> None, strings cleaned, keys as strings, unknown objects as text."""
    if depth > 20:
        return short(x, 200)
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, str):
        return clean_text(x)
    if isinstance(x, dict):
        return {clean_text(k): _jsonable(v, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in x]
    if isinstance(x, os.PathLike):
        return clean_text(os.fspath(x))
    return short(x, 200)


# -- one row ---------------------------------------------------------------------------------------------


def higher_is_better(key: Any) -> bool | None:
    """Whether a larger value of metric ``key`` is better: True, False, or None when neither (selection rate)."""
    k = str(key)
    if k in _HIGHER:
        return True
    if k in _LOWER:
        return False
    if k.endswith("_ratio"):
        return True  # min/max ratios: 1 is parity
    if "difference" in k or k.endswith("_gap"):
        return False
    if k.endswith("_accuracy"):
        return True
    return None


def significance(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """"significant" when the after value lies outside the before interval AND the before value lies outside
    the after interval (both intervals present); "not significant" when both intervals are present and that
    fails; "no interval" when a value has no interval; "n/a" when a value is missing. Non-overlapping
    intervals are not used as the criterion."""
    bv, av = dig(before, "value"), dig(after, "value")
    if bv is None or av is None:
        return "n/a"
    bci, aci = dig(before, "ci"), dig(after, "ci")
    if not bci or not aci:
        return "no interval"
    outside_before = not (bci[0] <= av <= bci[1])
    outside_after = not (aci[0] <= bv <= aci[1])
    return "significant" if outside_before and outside_after else "not significant"


def _change(bv: Any, av: Any) -> float | int | None:
    if bv is None or av is None:
        return None
    d = av - bv
    if isinstance(d, float):
        d = round(d, 12)
        if not math.isfinite(d):
            return None
    return d


def _direction(change: Any, hib: bool | None) -> str:
    if change is None:
        return "n/a"
    if abs(change) <= EPS:
        return "unchanged"
    if hib is None:
        return "changed"
    return "improved" if (change > 0) == hib else "worsened"


def _row(section: str, key: str, label: str, before: Any, after: Any, hib: bool | None, *,
         key_metric: bool = False, **extra: Any) -> dict[str, Any] | None:
    """A comparison row, or None when neither side has the metric."""
    b, a = _metric(before), _metric(after)
    if b is None and a is None:
        return None
    present = "both" if b is not None and a is not None else "before" if b is not None else "after"
    b = b or {"value": None, "ci": None}
    a = a or {"value": None, "ci": None}
    change = _change(b["value"], a["value"])
    sig = significance(b, a)
    row = {"section": section, "key": key, "label": label, "present": present, "before": b, "after": a,
           "change": change, "higher_is_better": hib, "direction": _direction(change, hib),
           "significance": sig, "significant": sig == "significant", "key_metric": key_metric}
    row.update(extra)
    return row


def _add(rows: list[dict[str, Any]], row: dict[str, Any] | None) -> None:
    if row is not None:
        rows.append(row)


def _keys(*dicts: Any) -> list[str]:
    """The keys of the dicts in first-seen order (before's order, then after's new keys)."""
    seen: dict[str, None] = {}
    for d in dicts:
        for k in as_dict(d):
            if isinstance(k, str):
                seen.setdefault(k, None)
    return list(seen)


def _label(key: str) -> str:
    return _LABELS.get(key) or metric_label(key)


# -- sections -----------------------------------------------------------------------------------------------


def _clauses(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The policy's clauses by id; a repeated id gets " #2", " #3"..., a clause without an id its position."""
    out: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(as_list(dig(results, "policy", "clauses"))):
        if not isinstance(c, dict):
            continue
        cid = clean_text(c.get("id")) if c.get("id") not in (None, "") else f"clause {i + 1}"
        key, n = cid, 1
        while key in out:
            n += 1
            key = f"{cid} #{n}"
        out[key] = c
    return out


def _op_better(op: Any, fallback: Any) -> bool | None:
    if op in (">=", ">"):
        return True
    if op in ("<=", "<"):
        return False
    return higher_is_better(str(fallback).rsplit(".", 1)[-1]) if isinstance(fallback, str) else None


def _policy_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    cb, ca = _clauses(before), _clauses(after)
    rows: list[dict[str, Any]] = []
    for cid in _keys(cb, ca):
        b, a = cb.get(cid), ca.get(cid)
        ref = b if b is not None else a
        assert ref is not None
        metric = _text(ref.get("metric"), 500)
        row = _row("policy", cid, cid, {"value": b.get("value"), "ci": b.get("ci")} if b is not None else None,
                   {"value": a.get("value"), "ci": a.get("ci")} if a is not None else None,
                   _op_better(ref.get("op"), ref.get("metric")), key_metric=True,
                   metric=metric, kind=_text(ref.get("kind"), 40), op=_text(ref.get("op"), 10),
                   threshold=_jsonable(ref.get("threshold")) if _real(ref.get("threshold")) is not None
                   else _text(ref.get("threshold"), 60),
                   severity=_text(ref.get("severity"), 40), description=_text(ref.get("description"), 500),
                   result_before=_text(b.get("result"), 40) if b is not None else None,
                   result_after=_text(a.get("result"), 40) if a is not None else None)
        _add(rows, row)
    return rows


def _check(results: dict[str, Any], name: str) -> dict[str, Any]:
    return as_dict(dig(results, "checks", name))


def _scope_kind(scope: str, *entries: Any) -> str:
    for e in entries:
        kind = dig(e, "scope", "kind")
        if isinstance(kind, str):
            return "intersection" if kind == "intersection" else "attribute"
    return "intersection" if "+" in scope else "attribute"


def _leaf_rows(section: str, scope: str, b: Any, a: Any, rows: list[dict[str, Any]],
               key_metrics: set[str] | None = None) -> None:
    """A row for each ``{value, ...}`` leaf of the scope ``scope`` on either side."""
    kind = _scope_kind(scope, b, a)
    keys = _keys(b, a)
    for key in keys:
        if key == "scope" or _alias_of(key) in keys:  # demographic_parity_* repeats selection_rate_*, etc.
            continue
        bx, ax = as_dict(b).get(key), as_dict(a).get(key)
        if not (isinstance(bx, dict) and "value" in bx) and not (isinstance(ax, dict) and "value" in ax):
            continue
        _add(rows, _row(section, f"{section}.{scope}.{key}", f"{clean_text(scope)}: {_label(key)}", bx, ax,
                        higher_is_better(key), key_metric=key_metrics is not None and key in key_metrics and
                        kind == "attribute", scope=clean_text(scope), scope_kind=kind, metric=key))


_ALIASES = {"demographic_parity_": "selection_rate_", "equal_opportunity_": "tpr_"}


def _alias_of(key: str) -> str | None:
    """The key an alias repeats ("demographic_parity_ratio" -> "selection_rate_ratio"), else None."""
    for alias, base in _ALIASES.items():
        if key.startswith(alias):
            return base + key[len(alias):]
    return None


def _group_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    mb, ma = as_dict(_check(before, "group_metrics").get("metrics")), as_dict(_check(after, "group_metrics").get("metrics"))
    rows: list[dict[str, Any]] = []
    ob, oa = as_dict(mb.get("overall")), as_dict(ma.get("overall"))
    for key in _keys(ob, oa):
        bx, ax = ob.get(key), oa.get(key)
        if not (isinstance(bx, dict) and "value" in bx) and not (isinstance(ax, dict) and "value" in ax):
            continue
        _add(rows, _row("group_metrics", f"group_metrics.overall.{key}", f"overall: {_label(key)}", bx, ax,
                        higher_is_better(key), key_metric=key == "accuracy", scope="overall", scope_kind="overall",
                        metric=key))
    for scope in _keys(mb, ma):
        if scope == "overall":
            continue
        _leaf_rows("group_metrics", scope, mb.get(scope), ma.get(scope), rows, _KEY_GROUP_METRICS)
    return rows


def _reliable(overall: dict[str, Any]) -> Any:
    r = overall.get("reliable")
    if r is None and isinstance(dig(overall, "masking", "reliable"), bool):
        r = {"value": int(overall["masking"]["reliable"]), "ci": None}
    return r


def _attack_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    mb, ma = as_dict(_check(before, "attacks").get("metrics")), as_dict(_check(after, "attacks").get("metrics"))
    ob, oa = as_dict(mb.get("overall")), as_dict(ma.get("overall"))
    rows: list[dict[str, Any]] = []
    for key in ("clean_accuracy", "robust_accuracy", "attack_success_rate", "median_minimal_eps"):
        _add(rows, _row("attacks", f"attacks.overall.{key}", _label(key), ob.get(key), oa.get(key), higher_is_better(key),
                        key_metric=key in ("robust_accuracy", "attack_success_rate"), scope="overall", metric=key))
    for name, label in _BLACKBOX.items():
        bb, ab = dig(ob, "blackbox", name), dig(oa, "blackbox", name)
        bx = bb.get("robust_accuracy") if isinstance(bb, dict) else None
        ax = ab.get("robust_accuracy") if isinstance(ab, dict) else None
        _add(rows, _row("attacks", f"attacks.overall.blackbox.{name}.robust_accuracy", label, bx, ax, True,
                        key_metric=True, scope="overall", metric="robust_accuracy", attack=name, blackbox=True))
    _add(rows, _row("attacks", "attacks.overall.reliable", _label("reliable"), _reliable(ob), _reliable(oa), True,
                    key_metric=True, scope="overall", metric="reliable"))
    _add(rows, _row("attacks", "attacks.overall.n_masking_flags", _label("n_masking_flags"), ob.get("n_masking_flags"),
                    oa.get("n_masking_flags"), False, scope="overall", metric="n_masking_flags"))
    for scope in _keys(mb, ma):
        if scope != "overall":
            _leaf_rows("attacks", scope, mb.get(scope), ma.get(scope), rows, {"robust_accuracy_difference"})
    return rows


def _n_findings(metrics: dict[str, Any]) -> Any:
    n = dig(metrics, "overall", "n_findings")
    if n is None and isinstance(metrics.get("findings"), list):  # older schema: the findings list only
        return {"value": len(metrics["findings"]), "ci": None}
    return n


def _spurious_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    mb, ma = as_dict(_check(before, "spurious").get("metrics")), as_dict(_check(after, "spurious").get("metrics"))
    ob, oa = as_dict(mb.get("overall")), as_dict(ma.get("overall"))
    rows: list[dict[str, Any]] = []
    _add(rows, _row("spurious", "spurious.overall.n_findings", _label("n_findings"), _n_findings(mb), _n_findings(ma),
                    False, key_metric=True, scope="overall", metric="n_findings"))
    for key in ("n_off_subject_findings", "off_subject_share"):
        _add(rows, _row("spurious", f"spurious.overall.{key}", _label(key), ob.get(key), oa.get(key), False,
                        key_metric=key == "off_subject_share", scope="overall", metric=key))
    return rows


def _explanation_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    mb = as_dict(_check(before, "explanations").get("metrics"))
    ma = as_dict(_check(after, "explanations").get("metrics"))
    ob, oa = as_dict(mb.get("overall")), as_dict(ma.get("overall"))
    rows: list[dict[str, Any]] = []
    for key in ("faithful_methods", "methods_failing_sanity"):
        _add(rows, _row("explanations", f"explanations.overall.{key}", _label(key), ob.get(key), oa.get(key),
                        higher_is_better(key), key_metric=key == "faithful_methods", scope="overall", metric=key))
    for scope in _keys(mb, ma):
        if scope != "overall":
            _leaf_rows("explanations", scope, mb.get(scope), ma.get(scope), rows, {"subject_share_difference"})
    return rows


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
    names = [n for n in _keys(as_dict(before.get("checks")), as_dict(after.get("checks")))]
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


def _masking_flags(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gradient-masking flag (see the module docstring), or a note when black-box evidence is missing."""
    wb = _find(rows, "attacks.overall.robust_accuracy")
    if wb is None or wb["change"] is None:
        return []
    gain = wb["change"]
    if not (gain >= MASKING_MIN_GAIN or (gain > EPS and wb["significant"])):
        return []
    reasons: list[str] = []
    lagging: list[dict[str, Any]] = []
    measured = 0
    for name, label in _BLACKBOX.items():
        r = _find(rows, f"attacks.overall.blackbox.{name}.robust_accuracy")
        if r is None or r["change"] is None:
            continue
        measured += 1
        if r["change"] < gain / 2:
            lagging.append({"attack": name, "before": r["before"]["value"], "after": r["after"]["value"],
                            "change": r["change"]})
            reasons.append(f"{label.split(' robust')[0]} robust accuracy changed by {_signed(r['change'])} while "
                           f"white-box robust accuracy rose by {_signed(gain)}")
    rel = _find(rows, "attacks.overall.reliable")
    rel_dropped = rel is not None and rel["change"] is not None and rel["change"] < -EPS
    if rel_dropped:
        reasons.append("the robustness measurement went from reliable to unreliable (its own gradient-masking checks fired)")
    flags_row = _find(rows, "attacks.overall.n_masking_flags")
    if flags_row is not None and flags_row["change"] is not None and flags_row["change"] > 0:
        reasons.append(f"gradient-masking flags rose from {fmt_num(flags_row['before']['value'])} to "
                       f"{fmt_num(flags_row['after']['value'])}")
        rel_dropped = True
    evidence = {"whitebox_before": wb["before"]["value"], "whitebox_after": wb["after"]["value"], "whitebox_gain": gain,
                "blackbox_lagging": lagging, "reliability_dropped": rel_dropped, "blackbox_measured": measured}
    if lagging or rel_dropped:
        return [{"id": "gradient_masking_suspected", "severity": "warning", "title": MASKING_FLAG,
                 "message": MASKING_FLAG + ": " + "; ".join(reasons) + ". Attacks that do not follow the model's "
                 "gradients succeed about as often as before, so the white-box gain most likely comes from hidden "
                 "gradients (as with defensive distillation), not from a more robust model.", "evidence": evidence}]
    if measured == 0:
        return [{"id": "blackbox_not_measured", "severity": "note", "title": NOT_CONFIRMED,
                 "message": f"White-box robust accuracy rose by {_signed(gain)}, but no black-box or transfer attack was "
                            "run on both models, so gradient masking cannot be ruled out.", "evidence": evidence}]
    return []


def _signed(x: Any) -> str:
    v = _real(x)
    if v is None:
        return NA
    return ("+" if v > 0 else "−" if v < 0 else "±") + fmt_num(abs(v))


def _accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    r = _find(rows, "group_metrics.overall.accuracy")
    source = "group_metrics"
    if r is None or r.get("change") is None:  # no fairness check on both sides: the attacks check's clean accuracy
        clean = _find(rows, "attacks.overall.clean_accuracy")
        if clean is not None and clean.get("change") is not None:
            r, source = clean, "attacks"
    if r is None:
        r = _row("group_metrics", "group_metrics.overall.accuracy", "overall: Accuracy", {"value": None},
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
    for sid, build in (("policy", _policy_rows), ("group_metrics", _group_rows), ("attacks", _attack_rows),
                       ("spurious", _spurious_rows), ("explanations", _explanation_rows)):
        try:
            rows = build(b, a)
        except Exception as exc:  # noqa: BLE001 - a comparison must render whatever the results hold
            rows = []
            note = f"could not compare this section: {exc.__class__.__name__}: {short(exc, 200)}"
        else:
            note = None
        sections.append({"id": sid, "title": SECTION_TITLES[sid], "rows": rows, "note": note})
    all_rows = [r for s in sections for r in s["rows"]]
    cmp = {
        "schema": SCHEMA,
        "header": _header(b, a, method, settings),
        "verdict": {"before": _verdict(b), "after": _verdict(a)},
        "accuracy": _accuracy(all_rows),
        "flags": _masking_flags(all_rows),
        "checks": _checks_status(b, a),
        "summary": _summary(all_rows),
        "sections": sections,
        "significance_rule": ("significant: the after value lies outside the before 95% interval and the before "
                              "value lies outside the after 95% interval (non-overlapping intervals are not the "
                              "criterion); not significant: both intervals present, test fails; no interval: an "
                              "interval is missing"),
    }
    return _jsonable(cmp)


# -- rendering ------------------------------------------------------------------------------------------------


def _metric_text(m: Any) -> str:
    v = _real(dig(m, "value"))
    if v is None:
        return NA
    text = fmt_num(v)
    ci = _ci(m)
    if ci is not None:
        text += f" [{fmt_num(ci[0])}, {fmt_num(ci[1])}]"
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


def _cost_text(acc: dict[str, Any]) -> str:
    """The headline, from the numbers alone (nothing from the data to escape)."""
    bv, av, change = _real(dig(acc, "before", "value")), _real(dig(acc, "after", "value")), _real(acc.get("change"))
    if bv is None or av is None or change is None:
        return "Accuracy cost: n/a (overall accuracy was not measured on both models)"
    sig = acc.get("significance") if acc.get("significance") in ("significant", "not significant", "no interval") else NA
    what = "clean accuracy on the attacked images" if acc.get("source") == "attacks" else "overall accuracy"
    move = f"{what} {fmt_num(bv)} → {fmt_num(av)} ({_signed(change)}, {sig})"
    if change < -EPS:
        return f"Accuracy cost: {fmt_num(-change)} — {move}"
    return f"Accuracy cost: none — {move}"


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
        sid = s.get("id") if s.get("id") in SECTION_TITLES else "other"
        sections.append({"id": sid, "title": SECTION_TITLES.get(sid, short(s.get("title") or "Other", 80)),
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


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("reports_templates", "."), autoescape=True,
                              undefined=jinja2.Undefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


@functools.lru_cache(maxsize=1)
def _stylesheet() -> Markup:
    css = importlib.resources.files("reports_templates").joinpath(STYLESHEET).read_text(encoding="utf-8")
    return Markup(css.replace("</", "<\\/"))


def render_comparison_html(cmp: dict[str, Any]) -> str:
    """The comparison as one self-contained HTML page (inline CSS, no script, nothing fetched, all escaped)."""
    return _environment().get_template(TEMPLATE).render(v=_view(cmp), css=_stylesheet())


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
        title = f["title"] if f["title"] in _OWN_TITLES else md(f["title"], 200)
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
    out = Path(out_dir)
    written: dict[str, Path] = {}
    html = render_comparison_html(cmp) if {"html", "pdf"} & set(wanted) else ""
    for fmt in ("json", "html", "md"):
        if fmt not in wanted:
            continue
        path = out / COMPARE_FILES[fmt]
        if fmt == "json":
            text = json.dumps(_jsonable(cmp), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        elif fmt == "html":
            text = html
        else:
            text = render_comparison_markdown(cmp)
        written[fmt] = atomic_write_text(path, text)
    if "pdf" in wanted:
        from auditor.report import render_pdf

        written["pdf"] = atomic_write_bytes(out / COMPARE_FILES["pdf"], render_pdf(html=html))
    return written
