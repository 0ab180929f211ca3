"""`LoadedModel`: the model under audit with what is known about it before the first forward pass.

A leaf: the loaders build it and the validation pass reads it, so both import it from here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = ["LoadedModel"]


@dataclass
class LoadedModel:
    """A model ready for the checks, with what is known about it before the first forward pass."""

    module: nn.Module
    source: str
    form: str
    sha256: str
    input_size: tuple[int, int] | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    positive_class: int | str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    declared_by: dict[str, str] = field(default_factory=dict)
    """Who declared each of classes, positive_class, mean, std, input_size: ``flag``, ``spec``, ``export``, ``weights``."""
