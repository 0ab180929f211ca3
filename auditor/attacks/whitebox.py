"""White-box gradient attacks in pixel space: FGSM, PGD, robust-accuracy curves and minimal eps.

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples" (ICLR 2015): FGSM,
one step along the sign (linf) or the normalised gradient (l2) of the cross-entropy loss.
Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to Adversarial
Attacks" (ICLR 2018): PGD, the same step iterated with a projection onto the eps ball and the
[0, 1] box after each step, from a random start in the ball, with restarts.

Our own implementation. The model is frozen for the call (eval mode, no parameter gradients), so
a step costs one forward and one input-only backward. Every image runs every step (no early stop:
the cost is known in advance), and the best iterate so far is kept per image: the first
adversarial one, else the one with the lowest margin (logit of ``y`` minus the best other logit).

Shape: x (N, C, H, W) float in [0, 1] on the model's device; y (N,) int64, the labels to attack
away from; eps a float or a per-image (N,) tensor (linf: pixel units in [0, 1]; l2: the L2 norm of
the perturbation over all pixels). Results stay on x's device, except ``success`` (CPU) and the
numpy arrays of the curve and minimal-eps results.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from auditor.attacks._args import NORMS, Cancel, Progress, check_callbacks, check_norm
from auditor.attacks._curve import ATTACKS, CurveResult, MinimalEpsResult, minimal_eps, robust_accuracy_curve
from auditor.attacks._pgd import (LIBRARY, STEP_FACTOR, Model, check_common, check_eps_per_image, check_pgd, chunks,
                                  clean_wrong, direction, fgsm_all, grad_and_logits, pgd_all, project, settings)
from auditor.frozen import frozen

__all__ = [
    "ATTACKS",
    "LIBRARY",
    "NORMS",
    "AttackResult",
    "CurveResult",
    "MinimalEpsResult",
    "fgsm",
    "input_gradients",
    "minimal_eps",
    "pgd",
    "robust_accuracy_curve",
]

log = logging.getLogger(__name__)

# The step maths, for adversarial training (auditor.mitigate), which takes PGD steps inside its own loop.
_STEP_FACTOR, _direction, _project = STEP_FACTOR, direction, project


@dataclass
class AttackResult:
    """Adversarial images from :func:`fgsm` or :func:`pgd`.

    ``x_adv`` (N, C, H, W) on x's device, inside the eps ball and [0, 1]; ``success`` (N,) bool on
    CPU: the model's prediction on ``x_adv`` is not ``y`` (an image already misclassified counts,
    with ``x_adv`` = x). ``forward_passes``/``backward_passes`` count images through the model.
    """

    x_adv: Tensor
    success: Tensor
    forward_passes: int
    backward_passes: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if self.success.numel() else 0.0


def _is_zero(eps: float | Tensor) -> bool:
    if isinstance(eps, Tensor):
        return eps.numel() == 0 or float(eps.max()) == 0.0
    return eps == 0.0


def _clean_result(model: Model, x: Tensor, y: Tensor, batch_size: int, stage: str, progress: Progress,
                  cancel: Cancel, checked: int, setup: dict[str, Any]) -> AttackResult:
    wrong = clean_wrong(model, x, y, batch_size, stage, progress, cancel)
    return AttackResult(x.clone(), wrong, checked + x.shape[0], 0, setup)


def fgsm(model: Model, x: Tensor, y: Tensor | Sequence[int], eps: float | Tensor, *, norm: str = "linf",
         batch_size: int = 256, progress: Progress = None, cancel: Cancel = None) -> AttackResult:
    """One gradient step of the cross-entropy loss of ``y``: ``eps * sign(g)`` (linf) or
    ``eps * g / ||g||_2`` per image (l2; a zero gradient makes no step), clipped to [0, 1].

    Costs 2 forwards and 1 backward per image. An image already misclassified keeps x as its
    adversarial image.
    """
    caller = "fgsm"
    norm = check_norm(norm, caller)
    check_callbacks(progress, cancel, caller)
    with frozen(model):
        x, y_t, checked = check_common(model, x, y, caller, batch_size)
        eps_v = check_eps_per_image(eps, caller, norm, x.shape[0], x.device)
        setup = settings("fgsm", norm, eps_v, steps=1, step_size=eps_v if not isinstance(eps_v, Tensor) else "eps",
                         restarts=1, random_start=False)
        if _is_zero(eps_v):
            return _clean_result(model, x, y_t, batch_size, caller, progress, cancel, checked, setup)
        x_adv, success, f, b = fgsm_all(model, x, y_t, eps_v, norm, batch_size, progress, cancel, caller)
    return AttackResult(x_adv, success, checked + f, b, setup)


def pgd(model: Model, x: Tensor, y: Tensor | Sequence[int], eps: float | Tensor, *, norm: str = "linf",
        steps: int = 10, step_size: float | None = None, random_start: bool = True, restarts: int = 1,
        seed: int = 0, keep: str = "first", batch_size: int = 256, progress: Progress = None,
        cancel: Cancel = None) -> AttackResult:
    """Projected gradient descent (Madry et al.) on the cross-entropy loss of ``y``.

    ``eps``: a float or a per-image (N,) tensor. ``step_size`` defaults to ``2.5 * eps / steps``
    (per image). Each restart starts uniformly in the ball (``random_start``) and runs all
    ``steps``; per image the first adversarial iterate found is kept, else the lowest-margin one
    (``keep="first"``), or the lowest-margin iterate of all, the most confidently misclassified
    (``keep="strongest"``: what transfers best to another model, see `auditor.attacks.transfer`).
    Costs ``restarts * (steps + 1)`` forwards (+1 for x itself with a random start) and
    ``restarts * steps`` backwards per image. ``eps`` = 0 returns x, success = misclassified.
    ``progress(stage, done, total)`` and ``cancel()`` are called between chunks of ``batch_size``.
    """
    caller = "pgd"
    cfg = check_pgd(caller, norm, steps, step_size, random_start, restarts, seed, keep)
    check_callbacks(progress, cancel, caller)
    with frozen(model):
        x, y_t, checked = check_common(model, x, y, caller, batch_size)
        eps_v = check_eps_per_image(eps, caller, cfg.norm, x.shape[0], x.device)
        setup = settings("pgd", cfg.norm, eps_v, steps=cfg.steps,
                         step_size=cfg.step_size if cfg.step_size is not None else f"{STEP_FACTOR} * eps / steps",
                         restarts=cfg.restarts, random_start=cfg.random_start, seed=int(seed),
                         **({"keep": cfg.keep} if cfg.keep != "first" else {}))
        if _is_zero(eps_v):
            return _clean_result(model, x, y_t, batch_size, caller, progress, cancel, checked, setup)
        x_adv, success, f, b = pgd_all(model, x, y_t, eps_v, cfg, seed, batch_size, progress, cancel, caller)
    return AttackResult(x_adv, success, checked + f, b, setup)


def input_gradients(model: Model, x: Tensor, y: Tensor | Sequence[int], batch_size: int = 256) -> Tensor:
    """Gradient of each image's cross-entropy loss of ``y`` wrt its pixels: (N, C, H, W) on x's device."""
    caller = "input_gradients"
    with frozen(model):
        x, y_t, _ = check_common(model, x, y, caller, batch_size)
        out = torch.empty_like(x)
        for start, stop in chunks(x.shape[0], batch_size, caller, None, None):
            out[start:stop], _ = grad_and_logits(model, x[start:stop], y_t[start:stop])
    return out
