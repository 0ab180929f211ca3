"""Hand-made results.json dicts in the issue-3 schema (intersections, ten rates, p-values, power) for
the report tests. Numbers are plausible and self-consistent, not the output of a real run: each group
has an accuracy, selection rate, TPR and FPR; the other rates follow from them; intervals are normal
approximations; p-values are made up but ordered like the gaps. At the end: helpers that cut a rendered
report into the pieces the tests look at.
"""
from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from typing import Any

from auditor.report import render_html, render_junit, render_markdown

RATES = ("accuracy", "error_rate", "selection_rate", "tpr", "fnr", "fpr", "tnr", "precision", "ece", "brier")
TWIN = {"error_rate": "accuracy", "fnr": "tpr", "tnr": "fpr"}
MIN_N = 30
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="

LONG_NAME = "L" * 4990 + "-long-name"
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "$\\frac{1}{0}$",
    "]]>",
    "&amp;",
    "a|b [x](http://evil.example/)",
    "ctl\x00\x07\x1b[31m\x7fz",
    LONG_NAME,
]

# Each group's (accuracy, selection rate, TPR, FPR) before mixing into intersections.
ATTRS: dict[str, dict[str, tuple[int, float, float, float, float]]] = {
    "gender": {"female": (600, 0.86, 0.48, 0.84, 0.12), "male": (600, 0.88, 0.5, 0.87, 0.11)},
    "age": {"0-19": (380, 0.88, 0.5, 0.87, 0.1), "20-39": (420, 0.9, 0.5, 0.9, 0.1),
            "40-59": (376, 0.86, 0.49, 0.85, 0.13), "60+": (24, 0.79, 0.45, 0.75, 0.2)},
    "race": {"asian": (300, 0.99, 0.5, 0.99, 0.01), "black": (300, 0.59, 0.42, 0.51, 0.33),
             "indian": (300, 0.99, 0.5, 0.99, 0.01), "white": (300, 1.0, 0.5, 1.0, 0.0)},
}


def _m(value: float | None, ci: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    return {"value": value, "ci": ci, **extra}


def _ci(v: float, n: int) -> list[float]:
    half = 1.96 * math.sqrt(max(v * (1 - v), 0.0025) / max(n, 1))
    return [round(max(0.0, v - half), 6), round(min(1.0, v + half), 6)]


def _p(gap: float, n: int) -> float:
    """A made-up p-value that falls as the gap and the sample grow."""
    return round(min(1.0, math.exp(-gap * gap * n * 4)), 6)


def _rates(acc: float, sel: float, tpr: float, fpr: float) -> dict[str, float]:
    prec = tpr * 0.5 / sel if sel > 0 else 0.0
    return {"accuracy": acc, "error_rate": 1 - acc, "selection_rate": sel, "tpr": tpr, "fnr": 1 - tpr,
            "fpr": fpr, "tnr": 1 - fpr, "precision": min(1.0, prec), "ece": round(0.02 + (1 - acc) * 0.2, 6),
            "brier": round(0.04 + (1 - acc) * 0.3, 6)}


def _group(n: int, rates: dict[str, float], overall: dict[str, float], members: dict[str, str] | None) -> dict[str, Any]:
    thin = n < MIN_N
    g: dict[str, Any] = {"n": n, "insufficient_data": thin, "n_needed": (MIN_N - n if thin else None)}
    if members:
        g["members"] = members
    for r in RATES:
        v = round(rates[r], 6)
        p = _p(abs(v - overall[r]), n)
        adj = min(1.0, round(p * 4, 6))
        g[r] = _m(v, _ci(v, n), p_value=p, p_adjusted=adj, significant=adj < 0.05)
    g["vs_overall"] = {r: {"difference": round(rates[r] - overall[r], 6),
                           "ratio": round(rates[r] / overall[r], 6) if overall[r] else None} for r in RATES}
    return g


def _disparities(kind: str, attrs: list[str], groups: dict[str, Any], overall: dict[str, float]) -> dict[str, Any]:
    ok = {g: v for g, v in groups.items() if not v["insufficient_data"]}
    excluded = [g for g, v in groups.items() if v["insufficient_data"]]
    out: dict[str, Any] = {"scope": {"kind": kind, "attributes": attrs}, "n_groups": len(groups), "n_eligible": len(ok)}
    for r in RATES:
        if len(ok) < 2:
            reason = f"fewer than two groups with at least {MIN_N} samples and a defined {r}"
            for k in ("difference", "ratio", "max_abs_difference_to_overall"):
                out[f"{r}_{k}"] = _m(None, None, groups=[], reason=reason, excluded_groups=excluded)
            continue
        lo = min(ok, key=lambda g: ok[g][r]["value"])
        hi = max(ok, key=lambda g: ok[g][r]["value"])
        lv, hv = ok[lo][r]["value"], ok[hi][r]["value"]
        gap = round(hv - lv, 6)
        n_small = min(ok[lo]["n"], ok[hi]["n"])
        p = _p(gap, n_small)
        adj = min(1.0, round(p * 10, 6))
        need = None if gap == 0 else max(n_small, math.ceil(8 * 0.25 / max(gap * gap, 1e-4)))
        power = {"achieved": round(min(1.0, 0.05 + gap * gap * n_small), 6), "n_per_group_needed": need,
                 "n_more": None if need is None else max(0, need - ok[lo]["n"]) + max(0, need - ok[hi]["n"])}
        out[f"{r}_difference"] = _m(gap, [round(max(0, gap - 0.05), 6), round(gap + 0.05, 6)], groups=[lo, hi],
                                    excluded_groups=excluded, p_value=p, p_adjusted=adj, significant=adj < 0.05, power=power)
        ratio = round(lv / hv, 6) if hv else None
        out[f"{r}_ratio"] = _m(ratio, None if ratio is None else [round(max(0, ratio - 0.05), 6), round(min(1, ratio + 0.05), 6)],
                               groups=[lo, hi], excluded_groups=excluded)
        far = max(ok, key=lambda g: abs(ok[g][r]["value"] - overall[r]))
        d = round(abs(ok[far][r]["value"] - overall[r]), 6)
        out[f"{r}_max_abs_difference_to_overall"] = _m(d, [max(0, round(d - 0.04, 6)), round(d + 0.04, 6)], groups=[far],
                                                       excluded_groups=excluded)
    for alias, base in (("demographic_parity", "selection_rate"), ("equal_opportunity", "tpr")):
        out[f"{alias}_difference"] = dict(out[f"{base}_difference"])
        out[f"{alias}_ratio"] = dict(out[f"{base}_ratio"])
    t, f = out["tpr_difference"], out["fpr_difference"]
    if t["value"] is None:
        out["equalized_odds_difference"] = _m(None, None, groups=[], reason="TPR or FPR gap undefined")
        out["equalized_odds_ratio"] = _m(None, None, groups=[], reason="TPR or FPR gap undefined")
        out["worst_group_accuracy"] = _m(None, None, groups=[], reason=f"no group has at least {MIN_N} samples")
        out["four_fifths_violations"] = _m(None, None, groups=[], reason="no group is large enough")
        return out
    chosen = t if t["value"] >= f["value"] else f
    out["equalized_odds_difference"] = {**chosen, "driven_by": "tpr" if chosen is t else "fpr"}
    out["equalized_odds_ratio"] = dict(out["tpr_ratio"])
    worst = min(ok, key=lambda g: ok[g]["accuracy"]["value"])
    out["worst_group_accuracy"] = _m(ok[worst]["accuracy"]["value"], ok[worst]["accuracy"]["ci"], groups=[worst])
    top = max(v["selection_rate"]["value"] for v in ok.values())
    low = [g for g, v in ok.items() if v["selection_rate"]["value"] < 0.8 * top]
    out["four_fifths_violations"] = {"value": len(low), "ci": None, "groups": low, "excluded_groups": excluded,
                                     "rule": f"selection rate below 0.8 x the highest group's ({top})"}
    return out


def _mix(parts: list[tuple[int, float, float, float, float]], total: int) -> tuple[int, float, float, float, float]:
    n = total
    for p in parts:
        n = n * p[0] / total
    acc = min(p[1] for p in parts) - 0.01 * (len(parts) - 1)
    return (round(n), acc, sum(p[2] for p in parts) / len(parts), min(p[3] for p in parts), max(p[4] for p in parts))


def group_metrics(attrs: dict[str, dict[str, tuple[int, float, float, float, float]]] | None = None,
                  max_order: int = 3) -> dict[str, Any]:
    """A checks.group_metrics entry in the new schema for ``attrs`` (name -> group -> n, acc, sel, tpr, fpr)."""
    attrs = ATTRS if attrs is None else attrs
    total = sum(v[0] for v in next(iter(attrs.values())).values())
    overall = _rates(0.87, 0.49, 0.86, 0.12)
    metrics: dict[str, Any] = {"overall": {"n": total, **{r: _m(round(v, 6), _ci(v, total)) for r, v in overall.items()}}}
    by_group: dict[str, Any] = {}
    names = list(attrs)
    for order in range(1, min(max_order, len(names)) + 1):
        for combo in itertools.combinations(names, order):
            scope = "+".join(combo)
            groups = {}
            for key in itertools.product(*(list(attrs[a]) for a in combo)):
                n, acc, sel, tpr, fpr = _mix([attrs[a][g] for a, g in zip(combo, key)], total)
                members = dict(zip(combo, key)) if order > 1 else None
                groups[" & ".join(key)] = _group(n, _rates(acc, sel, tpr, fpr), overall, members)
            by_group[scope] = groups
            metrics[scope] = _disparities("attribute" if order == 1 else "intersection", list(combo), groups, overall)
    params = {"min_group_size": MIN_N, "n_boot": 1000, "confidence": 0.95, "n_perm": 10000, "correction": "holm",
              "alpha": 0.05, "power": 0.8, "ece_bins": 15, "max_intersection_order": max_order,
              "positive_class": "smiling", "averaging": "binary"}
    return {"status": "ok", "params": params, "metrics": metrics, "by_group": by_group, "figures": {},
            "seconds": 0.5, "error": None}


def _clause(cid: str, path: str, op: str, thr: float, value: float | None, ci: list[float] | None, result: str,
            severity: str = "blocker", **extra: Any) -> dict[str, Any]:
    c = {"id": cid, "kind": "threshold", "description": f"Requirement {cid}.", "metric": path,
         "scope": path.split(".")[3], "op": op, "threshold": thr, "require": "point", "severity": severity,
         "maps_to": ["EU AI Act Art. 10(2)(f)"], "value": value, "ci": ci, "result": result, "reason": None}
    c.update(extra)
    return c


_ENVIRONMENT = {"python": "3.11.7", "platform": "Linux-x86_64", "torch": "2.14.1"}
_TWO_CLASSES = ("not_smiling", "smiling")


def _model(name: str = "shortcut_cnn", classes: tuple[str, ...] = _TWO_CLASSES, positive_class: str | None = "smiling",
           **extra: Any) -> dict[str, Any]:
    """The results' ``model`` part of ``sample_models/<name>``; ``extra`` (e.g. ``details``) goes last."""
    m: dict[str, Any] = {"source": f"sample_models/{name}/model.yaml", "name": name, "form": "spec", "sha256": "ab12" * 16,
                         "classes": list(classes)}
    if positive_class is not None:
        m["positive_class"] = positive_class
    return {**m, "input_size": [64, 64], **extra}


def _probe(attributes: dict[str, dict[str, int]], *, target: str | None, classes: tuple[str, ...] = _TWO_CLASSES,
           skipped: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The results' ``probe`` part of the synthetic faces: as many images as the first attribute's groups hold."""
    skipped = skipped or []
    return {"source": "synth:faces", "format": "synth", "sha256": "cd34" * 16,
            "n": sum(next(iter(attributes.values())).values()), "n_skipped": len(skipped), "skipped": skipped,
            "target": target, "classes": list(classes), "attributes": attributes}


def _run(checks: dict[str, Any], policy: dict[str, Any], *, model: dict[str, Any], probe: dict[str, Any], options: str,
         cost: dict[str, Any], environment: dict[str, str]) -> dict[str, Any]:
    """A whole results.json around ``checks``: the command audits ``model`` on the probe with ``options``."""
    return {
        "schema_version": 1, "auditor_version": "0.1.0", "created": "2026-11-23T17:00:00Z",
        "command": f"auditor audit {model['source']} --probe {probe['source']}{options}",
        "seed": 0, "budget": "standard", "device": "cpu",
        "model": model, "probe": probe, "checks": checks, "policy": policy, "cost": cost, "environment": environment,
    }


def _one_check_run(check: str, entry: dict[str, Any], clauses: list[dict[str, Any]], *, policy: str, verdict: str,
                   forward_passes: int, backward_passes: int, environment: dict[str, str] | None = None,
                   model: dict[str, Any] | None = None, probe: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run of the ``check`` check alone (its entry ``entry``, whose seconds come one second after the
    predictions) under version 1 of ``policy`` with ``clauses``; by default on the two-class smile model and a
    probe of 1200 images in gender and age groups."""
    probe = probe or _probe({"gender": {"female": 600, "male": 600}, "age": {"0-19": 560, "20-39": 470, "60+": 170}},
                            target="smiling")
    seconds = entry["seconds"]
    return _run({check: entry},
                {"name": policy, "version": "1", "verdict": verdict, "clauses": clauses, "baseline": None,
                 "regressions_skipped": [], "warnings": []},
                model=model or _model(), probe=probe, options=f" --checks {check} --seed 0",
                cost={"forward_passes": forward_passes, "backward_passes": backward_passes,
                      "seconds": {"predict": 1.0, check: seconds}, "seconds_total": round(1.0 + seconds, 6)},
                environment={**_ENVIRONMENT, **(environment or {})})


def results_v2(*, baseline: bool = True) -> dict[str, Any]:
    """A complete failing run: three attributes and their intersections, an errored check, a regression."""
    gm = group_metrics()
    race = gm["metrics"]["race"]
    age = gm["metrics"]["age"]
    p = "checks.group_metrics.metrics."
    clauses = [
        _clause("accuracy-gap[race]", p + "race.accuracy_difference", "<=", 0.1, race["accuracy_difference"]["value"],
                race["accuracy_difference"]["ci"], "fail", p_adjusted=race["accuracy_difference"]["p_adjusted"],
                significant=True),
        _clause("accuracy-gap[gender]", p + "gender.accuracy_difference", "<=", 0.1, 0.02, [0.0, 0.05], "pass",
                require="interval", p_adjusted=0.6, significant=False),
        _clause("four-fifths[race]", p + "race.selection_rate_ratio", ">=", 0.8, race["selection_rate_ratio"]["value"],
                race["selection_rate_ratio"]["ci"], "pass"),
        _clause("tpr-gap[gender+age+race]", p + "gender+age+race.tpr_difference", "<=", 0.1, None, None,
                "insufficient_data", reason="fewer than two groups with at least 30 samples and a defined tpr"),
        _clause("eo[age]", p + "age.equalized_odds_difference", "<=", 0.1, age["equalized_odds_difference"]["value"],
                age["equalized_odds_difference"]["ci"], "pass", severity="warning"),
        _clause("overall-accuracy", p + "overall.accuracy", ">=", 0.9, 0.87, [0.85, 0.89], "fail", severity="warning"),
    ]
    policy: dict[str, Any] = {"name": "default", "version": "2", "source": "auditor/policy/shipped/default.yaml",
                              "description": "Baseline fairness gate.", "verdict": "fail", "regressed": baseline,
                              "clauses": clauses, "baseline": None, "regressions_skipped": [], "warnings": []}
    if baseline:
        clauses.append({"id": "no-accuracy-drop[race]", "kind": "regression", "description": "Accuracy must not drop.",
                        "metric": p + "race.worst_group_accuracy", "scope": "race", "direction": "higher_is_better",
                        "max_drop": 0.02, "significance": True, "op": ">=", "threshold": 0.7, "severity": "blocker",
                        "maps_to": [], "value": 0.59, "ci": [0.54, 0.64], "baseline_value": 0.72,
                        "baseline_ci": [0.67, 0.77], "delta": -0.13, "p_value": 0.0001, "result": "fail",
                        "reason": "dropped by 0.13, more than the allowed 0.02, and the excess is significant"})
        policy["baseline"] = {"path": "old/results.json", "model_sha256": "ef56" * 16, "probe_sha256": "cd34" * 16,
                              "same_probe": True, "created": "2026-10-01T09:00:00Z"}
        policy["warnings"] = ["baseline was audited with auditor 0.0.9"]
    checks = {
        "group_metrics": gm,
        "explanations": {"status": "error", "error": "ValueError: saliency needs gradients", "params": {},
                         "metrics": {}, "by_group": {}, "figures": {}, "seconds": 0.1},
        "spurious": {"status": "ok", "params": {"grid": 4}, "seconds": 1.5, "error": None,
                     "metrics": {"findings": [{"cue": "corner patch", "box": [0, 0, 8, 8]}]},
                     "by_group": {}, "figures": {"heatmap": PIXEL, "remote": "https://example.com/x.png"}},
    }
    return _run(checks, policy, model=_model(details={"arch": "small_cnn"}),
                probe=_probe({a: {g: v[0] for g, v in groups.items()} for a, groups in ATTRS.items()}, target=None,
                             skipped=[{"index": 5, "path": "img/5.png", "error": "cannot identify image file"}]),
                options=" --seed 0",
                cost={"forward_passes": 1200, "backward_passes": 0, "seconds": {"predict": 1.2, "group_metrics": 0.5},
                      "seconds_total": 2.0},
                environment={**_ENVIRONMENT, "fairlearn": "0.15.0"})


def hostile_results() -> dict[str, Any]:
    """A run whose every name from the data is hostile: groups, attribute, model, clause id, error text."""
    race = {name: (40, 0.9 - 0.01 * i, 0.5, 0.9, 0.1) for i, name in enumerate(HOSTILE)}
    attrs = {"gender": ATTRS["gender"], "<b>race</b>": race}
    gm = group_metrics(attrs, max_order=2)
    r = results_v2(baseline=False)
    r["checks"]["group_metrics"] = gm
    r["model"]["name"] = HOSTILE[0] + " " + HOSTILE[5]
    r["probe"]["attributes"] = {a: {g: v[0] for g, v in groups.items()} for a, groups in attrs.items()}
    r["checks"]["explanations"]["error"] = "boom " + HOSTILE[1] + " " + HOSTILE[6]
    evil_clause = _clause(HOSTILE[0] + "]]>", "checks.group_metrics.metrics.<b>race</b>.accuracy_difference", "<=", 0.01,
                          0.08, [0.01, 0.1], "fail", description=HOSTILE[5] + " @everyone #1 " + HOSTILE[4])
    evil_clause["maps_to"] = [HOSTILE[1], HOSTILE[3]]
    r["policy"]["clauses"] = [evil_clause]
    return r


def _v1_group(n: int, acc: float, sel: float, tpr: float, fpr: float, thin: bool = False) -> dict[str, Any]:
    return {"n": n, "insufficient_data": thin, "accuracy": _m(acc), "selection_rate": _m(sel), "tpr": _m(tpr), "fpr": _m(fpr)}


def results_v1() -> dict[str, Any]:
    """A complete run in the first schema (no intersections or p-values): a failing policy, three attributes,
    an errored check, an unknown check."""
    race_disp = {
        "accuracy_difference": _m(0.23, groups=["black", "white"]),
        "accuracy_ratio": _m(0.758, groups=["black", "white"]),
        "selection_rate_difference": _m(0.19, groups=["black", "white"]),
        "selection_rate_ratio": _m(0.62, groups=["black", "white"]),
        "tpr_difference": _m(0.1, groups=["black", "white"]),
        "tpr_ratio": _m(0.88, groups=["black", "white"]),
        "fpr_difference": _m(0.05, groups=["white", "black"]),
        "fpr_ratio": _m(0.5, groups=["white", "black"]),
        "equalized_odds_difference": _m(0.1, groups=["black", "white"]),
        "worst_group_accuracy": _m(0.72, groups=["black"]),
    }
    reason = "fewer than two groups with at least 30 samples and a defined tpr"
    checks = {
        "group_metrics": {
            "status": "ok", "params": {"min_group_size": 30, "positive_class": "smiling"}, "seconds": 0.4,
            "error": None, "figures": {},
            "metrics": {
                "overall": {"n": 1198, "accuracy": _m(0.912, [0.88, 0.94]), "selection_rate": _m(0.5),
                            "tpr": _m(0.9), "fpr": _m(0.08)},
                "race": race_disp,
                "gender": {"accuracy_difference": _m(0.02, groups=["female", "male"]),
                           "selection_rate_ratio": _m(0.97, groups=["female", "male"])},
                "age": {"accuracy_difference": _m(None, groups=[], reason=reason),
                        "tpr_difference": _m(None, groups=[], reason=reason)},
            },
            "by_group": {
                "race": {"white": _v1_group(300, 0.95, 0.6, 0.97, 0.05), "black": _v1_group(300, 0.72, 0.41, 0.87, 0.1),
                         HOSTILE[0]: _v1_group(40, 0.9, 0.5, 0.9, 0.1)},
                "gender": {"female": _v1_group(600, 0.91, 0.5, 0.9, 0.08), "male": _v1_group(598, 0.93, 0.5, 0.9, 0.08)},
                "age": {"0-19": _v1_group(300, 0.9, 0.5, 0.9, 0.1), "60+": _v1_group(12, 0.5, 0.5, 0.5, 0.5, thin=True)},
            },
        },
        "explanations": {"status": "error", "error": "ValueError: saliency needs gradients", "params": {},
                         "metrics": {}, "by_group": {}, "figures": {}, "seconds": 0.1},
        "spurious": {"status": "ok", "params": {"grid": 4}, "seconds": 1.5, "error": None,
                     "metrics": {"evidence_maps": {"smiling": [[0.1, 0.2], [0.3, 0.4]]},
                                 "findings": [{"cue": "corner patch", "box": [0, 0, 8, 8], "off_subject": _m(0.7, [0.6, 0.8])}]},
                     "by_group": {}, "figures": {"heatmap": PIXEL, "remote": "https://example.com/x.png"}},
    }
    policy = {"name": "default", "version": "1", "verdict": "fail", "clauses": [
        {"id": "dp-ratio", "description": "Selection rate ratio between groups (four-fifths rule)",
         "metric": "checks.group_metrics.metrics.race.selection_rate_ratio", "op": ">=", "threshold": 0.8,
         "value": 0.62, "ci": None, "result": "fail", "severity": "blocker", "maps_to": ["EU AI Act Art. 10(2)(f)"]},
        {"id": "acc-gap", "description": "Accuracy gap between groups",
         "metric": "checks.group_metrics.metrics.gender.accuracy_difference", "op": "<=", "threshold": 0.05,
         "value": 0.02, "ci": None, "result": "pass", "severity": "warning", "maps_to": []},
        {"id": "age-tpr", "description": "TPR gap across ages",
         "metric": "checks.group_metrics.metrics.age.tpr_difference", "op": "<=", "threshold": 0.1,
         "value": None, "ci": None, "result": "insufficient_data", "severity": "warning", "maps_to": ["NIST AI RMF MEASURE 2.11"]},
    ]}
    probe = _probe({"gender": {"female": 600, "male": 600}, "age": {"0-19": 300, "60+": 12},
                    "race": {"white": 300, "black": 300, HOSTILE[0]: 40}}, target="smiling",
                   skipped=[{"index": 5, "path": "img/5.png", "error": "cannot identify image file"},
                            {"index": 9, "path": "img/9.png", "error": "truncated file"}])
    return _run(checks, policy, model=_model(details={"arch": "ShortcutCNN", "mean": [0.5, 0.5, 0.5]}), probe=probe,
                options="",
                cost={"forward_passes": 1200, "backward_passes": 0, "seconds": {"predict": 1.2, "group_metrics": 0.4},
                      "seconds_total": 2.0},
                environment={"python": "3.11.7", "torch": "2.14.1", "torchvision": "0.29.1", "fairlearn": "0.15.0",
                             "platform": "Linux-x86_64"})


# -- the spurious check (issue 4) ------------------------------------------------------------------------

SP_CLASSES = ("neutral", "smiling", "surprised")  # no audited image is predicted "surprised"
SP_FINDING_BOX = [48, 0, 64, 16]  # the top-right cell of a 4 x 4 grid on 64 x 64 inputs: a corner sticker


def _sp_grid(hot: tuple[int, int], share: float, g: int = 4) -> list[list[float]]:
    """A g x g evidence map summing to 1 with ``share`` in cell ``hot`` (row, column), the rest spread evenly."""
    rest = round((1 - share) / (g * g - 1), 6)
    return [[share if (r, c) == hot else rest for c in range(g)] for r in range(g)]


def _sp_region(cls: str, box: list[int], share: float, consistency: float, off: float | None,
               flips: tuple[int, int, int, int], n: tuple[int, int], p: float, confirmed: bool, verdict: str,
               by_group: dict[str, Any], figure: str | None) -> dict[str, Any]:
    """A tested region; ``flips``: removal, control removal, transplant, control transplant flip counts of ``n``."""
    control = [0, 48, 16, 64] if box != [0, 48, 16, 64] else [48, 0, 64, 16]
    return {"class": cls, "box": box, "input_size": [64, 64], "evidence_share": share, "consistency": consistency,
            "off_subject": off, "removal_flip_rate": round(flips[0] / n[0], 6), "transplant_flip_rate": round(flips[2] / n[1], 6),
            "n_removal": n[0], "n_transplant": n[1], "control_box": control,
            "control_removal_flip_rate": round(flips[1] / n[0], 6), "control_transplant_flip_rate": round(flips[3] / n[1], 6),
            "p_value": p, "confirmed": confirmed, "on_subject": off is not None and off < 0.5, "verdict": verdict,
            "by_group": by_group, "figure": figure}


def spurious() -> dict[str, Any]:
    """A checks.spurious entry in the issue-4 schema: 128 images (64 predicted neutral, 64 smiling, none
    surprised), one confirmed off-subject cue for "smiling" (a top-right patch: removing it flips 31 of the 50
    smiling images whose evidence lies there, transplanting it flips 29 of the 64 neutral ones) and one
    unconfirmed candidate for "neutral"."""
    finding = _sp_region(
        "smiling", SP_FINDING_BOX, 0.34, 0.86, 0.94, (31, 2, 29, 2), (50, 64), 1.4e-17, True,
        "confirmed: removing the region flips 62% of these predictions (control 4%), transplanting it 45% (control 3%)",
        {"gender": {"female": {"removal_flip_rate": round(16 / 26, 6), "n_removal": 26,
                               "transplant_flip_rate": 0.46875, "n_transplant": 32},
                    "male": {"removal_flip_rate": 0.625, "n_removal": 24, "transplant_flip_rate": 0.4375, "n_transplant": 32}}},
        "finding_1_counterfactual")
    candidate = _sp_region(
        "neutral", [0, 48, 16, 64], 0.21, 0.55, 0.8, (2, 1, 3, 2), (36, 64), 0.5, False,
        "not confirmed: removing or transplanting it flipped no more predictions than the control region",
        {"gender": {"female": {"removal_flip_rate": 0.05, "n_removal": 20, "transplant_flip_rate": 0.0625, "n_transplant": 32},
                    "male": {"removal_flip_rate": 0.0625, "n_removal": 16, "transplant_flip_rate": 0.03125, "n_transplant": 32}}},
        None)
    maps = {"neutral": _sp_grid((3, 0), 0.21), "smiling": _sp_grid((0, 3), 0.34), "surprised": None}

    def group(n: int, share: float | None, ci: list[float] | None, reason: str | None = None) -> dict[str, Any]:
        return {"n": n, "evidence_map": _sp_grid((0, 3), 0.3) if n else None,
                "off_subject_share": {"value": share, "ci": ci, "reason": reason}}

    return {
        "status": "ok", "seconds": 42.5, "error": None,
        "params": {"n_images": 128, "steps": 150, "grid": 4, "operator": "fill", "game": "deletion", "lr": 0.1,
                   "candidate_factor": 3, "candidate_min_consistency": 0.5, "candidates_per_class": 2,
                   "min_flip_rate": 0.2, "min_margin": 0.15, "alpha": 0.05, "input_size": [64, 64]},
        "metrics": {
            "overall": {
                "n_findings": {"value": 1, "ci": None},
                "n_off_subject_findings": {"value": 1, "ci": None, "reason": None},
                "off_subject_share": {"value": 0.57, "ci": [0.53, 0.61], "reason": None},
                "max_consistency": {"value": 0.86, "ci": None},
                "deletion_score": {"value": 0.183, "ci": [0.165, 0.201], "random_baseline": 0.412},
                "not_converged": {"value": 0.046875, "n": 6, "of": 128},
                "n_images": {"value": 128, "ci": None},
            },
            "evidence_maps": maps,
            "not_predicted": ["surprised"],
            "findings": [finding],
            "candidates": [dict(finding), candidate],
            "summary": "1 confirmed cue: the model relies on a top-right region to predict smiling.",
        },
        "by_group": {"gender": {"female": group(64, 0.55, [0.5, 0.6]), "male": group(64, 0.59, [0.54, 0.64])},
                     "age": {"0-19": group(60, 0.56, [0.5, 0.62]), "60+": group(2, None, None, "too few images")}},
        "figures": {"evidence_maps": {"data_uri": PIXEL, "caption": "Mean evidence per predicted class"},
                    "examples": {"data_uri": PIXEL, "caption": "The strongest examples with their masks"},
                    "finding_1_counterfactual": {"data_uri": PIXEL, "caption": "Finding 1: before and after removing the region"}},
    }


def results_spurious() -> dict[str, Any]:
    """A run of the spurious check alone on a three-class model, failing a policy clause on its findings."""
    sp = spurious()
    clause = _clause("no-spurious-cue", "checks.spurious.metrics.overall.n_findings", "<=", 0, 1, None, "fail")
    return _one_check_run("spurious", sp, [clause], policy="shortcuts", verdict="fail", forward_passes=40_000,
                          backward_passes=19_200, model=_model("sticker_cnn", SP_CLASSES, positive_class=None),
                          probe=_probe({"gender": {"female": 300, "male": 300}, "age": {"0-19": 580, "60+": 20}},
                                       target="expression", classes=SP_CLASSES))


# -- the attacks check (issue 5) ---------------------------------------------------------------------------

AT_N, AT_CLEAN = 128, 116  # images attacked, of which classified correctly
AT_REF = 4 / 255
AT_EPS = {"linf": [1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255], "l2": [0.1, 0.25, 0.5, 1.0]}
# Images still classified correctly at each eps of each norm, per gender group (female, male: 64 images each).
AT_CORRECT = {
    "female": {"linf": {"fgsm": [49, 41, 28, 15, 6], "pgd": [45, 34, 16, 4, 0]},
               "l2": {"fgsm": [53, 46, 33, 17], "pgd": [50, 42, 22, 4]}},
    "male": {"linf": {"fgsm": [52, 44, 31, 17, 7], "pgd": [51, 40, 24, 6, 2]},
             "l2": {"fgsm": [55, 49, 37, 21], "pgd": [54, 46, 30, 8]}},
}
# (n, correct at the reference eps) of the age groups and the gender x age intersections; they add up.
AT_AGE = {"0-19": (60, 21), "20-39": (50, 16), "60+": (18, 3)}
AT_CROSS = {("female", "0-19"): (30, 9), ("female", "20-39"): (25, 6), ("female", "60+"): (9, 1),
            ("male", "0-19"): (30, 12), ("male", "20-39"): (25, 10), ("male", "60+"): (9, 2)}
AT_MIN_N = 20
ART = {"library": "adversarial-robustness-toolbox", "version": "1.20.1"}


def _share(k: int, n: int) -> dict[str, Any]:
    v = round(k / n, 6)
    return _m(v, _ci(v, n))


def _at_curves(counts: dict[str, dict[str, list[int]]], n: int) -> dict[str, Any]:
    return {norm: {a: [round(k / n, 6) for k in ks] for a, ks in c.items()} for norm, c in counts.items()}


def _at_scaled(k_ref: int, n: int) -> dict[str, Any]:
    """A group's curves: the all-images counts scaled so that the reference eps gives ``k_ref`` of ``n``."""
    total = {norm: {a: [sum(AT_CORRECT[g][norm][a][i] for g in AT_CORRECT) for i in range(len(AT_EPS[norm]))]
                    for a in ("fgsm", "pgd")} for norm in AT_EPS}
    f = (k_ref / n) / (total["linf"]["pgd"][2] / AT_N)
    return {norm: {a: [round(min(1.0, k / AT_N * f), 6) for k in ks] for a, ks in c.items()} for norm, c in total.items()}


def _at_group(n: int, k: int, curves: dict[str, Any], median: float, not_flipped: int) -> dict[str, Any]:
    thin = n < AT_MIN_N
    acc = _share(k, n)
    p = _p(abs(acc["value"] - 40 / AT_N), n)
    return {"n": n, "insufficient_data": thin, "robust_accuracy": {**acc, "p_value": p, "p_adjusted": min(1.0, round(p * 3, 6)),
                                                                      "significant": False},
            "curves": curves, "median_minimal_eps": _m(round(median, 6), [round(median * 0.7, 6), round(median * 1.3, 6)],
                                                        n_not_flipped=not_flipped)}


def _at_scope(kind: str, attrs: list[str], groups: dict[str, Any], p: float) -> dict[str, Any]:
    ok = {g: v["robust_accuracy"]["value"] for g, v in groups.items() if not v["insufficient_data"]}
    lo, hi = min(ok, key=ok.get), max(ok, key=ok.get)
    gap, excluded = round(ok[hi] - ok[lo], 6), [g for g, v in groups.items() if v["insufficient_data"]]
    worst = groups[lo]["robust_accuracy"]
    return {"scope": {"kind": kind, "attributes": attrs},
            "robust_accuracy_difference": _m(gap, [round(max(0.0, gap - 0.15), 6), round(gap + 0.15, 6)], groups=[lo, hi],
                                             excluded_groups=excluded, p_value=p, p_adjusted=min(1.0, round(p * 3, 6)),
                                             significant=p * 3 < 0.05, power={"achieved": 0.3, "n_more": 400}),
            "robust_accuracy_ratio": _m(round(ok[lo] / ok[hi], 6), None, groups=[lo, hi], excluded_groups=excluded),
            "worst_group_robust_accuracy": _m(worst["value"], worst["ci"], groups=[lo], excluded_groups=excluded)}


def _wb_settings(attack: str, norm: str, eps: Any, **extra: Any) -> dict[str, Any]:
    pgd = attack == "pgd"
    return {"attack": attack, "norm": norm, "eps": eps, "steps": 10 if pgd else 1,
            "step_size": "2.5 * eps / steps" if pgd else "eps", "restarts": 1, "random_start": pgd, "seed": 0, **extra,
            "library": "auditor (torch)", "torch": "2.14.1"}


def attacks(masked: bool = False) -> dict[str, Any]:
    """A checks.attacks entry in the issue-5 schema: 128 images, 116 classified correctly, 40 still correct
    under PGD at 4/255 (female 16 of 64, male 24 of 64); black-box attacks on the first 32 images.
    ``masked``: Square (black-box) beats PGD and an unbounded attack leaves 7 of 32 correct: two
    gradient-masking flags make the result unreliable."""
    pgd_all = [sum(AT_CORRECT[g]["linf"]["pgd"][i] for g in AT_CORRECT) for i in range(5)]
    assert pgd_all[2] == 40 and sum(k for _, k in AT_AGE.values()) == 40 == sum(k for _, k in AT_CROSS.values())
    overall_curves = {norm: {"eps": AT_EPS[norm], **{a: [round(sum(AT_CORRECT[g][norm][a][i] for g in AT_CORRECT) / AT_N, 6)
                                                         for i in range(len(AT_EPS[norm]))] for a in ("fgsm", "pgd")}}
                      for norm in AT_EPS}
    by_group: dict[str, Any] = {
        "gender": {g: _at_group(64, c["linf"]["pgd"][2], _at_curves(c, 64), (2.5 if g == "female" else 3.5) / 255,
                                0 if g == "female" else 2) for g, c in AT_CORRECT.items()},
        "age": {g: _at_group(n, k, _at_scaled(k, n), 3 / 255, 2 if g == "20-39" else 0) for g, (n, k) in AT_AGE.items()},
        "gender+age": {f"{s} & {a}": _at_group(n, k, _at_scaled(k, n), 3 / 255, 2 if (s, a) == ("male", "20-39") else 0)
                       for (s, a), (n, k) in AT_CROSS.items()},
    }
    for key, v in by_group["gender+age"].items():
        v["members"] = dict(zip(("gender", "age"), key.split(" & ")))
    square_k = 4 if masked else 11  # of 32 still correct under Square at 4/255
    flags = [] if not masked else [
        {"id": "blackbox_beats_whitebox",
         "message": "The black-box Square attack left a robust accuracy of 12.5% at eps 4/255, well below the 31.2% the "
                    "white-box PGD attack left on the same images: an attack without gradients should not beat one "
                    "with them, so the gradients mislead PGD and the robustness numbers cannot be trusted.",
         "evidence": {"attack": "square", "eps": AT_REF, "blackbox": 0.125, "pgd": 0.3125, "tol": 0.088388}},
        {"id": "unbounded_not_zero",
         "message": "With a perturbation budget large enough to change every pixel completely, the attack still left a "
                    "robust accuracy of 21.9% (above 10%): an attack free to replace the whole image should always win.",
         "evidence": {"unbounded_accuracy": 0.21875, "threshold": 0.1}},
    ]
    summary = ("The robustness measurement shows 2 signs of gradient masking (a black-box attack beat the white-box one "
               "and an unlimited attack did not win), so the robustness numbers likely overstate how robust the model "
               "is and should not be relied on without a stronger evaluation." if masked else
               "No sign of gradient masking was found, so the robustness numbers can be taken at face value: the "
               "attacks behaved as a working attack should.")
    settings = [_wb_settings(a, n, AT_EPS[n]) for n in ("linf", "l2") for a in ("fgsm", "pgd")]
    settings.append(_wb_settings("pgd", "linf", "minimal (bisection)", eps_max=32 / 255, tol=1 / 255))
    overall = {
        "clean_accuracy": _share(AT_CLEAN, AT_N),
        "robust_accuracy": _share(40, AT_N),
        "attack_success_rate": _share(AT_CLEAN - 40, AT_CLEAN),
        "median_minimal_eps": _m(round(3 / 255, 6), [round(2 / 255, 6), round(4 / 255, 6)], n_not_flipped=2),
        "reliable": {"value": 0 if masked else 1, "ci": None},
        "n_masking_flags": {"value": len(flags), "ci": None},
        "settings": settings,
        "curves": overall_curves,
        "masking": {"reliable": not masked, "summary": summary, "flags": flags,
                    "gradients": {"zero_share": 0.0, "nonfinite_share": 0.0, "differentiable": True, "reason": None, "n": 32},
                    "determinism": {"deterministic": True, "max_abs_diff": 0.0, "prediction_changes": 0, "n": 32},
                    "unbounded_accuracy": 0.21875 if masked else 0.0},
        "blackbox": {
            "square": {"norm": "linf", "eps": AT_REF, "n": 32, "robust_accuracy": square_k / 32, "success_rate": 1 - square_k / 32,
                       "queries": 12_000, "settings": {"attack": "square", "norm": "linf", "eps": AT_REF, "max_queries": 500,
                                                       "seed": 0, **ART}},
            "hopskipjump": {"norm": "l2", "eps": 0.5, "n": 32, "robust_accuracy": 0.40625, "success_rate": 0.59375,
                            "queries": 15_800, "median_norm": 0.61,
                            "settings": {"attack": "hopskipjump", "norm": "l2", "eps": 0.5, "max_queries": 500, "seed": 0, **ART}},
            "transfer": {"norm": "linf", "eps": AT_REF, "n": 32, "robust_accuracy": 0.6875, "success_rate": 0.3125,
                         "queries": 564, "substitute_agreement": 0.84, "n_pool": 512,
                         "settings": {"attack": "transfer", "norm": "linf", "eps": AT_REF, "seed": 0, "substitute": "SmallCNN",
                                      "epochs": 5, "pgd": {"steps": 10, "step_size": 0.003922, "random_start": True}}},
            "queries": 28_364,
        },
    }
    metrics: dict[str, Any] = {"overall": overall,
                               "gender": _at_scope("attribute", ["gender"], by_group["gender"], 0.09),
                               "age": _at_scope("attribute", ["age"], by_group["age"], 0.8),
                               "gender+age": _at_scope("intersection", ["gender", "age"], by_group["gender+age"], 0.3)}
    return {
        "status": "ok", "seconds": 95.0, "error": None,
        "params": {"n_images": AT_N, "steps": 10, "restarts": 1, "eps_linf": AT_EPS["linf"], "eps_l2": AT_EPS["l2"],
                   "reference_eps": AT_REF, "n_blackbox": 32, "max_queries": 500, "blackbox": True,
                   "min_group_size": AT_MIN_N, "pool": 512, "epochs": 5},
        "metrics": metrics, "by_group": by_group,
        "figures": {"gallery": {"data_uri": PIXEL, "caption": "Original, perturbation and adversarial image with predictions"}},
    }


def results_attacks(masked: bool = False) -> dict[str, Any]:
    """A run of the attacks check alone on a two-class model, with a policy clause on its robust accuracy."""
    at = attacks(masked)
    value = at["metrics"]["overall"]["robust_accuracy"]
    clause = _clause("robust-accuracy", "checks.attacks.metrics.overall.robust_accuracy", ">=", 0.5, value["value"],
                     value["ci"], "fail")
    return _one_check_run("attacks", at, [clause], policy="robustness", verdict="fail", forward_passes=120_000,
                          backward_passes=40_000, environment={"adversarial-robustness-toolbox": "1.20.1"})


# -- the explanations check (issue 6) ------------------------------------------------------------------------

EX_N = 128
EX_FRACTIONS = [round(i / 20, 6) for i in range(21)]
EX_LAYERS = ["head", "inner.12", "inner.9", "inner.3", "inner.0"]
EX_THRESHOLD = 0.5
# method: (deletion AUC, insertion AUC, subject share, faithful, cascade rank correlations or None)
EX_METHODS: dict[str, tuple[float, float, float, bool, list[float] | None]] = {
    "integrated_gradients": (0.21, 0.70, 0.62, True, [0.61, 0.42, 0.25, 0.12, 0.05]),
    "saliency": (0.36, 0.47, 0.48, False, [0.55, 0.31, 0.18, 0.09, 0.02]),
    "smoothgrad": (0.27, 0.61, 0.57, True, [0.58, 0.40, 0.22, 0.11, 0.04]),
    "occlusion": (0.12, 0.78, 0.69, True, [0.93, 0.88, 0.81, 0.74, 0.68]),
    "perturbation_mask": (0.15, 0.74, 0.66, True, None),
}
EX_METHOD_KEYS = ("integrated_gradients", "saliency", "smoothgrad", "grad_cam", "occlusion", "perturbation_mask")
EX_RANDOM = (0.39, 0.41)
EX_GRAD_CAM = ("the model has no convolutional layer that can be hooked (TorchScript); set explanations.layer or "
               "export the model as a state dict")
EX_MASK_SANITY = "a learned mask is an optimisation, not a map the cascade recomputes cheaply"
EX_FINDING = ("Integrated Gradients puts less of its attribution on the subject for female images (0.52) than for male "
              "ones (0.73): a difference of 0.21 [0.12, 0.30].")


def _ex_curve(auc: float, deletion: bool, top: float = 0.92) -> list[float]:
    """A smooth curve from ``top`` whose area is about ``auc``: (1-f)^k falling for deletion, 1-(1-f)^k rising for insertion."""
    share = auc / top if deletion else 1 - auc / top
    k = 1 / share - 1
    return [round(top * ((1 - f) ** k if deletion else 1 - (1 - f) ** k), 6) for f in EX_FRACTIONS]


def _ex_pm(v: float, half: float = 0.04) -> dict[str, Any]:
    return _m(round(v, 6), [round(v - half, 6), round(v + half, 6)])


def _ex_method(key: str) -> dict[str, Any]:
    d, i, share, faithful, cascade = EX_METHODS[key]
    sanity: dict[str, Any]
    if cascade is None:
        sanity = {"status": "not_run", "reason": EX_MASK_SANITY}
    else:
        sanity = {"status": "failed" if cascade[-1] > EX_THRESHOLD else "passed", "reason": None,
                  "final_rank_correlation": _ex_pm(cascade[-1], 0.06),
                  "cascade": [{"stage": s + 1, "layer": EX_LAYERS[s], "n_randomised": s + 1, "rank_correlation": _ex_pm(r, 0.07)}
                              for s, r in enumerate(cascade)]}
    gain = round(EX_RANDOM[0] - d, 6)
    return {"status": "ok", "reason": None, "label": {"integrated_gradients": "Integrated Gradients", "saliency": "Saliency",
                                                        "smoothgrad": "SmoothGrad", "occlusion": "Occlusion",
                                                        "perturbation_mask": "Meaningful perturbation"}[key],
            "deletion_auc": _ex_pm(d), "insertion_auc": _ex_pm(i, 0.05),
            "deletion_gain": _m(gain, [round(gain - 0.06, 6) if faithful else -0.01, round(gain + 0.05, 6)]),
            "insertion_gain": _ex_pm(round(i - EX_RANDOM[1], 6), 0.05), "faithful": faithful,
            "deletion_curve": _ex_curve(d, True), "insertion_curve": _ex_curve(i, False),
            "subject_share": {**_ex_pm(share), "reason": None}, "sanity": sanity}


def _ex_group(n: int, thin: bool, shift: float) -> dict[str, Any]:
    return {"n": n, "insufficient": thin, "methods": {
        k: {"deletion_auc": _ex_pm(v[0] + shift / 4, 0.08), "insertion_auc": _ex_pm(v[1] - shift / 4, 0.08),
            "subject_share": {**_ex_pm(v[2] + shift, 0.06), "reason": None}} for k, v in EX_METHODS.items()}}


def explanations() -> dict[str, Any]:
    """A checks.explanations entry in the issue-6 schema (the check's parts under ``metrics.overall``, an attribute
    scope beside it per sensitive attribute): 128 images (gender 64/64; age 70/40/18, the last too
    few), Grad-CAM not run (a TorchScript model), Occlusion failing the sanity check, saliency not faithful, the
    meaningful-perturbation mask out of the cascade, and one finding: Integrated Gradients puts less attribution
    on the subject for female images."""
    reason = "fewer than 2 groups reach the minimum group size (30)"
    methods = {k: _ex_method(k) for k in ("integrated_gradients", "saliency", "smoothgrad")}
    methods["grad_cam"] = {"status": "not_run", "reason": EX_GRAD_CAM, "label": "Grad-CAM"}
    methods.update({k: _ex_method(k) for k in ("occlusion", "perturbation_mask")})

    def diff(v: float | None, method: str, lo: str, hi: str, half: float = 0.09) -> dict[str, Any]:
        return {**(_ex_pm(v, half) if v is not None else _m(None)), "method": method, "lowest": lo, "highest": hi,
                "groups_compared": 2, "reason": None}

    return {
        "status": "ok", "error": None, "seconds": 61.4,
        "params": {"n_images": EX_N, "n_sanity": 8, "methods": list(EX_METHOD_KEYS), "layer": "inner.9", "ig_steps": 32,
                   "nt_samples": 16, "nt_stdev": 0.15, "occlusion_window": 8, "occlusion_stride": 4, "curve_steps": 20,
                   "operator": "fill", "sanity_stages": 5, "sanity_threshold": EX_THRESHOLD, "mask_steps": 40,
                   "class_model_steps": 64, "min_group_size": 30, "figures": True, "input_size": [64, 64]},
        "metrics": {  # the check's parts under "overall"; every other key is an attribute scope
            "overall": {
                "n_images": _m(EX_N), "faithful_methods": _m(4, of=5, names=["integrated_gradients", "smoothgrad",
                                                                            "occlusion", "perturbation_mask"]),
                "methods_failing_sanity": _m(1, of=4, names=["occlusion"]),
                "best_deletion_auc": {**_ex_pm(0.12, 0.03), "method": "occlusion"},
                "first_layer_smoothness": _m(0.43, reason=None),
                "random_baseline": {"deletion_auc": _ex_pm(EX_RANDOM[0], 0.03), "insertion_auc": _ex_pm(EX_RANDOM[1], 0.03),
                                    "deletion_curve": _ex_curve(EX_RANDOM[0], True),
                                    "insertion_curve": _ex_curve(EX_RANDOM[1], False)},
                "curve_fractions": EX_FRACTIONS,
                "first_layer": {"layer": "inner.0", "n_filters": 16, "kernel": [3, 3], "in_channels": 3, "smoothness": 0.43,
                                "noisy": False, "figure": "first_layer_filters",
                                "verdict": ("The first layer's filters are smooth edge and colour detectors: no sign of an "
                                            "untrained layer.")},
                "class_models": {"classes": ["not_smiling", "smiling"], "steps": 64, "final_probability": [0.99, 0.98],
                                 "figure": "class_models"},
                "methods": methods,
                "reference_method": "integrated_gradients",
                "findings": [{"attribute": "gender", "metric": "subject_share_difference", "method": "integrated_gradients",
                              "lowest": "female", "highest": "male", "value": 0.21, "ci": [0.12, 0.30], "text": EX_FINDING}],
                "notes": [f"Grad-CAM was not run: {EX_GRAD_CAM}.",
                          f"Meaningful perturbation is left out of the sanity check: {EX_MASK_SANITY}."],
                "summary": ("4 of 5 methods beat a random pixel order; Occlusion failed the sanity check (its map barely "
                            "changes when the model is randomised); Integrated Gradients puts less attribution on the "
                            "subject for female images."),
            },
            "gender": {"scope": {"kind": "attribute"},
                       "subject_share_difference": diff(0.21, "integrated_gradients", "female", "male"),
                       "deletion_auc_difference": diff(0.03, "integrated_gradients", "male", "female", 0.05),
                       "insertion_auc_difference": diff(0.05, "integrated_gradients", "female", "male", 0.06)},
            "age": {"scope": {"kind": "attribute"},
                    **{k: {**_m(None), "method": "integrated_gradients", "lowest": None, "highest": None,
                           "groups_compared": 1, "reason": reason}
                       for k in ("subject_share_difference", "deletion_auc_difference", "insertion_auc_difference")}},
        },
        "by_group": {"gender": {"female": _ex_group(64, False, -0.1), "male": _ex_group(64, False, 0.1)},
                     "age": {"0-19": _ex_group(70, False, 0.0), "20-39": _ex_group(40, False, 0.02),
                             "60+": _ex_group(18, True, -0.05)}},
        "figures": {"attributions": PIXEL, "sanity_cascade": PIXEL, "first_layer_filters": PIXEL, "class_models": PIXEL},
    }


def results_explanations() -> dict[str, Any]:
    """A run of the explanations check alone on a two-class model, failing a warning clause on the sanity check."""
    ex = explanations()
    clause = _clause("explanations-sane", "checks.explanations.metrics.overall.methods_failing_sanity", "<=", 0, 1, None,
                     "fail", severity="warning")
    return _one_check_run("explanations", ex, [clause], policy="explanations", verdict="pass", forward_passes=52_000,
                          backward_passes=9_800, environment={"captum": "0.8.0"})


# -- reading a rendered report -----------------------------------------------------------------------------

CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_section(html: str, name: str, index: int = 0) -> str:
    """The HTML of the section of check ``name`` at place ``index`` (from 0) among the checks: id ``check-<index>-<name>``,
    followed by its part of the appendix (id ``appendix-check-<index>-<name>``) when it has one."""
    main = html.split(f'id="check-{index}-{name}"', 1)[1].split("</section>", 1)[0]
    marker = f'id="appendix-check-{index}-{name}"'
    return main + (html.split(marker, 1)[1].split("</section>", 1)[0] if marker in html else "")


def table_by_caption(html: str, caption: str) -> str:
    """The HTML after ``<caption>caption</caption>`` up to the end of that table."""
    return html.split(f"<caption>{caption}</caption>", 1)[1].split("</table>", 1)[0]


def table_row(table: str, head: str, *, whole: bool = True) -> str:
    """The rest of the first row of ``table`` with a cell whose text is ``head`` (``whole``) or starts with it."""
    return table.split(f">{head}<" if whole else f">{head}", 1)[1].split("</tr>", 1)[0]


def renders_cleanly(results: dict[str, Any], check: str) -> str:
    """The HTML of ``results``, after checking that it has the ``check`` section and no control character, and
    that Markdown and JUnit render too."""
    html = render_html(results)
    assert "Audit report" in html and f'id="check-0-{check}"' in html and not CONTROL.search(html)
    assert render_markdown(results).startswith("## Audit report")
    ET.fromstring(render_junit(results))
    return html
