"""Attribution maps through captum, batched so a large model does not run out of memory.

Every method returns one map per image, (N, H, W) on the CPU, in the model's input frame; higher
means more important for the target class:

- ``integrated_gradients``: IG from a grey image (the grey the deletion curve fills in), summed over
  colour channels (signed: evidence against the class is negative);
- ``saliency``: |d logit / d pixel|, the maximum over colour channels (Simonyan et al. 2014);
- ``smoothgrad``: saliency averaged over noisy copies of the image (captum's ``NoiseTunnel``);
- ``grad_cam``: Grad-CAM on a convolutional layer (the last one unless named), upsampled bilinearly; a named
  layer whose output is a grid of tokens (a vision transformer's) gets the same map on its patch tokens;
- ``occlusion``: the drop in the class probability when a grey patch covers the pixel (Zeiler &
  Fergus 2014), averaged over the patches that cover it.

Methods that cannot run on a model raise `MethodUnavailable` with a one-line reason; the check records
it and goes on with the others.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from auditor.explain import LABELS, METHODS

__all__ = ["METHODS", "LABELS", "GRADIENT_METHODS", "MethodUnavailable", "Settings", "LayerChoice", "attribute",
           "find_conv_layer", "token_layers"]

GRADIENT_METHODS = ("integrated_gradients", "saliency", "smoothgrad", "grad_cam")
BASELINE = 0.5  # grey: the value IG starts from and occlusion paints, as the deletion curve's fill


class MethodUnavailable(Exception):
    """An attribution method cannot run on this model; the message says why in one line."""


@dataclass(frozen=True)
class Settings:
    """How each method runs. ``batch_size`` caps the images in one forward or backward pass."""

    ig_steps: int = 32
    nt_samples: int = 16
    nt_stdev: float = 0.15
    occlusion_window: int = 8
    occlusion_stride: int = 4
    batch_size: int = 64
    seed: int = 0


MAX_PREFIX_TOKENS = 8
"""Tokens a transformer may put before its grid of patch tokens (class, distillation and register tokens)."""
_PARAM = "--param explanations.layer=NAME"


@dataclass(frozen=True)
class LayerChoice:
    """The layer Grad-CAM hooks (``name`` relative to the model given), or why there is none.

    ``tokens``: for a layer whose output is a sequence of tokens (N, T, C), as in a vision transformer,
    ``(prefix, h, w)``: the last ``h * w`` tokens are the patch grid (row by row) after ``prefix`` others
    (a class token...); None for a feature map (N, C, H, W)."""

    name: str | None
    layer: nn.Module | None
    reason: str | None
    tokens: tuple[int, int, int] | None = None


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) or getattr(module, "original_name", None) == "Conv2d"


def _first(out: object) -> object:
    """A module's output tensor: the first item of a tuple output (attention returns (output, weights))."""
    return out[0] if isinstance(out, (tuple, list)) and out else out


def _token_grid(out: object, n: int) -> tuple[int, int, int] | None:
    """``(prefix, h, w)`` when ``out`` is a batch-first token sequence (n, T, C) whose last tokens form a square
    grid of at least 2 x 2 after at most `MAX_PREFIX_TOKENS` others (the fewest that make one); else None."""
    if not isinstance(out, Tensor) or out.dim() != 3 or out.shape[0] != n:
        return None
    t = int(out.shape[1])
    for prefix in range(min(MAX_PREFIX_TOKENS, t) + 1):
        side = math.isqrt(t - prefix)
        if side >= 2 and side * side == t - prefix:
            return prefix, side, side
    return None


def _patch_kernel(module: nn.Module) -> tuple[int, int] | None:
    """The kernel of a patch embedding: a convolution whose stride equals its kernel (larger than 1 x 1), so it
    cuts the image into patches and projects each one; None for any other layer."""
    k, s = getattr(module, "kernel_size", None), getattr(module, "stride", None)
    if isinstance(k, tuple) and len(k) == 2 and tuple(k) == tuple(s or ()) and k[0] * k[1] > 1:
        return int(k[0]), int(k[1])
    return None


def token_layers(model: nn.Module, example: Tensor) -> list[str]:
    """The layers token Grad-CAM can explain, in the order the forward runs them: those whose output is a grid
    of tokens (`_token_grid`) whose patch tokens reach the top logit of ``example[:1]`` (after a transformer's
    last attention only the class token does). One forward and backward; [] for a model that cannot be hooked."""
    found: list[tuple[str, Tensor, int]] = []

    def record(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, out: object) -> None:
            t = _first(out)
            grid = _token_grid(t, 1)
            if grid is not None and isinstance(t, Tensor) and t.requires_grad:
                found.append((name, t, grid[0]))
        return hook

    handles = []
    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(record(name)))
        with torch.enable_grad():
            logits = model(example[:1].detach().clone().requires_grad_(True))
            if not found or not isinstance(logits, Tensor) or logits.dim() != 2:
                return []
            top = logits[0, int(logits[0].argmax())]
            grads = torch.autograd.grad(top, [t for _, t, _ in found], allow_unused=True)
    except (RuntimeError, TypeError, ValueError):  # TorchScript refuses hooks; a model captum cannot drive either
        return []
    finally:
        for h in handles:
            h.remove()
    return [name for (name, _, prefix), g in zip(found, grads) if g is not None and bool(g[:, prefix:].abs().sum() > 0)]


def _suggest(model: nn.Module, example: Tensor) -> str:
    names = token_layers(model, example)
    return f", e.g. {names[-1]!r} (the last layer whose patch tokens reach the output)" if names else ""


def find_conv_layer(model: nn.Module, name: str | None, example: Tensor) -> LayerChoice:
    """The layer Grad-CAM explains: the one named ``name`` (a convolution, or a vision transformer's layer whose
    output is a grid of tokens), or the last convolutional layer; checked to fire a forward hook on ``example``
    (a TorchScript or ``torch.export`` model's layers may not).

    Without a name, a model whose only convolution is a patch embedding (stride = kernel, as a vision
    transformer's) gets a reason naming ``--param explanations.layer`` and a token layer to pass to it: a class
    activation map of the patch projection shows nothing the model learned."""
    modules = dict(model.named_modules())
    convs = [n for n, m in modules.items() if _is_conv(m)]
    patch = None
    if name:
        if name not in modules:
            listed = ", ".join(convs[-5:]) or "none"
            return LayerChoice(None, None, f"the model has no layer named {name!r} (its last convolutional layers: {listed}); "
                                           "set explanations.layer to one of them")
        chosen = name
    elif convs:
        chosen = convs[-1]
        patch = _patch_kernel(modules[chosen]) if len(convs) == 1 else None
    else:
        has_kernels = any(p.dim() == 4 for p in model.parameters())
        if has_kernels:
            why = "its convolutions are graph operations, not modules (a torch.export program), so none can be hooked"
        else:
            hint = _suggest(model, example)
            why = (f"the model has no convolutional layer; name a layer whose output is a grid of patch tokens with {_PARAM}{hint}"
                   if hint else f"the model has no convolutional layer, nor a layer whose output is a grid of patch tokens, "
                                f"to explain ({_PARAM} names one)")
        return LayerChoice(None, None, f"Grad-CAM was not run: {why}")
    layer = modules[chosen]
    seen: list[object] = []
    try:
        handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(_first(out)))
    except RuntimeError as exc:  # TorchScript: "register_forward_hook is not supported on ScriptModules"
        return LayerChoice(None, None, f"Grad-CAM was not run: layer {chosen!r} cannot be hooked ({str(exc).splitlines()[0]}); "
                                       "load the model as a state_dict with its architecture to get Grad-CAM")
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        handle.remove()
    if not seen:
        return LayerChoice(None, None, f"Grad-CAM was not run: layer {chosen!r} never ran its hooks (a traced or scripted "
                                       "model runs a fixed graph); load the model as a state_dict with its architecture")
    if patch is not None:
        return LayerChoice(None, None, f"Grad-CAM was not run: the model's only convolution, {chosen!r}, is a patch embedding "
                                       f"({patch[0]}x{patch[1]} kernel and stride, as in a vision transformer): its map is a "
                                       "projection of pixel patches made before any other layer, so it shows nothing the model "
                                       f"learned; name the layer to explain with {_PARAM}{_suggest(model, example)}")
    out = seen[0]
    if isinstance(out, Tensor) and out.dim() == 4:
        return LayerChoice(chosen, layer, None)
    tokens = _token_grid(out, 1)
    if tokens is None:
        shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        return LayerChoice(None, None, f"Grad-CAM was not run: layer {chosen!r} outputs {shape}, neither a feature map "
                                       f"(N, C, H, W) nor a grid of patch tokens (N, T, C); name another with {_PARAM}")
    return LayerChoice(chosen, layer, None, tokens)


def _chunks(n: int, size: int) -> list[slice]:
    size = max(1, size)
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def _probabilities(model: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    return lambda x: torch.softmax(model(x), dim=1)


def attribute(
    model: nn.Module,
    method: str,
    images: Tensor,
    targets: Tensor,
    settings: Settings = Settings(),
    *,
    layer: LayerChoice | None = None,
) -> Tensor:
    """Maps (N, H, W) float32 on the CPU of ``method`` for ``images`` (N, 3, H, W) in [0, 1] on the model's
    device and their ``targets`` (N,). The model must already be frozen (eval mode, no parameter grads).

    Raises `MethodUnavailable` when the model cannot be differentiated (gradient methods) or has no
    hookable layer (Grad-CAM).
    """
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Occlusion, Saliency

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)}")
    n, _, h, w = images.shape
    s = settings
    targets = targets.to(images.device).long()
    parts: list[Tensor] = []
    if method == "grad_cam" and (layer is None or layer.layer is None):
        raise MethodUnavailable(layer.reason if layer is not None and layer.reason else "Grad-CAM was not run: no layer chosen")
    if method in GRADIENT_METHODS:
        _require_gradients(model, images[:1])
    with torch.random.fork_rng(devices=[images.device] if images.device.type == "cuda" else []), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
        torch.manual_seed(s.seed)
        if method == "integrated_gradients":
            ig = IntegratedGradients(model)
            for sl in _chunks(n, s.batch_size):
                a = ig.attribute(images[sl], baselines=BASELINE, target=targets[sl], n_steps=s.ig_steps,
                                 internal_batch_size=s.batch_size)
                parts.append(a.sum(dim=1))
        elif method == "saliency":
            sal = Saliency(model)
            for sl in _chunks(n, s.batch_size):
                parts.append(sal.attribute(images[sl], target=targets[sl], abs=True).amax(dim=1))
        elif method == "smoothgrad":
            tunnel = NoiseTunnel(Saliency(model))
            per = max(1, s.batch_size // s.nt_samples)
            for sl in _chunks(n, per):
                a = tunnel.attribute(images[sl], nt_type="smoothgrad", nt_samples=s.nt_samples, stdevs=s.nt_stdev,
                                     nt_samples_batch_size=max(1, s.batch_size // (sl.stop - sl.start)),
                                     target=targets[sl], abs=True)
                parts.append(a.amax(dim=1))
        elif method == "grad_cam" and layer is not None and layer.tokens is not None:
            for sl in _chunks(n, s.batch_size):
                up = LayerAttribution.interpolate(_token_cam(model, layer, images[sl], targets[sl]), (h, w),
                                                  interpolate_mode="bilinear")
                parts.append(up.sum(dim=1))
        elif method == "grad_cam":
            assert layer is not None and layer.layer is not None
            cam = LayerGradCam(model, layer.layer)
            for sl in _chunks(n, s.batch_size):
                a = cam.attribute(images[sl], target=targets[sl], relu_attributions=True)
                if a.dim() != 4:
                    raise MethodUnavailable(f"Grad-CAM was not run: layer {layer.name!r} does not output a feature map "
                                            f"(its output has {a.dim()} dimensions); name a convolutional layer")
                up = LayerAttribution.interpolate(a.float(), (h, w), interpolate_mode="bilinear")
                parts.append(up.sum(dim=1))
        else:
            occ = Occlusion(_probabilities(model))
            win, stride = min(s.occlusion_window, h, w), max(1, min(s.occlusion_stride, h, w))
            windows = (math.floor((h - win) / stride) + 1) * (math.floor((w - win) / stride) + 1)
            for sl in _chunks(n, s.batch_size):
                k = sl.stop - sl.start
                a = occ.attribute(images[sl], sliding_window_shapes=(3, win, win), strides=(3, stride, stride),
                                  baselines=BASELINE, target=targets[sl],
                                  perturbations_per_eval=max(1, min(windows, s.batch_size // k)))
                parts.append(a.mean(dim=1))
    maps = torch.cat(parts).detach().float().cpu()
    return torch.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0)


def _token_cam(model: nn.Module, choice: LayerChoice, x: Tensor, targets: Tensor) -> Tensor:
    """Grad-CAM on a layer whose output is a sequence of tokens (N, T, C): each channel weighted by its gradient
    averaged over the patch tokens, summed over channels, ReLU; (N, 1, h, w) on the token grid (the prefix
    tokens, e.g. the class token, are left out, as pytorch-grad-cam's ViT recipe does)."""
    assert choice.layer is not None and choice.tokens is not None
    prefix, gh, gw = choice.tokens
    seen: list[object] = []
    handle = choice.layer.register_forward_hook(lambda _m, _i, out: seen.append(_first(out)))
    try:
        with torch.enable_grad():
            logits = model(x.detach().clone().requires_grad_(True))
            acts = seen[-1] if seen else None
            if not isinstance(acts, Tensor) or not acts.requires_grad:
                raise MethodUnavailable(f"Grad-CAM was not run: layer {choice.name!r} gave no output connected to the input")
            (grads,) = torch.autograd.grad(logits.gather(1, targets.view(-1, 1)).sum(), acts)
    finally:
        handle.remove()
    if acts.dim() != 3 or acts.shape[1] != prefix + gh * gw:
        raise MethodUnavailable(f"Grad-CAM was not run: layer {choice.name!r} output {list(acts.shape)} here, not the "
                                f"{prefix + gh * gw} tokens it gave on the first image; name another with {_PARAM}")
    a, g = acts.detach()[:, prefix:].float(), grads[:, prefix:].float()
    if not bool(g.abs().sum() > 0):
        raise MethodUnavailable(f"Grad-CAM was not run: the patch tokens of layer {choice.name!r} do not reach the output "
                                "(after a transformer's last attention only the class token does); name an earlier layer "
                                f"with {_PARAM}{_suggest(model, x)}")
    cam = torch.relu((g.mean(dim=1, keepdim=True) * a).sum(dim=2))
    return cam.view(-1, 1, gh, gw)


def _require_gradients(model: Callable[[Tensor], Tensor], x: Tensor) -> None:
    """Raise `MethodUnavailable` unless the model's output is connected to its input in autograd."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
    if not isinstance(out, Tensor) or not out.requires_grad:
        raise MethodUnavailable("the model's output is not connected to its input in the autograd graph (a no_grad or "
                                "detached forward), so gradient methods cannot run; occlusion still does")
