"""Probe datasets: the `Probe` contract, the format readers behind `open_probe`, and the streaming loader.

``probes.synth`` (the generated probe) is imported only when ``open_probe("synth:...")`` asks for it.
"""
from __future__ import annotations

from probes.base import ImageUnreadable, Probe
from probes.loader import Batch, ProbeDataset, ResizeTally, fit_image, image_sizes, make_loader, probe_image_size
from probes.open import open_probe
from probes.summary import format_summary, summarize

__all__ = [
    "Probe",
    "ImageUnreadable",
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
