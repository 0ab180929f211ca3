"""Spurious-correlation tooling: perturbation operators and batched meaningful-perturbation masks."""
from __future__ import annotations

from auditor.spurious.masks import (
    GAMES,
    MaskParameterError,
    MaskResult,
    curve_area,
    deletion_score,
    insertion_score,
    learn_masks,
    saliency_curve,
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
    "curve_area", "deletion_score", "fill", "insertion_score", "learn_masks", "perturbation_stack", "perturbed",
    "saliency_curve",
]
