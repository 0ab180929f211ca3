"""Explanation tooling: attribution maps (captum), their faithfulness and sanity, and model-level views.

This package's top level imports no torch, so the report can name the methods without loading a model.
"""
from __future__ import annotations

__all__ = ["LABELS", "METHODS"]

LABELS = {"integrated_gradients": "Integrated Gradients", "saliency": "Saliency", "smoothgrad": "SmoothGrad",
          "grad_cam": "Grad-CAM", "occlusion": "Occlusion", "perturbation_mask": "Meaningful perturbation"}
"""Each method's name for people, by its key in results.json."""

METHODS = ("integrated_gradients", "saliency", "smoothgrad", "grad_cam", "occlusion")
"""The attribution methods of `auditor.explain.attributions.attribute` (``perturbation_mask`` is the spurious check's)."""
