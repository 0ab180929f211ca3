"""Spurious-correlation tooling: perturbation operators and batched meaningful-perturbation masks.

This package's top level imports no torch: the names below load their module (and torch) on first use, so
``auditor checks`` can list the checks' operators without loading a model stack.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "GAMES", "OPERATORS", "MaskResult", "apply_stack", "blur", "blur_pyramid",
    "curve_area", "deletion_score", "fill", "insertion_score", "learn_masks", "perturbation_stack", "perturbed",
    "saliency_curve",
]

OPERATORS = ("blur", "pyramid", "fill")
"""``blur``: one Gaussian blur (Fong & Vedaldi 2017); ``pyramid``: blur levels chosen by mask value
(Fong et al. 2019); ``fill``: a constant image (mid-grey or a dataset mean), removes colour too."""

_HOME = {  # public name -> the module that defines it, imported on first use (it needs torch)
    **dict.fromkeys(("GAMES", "MaskResult", "curve_area", "deletion_score", "insertion_score",
                     "learn_masks", "saliency_curve"), "masks"),
    **dict.fromkeys(("apply_stack", "blur", "blur_pyramid", "fill", "perturbation_stack", "perturbed"), "perturb"),
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
