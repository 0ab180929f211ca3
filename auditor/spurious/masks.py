"""Batched meaningful-perturbation masks and the deletion score.

Fong & Vedaldi, "Interpretable Explanations of Black Boxes by Meaningful Perturbation" (ICCV 2017):
learn the smallest region whose deletion destroys the class score (or which alone preserves it),
with an l1 area term and a total-variation term. Fong, Patrick & Vedaldi, "Understanding Deep
Networks via Extremal Perturbations and Smooth Masks" (ICCV 2019): fix the area instead, through a
penalty on the sorted mask values against a step vector with that area.

Our own implementation. The loss is a sum of independent per-mask terms and Adam is elementwise, so
the N images x K areas of a chunk are optimised together: one batched forward and backward per
step. The result does not depend on how images are chunked (the jitter is drawn per image).

Shape: images (N, C, H, W) float in [0, 1] (the model's input frame); targets (N,) class indices;
masks (N, K, H, W) in [0, 1], where 1 marks the evidence the game selected: the deleted region in
the deletion game, the kept region in the preservation game.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from auditor.errors import AuditCancelled
from auditor.frozen import frozen
from auditor.spurious.perturb import OPERATORS, apply_stack, blur, perturbation_stack
from auditor.validation import Interval, Options, check, invalid

__all__ = ["GAMES", "MaskResult", "curve_area", "deletion_score", "insertion_score", "learn_masks",
           "saliency_curve"]

log = logging.getLogger(__name__)
GAMES = ("deletion", "preservation")
_RANK_LEVELS = 1000.0  # the rank target sees mask values to 1e-3: float noise cannot reorder them


_STEPS = Interval(int, 1)
_WEIGHT = Interval(float, 0, None)


@dataclass
class MaskResult:
    """Masks learned by :func:`learn_masks`.

    ``masks`` (N, K, H, W) in [0, 1], 1 = evidence (deleted region for ``deletion``, kept region for
    ``preservation``); K = len(areas), or 1 for the plain variant. ``prob_masked`` (N, K): the target's
    probability with the mask applied; ``prob_original`` (N,): without. ``area`` (N, K): mean mask
    value. ``converged`` (N, K): the game's objective was reached (see :func:`learn_masks`).
    ``forward_passes``/``backward_passes`` count images through the model (the audit's cost unit).
    """

    masks: Tensor
    prob_masked: Tensor
    prob_original: Tensor
    area: Tensor
    converged: Tensor
    game: str
    areas: tuple[float, ...] | None
    operator: str
    steps: int
    forward_passes: int
    backward_passes: int


@dataclass(frozen=True)
class _Config:
    game: str
    areas: tuple[float, ...] | None
    operator: str
    steps: int
    lr: float
    mask_size: tuple[int, int]
    tv_weight: float
    tv_beta: float
    area_weight: float
    jitter: int
    seed: int
    sigma: float | None
    fill_value: float | Sequence[float]


def _target_prob(logits: Tensor, targets: Tensor) -> Tensor:
    """Probability of ``targets``; a 1-column output is a binary logit (column = class 1)."""
    if logits.ndim != 2:
        raise ValueError(f"The model must return logits N x C. Got shape {tuple(logits.shape)} instead.")
    if logits.shape[1] == 1:
        p1 = torch.sigmoid(logits[:, 0])
        return torch.where(targets == 1, p1, 1.0 - p1)
    return torch.softmax(logits, dim=1).gather(1, targets.view(-1, 1)).squeeze(1)


def _upsample(low: Tensor, size: tuple[int, int]) -> Tensor:
    """Low-resolution mask (B, 1, h, w) -> (B, 1, H, W): bilinear, then a Gaussian of half a cell."""
    up = F.interpolate(low, size=size, mode="bilinear", align_corners=False)
    cell = min(size[0] / low.shape[-2], size[1] / low.shape[-1])
    smooth = blur(up, 0.5 * cell)  # convex combinations: in [0, 1] up to rounding
    return smooth + (smooth.clamp(0.0, 1.0) - smooth).detach()  # clamp the rounding, keep the gradient


def _shift(x: Tensor, shifts: Tensor) -> Tensor:
    """Shift each image by its own integer (dy, dx), replicating the edge. ``shifts`` (B, 2)."""
    b, _, h, w = x.shape
    rows = (torch.arange(h, device=x.device).view(1, h) - shifts[:, :1]).clamp(0, h - 1)
    cols = (torch.arange(w, device=x.device).view(1, w) - shifts[:, 1:]).clamp(0, w - 1)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return x.permute(0, 2, 3, 1)[batch, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2)


def _rank_target(values: Tensor, quota: Tensor) -> Tensor:
    """The extremal paper's area target, tie-aware: rank the values (largest first), 1 for the top
    ``quota`` ranks, 0 below. Tied values share their ranks' average, so equal values (the flat start)
    get equal targets and no position is favoured by the sort's tie order. ``values`` (B, P), ``quota``
    (B, 1) in pixels; returns (B, P), no gradient (the sorted-vector penalty's gradient is the same)."""
    with torch.no_grad():
        levels = (values * _RANK_LEVELS).round()  # values closer than rounding noise count as tied
        ascending = levels.sort(dim=1).values
        total = values.shape[1]
        above = total - torch.searchsorted(ascending, levels, right=True)  # strictly larger values
        at_or_above = total - torch.searchsorted(ascending, levels, right=False)
        span = (at_or_above - above).to(values.dtype)
        return ((quota - above.to(values.dtype)) / span).clamp(0.0, 1.0)


def _tv(mask: Tensor, beta: float) -> Tensor:
    """Total variation |grad m|^beta, averaged per mask: (B,)."""
    dy = (mask[..., 1:, :] - mask[..., :-1, :]).abs().pow(beta).flatten(1).mean(1)
    dx = (mask[..., :, 1:] - mask[..., :, :-1]).abs().pow(beta).flatten(1).mean(1)
    return dy + dx


def _converged(game: str, p_masked: Tensor, p_orig: Tensor, n_classes: int) -> Tensor:
    chance = 1.0 / n_classes
    half = p_orig / 2
    above = p_orig >= chance
    if game == "deletion":
        threshold = torch.where(above, torch.clamp(half, min=chance), half)
        return p_masked < threshold
    threshold = torch.where(above, torch.clamp(half, min=chance), half)
    return p_masked >= threshold


def _learn_chunk(model: Callable[[Tensor], Tensor], x: Tensor, targets: Tensor, first: int, cfg: _Config,
                 tick: Callable[[int], None] | None = None) -> tuple[Tensor, ...]:
    """Masks for one chunk; ``tick(step)`` after each optimisation step."""
    n, _, h, w = x.shape
    k = len(cfg.areas) if cfg.areas is not None else 1
    with torch.no_grad():
        p_orig = _target_prob(model(x), targets)
        stack = perturbation_stack(x, cfg.operator, sigma=cfg.sigma, fill_value=cfg.fill_value)
    rep = targets.repeat_interleave(k)
    shifts = torch.zeros(n, cfg.steps, k, 2, dtype=torch.long)
    if cfg.jitter > 0:
        for i in range(n):  # one generator per image: chunking does not change the draws
            g = torch.Generator().manual_seed((cfg.seed % 2**31) * 1_000_003 + first + i)
            shifts[i] = torch.randint(-cfg.jitter, cfg.jitter + 1, (cfg.steps, k, 2), generator=g)
    shifts = shifts.to(x.device)
    param = torch.full((n * k, 1, *cfg.mask_size), 0.5, dtype=x.dtype, device=x.device, requires_grad=True)
    optimiser = torch.optim.Adam([param], lr=cfg.lr)
    quota = None
    if cfg.areas is not None:  # pixels each mask may select: a * H * W
        quota = torch.tensor(cfg.areas, dtype=x.dtype, device=x.device).repeat(n).view(-1, 1) * (h * w)
    for step in range(cfg.steps):
        evidence = _upsample(param, (h, w))  # (B, 1, H, W)
        keep = 1.0 - evidence if cfg.game == "deletion" else evidence
        xp = apply_stack(stack, keep.view(n, k, h, w))
        if cfg.jitter > 0:
            xp = _shift(xp, shifts[:, step].reshape(n * k, 2))
        p = _target_prob(model(xp), rep)
        score = p if cfg.game == "deletion" else 1.0 - p
        if quota is None:
            area_term = cfg.area_weight * evidence.flatten(1).mean(1)
        else:
            ramp = 10.0 ** (step / max(1, cfg.steps - 1))  # weight x1 -> x10: free early, exact late
            flat = evidence.flatten(1)
            area_term = cfg.area_weight * ramp * (flat - _rank_target(flat, quota)).pow(2).mean(1)
        loss = (score + area_term + cfg.tv_weight * _tv(param, cfg.tv_beta)).sum()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            param.clamp_(0.0, 1.0)
        if tick is not None:
            tick(step)
    with torch.no_grad():
        evidence = _upsample(param, (h, w)).view(n, k, h, w)
        keep = 1.0 - evidence if cfg.game == "deletion" else evidence
        p_masked = _target_prob(model(apply_stack(stack, keep)), rep).view(n, k)
    return evidence, p_masked, p_orig


def _fractions(areas: Any, caller: str) -> tuple[float, ...]:
    """``areas`` as a non-empty tuple of fractions in (0, 1), else `ParameterError`."""
    try:
        fractions = tuple(float(a) for a in areas)
    except (TypeError, ValueError):
        fractions = ()
    if not fractions or any(not 0.0 < a < 1.0 for a in fractions):
        raise invalid("areas", caller, "None or a non-empty sequence of fractions in (0, 1)", areas)
    return fractions


def _check_inputs(model: Callable[[Tensor], Tensor], images: Any, targets: Any, caller: str) -> tuple[Tensor, Tensor, int]:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise invalid("images", caller, "a float tensor (N, 3, H, W) in [0, 1]", shape)
    if images.shape[0] == 0:
        raise invalid("images", caller, "a non-empty batch", tuple(images.shape))
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0.0 or float(images.max()) > 1.0:
        raise invalid("images", caller, "finite values in [0, 1] (normalisation belongs in the model wrapper)",
                   (float(images.min()), float(images.max())))
    targets = torch.as_tensor(targets)
    if targets.ndim != 1 or targets.shape[0] != images.shape[0] or targets.is_floating_point():
        raise invalid("targets", caller, f"an integer tensor of shape ({images.shape[0]},)", tuple(targets.shape))
    with torch.no_grad():
        logits = model(images[:1])
    n_classes = max(2, int(logits.shape[-1]))
    if int(targets.min()) < 0 or int(targets.max()) >= n_classes:
        raise invalid("targets", caller, f"class indices in [0, {n_classes - 1}]", targets.tolist()[:10])
    return images, targets.long().to(images.device), n_classes


def learn_masks(
    model: Callable[[Tensor], Tensor],
    images: Tensor,
    targets: Tensor | Sequence[int],
    *,
    game: str = "deletion",
    areas: Sequence[float] | None = None,
    operator: str = "blur",
    steps: int = 300,
    lr: float = 0.05,
    mask_size: tuple[int, int] | None = None,
    tv_weight: float = 0.2,
    tv_beta: float = 3.0,
    area_weight: float | None = None,
    jitter: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    sigma: float | None = None,
    fill_value: float | Sequence[float] = 0.5,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> MaskResult:
    """Learn meaningful-perturbation masks for ``images`` (N, 3, H, W) in [0, 1] and their ``targets``.

    Plain variant (``areas=None``, Fong & Vedaldi 2017), one mask per image: minimise the game's score
    (deletion: p_target of the perturbed image; preservation: 1 - p_target) + ``area_weight`` x mean
    mask + ``tv_weight`` x TV_beta. Extremal variant (``areas`` = fractions, Fong et al. 2019), K masks
    per image: the area term is ``area_weight`` x mean((mask - rank target)^2), the rank target being
    1 on the mask's top a x H x W pixels and 0 elsewhere (the paper's sorted-vector penalty), its weight
    ramped x1 -> x10 over the steps. Defaults: 300 steps, lr 0.05, tv_weight 0.2 with beta 3 (on the
    low-resolution mask), area_weight 1 (plain) or 30 (extremal), operator ``blur``. The mask is ``mask_size`` cells (default H/8 x W/8
    clamped to 8..28 and to the image; 28 x 28 at 224 px) in [0, 1], started at 0.5, upsampled bilinearly and smoothed
    by a Gaussian of half a cell; Adam with ``lr``, clamped to [0, 1] after each step. Each step shifts
    each perturbed image by up to ``jitter`` pixels (default min(H, W)/56), drawn per image from
    ``seed``. A mask has ``converged`` when, with p0 the original and p the masked probability and
    c = 1/classes: deletion p < max(p0/2, c) (p < p0/2 if p0 < c); preservation p >= the same threshold;
    an extremal mask must also be within max(a/4, 0.01) of its area a. The extremal rank target sees
    mask values rounded to 1e-3 and gives tied values their ranks' average, so neither the sort's tie
    order nor float noise decides where a mask grows (a flat start favours no position).
    The model must already be on ``device``; it is not moved.

    The model is called in eval mode with its parameters frozen, and left as it was found. Images go
    through in chunks of ``batch_size``; ``progress("masks", done, total)`` is told after each optimisation
    step, in image-steps (``total`` = N x ``steps``), and ``cancel()`` (raises :class:`AuditCancelled`) is
    asked before each chunk and after each step.
    """
    caller = "learn_masks"
    check(game, Options(*GAMES), param="game", caller=caller)
    check(operator, Options(*OPERATORS), param="operator", caller=caller)
    if areas is not None:
        areas = _fractions(areas, caller)
    check(steps, _STEPS, param="steps", caller=caller)
    lr = check(lr, Interval(float, 0, None, closed="neither"), param="lr", caller=caller)
    check(batch_size, Interval(int, 1), param="batch_size", caller=caller)
    tv_weight = check(tv_weight, _WEIGHT, param="tv_weight", caller=caller)
    area_weight = check(area_weight, _WEIGHT, None, param="area_weight", caller=caller)
    jitter = check(jitter, Interval(int, 0), None, param="jitter", caller=caller)
    dev = torch.device(device) if device is not None else (images.device if isinstance(images, Tensor) else torch.device("cpu"))
    with frozen(model):
        images_in = images.to(dev) if isinstance(images, Tensor) else images
        images_in, targets_t, n_classes = _check_inputs(model, images_in, targets, caller)
        h, w = images_in.shape[-2:]
        if mask_size is None:
            mask_size = (min(h, 28, max(8, math.ceil(h / 8))), min(w, 28, max(8, math.ceil(w / 8))))
        if len(mask_size) != 2 or not all(isinstance(s, int) and 2 <= s for s in mask_size) or mask_size[0] > h or mask_size[1] > w:
            raise invalid("mask_size", caller, f"None or two ints in [2, {h}] x [2, {w}]", mask_size)
        if jitter is None:
            jitter = round(min(h, w) / 56)
        if area_weight is None:
            area_weight = 1.0 if areas is None else 30.0
        cfg = _Config(game, areas, operator, steps, float(lr), (int(mask_size[0]), int(mask_size[1])), float(tv_weight),
                      float(tv_beta), float(area_weight), jitter, int(seed), sigma, fill_value)
        return _learn_all(model, images_in, targets_t, n_classes, cfg, batch_size, progress, cancel)


def _learn_all(model: Callable[[Tensor], Tensor], images: Tensor, targets: Tensor, n_classes: int, cfg: _Config,
               batch_size: int, progress: Callable[[str, int, int], None] | None,
               cancel: Callable[[], bool] | None) -> MaskResult:
    n = images.shape[0]
    k = len(cfg.areas) if cfg.areas is not None else 1
    masks, p_masked, p_orig = [], [], []
    forward, backward = 1, 0  # the input check's single-image forward
    total = n * cfg.steps

    def tick(step: int, start: int, chunk: int) -> None:
        if cancel is not None and cancel():
            raise AuditCancelled("audit cancelled during masks")
        if progress is not None:
            progress("masks", start * cfg.steps + (step + 1) * chunk, total)

    for start in range(0, n, batch_size):
        if cancel is not None and cancel():
            raise AuditCancelled("audit cancelled during masks")
        stop = min(n, start + batch_size)
        chunk = stop - start
        with torch.enable_grad():
            m, pm, po = _learn_chunk(model, images[start:stop], targets[start:stop], start, cfg,
                                     lambda step, start=start, chunk=chunk: tick(step, start, chunk))
        masks.append(m.cpu())
        p_masked.append(pm.cpu())
        p_orig.append(po.cpu())
        forward += chunk + chunk * k * (cfg.steps + 1)  # originals, every step, the final masks
        backward += chunk * k * cfg.steps
    all_masks = torch.cat(masks)
    pm_all, po_all = torch.cat(p_masked), torch.cat(p_orig)
    area = all_masks.flatten(2).mean(2)
    converged = _converged(cfg.game, pm_all, po_all.view(-1, 1).expand_as(pm_all), n_classes)
    if cfg.areas is not None:  # the extremal mask must also have its area (within a quarter, or 0.01)
        wanted = torch.tensor(cfg.areas).view(1, -1)
        converged &= (area - wanted).abs() <= torch.clamp(0.25 * wanted, min=0.01)
    if not bool(converged.all()):
        log.info("%d of %d masks did not reach the %s objective", int((~converged).sum()), converged.numel(), cfg.game)
    return MaskResult(all_masks, pm_all, po_all, area, converged, cfg.game, cfg.areas,
                      cfg.operator, cfg.steps, forward, backward)


def saliency_curve(
    model: Callable[[Tensor], Tensor],
    images: Tensor,
    targets: Tensor | Sequence[int],
    saliency: Tensor,
    steps: int = 32,
    *,
    game: str = "deletion",
    operator: str = "fill",
    sigma: float | None = None,
    fill_value: float | Sequence[float] = 0.5,
    batch_size: int = 64,
    _caller: str = "saliency_curve",
) -> Tensor:
    """The target's probability as pixels are removed (``deletion``) or restored (``insertion``) in order of
    ``saliency``, most salient first (Petsiuk et al. 2018, RISE): (N, steps + 1) at fractions 0, 1/steps, ..., 1.

    ``saliency`` (N, H, W) or (N, 1, H, W), higher = more important; ties are taken by position, so break
    them yourself where they matter. Deletion replaces the top fraction by ``operator``'s perturbation;
    insertion starts from the fully perturbed image and puts the top fraction back. Model left as found.
    """
    caller = _caller
    check(game, Options("deletion", "insertion"), param="game", caller=caller)
    check(operator, Options(*OPERATORS), param="operator", caller=caller)
    check(steps, _STEPS, param="steps", caller=caller)
    with frozen(model):
        images, targets_t, _ = _check_inputs(model, images, targets, caller)
        n, _, h, w = images.shape
        sal = saliency.reshape(n, -1) if isinstance(saliency, Tensor) and saliency.numel() == n * h * w else None
        if sal is None:
            shape = tuple(saliency.shape) if isinstance(saliency, Tensor) else type(saliency).__name__
            raise invalid("saliency", caller, f"a tensor ({n}, {h}, {w}) or ({n}, 1, {h}, {w})", shape)
        if not bool(torch.isfinite(sal).all()):
            raise invalid("saliency", caller, "finite values (replace NaN/inf before scoring)", "non-finite values")
        order = torch.argsort(sal.to(images.device).double(), dim=1, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(h * w, device=images.device).expand(n, -1).contiguous())
        fractions = torch.linspace(0.0, 1.0, steps + 1)
        curve = torch.empty(n, steps + 1)
        deleting = game == "deletion"
        with torch.no_grad():
            stack = perturbation_stack(images, operator, sigma=sigma, fill_value=fill_value)[:, [0, -1]]
            per = max(1, batch_size // max(1, n)) if n < batch_size else 1
            for s0 in range(0, steps + 1, per):
                fs = fractions[s0:s0 + per]
                cut = [round(float(f) * h * w) for f in fs]
                keep = torch.stack([(rank >= c) if deleting else (rank < c) for c in cut], 1).to(images.dtype)  # (N, F, HW)
                xp = apply_stack(stack, keep.view(n, len(fs), h, w))
                probs = _target_prob(model(xp), targets_t.repeat_interleave(len(fs)))
                curve[:, s0:s0 + len(fs)] = probs.view(n, len(fs)).cpu()
        return curve


def curve_area(curve: Tensor) -> Tensor:
    """Trapezoidal area under curves (N, S + 1) sampled at fractions 0, 1/S, ..., 1: (N,) in [0, 1]."""
    return torch.trapezoid(curve, torch.linspace(0.0, 1.0, curve.shape[-1]), dim=-1)


def deletion_score(model: Callable[[Tensor], Tensor], images: Tensor, targets: Tensor | Sequence[int], saliency: Tensor,
                   steps: int = 32, **options: Any) -> Tensor:
    """Deletion score (Petsiuk et al. 2018): area under p_target as pixels are removed, most salient first.

    ``saliency`` (N, H, W) or (N, 1, H, W), higher = more important. At fractions 0, 1/steps, ..., 1
    the top fraction of pixels (ties broken by position) is replaced by ``operator``'s perturbation;
    the trapezoidal area under the probability curve is returned per image, (N,) in [0, 1]. Lower
    means the saliency found the region the prediction cannot do without. Model left as found.
    ``options``: `saliency_curve`'s ``operator``, ``sigma``, ``fill_value`` and ``batch_size``.
    """
    return curve_area(saliency_curve(model, images, targets, saliency, steps, game="deletion", _caller="deletion_score",
                                      **options))


def insertion_score(model: Callable[[Tensor], Tensor], images: Tensor, targets: Tensor | Sequence[int], saliency: Tensor,
                    steps: int = 32, **options: Any) -> Tensor:
    """Insertion score (Petsiuk et al. 2018): area under p_target as pixels are restored to the fully
    perturbed image, most salient first; (N,) in [0, 1]. Higher means the saliency found the region that
    suffices for the prediction. Same arguments as :func:`deletion_score`."""
    return curve_area(saliency_curve(model, images, targets, saliency, steps, game="insertion", _caller="insertion_score",
                                      **options))
