"""The validation forward pass: does the loaded model take the probe's images and give usable logits?"""
from __future__ import annotations

import logging
import re
import time

import torch

from auditor.errors import ModelLoadError, UsageError
from auditor.models._files import error_line
from auditor.models._loaded import LoadedModel
from auditor.models._wrapper import as_logits

__all__ = ["check_model_output"]

log = logging.getLogger(__name__)

_COMMON_SIZES = (224, 32, 28, 64, 96, 128, 16, 112, 256, 299, 48, 160, 192, 384, 512)
_SEARCH_SECONDS = 5.0
_CHANNELS = re.compile(r"expected input\[[^\]]*\] to have (\d+) channels")


def _runs_at(module: torch.nn.Module, channels: int, size: int, device: torch.device) -> bool:
    try:
        with torch.no_grad():
            module(torch.full((2, channels, size, size), 0.5, device=device))
    except Exception:  # noqa: BLE001 - any failure means "not at this size"
        return False
    return True


def _what_it_needs(model: LoadedModel, images: torch.Tensor, error: BaseException) -> str:
    """A hint on the input the model appears to need, found from the error, the export, or by trying sizes."""
    match = _CHANNELS.search(str(error))
    if match and int(match.group(1)) != images.shape[1]:
        return (
            f"the model takes {match.group(1)}-channel images but the auditor feeds RGB; save it with a first layer "
            "that takes 3 channels (e.g. convert inside forward)"
        )
    shape = model.details.get("export_input_shape")
    if isinstance(shape, list) and len(shape) == 4 and shape[2] is not None and shape[3] is not None:
        size = shape[2] if shape[2] == shape[3] else f"{shape[2]},{shape[3]}"
        return f"it was exported for {shape[2]}x{shape[3]} input; pass --input-size {size}"
    h, w = images.shape[2], images.shape[3]
    start = time.perf_counter()
    for size in _COMMON_SIZES:
        if (size, size) == (h, w):
            continue
        if time.perf_counter() - start > _SEARCH_SECONDS:
            break
        if _runs_at(model.module, images.shape[1], size, images.device):
            return f"it runs at {size}x{size}; pass --input-size {size}"
    return "it failed at the common input sizes too; check that its forward takes N x 3 x H x W float images"


def check_model_output(model: LoadedModel, images: torch.Tensor) -> int:
    """Run one batch of [0, 1] NCHW images through ``model`` (no grad) and return the class count C.

    Raises `ModelLoadError` when the forward raises (saying what input the model appears to need),
    the output is not N x C / N / N x 1, it holds NaN or inf, or C disagrees with ``model.num_classes``.
    A binary logit counts as C = 2. When ``model.num_classes`` is None it is set to C.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] < 1:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UsageError(f"check_model_output needs a non-empty N x 3 x H x W image batch; got {shape}")
    n, c, h, w = images.shape
    src = model.source
    try:
        with torch.no_grad():
            out, _ = as_logits(model.module(images))
    except ModelLoadError as e:
        raise ModelLoadError(f"{src}: {e}") from None
    except Exception as e:  # noqa: BLE001 - a user model's forward can raise anything
        hint = _what_it_needs(model, images, e)
        raise ModelLoadError(f"{src} failed on a batch of {n}x{c}x{h}x{w} images ({error_line(e)}); {hint}") from None
    if out.shape[0] != n:
        raise ModelLoadError(
            f"{src} returned {out.shape[0]} rows of logits for a batch of {n} images; its forward must keep the batch dimension"
        )
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        rows = int(bad.any(dim=1).sum())
        raise ModelLoadError(
            f"{src} gives non-finite logits (NaN/inf) for {rows} of {n} images in [0, 1]; "
            "check its weights and its normalisation (mean/std in a model spec)"
        )
    width = int(out.shape[1])
    expected = model.num_classes
    if expected is not None and max(expected, 2) != width:
        origin = "the spec's classes" if model.class_names is not None else "--num-classes or the weights"
        raise ModelLoadError(
            f"{src} outputs {width} class logits but {origin} say {expected}; pass --num-classes {width} "
            "or fix 'classes' in the model spec"
        )
    if model.num_classes is None:
        model.num_classes = width
    log.debug("validation pass: %s gives %d logits per image", src, width)
    return width
