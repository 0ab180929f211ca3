"""The attacks part of the report: whether the robustness numbers can be trusted, clean against robust
accuracy, the robustness curves, robust accuracy by group, the black-box attacks and every attack's
settings, as plain values.

The same view feeds the HTML/PDF report and the Markdown summary. A ``checks.attacks`` entry that is
not in the check's schema (no ``overall`` with any of `SCHEMA_KEYS`) gives None, and the report falls
back to the generic tree, so nothing recorded is hidden.
"""
from __future__ import annotations

from typing import Any

from auditor.report._curves import robustness_curves
from auditor.report._findings import scope_label
from auditor.report._format import (
    NA, as_dict, as_list, dig, fmt_num, fmt_p, fmt_plain, metric_label, metric_value, p_shown, short,
    clause_scope, sample_remedy,
)
from auditor.report._markdown import md, md_rate
from auditor.report._rows import add_row, higher_is_better, keys_of, leaf_rows, metric_row, row_label
from auditor.report.presenter import Presenter, ran, register_presenter
from auditor.report.sections._attacks_text import (
    methodology as at_methodology, limitations as at_limitations, masking_flags as at_masking_flags, BLACKBOX_ROWS,
    MASKING_FLAG, MASKING_MIN_GAIN, NOT_CONFIRMED,
)

__all__ = ["MASKING_FLAG", "MASKING_MIN_GAIN", "NOT_CONFIRMED", "UNTRUSTED", "AttacksPresenter", "attacks_view", "eps_text",
           "reliability"]

SCHEMA_KEYS = ("clean_accuracy", "robust_accuracy", "curves", "masking", "settings", "blackbox")
UNTRUSTED = "These robustness numbers cannot be trusted"
TRUSTED = "No sign of gradient masking"
NORMS = {"linf": "L∞", "l2": "L2"}
ATTACKS = {"fgsm": "FGSM", "pgd": "PGD", "square": "Square", "hopskipjump": "HopSkipJump", "transfer": "Transfer"}
BLACKBOX = {"square": "Square (ART)", "hopskipjump": "HopSkipJump (ART)", "transfer": "Transfer from a substitute"}
EXTRAS = (("max_queries", "queries per image ≤"), ("eps_max", "eps max"), ("tol", "tolerance"), ("epochs", "epochs"),
          ("substitute", "substitute"), ("seed", "seed"))
MAX_FLAGS = 12
MAX_ROWS = 40  # groups of a scope, settings, black-box attacks
MAX_EPS = 16
MAX_INTERSECTIONS = 20
MAX_CROSS_ROWS = 10  # groups of an intersection: the lowest robust accuracy first


def _count(x: Any) -> int | None:
    v = metric_value(x)
    return int(v) if v is not None and v == int(v) else None


def _thousands(x: Any) -> str | None:
    n = _count(x)
    return None if n is None else f"{n:,}"


def eps_text(x: Any, norm: Any = "linf") -> str:
    """A configured eps: "4/255" for an L-inf multiple of 1/255, "0.5" otherwise; a list joined; "n/a"."""
    if isinstance(x, (list, tuple)):
        return ", ".join(eps_text(v, norm) for v in x[:MAX_EPS]) + (", …" if len(x) > MAX_EPS else "")
    v = metric_value(x)
    if v is None:
        return short(x, 60) if isinstance(x, str) and x.strip() else NA
    k = v * 255
    return f"{round(k)}/255" if norm == "linf" and 0 < v < 1 and abs(k - round(k)) < 1e-6 * max(1.0, k) else fmt_plain(v)


def _measured_eps(m: Any) -> str:
    """A measured L-inf eps with its interval: "0.0118 (≈3.0/255) [0.0078, 0.0157]", or "n/a (reason)"."""
    v = metric_value(m)
    if v is None:
        reason = as_dict(m).get("reason")
        if reason in (None, "") and (_count(as_dict(m).get("n_not_flipped")) or 0) > 0:
            reason = "beyond the search range: too many images were not flipped"  # the check writes inf as null
        return f"{NA} ({short(reason, 300)})" if reason not in (None, "") else NA
    ci = [metric_value(c) for c in as_list(as_dict(m).get("ci"))]
    text = f"{fmt_num(v, 4)} (≈{v * 255:.1f}/255)"
    return text + (f" [{fmt_num(ci[0], 4)}, {fmt_num(ci[1], 4)}]" if len(ci) == 2 and None not in ci else "")


def _metric(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {"value": x}


def reliability(overall: dict[str, Any]) -> dict[str, Any]:
    """Whether the robustness numbers can be trusted (None: not recorded), the sentence, each flag's message.

    Any sign of masking wins: a flag, ``reliable`` false or 0, or a positive flag count."""
    masking = as_dict(overall.get("masking"))
    flags = [as_dict(f) for f in as_list(masking.get("flags"))]
    messages = [short(f["message"], 800) if isinstance(f.get("message"), str) and f["message"].strip()
                else metric_label(f.get("id") or "unnamed flag") for f in flags[:MAX_FLAGS]]
    said = [masking.get("reliable"), metric_value(overall.get("reliable"))]
    reliable = (False if flags or False in said or 0.0 in said or (metric_value(overall.get("n_masking_flags")) or 0) > 0
                else True if True in said or 1.0 in said else None)
    text = masking.get("summary")
    text = short(text, 800) if isinstance(text, str) and text.strip() else ""
    if reliable is False and (not text or text.lower().startswith("no sign")):
        text = "the gradient-masking diagnostics raised a flag."
    elif reliable is True:
        text = text or f"{TRUSTED} was found."
    elif reliable is None:
        text = "No gradient-masking diagnostics were recorded: whether these numbers can be trusted is unknown."
    return {"reliable": reliable, "summary": text, "flags": messages, "flags_more": max(0, len(flags) - MAX_FLAGS)}


def _overall_rows(overall: dict[str, Any], ref: str) -> list[dict[str, Any]]:
    """(label, metric for |metric or text, note) rows of the key/value table."""
    rows: list[dict[str, Any]] = []

    def add(label: str, key: str, note: str = "", text: str | None = None) -> None:
        if key in overall:
            rows.append({"label": label, "metric": _metric(overall[key]), "text": text, "note": note})

    add("Clean accuracy", "clean_accuracy", "attacked images classified correctly without perturbation")
    add(f"Robust accuracy at {ref} (PGD, L∞)", "robust_accuracy", "still classified correctly under the attack")
    add("Attack success rate", "attack_success_rate", f"share of the correctly classified images that PGD flipped at {ref}")
    m = overall.get("median_minimal_eps")
    n = _count(as_dict(m).get("n_not_flipped"))
    add("Median minimal eps (L∞)", "median_minimal_eps", "smallest eps that flips an image, over the correctly classified "
        "ones" + (f"; {n} image{'s' if n != 1 else ''} not flipped within the search range" if n is not None else ""),
        _measured_eps(m))
    masking = as_dict(overall.get("masking"))
    if "unbounded_accuracy" in masking:
        rows.append({"label": "Accuracy under an unbounded attack (eps 1)", "metric": _metric(masking["unbounded_accuracy"]),
                     "text": None, "note": "PGD free to change every pixel; a working attack brings it to about 0"})
    return rows


def _curve_tables(curves: Any) -> list[dict[str, Any]]:
    out = []
    for norm, title in NORMS.items():
        c = as_dict(as_dict(curves).get(norm))
        fgsm, pgd = as_list(c.get("fgsm")), as_list(c.get("pgd"))
        rows = [{"eps": eps_text(e, norm), "fgsm": metric_value(fgsm[i]) if i < len(fgsm) else None,
                 "pgd": metric_value(pgd[i]) if i < len(pgd) else None} for i, e in enumerate(as_list(c.get("eps"))[:MAX_ROWS])]
        if rows:
            out.append({"norm": title, "rows": rows})
    return out


def _group_row(name: Any, g: dict[str, Any]) -> dict[str, Any]:
    m = g.get("robust_accuracy")
    return {"name": short(name), "n": _count(g.get("n")), "thin": bool(g.get("insufficient_data")), "robust": _metric(m),
            "sig": as_dict(m).get("significant") is True, "min_eps": _measured_eps(g.get("median_minimal_eps")),
            "success": _metric(g.get("attack_success_rate")) if isinstance(g.get("attack_success_rate"), dict) else None,
            "value": metric_value(m)}


def _scope(name: str, table: dict[str, Any], groups: dict[str, Any]) -> dict[str, Any]:
    info = as_dict(table.get("scope"))
    kind = "intersection" if info.get("kind") == "intersection" or (not info.get("kind") and "+" in name) else "attribute"
    diff, worst = as_dict(table.get("robust_accuracy_difference")), as_dict(table.get("worst_group_robust_accuracy"))
    rows = [_group_row(g, as_dict(v)) for g, v in groups.items()]
    thin = [r for r in rows if r["thin"]]
    cap = MAX_ROWS
    if kind == "intersection":  # many small cells: only the groups with enough images, lowest first
        rows = sorted((r for r in rows if not r["thin"]), key=lambda r: 2.0 if r["value"] is None else r["value"])
        cap = MAX_CROSS_ROWS
    return {
        "key": name, "name": short(name), "label": scope_label(name), "kind": kind,
        "reason": short(table["reason"], 300) if isinstance(table.get("reason"), str) else None,
        "difference": _metric(table["robust_accuracy_difference"]) if "robust_accuracy_difference" in table else None,
        "groups": " → ".join(short(g, 60) for g in as_list(diff.get("groups"))),
        "p_adjusted": p_shown(diff), "significant": diff.get("significant") is True,
        "worst": _metric(table["worst_group_robust_accuracy"]) if "worst_group_robust_accuracy" in table else None,
        "worst_group": ", ".join(short(g, 60) for g in as_list(worst.get("groups"))),
        "gap": metric_value(diff), "rows": rows[:cap], "rows_more": max(0, len(rows) - cap),
        "thin": [f"{r['name']} (n={fmt_num(r['n'])})" for r in thin[:MAX_ROWS]], "thin_more": max(0, len(thin) - MAX_ROWS),
    }


def _blackbox(bb: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, e in list(bb.items())[:MAX_ROWS]:
        if key == "queries" or not isinstance(e, dict):
            continue
        label = BLACKBOX.get(key) or metric_label(key)
        if e.get("reason") and metric_value(e.get("robust_accuracy")) is None:
            rows.append({"label": label, "reason": f"Not run: {short(e['reason'], 300)}"})
            continue
        norm = e.get("norm")
        extra = []
        if metric_value(e.get("substitute_agreement")) is not None:
            n_pool = _count(e.get("n_pool"))
            extra.append(f"substitute agrees with the model on {fmt_num(metric_value(e['substitute_agreement']))} of the "
                         "attacked images" + (f" (trained on {n_pool} pool images)" if n_pool is not None else ""))
        if metric_value(e.get("median_norm")) is not None:
            extra.append(f"median L2 norm found {fmt_num(metric_value(e['median_norm']))}")
        rows.append({"label": label, "reason": None, "norm": NORMS.get(norm) if isinstance(norm, str) and norm in NORMS
                     else short(norm, 20) if norm else NA, "eps": eps_text(e.get("eps"), norm), "n": _count(e.get("n")),
                     "robust": metric_value(e.get("robust_accuracy")), "success": metric_value(e.get("success_rate")),
                     "queries": _thousands(e.get("queries")), "extra": "; ".join(extra)})
    return rows


def _setting(s: dict[str, Any]) -> dict[str, Any]:
    attack, norm = str(s.get("attack") or "?"), s.get("norm")
    nested = as_dict(s.get("pgd"))  # the transfer attack's PGD on the substitute

    def get(key: str) -> Any:
        return s.get(key, nested.get(key))

    library = short(s.get("library"), 60) if s.get("library") not in (None, "") else ""
    version = s.get("version") or (f"torch {s['torch']}" if s.get("torch") not in (None, "") else "")
    extras = [f"{label} {eps_text(s[k], norm) if k in ('eps_max', 'tol') else short(fmt_plain(s[k]), 60)}"
              for k, label in EXTRAS if k in s and not isinstance(s[k], (dict, list))]
    step = get("step_size")
    return {
        "attack": (ATTACKS.get(attack) or short(attack, 40)) + (" (PGD on the substitute)" if attack == "transfer" else ""),
        "norm": NORMS.get(norm) if isinstance(norm, str) and norm in NORMS else short(norm, 20) if norm else NA,
        "eps": eps_text(s.get("eps"), norm), "steps": _count(get("steps")),
        "step_size": eps_text(step, norm) if metric_value(step) is not None else short(step, 40) if step else NA,
        "restarts": _count(get("restarts")),
        "random_start": fmt_num(get("random_start")) if isinstance(get("random_start"), bool) else NA,
        "library": ", ".join(x for x in (library, short(version, 40) if version else "") if x) or NA,
        "extra": "; ".join(extras),
    }


def _chart(curves: Any, scope: str | None, groups: Any) -> str | None:
    """The robustness curves of ``scope``'s groups (only what the chart reads, so the cache hits more often)."""
    lines = [[g, {"curves": as_dict(v).get("curves"), "insufficient_data": as_dict(v).get("insufficient_data")}]
             for g, v in as_dict(groups).items()]
    return robustness_curves(curves, scope or "", lines)


def attacks_view(check: dict[str, Any], figures: list[dict[str, str]], charts: bool = True) -> dict[str, Any] | None:
    """What the template shows for a ``checks.attacks`` entry; None when it is not in the check's schema.

    ``figures``: the check's embeddable figures; the report shows them after the check (generic loop).
    ``charts``: False leaves out the chart (the Markdown summary has none)."""
    metrics = as_dict(as_dict(check).get("metrics"))
    overall = as_dict(metrics.get("overall"))
    if not any(k in overall for k in SCHEMA_KEYS):
        return None
    params = as_dict(as_dict(check).get("params"))
    by_group = as_dict(as_dict(check).get("by_group"))
    ref = params.get("reference_eps")
    ref = f"eps {eps_text(ref)}" if metric_value(ref) is not None else "the reference eps"
    names = list(dict.fromkeys([str(s) for s in metrics if s != "overall"] + [str(s) for s in by_group]))
    scopes = [_scope(s, as_dict(metrics.get(s)), as_dict(by_group.get(s))) for s in names]
    attributes = [s for s in scopes if s["kind"] == "attribute"]
    widest = max(attributes, key=lambda s: -1.0 if s["gap"] is None else s["gap"], default=None)
    chart_scope = widest["key"] if widest is not None else None
    crosses = [s for s in scopes if s["kind"] == "intersection"]
    blackbox = as_dict(overall.get("blackbox"))
    settings = [s for s in as_list(overall.get("settings")) if isinstance(s, dict)]
    settings += [as_dict(e)["settings"] for e in blackbox.values() if isinstance(as_dict(e).get("settings"), dict)]
    nd = overall.get("not_differentiable")
    return {
        "trust": reliability(overall), "ref": ref, "overall": _overall_rows(overall, ref),
        "not_differentiable": short(nd, 600) if isinstance(nd, str) and nd.strip() else None,
        "chart": _chart(overall.get("curves"), chart_scope, by_group.get(chart_scope)) if charts else None,
        "chart_scope": scope_label(chart_scope) if chart_scope else None, "curves": _curve_tables(overall.get("curves")),
        "attributes": attributes, "intersections": crosses[:MAX_INTERSECTIONS],
        "intersections_more": max(0, len(crosses) - MAX_INTERSECTIONS),
        "blackbox": _blackbox(blackbox), "queries": _thousands(blackbox.get("queries")),
        "blackbox_off": params.get("blackbox") is False,
        "settings": [_setting(s) for s in settings[:MAX_ROWS]], "settings_more": max(0, len(settings) - MAX_ROWS),
        "min_group_size": _count(params.get("min_group_size")), "figures": figures,
    }


def _markdown(check: dict[str, Any]) -> list[str]:
    at = attacks_view(check, [], charts=False) if ran(check) else None
    if at is None:
        return []
    overall = as_dict(dig(check, "metrics", "overall"))
    trust = at["trust"]
    out = ["### Adversarial robustness", ""]
    if trust["reliable"] is False:
        out += [f"⚠️ **{UNTRUSTED}:** {md(trust['summary'], 600)}", ""]
        out += [f"- {md(f, 400)}" for f in trust["flags"]] + ([""] if trust["flags"] else [])
    else:
        out += ["No sign of gradient masking." if trust["reliable"] else md(trust["summary"], 300), ""]
    out.append(f"- Clean accuracy {md_rate(overall.get('clean_accuracy'))}; robust accuracy at {at['ref']} (PGD, L∞) "
               f"{md_rate(overall.get('robust_accuracy'))}.")
    scopes = [s for s in at["attributes"] if metric_value(s["worst"]) is not None] or [
        s for s in at["intersections"] if metric_value(s["worst"]) is not None]
    if scopes:
        s = min(scopes, key=lambda s: metric_value(s["worst"]) or 0.0)
        gap = f"; gap to the best group {md_rate(s['difference'])}" if metric_value(s["difference"]) is not None else ""
        p = f", p (adj.) {fmt_p(s['p_adjusted'])}" + (" ✱" if s["significant"] else "") if s["p_adjusted"] is not None else ""
        out.append(f"- Worst group: {md(s['worst_group'], 80)} ({md(s['label'], 60)}) at {md_rate(s['worst'])}{gap}{p}.")
    return out + [""]


def _reliable(overall: dict[str, Any]) -> Any:
    r = overall.get("reliable")
    if r is None and isinstance(dig(overall, "masking", "reliable"), bool):
        r = {"value": int(overall["masking"]["reliable"]), "ci": None}
    return r


@register_presenter
class AttacksPresenter(Presenter):
    """Adversarial robustness: robust accuracy under attack, whether it can be trusted, and by group."""

    name = "attacks"
    title = "Adversarial robustness"
    order = 30
    compare_order = 20
    template_name = "report_macros.html.j2"
    macro = "attacks"
    method_title = "How adversarial robustness is measured"
    labels = {"clean_accuracy": "Clean accuracy", "robust_accuracy": "Robust accuracy (white-box)",
              "attack_success_rate": "Attack success rate", "median_minimal_eps": "Median minimal eps",
              "reliable": "Robustness measurement reliable (1 = yes)", "n_masking_flags": "Gradient-masking flags",
              "robust_accuracy_difference": "Robust accuracy difference", "robust_accuracy_ratio": "Robust accuracy ratio",
              "worst_group_robust_accuracy": "Worst-group robust accuracy"}
    directions = {"clean_accuracy": True, "robust_accuracy": True, "worst_group_robust_accuracy": True, "reliable": True,
                  "median_minimal_eps": True, "attack_success_rate": False, "success_rate": False, "n_masking_flags": False}
    accuracy_key = "attacks.overall.clean_accuracy"
    accuracy_what = "clean accuracy on the attacked images"
    flag_titles = (MASKING_FLAG, NOT_CONFIRMED)

    def view(self, check: dict[str, Any], figures: list[dict[str, str]]) -> dict[str, Any] | None:
        return attacks_view(check, figures)

    def markdown(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        return _markdown(check)

    def junit(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        at = attacks_view(check, [], charts=False) if ran(check) else None
        if at is None:
            return []
        overall = as_dict(dig(check, "metrics", "overall"))
        return [f"clean accuracy: {md_rate(overall.get('clean_accuracy'))}",
                f"robust accuracy at {at['ref']} (PGD, L∞): {md_rate(overall.get('robust_accuracy'))}",
                at["trust"]["summary"]]

    def clause_hint(self, check: dict[str, Any], results: dict[str, Any], clause: dict[str, Any]) -> str:
        """An undecided clause whose groups the sample left thin: the sample is the cause, a larger one the remedy."""
        scope = clause_scope(clause)
        return sample_remedy(results, "attacks", scope, clause.get("excluded_groups")) if scope else ""

    def methodology(self, check: dict[str, Any], results: dict[str, Any]) -> list[dict[str, str]]:
        return at_methodology(as_dict(check.get("params")), as_dict(dig(check, "metrics", "overall")))

    def limitations(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        return at_limitations(check)

    def compare_rows(self, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        mb, ma = as_dict(before.get("metrics")), as_dict(after.get("metrics"))
        ob, oa = as_dict(mb.get("overall")), as_dict(ma.get("overall"))
        rows: list[dict[str, Any]] = []
        name = self.name
        for key in ("clean_accuracy", "robust_accuracy", "attack_success_rate", "median_minimal_eps"):
            add_row(rows, metric_row(name, f"{name}.overall.{key}", row_label(key), ob.get(key), oa.get(key),
                                     higher_is_better(key), key_metric=key in ("robust_accuracy", "attack_success_rate"),
                                     scope="overall", metric=key))
        for attack, label in BLACKBOX_ROWS.items():
            bb, ab = dig(ob, "blackbox", attack), dig(oa, "blackbox", attack)
            bx = bb.get("robust_accuracy") if isinstance(bb, dict) else None
            ax = ab.get("robust_accuracy") if isinstance(ab, dict) else None
            add_row(rows, metric_row(name, f"{name}.overall.blackbox.{attack}.robust_accuracy", label, bx, ax, True,
                                     key_metric=True, scope="overall", metric="robust_accuracy", attack=attack, blackbox=True))
        add_row(rows, metric_row(name, f"{name}.overall.reliable", row_label("reliable"), _reliable(ob), _reliable(oa), True,
                                 key_metric=True, scope="overall", metric="reliable"))
        add_row(rows, metric_row(name, f"{name}.overall.n_masking_flags", row_label("n_masking_flags"),
                                 ob.get("n_masking_flags"), oa.get("n_masking_flags"), False, scope="overall",
                                 metric="n_masking_flags"))
        for scope in keys_of(mb, ma):
            if scope != "overall":
                leaf_rows(name, scope, mb.get(scope), ma.get(scope), rows, {"robust_accuracy_difference"})
        return rows

    def compare_flags(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return at_masking_flags(rows)
