"""The argument checks every attack shares, written once with `auditor.validation`.

Scalars and options are declared (`check` with `Interval`, `Options`, ...); tensors are checked in
code and fail with `invalid`, so every bad argument raises `ParameterError` with the one message:
"The 'eps' parameter of pgd must be a float in [0, 1]. Got 1.5 instead."

Shape: images (N, C, H, W) float in [0, 1]; labels (N,) integer class indices.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from auditor.validation import Instance, Interval, Options, Satisfies, check, invalid

__all__ = [
    "NORMS",
    "Cancel",
    "Progress",
    "check_batch_size",
    "check_callbacks",
    "check_classes",
    "check_eps",
    "check_flag",
    "check_image_shape",
    "check_images",
    "check_int",
    "check_labels",
    "check_logits",
    "check_model",
    "check_norm",
    "check_positive",
    "check_seed",
    "image_array",
    "l2_ceiling",
]

log = logging.getLogger(__name__)

NORMS = ("linf", "l2")

Progress = Callable[[str, int, int], None] | None
Cancel = Callable[[], bool] | None


def check_norm(norm: Any, caller: str) -> str:
    """``norm``: "linf" or "l2"."""
    return check(norm, Options(*NORMS), param="norm", caller=caller)


def check_int(value: Any, param: str, caller: str, minimum: int) -> int:
    """An int >= ``minimum`` (numpy ints too; not a bool)."""
    return check(value, Interval(int, minimum, None), param=param, caller=caller)


def check_batch_size(batch_size: Any, caller: str) -> int:
    return check_int(batch_size, "batch_size", caller, 1)


def check_seed(seed: Any, caller: str) -> int:
    return check_int(seed, "seed", caller, 0)


def check_positive(value: Any, param: str, caller: str) -> float:
    """A finite float > 0 (a step size, a tolerance, a learning rate)."""
    return check(value, Interval(float, 0, None, closed="neither"), param=param, caller=caller)


def check_eps(eps: Any, norm: str, caller: str, *, param: str = "eps", positive: bool = False,
              l2_max: float | None = None) -> float:
    """A perturbation budget: in [0, 1] for linf (pixel units), >= 0 for l2 (at most ``l2_max`` when
    given); > 0 when ``positive``."""
    high = 1 if norm == "linf" else l2_max
    closed = ("right" if high is not None else "neither") if positive else ("both" if high is not None else "left")
    return check(eps, Interval(float, 0, high, closed=closed), param=param, caller=caller)


def l2_ceiling(shape: tuple[int, ...]) -> float:
    """The largest L2 distance between two images of ``shape`` (N, C, H, W) in [0, 1]: sqrt(C * H * W)."""
    return math.sqrt(float(np.prod(shape[1:])))


def check_callbacks(progress: Any, cancel: Any, caller: str) -> None:
    """``progress(stage, done, total)`` and ``cancel()``: None or callables."""
    check(progress, None, Satisfies(callable, "a callable progress(stage, done, total)"), param="progress", caller=caller)
    check(cancel, None, Satisfies(callable, "a callable cancel() -> bool"), param="cancel", caller=caller)


def check_model(model: Any, caller: str, param: str = "model") -> None:
    """A callable mapping images to logits (the value shown is its type: a module's repr spans lines)."""
    if not callable(model):
        raise invalid(param, caller, "a callable mapping images to logits (a torch.nn.Module)", type(model).__name__)


def _shape_of(x: Any) -> Any:
    return tuple(x.shape) if hasattr(x, "shape") else type(x).__name__


def check_image_shape(x: Any, caller: str, *, param: str = "x", allow_empty: bool = True,
                      channels: int | None = None) -> Tensor:
    """A float tensor (N, C, H, W) (C = ``channels`` when given; N >= 1 unless ``allow_empty``)."""
    c = "C" if channels is None else str(channels)
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point() or (channels is not None and x.shape[1] != channels):
        raise invalid(param, caller, f"a float tensor (N, {c}, H, W) of images in [0, 1]", _shape_of(x))
    if not allow_empty and x.shape[0] == 0:
        raise invalid(param, caller, "a non-empty batch of images", tuple(x.shape))
    return x


def check_images(x: Any, caller: str, *, param: str = "x", allow_empty: bool = True, channels: int | None = None) -> Tensor:
    """`check_image_shape` and finite pixel values in [0, 1]; returns x detached."""
    x = check_image_shape(x, caller, param=param, allow_empty=allow_empty, channels=channels)
    if x.numel() and (not bool(torch.isfinite(x).all()) or float(x.min()) < 0.0 or float(x.max()) > 1.0):
        finite = x[torch.isfinite(x)]
        seen = (float(finite.min()), float(finite.max())) if finite.numel() else "no finite value"
        raise invalid(param, caller, "finite pixel values in [0, 1] (normalisation belongs in the model)", seen)
    return x.detach()


def image_array(x: Any, caller: str, param: str = "x") -> np.ndarray:
    """Images (a tensor or a numpy array, N >= 1, 3 channels) checked as `check_images` does, as a
    contiguous float32 numpy array on CPU (what ART works on)."""
    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    elif isinstance(x, Tensor) and x.is_floating_point():
        x = x.detach().to("cpu", torch.float32)
    x = check_images(x, caller, param=param, allow_empty=False, channels=3)
    return np.ascontiguousarray(x.numpy())


def check_labels(y: Any, n: int, caller: str, param: str = "y") -> Tensor:
    """``n`` non-negative integer labels (N,): an int64 tensor on CPU."""
    constraint = f"non-negative integer labels of shape ({n},), one per image"
    try:
        y_t = torch.as_tensor(y.detach().cpu() if isinstance(y, Tensor) else y)
    except (TypeError, ValueError, RuntimeError):
        raise invalid(param, caller, constraint, type(y).__name__) from None
    if y_t.ndim != 1 or y_t.shape[0] != n or y_t.is_floating_point() or y_t.is_complex() or y_t.dtype == torch.bool:
        raise invalid(param, caller, constraint, f"shape {tuple(y_t.shape)}, dtype {y_t.dtype}")
    if n and int(y_t.min()) < 0:
        raise invalid(param, caller, constraint, f"a label of {int(y_t.min())}")
    return y_t.long()


def check_classes(y: Tensor | np.ndarray, n_classes: int, caller: str, param: str = "y") -> None:
    """Every label a class index of a model with ``n_classes`` outputs."""
    if len(y) and int(y.max()) >= n_classes:
        raise invalid(param, caller, f"class indices in [0, {n_classes - 1}] (the model has {n_classes} outputs)",
                      (int(y.min()), int(y.max())))


def check_logits(logits: Any, rows: int, caller: str) -> Tensor:
    """The model's answer for ``rows`` images: logits (rows, C) with C >= 2."""
    if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != rows or logits.shape[1] < 2:
        raise invalid("model", caller, f"a callable returning logits (N, C) with C >= 2 classes for N images "
                      f"(here N = {rows})", _shape_of(logits))
    return logits


def check_flag(value: Any, param: str, caller: str) -> bool:
    """True or False."""
    return check(value, Instance(bool), param=param, caller=caller)
