"""Which prediction rows a costly check works on, and their images in the model's input frame.

Checks that cannot afford every probe image (masks, attacks) draw a seeded sample of the rows of
`Predictions` and read those images again through the probe loader, in the model's input frame.
"""
from __future__ import annotations

import zlib

import logging

import numpy as np
import torch
from PIL import Image

from auditor.checks.base import CheckContext
from auditor.errors import ProbeError
from auditor.spurious.evidence import subjects_from_boxes
from probes import make_loader
from probes.base import safe_join

log = logging.getLogger(__name__)

__all__ = ["balanced_rows", "load_rows", "random_rows", "subject_masks"]


def _rng(seed: int, salt: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(salt.encode())])


def balanced_rows(labels: np.ndarray, n: int, seed: int, salt: str) -> np.ndarray:
    """Up to ``n`` row indices, balanced over the values of ``labels`` (a rare value gives all it has
    and the rest go to the others), seeded by ``seed`` and ``salt``; sorted."""
    rng = _rng(seed, salt)
    pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)}
    picked: list[int] = []
    while len(picked) < n and any(pools.values()):
        for c in sorted(pools):
            if pools[c] and len(picked) < n:
                picked.append(int(pools[c].pop()))
    return np.sort(np.array(picked, dtype=np.int64))


def random_rows(total: int, n: int, seed: int, salt: str) -> np.ndarray:
    """``min(n, total)`` row indices drawn uniformly without replacement, seeded; sorted."""
    return np.sort(_rng(seed, salt).permutation(total)[:n]).astype(np.int64)


def load_rows(ctx: CheckContext, rows: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The images of prediction rows ``rows`` (N, 3, H, W) in [0, 1] on the CPU, and the rows that could
    be read again (an image that vanished since the predictions is dropped)."""
    index = ctx.predictions.index
    parts, got = [], []
    for batch in make_loader(ctx.probe, ctx.input_size, batch_size=ctx.batch_size, indices=[int(i) for i in index[rows]]):
        if len(batch.indices):
            parts.append(batch.images)
            got.append(batch.indices.numpy())
    if not parts:
        raise ValueError("no image of the sample could be read a second time; check the probe's image files")
    position = {int(i): r for i, r in zip(index[rows], rows)}
    return torch.cat(parts), np.array([position[int(i)] for i in np.concatenate(got)], dtype=np.int64)


def subject_masks(ctx: CheckContext, index: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Subject masks in the model's input frame (N, H, W): from ``subject_mask`` PNGs, else from
    ``subject_box`` scaled like the images; all-NaN for an image with neither."""
    h, w = size
    out = np.full((len(index), h, w), np.nan)
    table = ctx.probe.table
    for r, i in enumerate(int(i) for i in index):
        mask = table.at[i, "subject_mask"] if "subject_mask" in table.columns else None
        if isinstance(mask, str) and mask and ctx.probe.root is not None:
            try:
                with Image.open(safe_join(ctx.probe.root, mask)) as im:
                    out[r] = np.asarray(im.convert("L").resize((w, h), Image.Resampling.NEAREST)) > 127
                continue
            except (OSError, ValueError, Image.DecompressionBombError, ProbeError) as exc:
                log.warning("subject mask %s unreadable (%s); using the box if any", mask, exc)
        box = ctx.probe.subject_box(i)
        if box is not None:
            iw, ih = ctx.probe.load_image(i).size
            scaled = [box[0] * w / iw, box[1] * h / ih, box[2] * w / iw, box[3] * h / ih]
            out[r] = subjects_from_boxes(np.array([scaled]), (h, w))[0]
    return out
