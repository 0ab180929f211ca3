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

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from auditor.attacks._args import (Cancel, Progress, check_batch_size, check_callbacks, check_classes,
                                   check_image_shape, check_int, check_labels, check_logits)
from auditor.attacks._diagnosis import (FLAG_IDS, UNBOUNDED_MAX_ACCURACY, ZERO_GRADIENT_SHARE, Flag, diagnose, reliable,
                                        summary)
from auditor.errors import AuditCancelled
from auditor.frozen import frozen
from auditor.validation import Interval, check, invalid

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

log = logging.getLogger(__name__)

ZERO_GRADIENT_NORM = 1e-12  # an input gradient with a smaller L2 norm counts as zero


@contextmanager
def _frozen(model: Callable[[Tensor], Tensor], device: torch.device) -> Iterator[None]:
    """`frozen`, with the random state forked too: the model and the caller's RNG are left as found."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with frozen(model), torch.random.fork_rng(devices=cuda):
        yield


def _tick(stage: str, done: int, total: int, progress: Progress, cancel: Cancel) -> None:
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
    progress: Progress = None,
    cancel: Cancel = None,
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
    x = check_image_shape(x, caller, allow_empty=False)
    batch_size = check_batch_size(batch_size, caller)
    check_callbacks(progress, cancel, caller)
    y_t = check_labels(y, x.shape[0], caller).to(x.device)
    n = x.shape[0]
    zero = nonfinite = forward = backward = 0
    with _frozen(model, x.device), torch.enable_grad():
        for start in range(0, n, batch_size):
            xb = x[start:start + batch_size].detach().clone().requires_grad_(True)
            yb = y_t[start:start + batch_size]
            logits = check_logits(model(xb), xb.shape[0], caller)
            forward += xb.shape[0]
            check_classes(yb, int(logits.shape[1]), caller)
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
    progress: Progress = None,
    cancel: Cancel = None,
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
    x = check_image_shape(x, caller, allow_empty=False)
    batch_size = check_batch_size(batch_size, caller)
    repeats = check_int(repeats, "repeats", caller, 2)  # the runs are compared with the first
    atol = check(atol, Interval(float, 0, None), param="atol", caller=caller)
    check_callbacks(progress, cancel, caller)
    n = x.shape[0]
    worst, changed, forward = 0.0, 0, 0
    with _frozen(model, x.device), torch.no_grad():
        for start in range(0, n, batch_size):
            xb = x[start:start + batch_size]
            first = check_logits(model(xb), xb.shape[0], caller).detach()
            moved = torch.zeros(xb.shape[0], dtype=torch.bool, device=first.device)
            for _ in range(repeats - 1):
                again = check_logits(model(xb), xb.shape[0], caller).detach()
                if again.shape != first.shape:
                    raise invalid("model", caller, "a callable returning logits of one shape for the same images",
                                  f"{tuple(first.shape)} then {tuple(again.shape)}")
                worst = max(worst, _max_abs_diff(first, again))
                moved |= first.argmax(1) != again.argmax(1)
            forward += xb.shape[0] * repeats
            changed += int(moved.sum())
            _tick("output determinism", min(n, start + batch_size), n, progress, cancel)
    return {"deterministic": worst <= atol, "max_abs_diff": worst, "prediction_changes": changed / n,
            "repeats": repeats, "forward_passes": forward}
