"""The wrapper every check calls: pixels in [0, 1] in, logits N x C out, normalisation inside.

Because normalisation happens inside the wrapper, attack budgets (eps) are in pixel space, and
gradients flow from the logits back to the [0, 1] input (attacks take d logits / d x through it).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from auditor.errors import ModelLoadError

__all__ = ["AuditModel", "as_logits"]

log = logging.getLogger(__name__)


def as_logits(out: Any) -> tuple[torch.Tensor, bool]:
    """Logits N x C from a model's raw output, and whether it was a 1-column binary logit.

    A tuple/list output gives its first item, a mapping its ``logits`` entry. A 1-D or N x 1 output
    ``z`` becomes N x 2 ``[0, z]``, so softmax gives ``[1 - sigmoid(z), sigmoid(z)]``.
    """
    if isinstance(out, Mapping):
        out = out["logits"] if "logits" in out else next(iter(out.values()), None)
    elif isinstance(out, Sequence) and not isinstance(out, torch.Tensor) and len(out) > 0:
        out = out[0]  # e.g. (logits, aux) or a namedtuple
    if not isinstance(out, torch.Tensor):
        raise ModelLoadError(f"the model returned a {type(out).__name__}, not a tensor of logits; make forward return N x C logits")
    if out.dim() == 1 or out.dim() == 2 and out.shape[1] == 1:
        z = out.reshape(-1, 1)
        return torch.cat([torch.zeros_like(z), z], dim=1), True
    if out.dim() != 2:
        raise ModelLoadError(
            f"the model's output has shape {list(out.shape)}; it must be N x C logits (or N / N x 1 for a binary logit)"
        )
    return out, False


class AuditModel(nn.Module):
    """Wraps a classifier so that it takes RGB pixels in [0, 1] and returns logits.

    Shape: images (N, 3, H, W) float in [0, 1] -> logits (N, C). ``(x - mean) / std`` is applied
    when given; a binary-logit output is widened to 2 columns (see `as_logits`). Inputs are cast to
    the inner model's floating dtype and logits returned as float32. Gradients flow to the input.

    ``fixed_batch`` is for ``torch.export`` programs exported with a static batch size: the batch
    is cut into chunks of that size (the last padded by repeating its final image). ``fixed_mode``
    marks an inner module whose train/eval mode cannot be changed (``torch.export`` modules).
    """

    def __init__(
        self,
        inner: nn.Module,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        fixed_batch: int | None = None,
        fixed_mode: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", _channels(mean), persistent=False)
        self.register_buffer("std", _channels(std), persistent=False)
        self.fixed_batch = fixed_batch
        self.fixed_mode = fixed_mode
        self.binary_logit: bool | None = None
        self.details = details if details is not None else {}
        dtypes = [p.dtype for p in inner.parameters() if p.is_floating_point()]
        self.input_dtype = dtypes[0] if dtypes else None

    def train(self, mode: bool = True) -> AuditModel:
        """Set the mode; an inner module with a fixed mode (``torch.export``) is left as exported."""
        self.training = mode
        if self.fixed_mode:
            if mode:
                log.debug("the inner model's mode is fixed (torch.export); it stays as exported")
        else:
            self.inner.train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        if self.input_dtype is not None and x.dtype != self.input_dtype:
            x = x.to(self.input_dtype)
        n, b = x.shape[0], self.fixed_batch
        if b is None or n == b:
            logits, binary = as_logits(self.inner(x))
        else:
            parts = []
            for i in range(0, n, b):
                part = x[i : i + b]
                k = part.shape[0]
                if k < b:
                    part = torch.cat([part, part[-1:].expand(b - k, *part.shape[1:])])
                out, binary = as_logits(self.inner(part))
                parts.append(out[:k])
            logits = torch.cat(parts)
        if self.binary_logit is None:
            self.binary_logit = binary
            self.details["binary_logit"] = binary
        return logits.float()


def _channels(values: Sequence[float] | None) -> torch.Tensor | None:
    if values is None:
        return None
    return torch.tensor([float(v) for v in values], dtype=torch.float32).view(1, -1, 1, 1)
