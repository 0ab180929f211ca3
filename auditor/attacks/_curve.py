"""Robust accuracy per eps, and the smallest eps that flips each image: PGD (or FGSM) run over a budget
grid, and PGD bisected on a per-image eps.

Public through `auditor.attacks.whitebox`, whose docstring states the contract. Each eps of a curve is
attacked on its own (Carlini et al., "On Evaluating Adversarial Robustness", 2019: a curve that rises
with eps is a sign of gradient masking, so nothing is carried from one eps to the next).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from auditor.attacks._args import Cancel, Progress, check_callbacks, check_eps, check_positive
from auditor.attacks._pgd import (STEP_FACTOR, Model, check_common, check_pgd, clean_wrong, fgsm_all, flat_norm,
                                  pgd_all, settings)
from auditor.frozen import frozen
from auditor.validation import Options, Satisfies, check

__all__ = ["ATTACKS", "CurveResult", "MinimalEpsResult", "minimal_eps", "robust_accuracy_curve"]

log = logging.getLogger(__name__)

ATTACKS = ("pgd", "fgsm")


def _is_grid(eps_grid: Any) -> bool:
    return not isinstance(eps_grid, (str, bytes)) and isinstance(eps_grid, Sequence | np.ndarray) and len(eps_grid) > 0


@dataclass
class CurveResult:
    """Robust accuracy per eps from :func:`robust_accuracy_curve`.

    ``correct`` (E, N) bool: image n is still predicted as its label at ``eps[e]`` (the order of
    the grid given). Each eps is attacked on its own, so the curve is not forced to decrease: a
    rise with eps means the attack failed where it should have succeeded (gradient masking).
    """

    correct: np.ndarray
    eps: list[float]
    forward_passes: int
    backward_passes: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def robust_accuracy(self) -> np.ndarray:
        """(E,) share of images still predicted as their label, per eps."""
        if self.correct.shape[1] == 0:
            return np.zeros(self.correct.shape[0])
        return self.correct.mean(axis=1)


@dataclass
class MinimalEpsResult:
    """Smallest eps found adversarial per image, from :func:`minimal_eps`.

    ``eps`` (N,) float: 0.0 where the image is already misclassified, ``inf`` where PGD at
    ``eps_max`` does not flip it, else an upper bound within ``tol`` of the bisection's lower end.
    ``x_adv`` (N, C, H, W): the adversarial image at that eps (x itself where eps is 0 or inf).
    """

    eps: np.ndarray
    x_adv: Tensor
    forward_passes: int
    backward_passes: int
    settings: dict[str, Any] = field(default_factory=dict)


def robust_accuracy_curve(model: Model, x: Tensor, y: Tensor | Sequence[int], eps_grid: Sequence[float], *,
                          attack: str = "pgd", norm: str = "linf", steps: int = 10, restarts: int = 1,
                          random_start: bool = True, seed: int = 0, batch_size: int = 256,
                          progress: Progress = None, cancel: Cancel = None) -> CurveResult:
    """Which images are still predicted as their label at each eps of ``eps_grid``.

    One clean pass, then each eps > 0 is attacked independently (same seed) on the images the model
    gets right at eps 0; images misclassified at eps 0 are wrong at every eps. Nothing carries
    from one eps to the next, so a non-decreasing curve stays visible as a gradient-masking sign.
    ``attack``: "pgd" (``steps``, ``restarts``, ``random_start``) or "fgsm". Costs one forward per
    image plus the attack's cost on the clean-correct images per eps > 0.
    ``progress("robust_accuracy", done, total)`` after each chunk of ``batch_size`` images of each eps, in
    image-eps: ``total`` = E x the images attacked (at least 1 per eps).
    """
    caller = "robust_accuracy_curve"
    attack = check(attack, Options(*ATTACKS), param="attack", caller=caller)
    cfg = check_pgd(caller, norm, steps, None, random_start, restarts, seed)
    check_callbacks(progress, cancel, caller)
    check(eps_grid, Satisfies(_is_grid, "a non-empty list of eps values"), param="eps_grid", caller=caller)
    grid = [check_eps(e, cfg.norm, caller, param="eps_grid") for e in eps_grid]
    setup = settings(attack, cfg.norm, list(grid), steps=cfg.steps if attack == "pgd" else 1,
                     step_size=f"{STEP_FACTOR} * eps / steps" if attack == "pgd" else "eps",
                     restarts=cfg.restarts if attack == "pgd" else 1,
                     random_start=cfg.random_start if attack == "pgd" else False, seed=int(seed))
    with frozen(model):
        x, y_t, forward = check_common(model, x, y, caller, batch_size)
        n = x.shape[0]
        clean = ~clean_wrong(model, x, y_t, batch_size, caller, None, cancel)
        forward += n
        backward = 0
        correct = np.zeros((len(grid), n), dtype=bool)
        idx = clean.nonzero().squeeze(1)
        dev_idx = idx.to(x.device)
        xs, ys = x.index_select(0, dev_idx), y_t.index_select(0, dev_idx)
        per, total = max(1, int(idx.numel())), len(grid) * max(1, int(idx.numel()))
        for done, eps in enumerate(grid, start=1):
            row = clean.clone()
            within = None if progress is None else (
                lambda _s, d, _t, base=(done - 1) * per: progress("robust_accuracy", base + d, total))
            if eps > 0 and idx.numel():
                if attack == "pgd":
                    _, broken, f, b = pgd_all(model, xs, ys, eps, cfg, seed, batch_size, within, cancel, caller,
                                              track_clean=False)
                else:
                    _, broken, f, b = fgsm_all(model, xs, ys, eps, cfg.norm, batch_size, within, cancel, caller)
                row[idx[broken]] = False
                forward += f
                backward += b
            correct[done - 1] = row.numpy()
            if progress is not None:
                progress("robust_accuracy", done * per, total)
    return CurveResult(correct, grid, forward, backward, setup)


def minimal_eps(model: Model, x: Tensor, y: Tensor | Sequence[int], *, norm: str = "linf", eps_max: float = 0.5,
                tol: float | None = None, steps: int = 10, random_start: bool = True, seed: int = 0,
                batch_size: int = 256, progress: Progress = None, cancel: Cancel = None) -> MinimalEpsResult:
    """The smallest eps at which PGD flips each image, by bisection on a per-image eps.

    0.0 for images already misclassified; ``inf`` where PGD at ``eps_max`` does not flip them; else
    the smallest eps found adversarial (the norm of the perturbation found, at most the bisection's
    upper end), within ``tol`` (default 1/255 for linf, 0.01 for l2) of the largest eps where PGD
    failed. All images are bisected together, each in its own interval. ``progress("minimal_eps", done,
    total)`` after each chunk of each PGD round, in image-rounds (``total`` = max rounds x N; a round's
    chunks share out N whatever the images still bisected), and ``total`` when the bisection ends.
    """
    caller = "minimal_eps"
    cfg = check_pgd(caller, norm, steps, None, random_start, 1, seed)
    check_callbacks(progress, cancel, caller)
    eps_max = check_eps(eps_max, cfg.norm, caller, param="eps_max", positive=True)
    tol = (1 / 255 if cfg.norm == "linf" else 0.01) if tol is None else check_positive(tol, "tol", caller)
    rounds = 1 + max(0, math.ceil(math.log2(eps_max / tol)))
    setup = settings("pgd", cfg.norm, "minimal (bisection)", eps_max=eps_max, tol=tol, steps=cfg.steps,
                     step_size=f"{STEP_FACTOR} * eps / steps", restarts=1, random_start=cfg.random_start,
                     seed=int(seed))
    with frozen(model):
        x, y_t, forward = check_common(model, x, y, caller, batch_size)
        n = x.shape[0]
        wrong = clean_wrong(model, x, y_t, batch_size, caller, None, cancel)
        forward += n
        backward = 0
        x_adv = x.clone()
        lo = torch.zeros(n, dtype=torch.float64)
        hi = torch.full((n,), math.inf, dtype=torch.float64)
        hi[wrong] = 0.0
        active = ~wrong
        mid = torch.full((n,), eps_max, dtype=torch.float64)  # the first round tries eps_max
        total = rounds * n
        for done in range(1, rounds + 1):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            dev_idx = idx.to(x.device)
            xs = x.index_select(0, dev_idx)
            eps_try = mid[idx]
            within = None if progress is None else (
                lambda _s, d, t, base=(done - 1) * n: progress("minimal_eps", base + d * n // max(1, t), total))
            xa, broken, f, b = pgd_all(model, xs, y_t.index_select(0, dev_idx), eps_try.float().to(x.device), cfg,
                                       seed, batch_size, within, cancel, caller, track_clean=False)
            forward += f
            backward += b
            found = flat_norm(xa - xs, cfg.norm).double().cpu()
            upper = torch.minimum(eps_try, found)
            new_hi = torch.where(broken, upper, hi[idx])
            new_lo = torch.where(broken, torch.minimum(lo[idx], upper), eps_try)
            hi[idx], lo[idx] = new_hi, new_lo
            keep = broken.nonzero().squeeze(1)
            if keep.numel():
                x_adv[dev_idx[keep.to(x.device)]] = xa[keep.to(x.device)]
            active = torch.isfinite(hi) & (hi - lo > tol)
            mid = (lo + hi) / 2
        if progress is not None:
            progress("minimal_eps", total, total)
    return MinimalEpsResult(hi.numpy(), x_adv, forward, backward, setup)
