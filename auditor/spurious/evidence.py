"""Where the model's evidence lies, aggregated over images: coarse grids per class, the share that lies
off the subject, how consistently it sits at the same place, and the candidate cue regions.

Input is one non-negative evidence map per image in the model's input frame (``(N, H, W)``): for
the deletion game the deleted part of the mask (``1 - m``), for the preservation game the kept part
(``m``). Every function here is plain numpy on those maps; learning the masks is `masks.py`'s job.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Candidate", "candidates", "class_maps", "consistency", "off_subject_cells", "off_subject_share", "subjects_from_boxes",
    "to_grid", "to_grid_mean",
]


CANDIDATE_FACTOR = 2.0  # a candidate's cells hold at least this many times a uniform share of the mean evidence
MIN_CONSISTENCY = 0.25  # ... in cells where at least this share of the images put evidence (a cue need not be in all)
CANDIDATE_LIMIT = 4  # the largest candidates per class that are tested


@dataclass(frozen=True)
class Candidate:
    """A region where evidence concentrates: its box in input pixels ``(x0, y0, x1, y1)`` (end
    exclusive), the share of the mean evidence it holds, how many images put evidence there, and
    (when the probe has subject boxes) the share of that evidence lying off the subject."""

    box: tuple[int, int, int, int]
    cells: tuple[tuple[int, int], ...]
    share: float
    consistency: float
    off_subject: float | None


def to_grid(evidence: np.ndarray, grid: int) -> np.ndarray:
    """Each image's evidence summed into ``grid x grid`` cells and normalised to sum to 1: ``(N, g, g)``.

    An image with no evidence at all gets an all-zero grid.
    """
    ev = np.asarray(evidence, dtype=float)
    if ev.ndim != 3:
        raise ValueError(f"The 'evidence' parameter must have shape (N, H, W). Got {ev.shape} instead.")
    if grid < 1 or grid > min(ev.shape[1:]):
        raise ValueError(f"The 'grid' parameter must be in [1, {min(ev.shape[1:])}]. Got {grid} instead.")
    n, h, w = ev.shape
    ys = np.linspace(0, h, grid + 1).round().astype(int)
    xs = np.linspace(0, w, grid + 1).round().astype(int)
    rows = np.add.reduceat(np.clip(ev, 0, None), ys[:-1], axis=1)
    cells = np.add.reduceat(rows, xs[:-1], axis=2)
    total = cells.sum(axis=(1, 2), keepdims=True)
    return np.where(total > 0, cells / np.where(total > 0, total, 1), 0.0)


def class_maps(grids: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> dict[str, list[list[float]] | None]:
    """The mean grid of the images predicted as each class (rows of floats, the whole grid summing to 1);
    None for a class no audited image is predicted as."""
    out: dict[str, list[list[float]] | None] = {}
    for k, name in enumerate(classes):
        sel = grids[predicted == k]
        sel = sel[sel.sum(axis=(1, 2)) > 0]
        if len(sel) == 0:
            out[name] = None
            continue
        mean = sel.mean(axis=0)
        mean = mean / mean.sum()
        out[name] = [[round(float(v), 6) for v in row] for row in mean]
    return out


def subjects_from_boxes(boxes: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Subject boxes ``(N, 4)`` (x0, y0, x1, y1 in input pixels, end exclusive; a NaN row: none) as
    subject masks ``(N, H, W)``: 1 on the subject, 0 off it, NaN where an image has no box."""
    h, w = input_size
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    out = np.full((len(boxes), h, w), np.nan)
    for i, box in enumerate(boxes):
        if not np.isfinite(box).all():
            continue
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        out[i] = 0.0
        out[i, max(0, y0):max(0, min(h, y1)), max(0, x0):max(0, min(w, x1))] = 1.0
    return out


def off_subject_share(evidence: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Per image, the share of its evidence lying off its subject. ``subjects`` (N, H, W): 1 on the
    subject, 0 off it (fractions allowed), an all-NaN map where the image has none (share NaN)."""
    ev = np.clip(np.asarray(evidence, dtype=float), 0, None)
    subjects = np.asarray(subjects, dtype=float)
    total = ev.sum(axis=(1, 2))
    known = np.isfinite(subjects).all(axis=(1, 2)) & (total > 0)
    out = np.full(len(ev), np.nan)
    inside = (ev[known] * subjects[known]).sum(axis=(1, 2))
    out[known] = 1.0 - inside / total[known]
    return out


def consistency(grids: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Per cell, the share of images that put at least ``factor`` times a uniform share of their
    evidence there: near 1 where a cue sits at the same place in every image."""
    g = grids.shape[1] * grids.shape[2]
    has = grids.sum(axis=(1, 2)) > 0
    if not has.any():
        return np.zeros(grids.shape[1:])
    return (grids[has] >= factor / g).mean(axis=0)


def candidates(
    mean_grid: np.ndarray, consist: np.ndarray, input_size: tuple[int, int], *, factor: float = CANDIDATE_FACTOR,
    min_consistency: float = MIN_CONSISTENCY, off_subject_cells: np.ndarray | None = None, limit: int = CANDIDATE_LIMIT,
) -> list[Candidate]:
    """Connected groups of cells that hold at least ``factor`` x a uniform share of the mean evidence
    and where at least ``min_consistency`` of the images put evidence, largest share first.

    ``off_subject_cells`` (g x g, optional) is the share of each cell's evidence lying off the subject.
    """
    gh, gw = mean_grid.shape
    hot = (mean_grid >= factor / (gh * gw)) & (consist >= min_consistency)
    seen = np.zeros_like(hot)
    h, w = input_size
    found: list[Candidate] = []
    for y in range(gh):
        for x in range(gw):
            if not hot[y, x] or seen[y, x]:
                continue
            stack, comp = [(y, x)], []
            seen[y, x] = True
            while stack:  # 4-connected flood fill
                cy, cx = stack.pop()
                comp.append((cy, cx))
                for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                    if 0 <= ny < gh and 0 <= nx < gw and hot[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            ys = [c[0] for c in comp]
            xs = [c[1] for c in comp]
            box = (int(round(min(xs) * w / gw)), int(round(min(ys) * h / gh)),
                   int(round((max(xs) + 1) * w / gw)), int(round((max(ys) + 1) * h / gh)))
            share = float(sum(mean_grid[c] for c in comp))
            off = None
            if off_subject_cells is not None:
                weights = np.array([mean_grid[c] for c in comp])
                vals = np.array([off_subject_cells[c] for c in comp])
                ok = np.isfinite(vals)
                off = float((weights[ok] * vals[ok]).sum() / weights[ok].sum()) if ok.any() and weights[ok].sum() > 0 else None
            found.append(Candidate(box, tuple(comp), share, float(max(consist[c] for c in comp)), off))
    found.sort(key=lambda c: -c.share)
    return found[:limit]


def off_subject_cells(grids: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    """Per grid cell, the evidence-weighted share of it lying off the images' subjects (``subjects`` as
    in `off_subject_share`; NaN for a cell no image with a subject puts evidence in)."""
    n, gh, gw = grids.shape
    subjects = np.asarray(subjects, dtype=float)
    known = np.isfinite(subjects).all(axis=(1, 2))
    if not known.any():
        return np.full((gh, gw), np.nan)
    on = to_grid_mean(subjects[known], (gh, gw))  # share of each cell on the subject, per image
    num = (grids[known] * (1.0 - on)).sum(axis=0)
    den = grids[known].sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def to_grid_mean(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each map ``(N, H, W)`` averaged over the cells of a ``gh x gw`` grid (the same cells as `to_grid`)."""
    n, h, w = maps.shape
    gh, gw = shape
    ys = np.linspace(0, h, gh + 1).round().astype(int)
    xs = np.linspace(0, w, gw + 1).round().astype(int)
    sums = np.add.reduceat(np.add.reduceat(maps, ys[:-1], axis=1), xs[:-1], axis=2)
    return sums / np.outer(np.diff(ys), np.diff(xs))
