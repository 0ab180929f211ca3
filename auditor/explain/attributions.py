"""Attribution maps through captum, batched so a large model does not run out of memory.

Every method returns one map per image, (N, H, W) on the CPU, in the model's input frame; higher
means more important for the target class:

- ``integrated_gradients``: IG from a grey image (the grey the deletion curve fills in), summed over
  colour channels (signed: evidence against the class is negative);
- ``saliency``: |d logit / d pixel|, the maximum over colour channels (Simonyan et al. 2014);
- ``smoothgrad``: saliency averaged over noisy copies of the image (captum's ``NoiseTunnel``);
- ``grad_cam``: Grad-CAM on a convolutional layer (the last one unless named), upsampled bilinearly;
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

from auditor.explain import LABELS

__all__ = ["METHODS", "LABELS", "GRADIENT_METHODS", "MethodUnavailable", "Settings", "LayerChoice", "attribute",
           "find_conv_layer"]

METHODS = ("integrated_gradients", "saliency", "smoothgrad", "grad_cam", "occlusion")
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


@dataclass(frozen=True)
class LayerChoice:
    """The layer Grad-CAM hooks (``name`` relative to the model given), or why there is none."""

    name: str | None
    layer: nn.Module | None
    reason: str | None


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) or getattr(module, "original_name", None) == "Conv2d"


def find_conv_layer(model: nn.Module, name: str | None, example: Tensor) -> LayerChoice:
    """The convolutional layer named ``name`` (or the last one) of ``model``, checked to fire a forward hook
    on ``example`` (a TorchScript or ``torch.export`` model's layers may not)."""
    modules = dict(model.named_modules())
    convs = [n for n, m in modules.items() if _is_conv(m)]
    if name:
        if name not in modules:
            listed = ", ".join(convs[-5:]) or "none"
            return LayerChoice(None, None, f"the model has no layer named {name!r} (its last convolutional layers: {listed}); "
                                           "set explanations.layer to one of them")
        chosen = name
    elif convs:
        chosen = convs[-1]
    else:
        has_kernels = any(p.dim() == 4 for p in model.parameters())
        why = ("its convolutions are graph operations, not modules (a torch.export program), so none can be hooked"
               if has_kernels else "the model has no convolutional layer")
        return LayerChoice(None, None, f"Grad-CAM was not run: {why}")
    layer = modules[chosen]
    fired: list[bool] = []
    try:
        handle = layer.register_forward_hook(lambda *_: fired.append(True))
    except RuntimeError as exc:  # TorchScript: "register_forward_hook is not supported on ScriptModules"
        return LayerChoice(None, None, f"Grad-CAM was not run: layer {chosen!r} cannot be hooked ({str(exc).splitlines()[0]}); "
                                       "load the model as a state_dict with its architecture to get Grad-CAM")
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        handle.remove()
    if not fired:
        return LayerChoice(None, None, f"Grad-CAM was not run: layer {chosen!r} never ran its hooks (a traced or scripted "
                                       "model runs a fixed graph); load the model as a state_dict with its architecture")
    return LayerChoice(chosen, layer, None)


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


def _require_gradients(model: Callable[[Tensor], Tensor], x: Tensor) -> None:
    """Raise `MethodUnavailable` unless the model's output is connected to its input in autograd."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
    if not isinstance(out, Tensor) or not out.requires_grad:
        raise MethodUnavailable("the model's output is not connected to its input in the autograd graph (a no_grad or "
                                "detached forward), so gradient methods cannot run; occlusion still does")
