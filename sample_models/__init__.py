"""Small sample classifiers for the synthetic probe, their trained weights and the recipe that trained them.

``shortcut_cnn/`` learned the planted watermark cue (top-left) within an under-represented race group;
``sticker_cnn/`` learned a different cue, an orange disc at the bottom-right, for the 60+ age group
(audit it on ``synth:faces:cue=sticker``); ``clean_cnn/`` was trained on a balanced set without a
shortcut. Each folder holds ``model.safetensors`` and a ``model.yaml`` spec the auditor loads
directly; `sample_models.recipe` regenerates them.
"""
from __future__ import annotations

from pathlib import Path

from sample_models.architectures import small_cnn, tiny_resnet

__all__ = ["small_cnn", "tiny_resnet", "SAMPLE_MODELS_DIR", "spec_path"]

SAMPLE_MODELS_DIR = Path(__file__).resolve().parent


def spec_path(name: str) -> Path:
    """The ``model.yaml`` of the shipped sample model ``name`` (``shortcut_cnn`` or ``clean_cnn``)."""
    return SAMPLE_MODELS_DIR / name / "model.yaml"
