"""Stream a probe's images through a torch DataLoader, so a 100k-image probe is never held in memory.

Shape: each `Batch` holds ``images`` (N, 3, H, W) float32 RGB in [0, 1] at the model's input size
and ``indices`` (N,) into ``probe.table``. Unreadable images are left out of ``images`` and listed
in ``failed`` as ``(index, message)``; a batch whose every image failed has N = 0.

An image of another size is resized keeping its aspect ratio (`fit_image`: scaled to cover the input
size, then the centre cropped, as torchvision's ``Resize`` + ``CenterCrop`` evaluation transforms do);
``Batch.sizes`` keeps each image's own (W, H) so the resized ones can be counted (`ResizeTally`).
The input size of a model that does not declare one is the probe's most common image size
(`probe_image_size`), never the first image's.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from auditor.errors import ProbeError
from probes.base import ImageUnreadable, Probe

__all__ = ["Batch", "ProbeDataset", "make_loader", "probe_image_size", "image_sizes", "collate_batch", "fit_image",
           "ResizeTally", "RESIZE_METHOD", "CENSUS_MAX"]

log = logging.getLogger(__name__)

RESIZE_METHOD = "aspect ratio kept: scaled so the shorter side fits, then centre-cropped"
"""How an image of another size than the input size is brought to it, in words for results.json and the report."""
CENSUS_MAX = 10_000
"""Image headers `image_sizes` reads at most (a larger probe: this many rows, evenly spaced in path order)."""
_MAX_SIZES_LISTED = 20


@dataclass
class Batch:
    """A batch of readable probe images, their row indices, and the ``(index, message)`` of those that failed."""

    images: torch.Tensor
    indices: torch.Tensor
    failed: list[tuple[int, str]] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    """Each image's own (W, H) before it was brought to the input size, in ``images``' order."""

    def __len__(self) -> int:
        return int(self.indices.numel())


class ProbeDataset(Dataset):
    """Item ``k``: ``(image (3, H, W) float32 in [0, 1], row index, error message or "", its own (W, H))``.

    Images are read on access (``__init__`` reads none) and brought to ``input_size`` (H, W) by
    `fit_image` when their size differs. An unreadable image gives zeros, its message and (0, 0).
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

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int, str, tuple[int, int]]:
        i = self.indices[k]
        h, w = self.input_size
        try:
            img = self.probe.load_image(i)
        except (ImageUnreadable, ProbeError) as exc:
            return torch.zeros(3, h, w, dtype=torch.float32), i, str(exc) or exc.__class__.__name__, (0, 0)
        if img.mode != "RGB":
            img = img.convert("RGB")
        own = (int(img.width), int(img.height))
        array = np.array(fit_image(img, (h, w)), dtype=np.uint8)  # a writable copy, as torch.from_numpy wants
        return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0), i, "", own


def fit_image(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` at ``size`` (H, W) with its aspect ratio kept: scaled (PIL bilinear) so it covers the size, its centre
    cropped to it, as torchvision's ``Resize(shorter side)`` + ``CenterCrop`` do for a square size. An image of the
    size's aspect ratio (a square one for a square size) is only scaled; one of the size itself is returned as is."""
    h, w = (int(v) for v in size)
    iw, ih = img.size
    if (iw, ih) == (w, h):
        return img
    if iw * h == ih * w:
        return img.resize((w, h), Image.Resampling.BILINEAR)
    if iw * h > ih * w:  # wider than the size: keep the middle of the width
        cw = ih * w / h
        box = ((iw - cw) / 2, 0.0, (iw + cw) / 2, float(ih))
    else:  # taller: keep the middle of the height
        ch = iw * h / w
        box = (0.0, (ih - ch) / 2, float(iw), (ih + ch) / 2)
    return img.resize((w, h), Image.Resampling.BILINEAR, box=box)


def collate_batch(items: Sequence[tuple[torch.Tensor, int, str, tuple[int, int]]]) -> Batch:
    """Stack dataset items into a `Batch`, dropping failed ones into ``Batch.failed``."""
    keep = [k for k, item in enumerate(items) if not item[2]]
    failed = [(int(item[1]), item[2]) for item in items if item[2]]
    images = torch.stack([items[k][0] for k in keep]) if keep else torch.zeros(0, *items[0][0].shape)
    indices = torch.tensor([items[k][1] for k in keep], dtype=torch.long)
    return Batch(images=images, indices=indices, failed=failed, sizes=[tuple(items[k][3]) for k in keep])  # type: ignore[misc]


@dataclass
class ResizeTally:
    """Counts the images that were not of ``input_size`` (H, W), by their own size, over the batches given to `add`."""

    input_size: tuple[int, int]
    counts: Counter = field(default_factory=Counter)

    def add(self, batch: Batch) -> None:
        h, w = self.input_size
        self.counts.update(f"{sw}x{sh}" for sw, sh in batch.sizes if (sw, sh) != (w, h))

    def to_dict(self) -> dict[str, Any]:
        """``{"n", "to" [H, W], "method", "from" {"WxH": count, most first; past 20 sizes the rest as "other"}}``."""
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        listed = dict(ranked[:_MAX_SIZES_LISTED])
        if len(ranked) > _MAX_SIZES_LISTED:
            listed["other"] = sum(c for _, c in ranked[_MAX_SIZES_LISTED:])
        return {"n": int(sum(self.counts.values())), "to": list(self.input_size), "method": RESIZE_METHOD, "from": listed}


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


def image_sizes(probe: Probe) -> dict[tuple[int, int], int]:
    """How many of the probe's images have each (W, H), read from the image headers (no decoding) and kept on the probe.

    A probe of more than `CENSUS_MAX` images is sized on that many rows, evenly spaced in the order of their paths,
    so the census never depends on the order of the probe's listing. Unreadable images are left out.
    """
    if probe.image_sizes_cache is not None:
        return probe.image_sizes_cache
    rows: Sequence[int] = range(len(probe))
    if len(probe) > CENSUS_MAX and "path" in probe.table.columns and probe.root is not None:
        by_path = np.argsort(probe.table["path"].astype(str).to_numpy(), kind="stable")
        rows = by_path[np.linspace(0, len(probe) - 1, CENSUS_MAX).round().astype(int)].tolist()
    counts: Counter = Counter()
    for i in rows:
        try:
            counts[probe.image_size(int(i))] += 1
        except (ImageUnreadable, ProbeError):
            continue
    probe.image_sizes_cache = dict(counts)
    return probe.image_sizes_cache


def _most_common(sizes: dict[tuple[int, int], int]) -> tuple[tuple[int, int], int]:
    """The (W, H) most images have, ties going to the smaller (area, then height, then width), and its count."""
    return min(sizes.items(), key=lambda kv: (-kv[1], kv[0][0] * kv[0][1], kv[0][1], kv[0][0]))


def probe_image_size(probe: Probe) -> tuple[int, int]:
    """(H, W) the input size for a model that does not declare one: the probe's most common image size (`image_sizes`),
    ties going to the smaller, whatever the order of the images. A probe of mixed sizes is logged as a warning."""
    sizes = image_sizes(probe)
    if not sizes:
        first_error = ""
        for i in range(min(len(probe), 1000)):
            try:
                probe.image_size(i)
            except (ImageUnreadable, ProbeError) as exc:
                first_error = str(exc)
                break
        raise ProbeError(f"none of the {len(probe)} images of {probe.source} can be read (first: {first_error}); check the image files")
    (w, h), k = _most_common(sizes)
    if len(sizes) > 1:
        n = sum(sizes.values())
        log.warning("probe %s holds images of %d sizes; the input size is the most common, %dx%d (%d of %d images); the "
                    "others are resized keeping their aspect ratio (centre crop); declare the model's size with --input-size "
                    "if it is another", probe.source, len(sizes), w, h, k, n)
    return h, w


def image_size_basis(probe: Probe, input_size: Sequence[int]) -> str:
    """Where an assumed input size came from, in words: the probe's image size, or its most common one (k of n images)."""
    sizes = image_sizes(probe)
    if len(sizes) <= 1:
        return "the probe's image size"
    (w, h), k = _most_common(sizes)
    if (h, w) != tuple(int(v) for v in input_size):
        return "the probe's image size"
    return f"the probe's most common image size, {k} of {sum(sizes.values())} images"
