"""Gradient-masking diagnosis: the audit's own robustness measurements, compared with what a working
attack must show, become :class:`Flag` s with messages for a compliance reader.

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security" (ICML 2018), and
Carlini et al., "On Evaluating Adversarial Robustness" (2019, the checklist of section 5). Public
through `auditor.attacks.masking`.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditor.validation import Interval, check, invalid

__all__ = [
    "FLAG_IDS",
    "UNBOUNDED_MAX_ACCURACY",
    "ZERO_GRADIENT_SHARE",
    "Flag",
    "diagnose",
    "reliable",
    "summary",
]

log = logging.getLogger(__name__)

ZERO_GRADIENT_SHARE = 0.05  # more zero-gradient images than this raises ``zero_gradients``
UNBOUNDED_MAX_ACCURACY = 0.1  # robust accuracy above this at the unbounded eps raises ``unbounded_not_zero``
SINGLE_STEP = ("fgsm",)  # attack names that take one gradient step (exempt from the monotonicity check)
ITERATIVE = "pgd"  # the white-box iterative attack the other attacks are compared with
_SLACK = 1e-9  # float noise: a gap of exactly ``tol`` is not "more than tol"

# Short names for the summary sentence, in the order flags are raised.
FLAG_IDS: dict[str, str] = {
    "not_differentiable": "the model cannot be differentiated",
    "zero_gradients": "zero gradients",
    "nonfinite_gradients": "NaN or infinite gradients",
    "nondeterministic_outputs": "random outputs",
    "single_step_beats_iterative": "the one-step attack beat the iterative one",
    "blackbox_beats_whitebox": "a black-box attack beat the white-box one",
    "accuracy_not_decreasing": "accuracy rose with the perturbation budget",
    "unbounded_not_zero": "an unlimited attack did not win",
}


@dataclass(frozen=True)
class Flag:
    """One sign that the robustness measurement cannot be trusted.

    ``id`` is one of :data:`FLAG_IDS`; ``message`` says in plain words what was seen and what it
    means; ``evidence`` holds the numbers behind it (JSON-ready: floats, ints, strings, lists).
    """

    id: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The flag as a JSON-ready dict."""
        return {"id": self.id, "message": self.message, "evidence": dict(self.evidence)}


def _eps_text(e: float) -> str:
    """8/255 reads as "8/255" (the evidence keeps the float); other budgets as plain numbers."""
    k = e * 255
    if e > 0 and abs(k - round(k)) < 1e-6 and round(k) < 255:
        return f"{round(k)}/255"
    return f"{e:.3g}"


def _pct(share: float) -> str:
    """A share as a percentage that never rounds a non-zero share to 0%."""
    return f"{share:.0%}" if share == 0 or share >= 0.1 else f"{share:.1%}" if share >= 0.001 else "under 0.1%"


def _acc(a: float) -> str:
    return f"{a:.2f}"


def _check_accuracy(value: Any, name: str) -> float:
    """A robust accuracy: a float in [0, 1]."""
    return check(value, Interval(float, 0, 1), param=name, caller="diagnose")


def _check_eps_value(value: Any, name: str) -> float:
    """A perturbation budget: a float >= 0."""
    return check(value, Interval(float, 0, None), param=name, caller="diagnose")


def _curves(eps: Sequence[float], accuracy_by_eps: Mapping[str, Sequence[float]]) -> dict[str, list[tuple[float, float]]]:
    """attack name (lower case) -> [(eps, accuracy)] sorted by eps."""
    if isinstance(eps, (str, bytes)) or not isinstance(eps, Sequence):
        raise invalid("eps", "diagnose", "a list of perturbation budgets", eps)
    budgets = [_check_eps_value(e, "eps") for e in eps]
    if not isinstance(accuracy_by_eps, Mapping):
        raise invalid("accuracy_by_eps", "diagnose", "a dict: attack name -> robust accuracy per eps", accuracy_by_eps)
    curves: dict[str, list[tuple[float, float]]] = {}
    for name, accs in accuracy_by_eps.items():
        key = str(name).lower()
        if key in curves:
            raise invalid("accuracy_by_eps", "diagnose", "a dict with one entry per attack name (case-insensitive)", name)
        if isinstance(accs, (str, bytes)) or not isinstance(accs, Sequence) or len(accs) != len(budgets):
            raise invalid("accuracy_by_eps", "diagnose",
                       f"a dict whose lists have one accuracy per eps ({len(budgets)}); the entry {name!r} does not",
                       accs)
        curves[key] = sorted(zip(budgets, (_check_accuracy(a, f"accuracy_by_eps[{name!r}]") for a in accs), strict=True),
                             key=lambda pair: pair[0])
    return curves


def _single_step(curves: dict[str, list[tuple[float, float]]], tol: float) -> Flag | None:
    if ITERATIVE not in curves:
        return None
    iterative = curves[ITERATIVE]
    cases = []
    for name in SINGLE_STEP:
        for (e, a1), (_, ai) in zip(curves.get(name, []), iterative, strict=False):
            if a1 < ai - tol - _SLACK:
                cases.append({"attack": name, "eps": e, "single_step_accuracy": a1, "iterative_accuracy": ai,
                              "gap": ai - a1})
    if not cases:
        return None
    worst = max(cases, key=lambda c: c["gap"])
    more = f" (and at {len(cases) - 1} other budget{'s' if len(cases) > 2 else ''})" if len(cases) > 1 else ""
    message = (f"The one-step attack ({worst['attack'].upper()}) fooled the model more often than the iterative attack "
               f"({ITERATIVE.upper()}) at eps {_eps_text(worst['eps'])}{more} (robust accuracy "
               f"{_acc(worst['single_step_accuracy'])} vs {_acc(worst['iterative_accuracy'])}): the iterative attack, "
               "which should be at least as strong, is being misled, typically by masked gradients, so the robustness "
               "numbers overstate how robust the model is.")
    return Flag("single_step_beats_iterative", message, {**worst, "tol": tol, "cases": cases})


def _blackbox(curves: dict[str, list[tuple[float, float]]], blackbox: Mapping[str, Any], tol: float) -> Flag | None:
    if not isinstance(blackbox, Mapping):
        raise invalid("blackbox_accuracy", "diagnose", "None or a dict: attack name -> (eps, robust accuracy)", blackbox)
    iterative = curves.get(ITERATIVE, [])
    cases = []
    for name, pair in blackbox.items():
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise invalid("blackbox_accuracy", "diagnose", "a dict whose values are (eps, robust accuracy) pairs", pair)
        e = _check_eps_value(pair[0], f"blackbox_accuracy[{name!r}] eps")
        a = _check_accuracy(pair[1], f"blackbox_accuracy[{name!r}] accuracy")
        # A white-box attack with at least the same budget should do at least as well as any black-box one.
        larger = [(ew, aw) for ew, aw in iterative if ew >= e - 1e-9 * max(1.0, e) and a < aw - tol - _SLACK]
        if larger:
            ew, aw = max(larger, key=lambda pw: (pw[1] - a, -pw[0]))
            cases.append({"attack": str(name), "eps": e, "blackbox_accuracy": a, "whitebox_eps": ew,
                          "whitebox_accuracy": aw, "gap": aw - a})
    if not cases:
        return None
    worst = max(cases, key=lambda c: c["gap"])
    budget = ("at the same eps" if abs(worst["whitebox_eps"] - worst["eps"]) <= 1e-9 * max(1.0, worst["eps"])
              else f"at the larger eps {_eps_text(worst['whitebox_eps'])}")
    more = f" ({len(cases) - 1} other black-box result{'s' if len(cases) > 2 else ''} did too)" if len(cases) > 1 else ""
    message = (f"The black-box attack {worst['attack']}, which never sees the model's gradients, fooled the model more "
               f"often at eps {_eps_text(worst['eps'])} (robust accuracy {_acc(worst['blackbox_accuracy'])}) than the "
               f"white-box attack {ITERATIVE.upper()}, which follows them, {budget} (robust accuracy "
               f"{_acc(worst['whitebox_accuracy'])}){more}: the gradients are misleading the white-box attack (gradient "
               "masking), so the white-box robustness numbers overstate how robust the model is.")
    return Flag("blackbox_beats_whitebox", message, {**worst, "tol": tol, "cases": cases})


def _not_decreasing(curves: dict[str, list[tuple[float, float]]], clean: float, tol: float) -> Flag | None:
    cases = []
    for name, curve in curves.items():
        if name in SINGLE_STEP:  # one step can overshoot at large eps: only iterative attacks must be monotone
            continue
        for e, a in curve:
            if e <= 0:
                continue
            # the lowest accuracy at a strictly smaller budget; no attack (eps 0, the clean accuracy) first
            lower = [(0.0, clean)] + [(e0, a0) for e0, a0 in curve if e0 < e]
            e0, a0 = min(lower, key=lambda pair: pair[1])
            if a > a0 + tol + _SLACK:
                cases.append({"attack": name, "eps_low": e0, "accuracy_low": a0, "eps_high": e,
                              "accuracy_high": a, "rise": a - a0})
    if not cases:
        return None
    worst = max(cases, key=lambda c: c["rise"])
    low = ("than with no attack at all" if worst["eps_low"] == 0
           else f"than at the smaller eps {_eps_text(worst['eps_low'])}")
    message = (f"Under the {worst['attack'].upper()} attack the model was more accurate at eps "
               f"{_eps_text(worst['eps_high'])} (robust accuracy {_acc(worst['accuracy_high'])}) {low} "
               f"({_acc(worst['accuracy_low'])}): a larger perturbation budget can only help a working attack, so the "
               "attack is failing to find adversarial examples it should find (often because of masked gradients), "
               "and the robustness numbers overstate how robust the model is.")
    return Flag("accuracy_not_decreasing", message, {**worst, "clean_accuracy": clean, "tol": tol, "cases": cases})


def _gradient_flags(gradients: Mapping[str, Any]) -> list[Flag]:
    if not isinstance(gradients, Mapping):
        raise invalid("gradients", "diagnose", "None or the dict returned by gradient_health", gradients)
    if gradients.get("differentiable") is False:
        reason = gradients.get("reason") or "no reason given"
        return [Flag("not_differentiable",
                     f"The model could not be differentiated with respect to its input ({reason}). White-box attacks "
                     "need these gradients, so their robustness numbers say nothing about how robust the model is; "
                     "rely on black-box attacks, or fix the model wrapper so that gradients reach the input.",
                     {"reason": reason})]
    flags = []
    zero = gradients.get("zero_share")
    if zero is not None and float(zero) > ZERO_GRADIENT_SHARE:
        flags.append(Flag("zero_gradients",
                          f"{_pct(float(zero))} of the images had an input gradient that is exactly zero (more than "
                          f"{ZERO_GRADIENT_SHARE:.0%}): gradient-based attacks have no direction to move in, typically "
                          "because of a non-differentiable step in the model (rounding, quantisation, thresholding) or "
                          "saturated outputs, so the white-box robustness numbers overstate how robust the model is. "
                          "Black-box attacks, or a differentiable stand-in for that step (BPDA), give a fair measurement.",
                          {"zero_share": float(zero), "threshold": ZERO_GRADIENT_SHARE}))
    nonfinite = gradients.get("nonfinite_share")
    if nonfinite is not None and float(nonfinite) > 0:
        flags.append(Flag("nonfinite_gradients",
                          f"{_pct(float(nonfinite))} of the images had NaN or infinite input gradients, typically from a "
                          "numerically unstable operation in the model (square root or logarithm of a non-positive "
                          "value, division by zero): gradient-based attacks cannot move from these images, so the "
                          "white-box robustness numbers overstate how robust the model is.",
                          {"nonfinite_share": float(nonfinite)}))
    return flags


def _determinism_flag(determinism: Mapping[str, Any]) -> Flag | None:
    if not isinstance(determinism, Mapping) or "deterministic" not in determinism:
        raise invalid("determinism", "diagnose", "None or the dict returned by output_determinism", determinism)
    if determinism["deterministic"]:
        return None
    diff = float(determinism.get("max_abs_diff", math.nan))
    changes = determinism.get("prediction_changes")
    moved = ("no predicted class changed" if not changes
             else f"{_pct(float(changes))} of the predicted classes changed")
    return Flag("nondeterministic_outputs",
                f"The model gave different outputs for the same images on repeated runs (largest logit difference "
                f"{diff:.3g}; {moved}): its forward pass is random (dropout left on, random input transforms), which "
                "misleads gradient attacks that do not average over the randomness (EOT), so the robustness numbers "
                "may overstate how robust the model is.",
                {"max_abs_diff": diff, "prediction_changes": None if changes is None else float(changes)})


def diagnose(
    *,
    eps: Sequence[float],
    accuracy_by_eps: Mapping[str, Sequence[float]],
    clean_accuracy: float,
    blackbox_accuracy: Mapping[str, tuple[float, float]] | None = None,
    unbounded_accuracy: float | None = None,
    gradients: Mapping[str, Any] | None = None,
    determinism: Mapping[str, Any] | None = None,
    tol: float = 0.02,
) -> list[Flag]:
    """The gradient-masking flags raised by the audit's own measurements (empty list: no sign).

    ``accuracy_by_eps``: attack name (case-insensitive; ``"fgsm"`` and ``"pgd"`` are the ones
    compared) -> robust accuracy at each of ``eps``. ``blackbox_accuracy``: attack -> (eps, robust
    accuracy). ``unbounded_accuracy``: robust accuracy at a budget that covers the whole image.
    ``gradients``/``determinism``: the dicts of :func:`gradient_health`/:func:`output_determinism`.
    A None input skips its flags. A comparison raises a flag only when the gap is more than ``tol``
    (sampling noise):

    - ``not_differentiable``, ``zero_gradients`` (share > 0.05), ``nonfinite_gradients`` (share > 0);
    - ``nondeterministic_outputs``;
    - ``single_step_beats_iterative``: FGSM accuracy < PGD accuracy - tol at some eps;
    - ``blackbox_beats_whitebox``: a black-box accuracy at eps e < PGD accuracy - tol at some eps >= e;
    - ``accuracy_not_decreasing``: an iterative attack's accuracy (every attack but FGSM) exceeds by
      more than tol its lowest accuracy at a smaller eps, ``clean_accuracy`` standing at eps 0;
    - ``unbounded_not_zero``: ``unbounded_accuracy`` > 0.1.

    Each flag names its worst case; ``evidence["cases"]`` lists all of them.
    """
    tol = check(tol, Interval(float, 0, 1, closed="left"), param="tol", caller="diagnose")
    clean = _check_accuracy(clean_accuracy, "clean_accuracy")
    curves = _curves(eps, accuracy_by_eps)
    flags: list[Flag] = []
    if gradients is not None:
        flags.extend(_gradient_flags(gradients))
    if determinism is not None and (flag := _determinism_flag(determinism)) is not None:
        flags.append(flag)
    if (flag := _single_step(curves, tol)) is not None:
        flags.append(flag)
    if blackbox_accuracy is not None and (flag := _blackbox(curves, blackbox_accuracy, tol)) is not None:
        flags.append(flag)
    if (flag := _not_decreasing(curves, clean, tol)) is not None:
        flags.append(flag)
    if unbounded_accuracy is not None:
        unbounded = _check_accuracy(unbounded_accuracy, "unbounded_accuracy")
        if unbounded > UNBOUNDED_MAX_ACCURACY:
            flags.append(Flag(
                "unbounded_not_zero",
                f"With a perturbation budget large enough to change every pixel completely, the attack still left a "
                f"robust accuracy of {_acc(unbounded)} (above {_acc(UNBOUNDED_MAX_ACCURACY)}): an attack free to "
                "replace the whole image should always win, so the attack is not working on this model (typically "
                "masked or broken gradients) and the robustness numbers cannot be trusted.",
                {"unbounded_accuracy": unbounded, "threshold": UNBOUNDED_MAX_ACCURACY}))
    return flags


def reliable(flags: Sequence[Flag]) -> bool:
    """True when no flag was raised: the robustness numbers can be taken at face value."""
    return len(flags) == 0


def summary(flags: Sequence[Flag]) -> str:
    """One plain sentence for the report."""
    if not flags:
        return ("No sign of gradient masking was found, so the robustness numbers can be taken at face value: "
                "the attacks behaved as a working attack should.")
    seen = list(dict.fromkeys(f.id for f in flags))
    names = [FLAG_IDS.get(i, i.replace("_", " ")) for i in seen]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    count = f"{len(seen)} sign{'s' if len(seen) > 1 else ''}"
    return (f"The robustness measurement shows {count} of gradient masking ({listed}), so the robustness numbers "
            "likely overstate how robust the model is and should not be relied on without a stronger evaluation.")
