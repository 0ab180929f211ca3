"""Counterfactual confirmation of a suspected cue: remove the region from the images that carry it,
transplant it into images of the other classes, and count how often the prediction flips, against a
control region of the same size where the model puts little evidence.

A region that only looks important in the masks but changes no prediction when removed or moved is
not reported as a finding (`Confirmation.confirmed`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import binom

__all__ = ["Confirmation", "confirm", "control_box", "mcnemar_greater", "remove_region", "transplant_region"]

ModelFn = Callable[[torch.Tensor], torch.Tensor]
Box = tuple[int, int, int, int]


@dataclass
class Confirmation:
    """Flip rates of one region and of its control, overall and per group."""

    box: Box
    control: Box
    source_class: int
    removal_flip_rate: float | None
    transplant_flip_rate: float | None
    control_removal_flip_rate: float | None
    control_transplant_flip_rate: float | None
    n_removal: int
    n_transplant: int
    p_value: float | None = None
    by_group: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    confirmed: bool = False
    forward_passes: int = 0


def _ring_mean(images: torch.Tensor, box: Box, width: int = 2) -> torch.Tensor:
    """Per image, the mean colour of a ``width``-pixel ring around ``box``: ``(N, 3, 1, 1)``."""
    x0, y0, x1, y1 = box
    h, w = images.shape[-2:]
    outer = torch.zeros(h, w, dtype=torch.bool)
    outer[max(0, y0 - width):min(h, y1 + width), max(0, x0 - width):min(w, x1 + width)] = True
    outer[y0:y1, x0:x1] = False
    if not outer.any():  # the box covers the image: fall back to mid grey
        return torch.full((images.shape[0], images.shape[1], 1, 1), 0.5, dtype=images.dtype)
    return images[..., outer].mean(dim=-1)[..., None, None]


def remove_region(images: torch.Tensor, box: Box) -> torch.Tensor:
    """``images`` with ``box`` filled by the mean colour around it (removes colour and texture)."""
    x0, y0, x1, y1 = box
    out = images.clone()
    out[..., y0:y1, x0:x1] = _ring_mean(images, box).to(images.dtype)
    return out


def transplant_region(targets: torch.Tensor, donors: torch.Tensor, box: Box) -> torch.Tensor:
    """``targets`` with ``box`` copied from ``donors`` (cycled when there are fewer donors)."""
    x0, y0, x1, y1 = box
    out = targets.clone()
    idx = torch.arange(len(targets)) % len(donors)
    out[..., y0:y1, x0:x1] = donors[idx][..., y0:y1, x0:x1]
    return out


def control_box(mean_grid: np.ndarray, box: Box, input_size: tuple[int, int]) -> Box:
    """A box of the same size as ``box`` where the mean evidence is lowest, not overlapping ``box``; when
    every position overlaps it (a box wider and taller than half the image), the least overlapping one.
    The positions tried include the right and bottom edges."""
    h, w = input_size
    bw, bh = box[2] - box[0], box[3] - box[1]
    gh, gw = mean_grid.shape
    dense = np.kron(mean_grid, np.ones((int(np.ceil(h / gh)), int(np.ceil(w / gw)))))[:h, :w]
    step = max(1, min(bw, bh) // 2)
    best, best_key = box, (np.inf, np.inf)
    for y in sorted({*range(0, h - bh + 1, step), h - bh}):
        for x in sorted({*range(0, w - bw + 1, step), w - bw}):
            overlap = max(0, min(x + bw, box[2]) - max(x, box[0])) * max(0, min(y + bh, box[3]) - max(y, box[1]))
            key = (overlap, dense[y:y + bh, x:x + bw].sum())
            if key < best_key:
                best, best_key = (x, y, x + bw, y + bh), key
    return best


def _flips(model: ModelFn, images: torch.Tensor, batch: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            out.append(model(images[i:i + batch]).argmax(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _rate(x: np.ndarray) -> float | None:
    return None if x.size == 0 else round(float(x.mean()), 6)


def mcnemar_greater(cue: np.ndarray, control: np.ndarray) -> float | None:
    """One-sided exact McNemar p-value that the cue flips more images than the control, on paired
    flips (the same images perturbed both ways): P(Binomial(b + c, 1/2) >= b), b the images only the cue
    flipped, c those only the control flipped; 1.0 when no pair is discordant, None with no pairs."""
    cue, control = np.asarray(cue, bool), np.asarray(control, bool)
    if cue.size == 0:
        return None
    b, c = int((cue & ~control).sum()), int((control & ~cue).sum())
    return 1.0 if b + c == 0 else round(float(binom.sf(b - 1, b + c, 0.5)), 8)


def confirm(
    model: ModelFn, images: torch.Tensor, predicted: np.ndarray, carriers: np.ndarray, box: Box, source_class: int,
    mean_grid: np.ndarray, *, groups: dict[str, np.ndarray] | None = None, min_flip_rate: float = 0.2,
    min_margin: float = 0.15, alpha: float = 0.05, batch_size: int = 64,
) -> Confirmation:
    """Test ``box`` as a cue for ``source_class``.

    Removal: images predicted ``source_class`` whose evidence lies in the box (``carriers``) get the
    region filled; a flip is a prediction that leaves ``source_class``. Transplant: images predicted
    as another class get the region from the carriers; a flip is a prediction that becomes
    ``source_class``. The same is done with a control box of the same size. Confirmed when the
    region's removal or transplant flips at least ``min_flip_rate`` of the images and at least
    ``min_margin`` more than the control does, and the cue's flips exceed the control's by the exact
    McNemar test (both arms pooled, one-sided) at ``alpha``.
    """
    h, w = images.shape[-2:]
    ctrl = control_box(mean_grid, box, (h, w))
    src = np.flatnonzero((predicted == source_class) & carriers)
    dst = np.flatnonzero(predicted != source_class)
    donors = images[src] if len(src) else images[predicted == source_class]
    passes = 0
    rates: dict[str, np.ndarray] = {}
    for name, region in (("cue", box), ("control", ctrl)):
        if len(src):
            rates[f"{name}_removal"] = _flips(model, remove_region(images[src], region), batch_size) != source_class
            passes += len(src)
        else:
            rates[f"{name}_removal"] = np.zeros(0, bool)
        if len(dst) and len(donors):
            rates[f"{name}_transplant"] = _flips(model, transplant_region(images[dst], donors, region), batch_size) == source_class
            passes += len(dst)
        else:
            rates[f"{name}_transplant"] = np.zeros(0, bool)
    result = Confirmation(
        box=box, control=ctrl, source_class=source_class,
        removal_flip_rate=_rate(rates["cue_removal"]), transplant_flip_rate=_rate(rates["cue_transplant"]),
        control_removal_flip_rate=_rate(rates["control_removal"]), control_transplant_flip_rate=_rate(rates["control_transplant"]),
        n_removal=len(src), n_transplant=len(dst), forward_passes=passes,
        p_value=mcnemar_greater(np.concatenate([rates["cue_removal"], rates["cue_transplant"]]),
                                np.concatenate([rates["control_removal"], rates["control_transplant"]])),
    )
    for attr, labels in (groups or {}).items():
        labels = np.asarray(labels, dtype=object)
        per: dict[str, dict[str, Any]] = {}
        for g in sorted({str(v) for v in labels if v is not None and v == v}):
            in_src, in_dst = labels[src] == g, labels[dst] == g
            per[g] = {"removal_flip_rate": _rate(rates["cue_removal"][in_src]), "n_removal": int(in_src.sum()),
                      "transplant_flip_rate": _rate(rates["cue_transplant"][in_dst]), "n_transplant": int(in_dst.sum())}
        result.by_group[attr] = per
    result.confirmed = result.p_value is not None and result.p_value < alpha and any(
        cue is not None and cue >= min_flip_rate and cue - (ctl or 0.0) >= min_margin
        for cue, ctl in ((result.removal_flip_rate, result.control_removal_flip_rate),
                         (result.transplant_flip_rate, result.control_transplant_flip_rate))
    )
    return result
