"""`frozen(model)`: a model in eval mode with its parameters frozen for the length of a call, and left
exactly as it was found (every submodule's training flag, every parameter's requires_grad), even when
the call raises. Checks that differentiate through the model (masks, attacks, diagnostics) use it."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["frozen"]


@contextmanager
def frozen(model: Callable[..., Any]) -> Iterator[None]:
    """Eval mode and ``requires_grad`` False inside the block; a plain function passes through."""
    module = model if isinstance(model, torch.nn.Module) else None
    training = [(m, m.training) for m in module.modules()] if module is not None else []
    grads = [(p, p.requires_grad) for p in module.parameters()] if module is not None else []
    try:
        if module is not None:
            module.eval()
            for p, _ in grads:
                p.requires_grad_(False)
        yield
    finally:
        for m, mode in training:
            m.training = mode
        for p, flag in grads:
            p.requires_grad_(flag)
