"""Spurious-correlation tooling: perturbation operators and batched meaningful-perturbation masks."""
from __future__ import annotations

from auditor.spurious.masks import (
    GAMES,
    MaskParameterError,
    MaskResult,
    deletion_score,
    learn_masks,
)
from auditor.spurious.perturb import (
    OPERATORS,
    apply_stack,
    blur,
    blur_pyramid,
    fill,
    perturbation_stack,
    perturbed,
)

__all__ = [
    "GAMES", "OPERATORS", "MaskParameterError", "MaskResult", "apply_stack", "blur", "blur_pyramid",
    "deletion_score", "fill", "learn_masks", "perturbation_stack", "perturbed",
]
