"""Perturbation operators for meaningful-perturbation masks.

Fong & Vedaldi, "Interpretable Explanations of Black Boxes by Meaningful Perturbation" (ICCV 2017)
delete evidence by blending the image with a blurred copy; Fong, Patrick & Vedaldi, "Understanding
Deep Networks via Extremal Perturbations and Smooth Masks" (ICCV 2019) use a blur pyramid whose level
is chosen by the mask value. Blur keeps colour, so it cannot remove a saturated flat patch (a
watermark, a coloured sticker): ``fill`` replaces the pixels by a constant image and removes colour
and texture both.

Shape: images ``x`` (N, C, H, W) float in [0, 1]; a keep mask (N, 1, H, W) in [0, 1], 1 = keep the
pixel, 0 = replace it by the operator's perturbation.

Every operator is expressed as a *stack* (N, L, C, H, W) of progressively perturbed copies, level 0
being ``x`` itself and level L-1 the fully perturbed image. ``apply_stack`` picks the level by mask
value, ``t = (1 - keep) * (L - 1)``, interpolating linearly between the two nearest levels. With two
levels this is exactly ``x * keep + p(x) * (1 - keep)``; with the pyramid it is the extremal paper's
"mask value selects the blur level", made continuous so the mask gets a gradient.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from auditor.spurious import OPERATORS

__all__ = [
    "OPERATORS",
    "apply_stack",
    "blur",
    "blur_pyramid",
    "default_sigma",
    "fill",
    "perturbation_stack",
    "perturbed",
]


PYRAMID_LEVELS = 8


def default_sigma(height: int, width: int, operator: str = "blur") -> float:
    """The blur's standard deviation in pixels: min(H, W) / 16 (14 px at 224, as the papers' 10-20
    px); the pyramid's largest level is min(H, W) / 10."""
    side = min(height, width)
    return max(1.0, side / (10.0 if operator == "pyramid" else 16.0))


def _kernel1d(sigma: float, radius: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``x`` (N, C, H, W) with reflect padding; ``sigma`` in pixels.

    The kernel radius is ceil(3 sigma), capped at min(H, W) - 1 (reflect padding needs it); sigma 0 is
    the identity. Differentiable in ``x``.
    """
    if sigma <= 0:
        return x
    _, c, h, w = x.shape
    radius = min(math.ceil(3.0 * sigma), h - 1, w - 1)
    if radius < 1:
        return x
    kernel = _kernel1d(float(sigma), radius, x.dtype, x.device)
    kx = kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    out = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kx, groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), ky, groups=c)


def blur_pyramid(x: Tensor, sigmas: Sequence[float]) -> Tensor:
    """Blurred copies of ``x`` at each sigma, stacked: (N, len(sigmas), C, H, W)."""
    return torch.stack([blur(x, float(s)) for s in sigmas], dim=1)


def fill(x: Tensor, value: float | Sequence[float] = 0.5) -> Tensor:
    """A constant image shaped like ``x``: mid-grey by default, or a per-channel value (a dataset mean)."""
    v = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if v.ndim == 1:
        v = v.view(1, -1, 1, 1)
    return v.expand_as(x).clone()


def perturbation_stack(
    x: Tensor, operator: str = "blur", *, sigma: float | None = None, fill_value: float | Sequence[float] = 0.5,
) -> Tensor:
    """Level 0 is ``x``, the last level the fully perturbed image: (N, L, C, H, W).

    ``blur``: L = 2, [x, blur(x, sigma)]. ``fill``: L = 2, [x, fill(x, fill_value)]. ``pyramid``:
    L = 8 levels with sigmas ``sigma * (l / 7) ** 2``, denser near the original as in the extremal
    paper's pyramid. ``sigma`` defaults to :func:`default_sigma`.
    """
    if operator not in OPERATORS:
        raise ValueError(f"The 'operator' parameter of perturbation_stack must be one of {OPERATORS}. Got {operator!r} instead.")
    s = default_sigma(x.shape[-2], x.shape[-1], operator) if sigma is None else float(sigma)
    if operator == "blur":
        return torch.stack([x, blur(x, s)], dim=1)
    if operator == "fill":
        return torch.stack([x, fill(x, fill_value)], dim=1)
    sigmas = [s * (level / (PYRAMID_LEVELS - 1)) ** 2 for level in range(PYRAMID_LEVELS)]
    return blur_pyramid(x, sigmas)


def apply_stack(stack: Tensor, keep: Tensor) -> Tensor:
    """Blend a perturbation stack by a keep mask.

    ``stack`` (N, L, C, H, W); ``keep`` (N, K, H, W) in [0, 1] (K masks per image). Returns
    (N * K, C, H, W), image-major (the K masks of image 0 first). The level is ``t = (1 - keep)(L - 1)``
    and adjacent levels are interpolated linearly, so the result is differentiable in ``keep``.
    """
    n, levels, c, h, w = stack.shape
    k = keep.shape[1]
    t = (1.0 - keep.clamp(0.0, 1.0)) * (levels - 1)  # (N, K, H, W)
    lower = t.detach().floor().clamp(max=levels - 2).long()
    frac = (t - lower.to(t.dtype)).unsqueeze(2)  # (N, K, 1, H, W)
    source = stack.unsqueeze(1).expand(n, k, levels, c, h, w)
    index = lower.view(n, k, 1, 1, h, w).expand(n, k, 1, c, h, w)
    low = torch.gather(source, 2, index).squeeze(2)
    high = torch.gather(source, 2, index + 1).squeeze(2)
    return (low + frac * (high - low)).reshape(n * k, c, h, w)


def perturbed(
    x: Tensor, mask: Tensor, operator: str = "blur", *, sigma: float | None = None,
    fill_value: float | Sequence[float] = 0.5,
) -> Tensor:
    """``x * m + p(x) * (1 - m)`` for a keep mask ``m`` (N, H, W) or (N, 1, H, W); the pyramid picks
    its blur level by mask value (see the module docstring). Returns (N, C, H, W)."""
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != x.shape[0] or mask.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"The 'mask' parameter of perturbed must be (N, H, W) or (N, 1, H, W) matching x {tuple(x.shape)}. Got shape {tuple(mask.shape)} instead.")
    return apply_stack(perturbation_stack(x, operator, sigma=sigma, fill_value=fill_value), mask)
