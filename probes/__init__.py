"""Probe datasets: the `Probe` contract, the format readers behind `open_probe`, and the streaming loader.

``probes.synth`` (the generated probe) is imported only when ``open_probe("synth:...")`` asks for it, and
the loader's names (which need torch) only when first used, so ``auditor probe check`` starts fast.
"""
from __future__ import annotations

import importlib
from typing import Any

from probes.base import ImageUnreadable, Probe, ProbeOptions
from probes.open import open_probe
from probes.summary import format_summary, summarize

__all__ = [
    "Probe",
    "ImageUnreadable",
    "ProbeOptions",
    "open_probe",
    "make_loader",
    "Batch",
    "ProbeDataset",
    "probe_image_size",
    "image_sizes",
    "fit_image",
    "ResizeTally",
    "summarize",
    "format_summary",
]

_LOADER = ("Batch", "ProbeDataset", "ResizeTally", "fit_image", "image_sizes", "make_loader", "probe_image_size")


def __getattr__(name: str) -> Any:
    if name in _LOADER:  # imported when used: the loader needs torch
        return getattr(importlib.import_module("probes.loader"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
