"""Stream a probe's images through a torch DataLoader, so a 100k-image probe is never held in memory.

Shape: each `Batch` holds ``images`` (N, 3, H, W) float32 RGB in [0, 1] at the model's input size
and ``indices`` (N,) into ``probe.table``. Unreadable images are left out of ``images`` and listed
in ``failed`` as ``(index, message)``; a batch whose every image failed has N = 0.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from auditor.errors import ProbeError
from probes.base import ImageUnreadable, Probe

__all__ = ["Batch", "ProbeDataset", "make_loader", "probe_image_size", "collate_batch"]

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """A batch of readable probe images, their row indices, and the ``(index, message)`` of those that failed."""

    images: torch.Tensor
    indices: torch.Tensor
    failed: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.indices.numel())


class ProbeDataset(Dataset):
    """Item ``k``: ``(image (3, H, W) float32 in [0, 1], row index, error message or "")``.

    Images are read on access (``__init__`` reads none) and resized with PIL bilinear when their
    size differs from ``input_size`` (H, W). An unreadable image gives zeros and its message.
    """

    def __init__(self, probe: Probe, input_size: tuple[int, int], indices: Sequence[int] | None = None) -> None:
        h, w = (int(v) for v in input_size)
        if h <= 0 or w <= 0:
            raise ValueError(f"input_size must be two positive ints (H, W); got {input_size!r}")
        self.probe = probe
        self.input_size = (h, w)
        self.indices = list(range(len(probe))) if indices is None else [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int, str]:
        i = self.indices[k]
        h, w = self.input_size
        try:
            img = self.probe.load_image(i)
        except (ImageUnreadable, ProbeError) as exc:
            return torch.zeros(3, h, w, dtype=torch.float32), i, str(exc) or exc.__class__.__name__
        if img.mode != "RGB":
            img = img.convert("RGB")
        if img.size != (w, h):
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        array = np.array(img, dtype=np.uint8)  # a writable copy, as torch.from_numpy wants
        return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0), i, ""


def collate_batch(items: Sequence[tuple[torch.Tensor, int, str]]) -> Batch:
    """Stack dataset items into a `Batch`, dropping failed ones into ``Batch.failed``."""
    keep = [k for k, (_, _, err) in enumerate(items) if not err]
    failed = [(int(i), err) for _, i, err in items if err]
    images = torch.stack([items[k][0] for k in keep]) if keep else torch.zeros(0, *items[0][0].shape)
    indices = torch.tensor([items[k][1] for k in keep], dtype=torch.long)
    return Batch(images=images, indices=indices, failed=failed)


def make_loader(
    probe: Probe,
    input_size: tuple[int, int],
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    indices: Sequence[int] | None = None,
) -> DataLoader:
    """Iterate over the probe (or the rows ``indices``) in order, as `Batch` es of ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    return DataLoader(
        ProbeDataset(probe, input_size, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_batch,
        pin_memory=False,
        drop_last=False,
    )


def probe_image_size(probe: Probe) -> tuple[int, int]:
    """(H, W) of the probe's first readable image: the input size for a model that does not declare one."""
    first_error = ""
    for i in range(len(probe)):
        try:
            img = probe.load_image(i)
        except (ImageUnreadable, ProbeError) as exc:
            first_error = first_error or str(exc)
            continue
        if i:
            log.warning("the first %d image(s) of %s are unreadable; sizing from row %d", i, probe.source, i)
        return img.height, img.width
    raise ProbeError(f"none of the {len(probe)} images of {probe.source} can be read (first: {first_error}); check the image files")
