"""Gradient-masking diagnostics: can the audit's own robustness numbers be trusted?

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security" (ICML 2018), and
Carlini et al., "On Evaluating Adversarial Robustness" (2019, the checklist of section 5): a defence
that breaks, shatters or randomises the gradient makes gradient-based attacks fail without making
the model robust. The tell-tale signs checked here:

- the model's input gradients are all zero, NaN/inf, or cannot be computed (:func:`gradient_health`);
- the model's output is random from one call to the next (:func:`output_determinism`);
- the attack results are inconsistent (:func:`diagnose`): a one-step attack beats the iterative one,
  a black-box attack beats the white-box one, accuracy rises with the budget, or an attack free to
  change the whole image does not win.

Our own implementation. Each sign becomes a :class:`Flag` whose message is written for a compliance
reader; :func:`reliable` and :func:`summary` turn the flags into the report's verdict.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from auditor.errors import AuditCancelled, UsageError
from auditor.frozen import frozen

__all__ = [
    "FLAG_IDS",
    "UNBOUNDED_MAX_ACCURACY",
    "ZERO_GRADIENT_NORM",
    "ZERO_GRADIENT_SHARE",
    "Flag",
    "diagnose",
    "gradient_health",
    "output_determinism",
    "reliable",
    "summary",
]

ZERO_GRADIENT_NORM = 1e-12  # an input gradient with a smaller L2 norm counts as zero
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


# --------------------------------------------------------------------------------------------- model probes


def _bad(param: str, caller: str, constraint: str, value: Any) -> UsageError:
    return UsageError(f"The {param!r} parameter of {caller} must be {constraint}. Got {value!r} instead.")


@contextmanager
def _frozen(model: Callable[[Tensor], Tensor], device: torch.device) -> Iterator[None]:
    """`frozen`, with the random state forked too: the model and the caller's RNG are left as found."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with frozen(model), torch.random.fork_rng(devices=cuda):
        yield


def _check_images(x: Any, caller: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point() or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise _bad("x", caller, "a non-empty float tensor (N, C, H, W) of images in [0, 1]", shape)
    return x


def _check_batch_size(batch_size: Any, caller: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise _bad("batch_size", caller, "an int >= 1", batch_size)
    return batch_size


def _check_logits(logits: Any, rows: int, caller: str) -> Tensor:
    if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != rows or logits.shape[1] < 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise UsageError(f"The model given to {caller} must return logits (N, C) with C >= 2 classes for N images. "
                         f"Got {shape} for {rows} images instead.")
    return logits


def _tick(stage: str, done: int, total: int, progress: Callable[[str, int, int], None] | None,
          cancel: Callable[[], bool] | None) -> None:
    if progress is not None:
        progress(stage, done, total)
    if done < total and cancel is not None and cancel():
        raise AuditCancelled(f"audit cancelled during {stage}")


def _not_differentiable(reason: str, backward: int, forward: int) -> dict[str, Any]:
    return {"zero_share": None, "nonfinite_share": None, "differentiable": False, "reason": reason,
            "backward_passes": backward, "forward_passes": forward}


def gradient_health(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = 256,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Input gradients of the cross-entropy loss, checked image by image.

    Returns ``{"zero_share", "nonfinite_share", "differentiable", "reason", "backward_passes",
    "forward_passes"}``: the share of images whose gradient has an L2 norm below
    :data:`ZERO_GRADIENT_NORM` (all zero) and the share with any NaN/inf (counted apart from the
    zeros). When the gradient cannot be computed at all (the forward runs under ``torch.no_grad``,
    detaches its output, leaves torch, or a backward raises), ``differentiable`` is False,
    ``reason`` says why, and the two shares are None; no exception escapes for that case.

    The model runs in eval mode with its parameters frozen and the random state forked; it is left
    exactly as found (training flag of every submodule, ``requires_grad`` of every parameter). The
    loss is summed per image, so a gradient does not depend on the chunking (``batch_size``);
    ``progress("gradient health", done, total)`` and ``cancel()`` are checked between chunks.
    """
    caller = "gradient_health"
    x = _check_images(x, caller)
    batch_size = _check_batch_size(batch_size, caller)
    y_t = torch.as_tensor(y)
    if y_t.ndim != 1 or y_t.shape[0] != x.shape[0] or y_t.is_floating_point() or y_t.dtype == torch.bool:
        raise _bad("y", caller, f"an integer tensor of labels of shape ({x.shape[0]},)", tuple(y_t.shape))
    y_t = y_t.long().to(x.device)
    n = x.shape[0]
    zero = nonfinite = forward = backward = 0
    with _frozen(model, x.device), torch.enable_grad():
        for start in range(0, n, batch_size):
            xb = x[start:start + batch_size].detach().clone().requires_grad_(True)
            yb = y_t[start:start + batch_size]
            logits = _check_logits(model(xb), xb.shape[0], caller)
            forward += xb.shape[0]
            if int(yb.min()) < 0 or int(yb.max()) >= logits.shape[1]:
                raise _bad("y", caller, f"class indices in [0, {logits.shape[1] - 1}]", yb.tolist()[:10])
            if not logits.requires_grad:
                return _not_differentiable(
                    "the model's output is not connected to its input in the autograd graph (it has no grad_fn): "
                    "the forward pass probably runs under torch.no_grad or inference_mode, detaches its output, "
                    "or goes through numpy", backward, forward)
            loss = F.cross_entropy(logits.float(), yb, reduction="sum")
            try:
                (grad,) = torch.autograd.grad(loss, xb, allow_unused=True)
            except (RuntimeError, NotImplementedError, TypeError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                return _not_differentiable(f"the backward pass raised {type(err).__name__}: {first}", backward, forward)
            if grad is None:
                return _not_differentiable(
                    "the model's output does not depend on its input in the autograd graph "
                    "(the input is replaced or detached inside the forward pass)", backward, forward)
            backward += xb.shape[0]
            flat = grad.detach().flatten(1).double()
            finite = torch.isfinite(flat).all(1)
            nonfinite += int((~finite).sum())
            zero += int((finite & (flat.norm(dim=1) < ZERO_GRADIENT_NORM)).sum())
            _tick("gradient health", min(n, start + batch_size), n, progress, cancel)
    return {"zero_share": zero / n, "nonfinite_share": nonfinite / n, "differentiable": True, "reason": None,
            "backward_passes": backward, "forward_passes": forward}


def _max_abs_diff(a: Tensor, b: Tensor) -> float:
    """Largest |a - b|; NaN in the same place counts as equal, a NaN/inf mismatch as inf."""
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    diff = torch.where(same, torch.zeros_like(a), (a - b).abs())
    return float(torch.nan_to_num(diff, nan=math.inf).max()) if diff.numel() else 0.0


def output_determinism(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    repeats: int = 2,
    batch_size: int = 256,
    atol: float = 1e-5,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run the model ``repeats`` times on the same images (eval mode) and compare the outputs.

    Returns ``{"deterministic", "max_abs_diff", "prediction_changes", "repeats", "forward_passes"}``:
    the largest absolute logit difference from the first run, the share of images whose predicted
    class changed in any repeat, and ``deterministic`` = ``max_abs_diff <= atol`` (``atol`` absorbs
    the float noise of non-deterministic GPU kernels). Dropout left on inside the forward or random
    input transforms make it False. The model is left exactly as found, and the caller's random
    state is not consumed. Each chunk of ``batch_size`` images is run ``repeats`` times in a row.
    """
    caller = "output_determinism"
    x = _check_images(x, caller)
    batch_size = _check_batch_size(batch_size, caller)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
        raise _bad("repeats", caller, "an int >= 2 (the runs are compared with the first)", repeats)
    if not (isinstance(atol, (int, float)) and math.isfinite(atol) and atol >= 0):
        raise _bad("atol", caller, "a finite float >= 0", atol)
    n = x.shape[0]
    worst, changed, forward = 0.0, 0, 0
    with _frozen(model, x.device), torch.no_grad():
        for start in range(0, n, batch_size):
            xb = x[start:start + batch_size]
            first = _check_logits(model(xb), xb.shape[0], caller).detach()
            moved = torch.zeros(xb.shape[0], dtype=torch.bool, device=first.device)
            for _ in range(repeats - 1):
                again = _check_logits(model(xb), xb.shape[0], caller).detach()
                if again.shape != first.shape:
                    raise UsageError(f"The model given to {caller} returned {tuple(first.shape)} then "
                                     f"{tuple(again.shape)} for the same images; it must return the same shape.")
                worst = max(worst, _max_abs_diff(first, again))
                moved |= first.argmax(1) != again.argmax(1)
            forward += xb.shape[0] * repeats
            changed += int(moved.sum())
            _tick("output determinism", min(n, start + batch_size), n, progress, cancel)
    return {"deterministic": worst <= atol, "max_abs_diff": worst, "prediction_changes": changed / n,
            "repeats": repeats, "forward_passes": forward}


# --------------------------------------------------------------------------------------------- diagnosis


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise _bad(name, "diagnose", "an accuracy in [0, 1]", value)
    return float(value)


def _check_eps_value(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _bad(name, "diagnose", "a finite eps >= 0", value)
    return float(value)


def _curves(eps: Sequence[float], accuracy_by_eps: Mapping[str, Sequence[float]]) -> dict[str, list[tuple[float, float]]]:
    """attack name (lower case) -> [(eps, accuracy)] sorted by eps."""
    if isinstance(eps, (str, bytes)) or not isinstance(eps, Sequence):
        raise _bad("eps", "diagnose", "a list of perturbation budgets", eps)
    budgets = [_check_eps_value(e, "eps") for e in eps]
    if not isinstance(accuracy_by_eps, Mapping):
        raise _bad("accuracy_by_eps", "diagnose", "a dict: attack name -> robust accuracy per eps", accuracy_by_eps)
    curves: dict[str, list[tuple[float, float]]] = {}
    for name, accs in accuracy_by_eps.items():
        key = str(name).lower()
        if key in curves:
            raise _bad("accuracy_by_eps", "diagnose", "a dict with one entry per attack name (case-insensitive)", name)
        if isinstance(accs, (str, bytes)) or not isinstance(accs, Sequence) or len(accs) != len(budgets):
            raise _bad("accuracy_by_eps", "diagnose",
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
        raise _bad("blackbox_accuracy", "diagnose", "None or a dict: attack name -> (eps, robust accuracy)", blackbox)
    iterative = curves.get(ITERATIVE, [])
    cases = []
    for name, pair in blackbox.items():
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise _bad("blackbox_accuracy", "diagnose", "a dict whose values are (eps, robust accuracy) pairs", pair)
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
        raise _bad("gradients", "diagnose", "None or the dict returned by gradient_health", gradients)
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
        raise _bad("determinism", "diagnose", "None or the dict returned by output_determinism", determinism)
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
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0.0 <= float(tol) < 1.0:
        raise _bad("tol", "diagnose", "a float in [0, 1)", tol)
    tol = float(tol)
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
