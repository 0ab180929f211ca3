"""The rows of a comparison: one metric before and after (change, direction, significance), and the
rows of each section (policy clauses, group fairness, robustness, spurious cues, explanations).
"""
from __future__ import annotations

import math
from typing import Any

from auditor.report._format import as_dict, as_list, clean_text, dig, metric_label
from auditor.compare._values import _jsonable, _metric, _real, _text

__all__ = ["higher_is_better", "significance"]

EPS = 1e-9  # changes smaller than this are "unchanged"

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

