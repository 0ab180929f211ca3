"""The attacks check in words: its methodology paragraphs and limitations, read from the run's parameters
and recorded settings, and the comparison's gradient-masking flag (a white-box gain that the black-box
attacks do not confirm). Plain sentences; each output escapes them.
"""
from __future__ import annotations

from typing import Any

from auditor.report._format import as_dict, as_list, dig, fmt_num, fmt_plain, metric_value
from auditor.report._method import count_or
from auditor.report._rows import EPS
from auditor.report._values import _signed as signed

__all__ = ["BLACKBOX_ROWS", "MASKING_FLAG", "MASKING_MIN_GAIN", "NOT_CONFIRMED", "limitations", "masking_flags", "methodology"]

NAME = "attacks"
MASKING_FLAG = "gradient masking suspected: the gain is not robustness"
NOT_CONFIRMED = "white-box gain not confirmed by a black-box attack"
MASKING_MIN_GAIN = 0.05  # white-box robust accuracy gain (absolute) that counts as a gain without a significant interval
BLACKBOX_ROWS = {"square": "Square (black-box) robust accuracy", "hopskipjump": "HopSkipJump (black-box) robust accuracy",
                 "transfer": "Transfer attack robust accuracy"}


def _first(settings: list[dict[str, Any]], attack: str, key: str) -> Any:
    """``key`` of the first recorded setting of ``attack`` that has it (e.g. PGD's steps), else None."""
    return next((s[key] for s in settings if s.get("attack") == attack and key in s), None)


def _eps_list(x: Any, linf: bool) -> str:
    values = [v for v in as_list(x) if metric_value(v) is not None]
    if not values:
        return "the configured grid"
    return ", ".join(f"{round(v * 255)}/255" if linf and abs(v * 255 - round(v * 255)) < 1e-6 and 0 < v < 1
                     else fmt_plain(v) for v in values[:16])


def methodology(params: dict[str, Any], overall: dict[str, Any]) -> list[dict[str, str]]:
    """(title, text) paragraphs for the attacks check, read from its parameters and recorded settings."""
    settings = [as_dict(s) for s in as_list(overall.get("settings"))]
    steps = params.get("steps") if isinstance(params.get("steps"), int) else _first(settings, "pgd", "steps")
    restarts = params.get("restarts") if isinstance(params.get("restarts"), int) else _first(settings, "pgd", "restarts")
    start = _first(settings, "pgd", "random_start")
    ref = params.get("reference_eps")
    ref = " " + _eps_list([ref], True) if metric_value(ref) is not None else ""
    n_bb, queries = params.get("n_blackbox"), params.get("max_queries")
    l2_ref = dig(overall, "blackbox", "hopskipjump", "eps")
    l2_ref = f" ({fmt_plain(l2_ref)})" if metric_value(l2_ref) is not None else ""
    out = [
        {"title": "White-box attacks", "text": (
            f"{count_or(params.get('n_images'))} images are sampled from the probe (seeded), as evenly across the groups of "
            "each audited attribute as the probe allows (128 images over 4 groups: 32 each), and attacked with full "
            "access to the model's gradients: FGSM (one signed-gradient step of size eps) and PGD (Madry et al., "
            f"projected gradient descent{' from a random start' if start is not False else ''}, {count_or(steps)} steps of "
            f"size 2.5·eps/steps, {count_or(restarts)} restart(s), the worst result per image kept). Perturbations are in "
            f"[0, 1] pixel units, before the model's normalisation: L∞ eps {_eps_list(params.get('eps_linf'), True)}; "
            f"L2 eps {_eps_list(params.get('eps_l2'), False)} (the norm of the perturbation over all pixels). Robust "
            "accuracy is the share of images still classified correctly; the attack success rate is the share of the "
            "correctly classified images that the attack flipped. These rates (and clean accuracy) carry Wilson score "
            "intervals, which do not collapse to a point when a rate is 0 or 1.")},
        {"title": "Minimal perturbation", "text": (
            "For each correctly classified image, the smallest L∞ eps at which PGD flips it is found by bisection to "
            "a tolerance of 1/255; the median over the images is reported with a bootstrap interval, and images not "
            "flipped within the search range are counted.")},
        {"title": "Robust accuracy by group", "text": (
            f"Robust accuracy is compared between groups and intersections at the reference eps{ref} (PGD, L∞) with the "
            "same intervals (Wilson score intervals for each group's robust accuracy, bootstrap intervals for the gaps), "
            "permutation tests, corrections for multiple comparisons and minimum group size as the group metrics.")},
    ]
    if params.get("blackbox") is not False:
        out.append({"title": "Black-box and transfer attacks", "text": (
            f"On a subsample of {count_or(n_bb)} images, attacks that see only the model's answers: Square (L∞ at the "
            f"reference eps, at most {count_or(queries, 'the configured number of')} queries per image) and HopSkipJump (L2, "
            "which looks for the smallest perturbation that flips an image; it counts as a success when that is within "
            f"the L2 reference eps{l2_ref}), both from the Adversarial Robustness Toolbox (ART); every query is counted by the "
            "auditor. A transfer attack trains a small substitute CNN on the model's own answers for a pool of "
            f"{count_or(params.get('pool'), 'other')} other probe images, attacks the substitute with PGD and replays the "
            "adversarial images on the model.")})
    out.append({"title": "Gradient masking", "text": (
        "A model can look robust because its gradients mislead the attacks rather than because it is robust. The "
        "check looks for the signs: input gradients that are zero, not finite or missing; outputs that change between "
        "identical calls; FGSM beating PGD; a black-box attack beating the white-box one; accuracy not falling as eps "
        "grows; an unbounded attack (eps 1, free to change every pixel) not bringing accuracy to about 0. Any one of "
        "them marks the robustness result unreliable.")})
    return out


def limitations(check: dict[str, Any]) -> list[str]:
    params = as_dict(check.get("params"))
    n, n_bb = params.get("n_images"), params.get("n_blackbox")
    text = ("Adversarial robustness: robust accuracy is an upper bound. It is what these attacks achieved, and a "
            "stronger or adaptive attack could lower it further; a model flagged for gradient masking may be much less "
            "robust than its numbers say.")
    if isinstance(n, int) and not isinstance(n, bool):
        text += f" The attacks ran on a sample of {count_or(n)} images, so small groups carry wide intervals."
    if params.get("blackbox") is not False:
        text += (f" The black-box attacks ran on a subsample of {count_or(n_bb)} images." if isinstance(n_bb, int) and
                 not isinstance(n_bb, bool) else " The black-box attacks ran on a subsample of the images.")
    return [text]


# -- comparisons: the gradient-masking flag --------------------------------------------------------------


def _find(rows: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return next((r for r in rows if r.get("key") == key), None)


def masking_flags(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gradient-masking flag (see the module docstring), or a note when black-box evidence is missing."""
    wb = _find(rows, f"{NAME}.overall.robust_accuracy")
    if wb is None or wb["change"] is None:
        return []
    gain = wb["change"]
    if not (gain >= MASKING_MIN_GAIN or (gain > EPS and wb["significant"])):
        return []
    reasons: list[str] = []
    lagging: list[dict[str, Any]] = []
    measured = 0
    for name, label in BLACKBOX_ROWS.items():
        r = _find(rows, f"{NAME}.overall.blackbox.{name}.robust_accuracy")
        if r is None or r["change"] is None:
            continue
        measured += 1
        if r["change"] < gain / 2:
            lagging.append({"attack": name, "before": r["before"]["value"], "after": r["after"]["value"],
                            "change": r["change"]})
            reasons.append(f"{label.split(' robust')[0]} robust accuracy changed by {signed(r['change'])} while "
                           f"white-box robust accuracy rose by {signed(gain)}")
    rel = _find(rows, f"{NAME}.overall.reliable")
    rel_dropped = rel is not None and rel["change"] is not None and rel["change"] < -EPS
    if rel_dropped:
        reasons.append("the robustness measurement went from reliable to unreliable (its own gradient-masking checks fired)")
    flags_row = _find(rows, f"{NAME}.overall.n_masking_flags")
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
                 "message": f"White-box robust accuracy rose by {signed(gain)}, but no black-box or transfer attack was "
                            "run on both models, so gradient masking cannot be ruled out.", "evidence": evidence}]
    return []
