"""Model-level views for the explanations check: the first layer's filters and class-model images.

`first_layer_filters` finds the first convolution on the colour channels (through ``named_parameters``,
so plain modules, TorchScript and ``torch.export`` programs all work) and scores how spatially smooth its
filters are against i.i.d. random filters of the same size: trained image models usually learn smooth,
structured filters (blobs, edges, gratings), while an untrained or broken model keeps its random init.

Smoothness is ``1 - C``, Geary's C pooled over every (filter, input channel) patch: the mean squared
difference between 4-neighbour weights divided by its expectation when the patch's own weights are put
in a random order (``2 s^2``, s^2 the patch's sample variance). It is 0 in expectation for i.i.d. filters
of any size, near 1 for smooth ones, negative for checkerboards. Its spread under that null shrinks with
the number of patches, so ``z`` divides it by the null's standard deviation (`_null_sd`). ``noisy``: no
smoother than random filters, ``smoothness < MIN_SMOOTHNESS`` (0.05) or ``z < MIN_Z`` (2).

Measured (smoothness / z; "recipe" is ``sample_models.recipe``'s clean_cnn recipe, 6,000 synthetic faces):

- trained sample models, small_cnn 16 x 3x3: clean_cnn 0.080 / 2.25, shortcut_cnn 0.098 / 2.77,
  sticker_cnn 0.133 / 3.75: not noisy. All three start from the same seed-0 init (0.025 / 0.70).
- retrained here with the recipe: small_cnn seed 1, 8 epochs 0.021 / 0.59 (noisy); tiny_resnet seed 0,
  8 epochs 0.103 / 2.87 (not noisy); undertrained: small_cnn seed 2, 2 epochs -0.012 / -0.34, tiny_resnet
  seed 1, 4 epochs -0.045 / -1.25 (noisy). After 8 epochs a 3x3 first layer is still about 92% (cosine)
  its initialisation: what training adds is smooth (about 0.4 on its own) but small.
- small_cnn with a 7x7 first layer, recipe, seed 0, 8 epochs: 0.155 / 9.3 (its init 0.027 / 1.75): a clear
  signal once kernels are larger, though the tiles still look grainy (80% its init).
- freshly initialised: small_cnn, 100 seeds: mean -0.004, sd 0.034, max 0.060, z at most 1.70 (100 of 100
  noisy); tiny_resnet, 100 seeds: sd 0.039, max 0.102, z at most 2.85 (95 of 100 noisy); torchvision
  resnet18 64 x 7x7, 30 seeds: sd 0.007, |smoothness| at most 0.016, z at most 1.98 (30 of 30 noisy).

So for 3x3 kernels ``noisy`` is weak evidence (the verdict says so): it flags random initialisations, and
also trained small models whose first layer has barely moved from its own (1 of the 5 trained 8 epochs).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from auditor.frozen import frozen

__all__ = [
    "MIN_SMOOTHNESS",
    "MIN_Z",
    "ClassModels",
    "FilterView",
    "class_model_images",
    "first_layer_filters",
    "smoothness",
]

MIN_SMOOTHNESS = 0.05  # effect floor: large layers make tiny smoothness "significant"
MIN_Z = 2.0  # standard deviations above i.i.d. random filters of the same size and count
N_SHUFFLES = 200  # only for kernels of fewer than 4 weights
_SHUFFLE_SEED = 7_919_237  # not a seed models are initialised with (seed 0 replays their uniform draws)


@dataclass
class FilterView:
    """The first convolution on the colour channels and how structured its filters are.

    ``weights``: a CPU float32 copy, (n_filters, in_channels, kh, kw). ``smoothness`` is None for 1x1
    kernels (nothing spatial to judge) and for flat or non-finite weights; ``z`` is its distance from
    i.i.d. random filters in standard deviations of the shuffle null.
    """

    layer: str
    n_filters: int
    kernel: tuple[int, int]
    in_channels: int
    smoothness: float | None
    noisy: bool
    verdict: str
    weights: torch.Tensor = field(repr=False)
    z: float | None = None


def first_layer_filters(inner: nn.Module) -> FilterView | None:
    """The model's first convolution weight (out, in, kh, kw), scored, when it reads 1 or 3 input channels.

    Found through ``named_parameters`` (registration order), so plain modules, TorchScript and ``torch.export``
    programs give the same answer: the first 4-D floating parameter with more than one row (a (1, C, 1, 1)
    parameter is a per-channel constant such as a learned mean, not a filter bank). None when there is none,
    or when it reads another number of channels (it is not on the colour channels). Pass the raw model
    (``AuditModel.inner``) for names like ``0``, or the wrapper for ``inner.0``.
    """
    for name, p in inner.named_parameters():
        if p.dim() != 4 or not p.is_floating_point() or p.shape[0] < 2 or min(p.shape) < 1:
            continue
        if p.shape[1] not in (1, 3):
            return None
        layer = name.rsplit(".", 1)[0] if "." in name else name
        return _score(layer, p.detach().to("cpu", torch.float32).clone())
    return None


def _score(layer: str, w: torch.Tensor) -> FilterView:
    n, cin, kh, kw = (int(s) for s in w.shape)
    who = f"The {n} {kh}x{kw} filters of the first layer ({layer})"
    view = {"layer": layer, "n_filters": n, "kernel": (kh, kw), "in_channels": cin, "weights": w}
    if kh * kw == 1:
        return FilterView(**view, smoothness=None, noisy=False,
                          verdict=f"{who} are 1x1: they mix colours only, so there is no spatial structure to judge.")
    if not bool(torch.isfinite(w).all()):
        return FilterView(**view, smoothness=None, noisy=False,
                          verdict=f"{who} hold NaN or infinite weights: the model is broken.")
    patches = w.double().reshape(n * cin, kh, kw)
    smooth = smoothness(patches)
    if smooth is None:
        return FilterView(**view, smoothness=None, noisy=False,
                          verdict=f"{who} are all flat (constant over space): they pass colour only, with no spatial "
                                  "pattern to judge.")
    sd = _null_sd(patches)
    z = smooth / sd if sd > 0 else math.copysign(math.inf, smooth)
    noisy = smooth < MIN_SMOOTHNESS or z < MIN_Z
    return FilterView(**view, smoothness=smooth, noisy=noisy, z=z, verdict=_verdict(who, smooth, z, noisy, kh * kw))


def _verdict(who: str, smooth: float, z: float, noisy: bool, area: int) -> str:
    nums = f"smoothness {smooth:.2f}, {z:+.1f} sd from random filters of that size"
    if not noisy:
        return f"{who} are smoother than random ones ({nums}): the first layer learned spatial structure."
    caveat = ("; weak evidence for kernels this small, whose trained filters can stay close to their random start"
              if area <= 9 else "")
    return f"{who} are no smoother than random ones ({nums}): the model may be untrained or broken{caveat}."


def smoothness(patches: torch.Tensor) -> float | None:
    """``1 - C`` (Geary's C pooled over patches (P, kh, kw)): 0 for i.i.d. weights, 1 for smooth ones.

    None when no patch varies over space (nothing to judge) or a patch has a single weight.
    """
    p = patches.double()
    k = p.shape[1] * p.shape[2]
    if k < 2:
        return None
    pairs = _pairs(p.shape[1], p.shape[2])
    diff = (p[:, :, 1:] - p[:, :, :-1]).pow(2).sum() + (p[:, 1:, :] - p[:, :-1, :]).pow(2).sum()
    expected = pairs * 2.0 * p.flatten(1).var(dim=1, unbiased=True).sum()
    if not float(expected) > 0.0:
        return None
    return float(1.0 - diff / expected)


def _pairs(kh: int, kw: int) -> int:
    return kh * (kw - 1) + (kh - 1) * kw


def _null_sd(patches: torch.Tensor) -> float:
    """Standard deviation of `smoothness` when each patch's weights are put in a random order.

    Pooled ``C = sum(E_i C_i) / sum(E_i)`` (``E_i`` the patch's expected squared difference, fixed under
    reordering), so its variance is ``sum(E_i^2 var(C_i)) / sum(E_i)^2``, with ``var(C_i)`` Geary's C's
    variance under randomisation (Cliff & Ord 1981; it needs 4 weights or more: smaller kernels are
    shuffled `N_SHUFFLES` times instead). Checked against 200 shuffles: within 8% on 3x3 to 7x7 layers.
    """
    p = patches.double().flatten(1)
    kh, kw = int(patches.shape[1]), int(patches.shape[2])
    n = kh * kw
    if n < 4:
        return _shuffled_sd(patches)
    deg = torch.zeros(kh, kw, dtype=torch.float64)
    deg[:, 1:] += 1
    deg[:, :-1] += 1
    deg[1:, :] += 1
    deg[:-1, :] += 1
    s0 = 2.0 * _pairs(kh, kw)  # the 4-neighbour weights, both ways
    s1, s2 = 2.0 * s0, float(4.0 * deg.pow(2).sum())
    d = p - p.mean(1, keepdim=True)
    m2, m4 = d.pow(2).mean(1), d.pow(4).mean(1)
    b2 = torch.where(m2 > 0, m4 / m2.clamp_min(1e-300).pow(2), torch.zeros_like(m2))  # kurtosis
    var_c = ((n - 1) * s1 * (n * n - 3 * n + 3 - (n - 1) * b2)
             - 0.25 * (n - 1) * s2 * (n * n + 3 * n - 6 - (n * n - n + 2) * b2)
             + s0 * s0 * (n * n - 3 - (n - 1) ** 2 * b2)) / (n * (n - 2) * (n - 3) * s0 * s0)
    e = s0 * p.var(dim=1, unbiased=True)
    total = float(e.sum())
    return float((e.pow(2) * var_c.clamp_min(0.0)).sum().sqrt()) / total if total > 0 else 0.0


def _shuffled_sd(patches: torch.Tensor) -> float:
    """`_null_sd` by `N_SHUFFLES` seeded reorderings of each patch's weights (for kernels of 2 or 3 weights)."""
    p = patches.double().flatten(1)
    g = torch.Generator().manual_seed(_SHUFFLE_SEED)
    vals = []
    for _ in range(N_SHUFFLES):
        order = torch.argsort(torch.rand(p.shape, generator=g), dim=1)
        s = smoothness(torch.gather(p, 1, order).view_as(patches))
        if s is not None:
            vals.append(s)
    return float(torch.tensor(vals, dtype=torch.float64).std()) if len(vals) > 1 else 0.0


@dataclass
class ClassModels:
    """Class-model images: ``images`` (C, 3, H, W) CPU float32 in [0, 1], one per class in ``classes``.

    ``start_probability`` / ``final_probability``: softmax probability of each image's target class at
    the grey+noise start and at the end. Passes count images through the model (the audit's cost unit).
    """

    images: torch.Tensor
    classes: list[int]
    final_probability: list[float]
    forward_passes: int
    backward_passes: int
    start_probability: list[float] = field(default_factory=list)


def class_model_images(
    model: Any, n_classes: int, input_size: tuple[int, int], *, classes: list[int] | None = None,
    steps: int = 64, lr: float = 0.05, l2: float = 1e-3, blur_every: int = 4, blur_sigma: float = 0.5,
    clip_quantile: float = 0.1, seed: int = 0, device: torch.device | str = "cpu",
) -> ClassModels:
    """Gradient ascent on each class's logit from a seeded grey+noise start (Simonyan et al. 2014), with
    Yosinski et al. (2015)'s regularisers: L2 decay towards grey, a Gaussian blur every ``blur_every``
    steps, and pixels whose distance from grey is in the lowest ``clip_quantile`` reset to grey.

    ``model`` takes (N, 3, H, W) pixels in [0, 1] (an `AuditModel`); every class is one image of one batch.
    Each step moves the image by ``lr`` times its gradient scaled to a largest pixel change of 1, then
    clamps to [0, 1]. The model is left as found (`frozen`). Deterministic under ``seed``.
    """
    chosen = _check_args(n_classes, input_size, classes, steps, lr, l2, blur_every, blur_sigma, clip_quantile)
    dev = torch.device(device)
    h, w = (int(s) for s in input_size)
    gen = torch.Generator().manual_seed(int(seed))
    grey = torch.full((len(chosen), 3, h, w), 0.5)
    x = (grey + 0.1 * torch.randn(grey.shape, generator=gen)).clamp(0.0, 1.0).to(dev)
    grey = grey.to(dev)
    target = torch.tensor(chosen, device=dev)
    rows = torch.arange(len(chosen), device=dev)
    start: list[float] = []
    with frozen(model), torch.enable_grad():
        for step in range(steps):
            x = x.detach().requires_grad_(True)
            logits = _logits(model, x, n_classes)
            if step == 0:
                start = logits.detach().softmax(1)[rows, target].cpu().tolist()
            (grad,) = torch.autograd.grad(logits[rows, target].sum(), x)
            grad = torch.nan_to_num(grad.detach(), nan=0.0, posinf=0.0, neginf=0.0)
            scale = grad.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            x = x.detach() + lr * grad / scale
            x = grey + (1.0 - l2) * (x - grey)
            if blur_every and blur_sigma > 0 and (step + 1) % blur_every == 0:
                x = _blur(x, blur_sigma)
            if clip_quantile > 0:
                x = _clip_small(x, grey, clip_quantile)
            x = x.clamp(0.0, 1.0)
        with torch.no_grad():
            final = _logits(model, x.detach(), n_classes).softmax(1)[rows, target].cpu().tolist()
    n = len(chosen)
    return ClassModels(images=x.detach().float().cpu(), classes=chosen, final_probability=final,
                       forward_passes=n * (steps + 1), backward_passes=n * steps, start_probability=start)


def _check_args(n_classes: Any, input_size: Any, classes: Any, steps: Any, lr: Any, l2: Any, blur_every: Any,
                blur_sigma: Any, clip_quantile: Any) -> list[int]:
    def whole(x: Any) -> bool:
        return isinstance(x, numbers.Integral) and not isinstance(x, bool)

    def real(x: Any) -> bool:
        return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)

    if not whole(n_classes) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}; pass the model's number of outputs")
    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 2
            or not all(whole(s) and s > 0 for s in input_size)):
        raise ValueError(f"input_size must be (height, width) in positive integers, got {input_size!r}; "
                         "pass e.g. (64, 64)")
    if not whole(steps) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}; pass e.g. 64")
    if not real(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}; pass e.g. 0.05")
    if not real(l2) or not 0 <= l2 < 1:
        raise ValueError(f"l2 must be in [0, 1), got {l2!r}; pass e.g. 1e-3 (0: no decay)")
    if not whole(blur_every) or blur_every < 0:
        raise ValueError(f"blur_every must be an integer >= 0, got {blur_every!r}; pass e.g. 4 (0: never blur)")
    if not real(blur_sigma) or blur_sigma < 0:
        raise ValueError(f"blur_sigma must be a finite number >= 0, got {blur_sigma!r}; pass e.g. 0.5 (0: no blur)")
    if not real(clip_quantile) or not 0 <= clip_quantile < 1:
        raise ValueError(f"clip_quantile must be in [0, 1), got {clip_quantile!r}; pass e.g. 0.1 (0: no clipping)")
    chosen = list(range(n_classes)) if classes is None else list(classes)
    if not chosen:
        raise ValueError("classes is empty; pass at least one class index, or None for every class")
    bad = [c for c in chosen if not whole(c) or not 0 <= c < n_classes]
    if bad:
        raise ValueError(f"classes holds {bad[0]!r}, not a class index in [0, {n_classes}); "
                         "pass indices below n_classes")
    return [int(c) for c in chosen]


def _logits(model: Any, x: torch.Tensor, n_classes: int) -> torch.Tensor:
    logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] != n_classes:
        shape = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model returned {shape} for {x.shape[0]} images, not N x {n_classes} logits; "
                         "pass n_classes equal to the model's number of outputs")
    return logits.float()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel, reflect-padded (radius ceil(3 sigma), at most the image size - 1)."""
    radius = max(1, min(math.ceil(3 * sigma), x.shape[-1] - 1, x.shape[-2] - 1))
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        return x
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = nn.functional.pad(x, (radius, radius, 0, 0), mode="reflect")
    x = nn.functional.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = nn.functional.pad(x, (0, 0, radius, radius), mode="reflect")
    return nn.functional.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _clip_small(x: torch.Tensor, grey: torch.Tensor, q: float) -> torch.Tensor:
    """Pixels whose distance from grey (norm over channels) is in the lowest ``q`` of their image set to grey."""
    norm = (x - grey).norm(dim=1, keepdim=True)  # N, 1, H, W
    k = int(q * norm[0].numel())
    if k < 1:
        return x
    cut = norm.flatten(1).kthvalue(k, dim=1).values.view(-1, 1, 1, 1)  # no size limit, unlike torch.quantile
    return torch.where(norm <= cut, grey, x)
