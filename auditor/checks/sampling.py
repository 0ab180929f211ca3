"""Which prediction rows a costly check works on, and their images in the model's input frame.

Checks that cannot afford every probe image (masks, attacks) draw a seeded sample of the rows of
`Predictions` and read those images again through the probe loader, in the model's input frame.
"""
from __future__ import annotations

import logging
import zlib
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image

from auditor.checks.base import CheckContext
from auditor.errors import ProbeError
from auditor.spurious.evidence import subjects_from_boxes
from probes import make_loader
from probes.base import safe_join

log = logging.getLogger(__name__)

__all__ = ["balanced_rows", "group_balanced_rows", "group_labels", "load_rows", "random_rows", "subject_masks"]


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


def _codes(values: Any) -> tuple[np.ndarray, int]:
    """Group codes of one attribute's labels (``-1`` where missing) and the number of groups."""
    text = np.array(["" if v is None or v != v else str(v) for v in values], dtype=object)
    names = sorted({t for t in text if t != ""})
    index = {g: i for i, g in enumerate(names)}
    return np.array([index.get(t, -1) for t in text], dtype=np.int64), len(names)


def _targets(sizes: np.ndarray, n: int) -> np.ndarray:
    """Each group's share of ``n`` rows, as even as the group sizes allow: a small group gives all it has and
    the rest is split between the others (water-filling)."""
    out = np.zeros(len(sizes))
    left, remaining = n, len(sizes)
    for g in np.argsort(sizes, kind="stable"):
        out[g] = min(float(sizes[g]), left / remaining)
        left -= out[g]
        remaining -= 1
    return out


def group_labels(ctx: CheckContext, attributes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Each audited attribute's label of every prediction row (object arrays; None or NaN where missing)."""
    table = ctx.probe.table
    names = [a for a in (ctx.attributes if attributes is None else attributes) if a in table]
    return {a: table.loc[ctx.predictions.index, a].to_numpy(dtype=object) for a in names}


def group_balanced_rows(labels: Mapping[str, Any], total: int, n: int, seed: int, salt: str,
                        start: np.ndarray | None = None) -> np.ndarray:
    """Up to ``n`` of ``total`` row indices with every attribute's groups as evenly represented as the probe
    allows (``labels``: each attribute's label per row; 128 rows over 4 groups of 300 give 32 each), the
    rows of ``start`` included first; seeded by ``seed`` and ``salt``; sorted.

    Greedy: the group furthest below its even share (over all attributes) gets the next row, and among its
    rows the one whose other attributes' groups are furthest below theirs (ties in a seeded random order).
    Without attributes it is `random_rows` (with ``start`` kept).
    """
    rank = np.empty(total, dtype=np.int64)
    rank[_rng(seed, salt).permutation(total)] = np.arange(total)  # the seeded order that breaks ties
    picked = np.zeros(total, dtype=bool)
    if start is not None:
        picked[np.asarray(start, dtype=np.int64)] = True
    n = min(n, total)
    coded = [_codes(v) for v in labels.values()]
    coded = [(c, k) for c, k in coded if k > 0]
    if not coded:
        rest = np.flatnonzero(~picked)
        extra = rest[np.argsort(rank[rest])][: max(0, n - int(picked.sum()))]
        picked[extra] = True
        return np.flatnonzero(picked).astype(np.int64)
    targets = [_targets(np.bincount(c[c >= 0], minlength=k), n) for c, k in coded]
    counts = [np.bincount(c[picked & (c >= 0)], minlength=k).astype(float) for c, k in coded]
    while picked.sum() < n:
        shortfall = [np.where(t > 0, (t - m) / np.maximum(t, 1e-12), -np.inf) for t, m in zip(targets, counts)]
        a, g = max(((a, int(np.argmax(s))) for a, s in enumerate(shortfall)), key=lambda ag: shortfall[ag[0]][ag[1]])
        if shortfall[a][g] <= 0:  # every share met (missing labels, rounding): the rest in the seeded order
            rest = np.flatnonzero(~picked)
            picked[rest[np.argsort(rank[rest])][: n - int(picked.sum())]] = True
            break
        cand = np.flatnonzero(~picked & (coded[a][0] == g))
        if not len(cand):  # the group is exhausted: it keeps what it has
            targets[a][g] = counts[a][g]
            continue
        score = np.zeros(len(cand))
        for b, (c, _) in enumerate(coded):
            if b != a:
                codes_b = c[cand]
                score += np.where(codes_b >= 0, np.maximum(shortfall[b][np.maximum(codes_b, 0)], 0.0), 0.0)
        best = cand[np.lexsort((rank[cand], -score))[0]]
        picked[best] = True
        for (c, _), m in zip(coded, counts):
            if c[best] >= 0:
                m[c[best]] += 1
    return np.flatnonzero(picked).astype(np.int64)


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
