"""Figures of the explanations check as PNG data URIs, in the house style of `auditor.plotting`.

- `attribution_grid`: a row per image: the image, then each method's map over the greyed image.
- `sanity_grid`: a row per method: its map on one image, then after each stage of model randomisation.
- `filter_grid`: each first-layer filter as a small tile (per-filter min-max scaled).
- `class_model_grid`: the class-model image of each class, with the class's probability.

Signed maps are each scaled by their own largest |value| and drawn red (for the class) / blue (against),
opaque where strong and clear where near 0. Rows and columns are capped (`MAX_ROWS`, `MAX_COLS`,
`MAX_FILTERS`, `MAX_CLASSES`); the title says when some were left out. The same input gives the same bytes.
Without matplotlib: ImportError.
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.plotting import (
    MAX_SIDE,
    canvas,
    cell_text,
    draw_image,
    empty_cell,
    png_uri,
    styled,
    to_rgb,
    wrap_name,
)

if TYPE_CHECKING:
    import torch

    from auditor.explain.model_views import ClassModels, FilterView

__all__ = ["attribution_grid", "class_model_grid", "filter_grid", "sanity_grid"]

MAX_ROWS = 8  # images in the attribution grid, methods in the sanity grid
MAX_COLS = 8  # panels across: image + methods, or original + stages
MAX_FILTERS = 64
MAX_CLASSES = 16
_DIVERGING = "RdBu_r"
_NOTE = "red: evidence for the class, blue: against; each map scaled to its own largest |value|"


def _array(x: Any) -> np.ndarray:
    """A tensor or array as a float64 numpy array (CPU, detached)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float64)


def _signed(m: Any) -> np.ndarray:
    """A 2-D map scaled to [-1, 1] by its own largest |value| (NaN drawn as 0, leading axes summed),
    downscaled to `MAX_SIDE`."""
    a = np.nan_to_num(_array(m), nan=0.0, posinf=0.0, neginf=0.0)
    a = a.reshape(-1, *a.shape[-2:]).sum(axis=0) if a.ndim > 2 else np.atleast_2d(a)  # channels summed
    h, w = a.shape
    if max(h, w) > MAX_SIDE:
        from PIL import Image

        s = MAX_SIDE / max(h, w)
        a = np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize(
            (max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR), dtype=np.float64)
    top = float(np.abs(a).max()) if a.size else 0.0
    return a / top if top > 0 else np.zeros_like(a)


def _overlay(ax: Any, faded: np.ndarray, m: Any, corner: tuple[float, float], side: float,
             hw: tuple[int, int]) -> None:
    """The greyed image in a cell, the signed map over it (colour by sign, opacity by |value|)."""
    import matplotlib

    extent = draw_image(ax, faded, corner, side, hw, cmap="gray", vmin=0.0, vmax=1.0)
    v = _signed(m)
    rgba = matplotlib.colormaps[_DIVERGING]((v + 1.0) / 2.0)
    rgba[..., 3] = 0.85 * np.abs(v)
    ax.imshow(rgba, extent=extent, aspect="auto", interpolation="bilinear")


def _faded(img: np.ndarray) -> np.ndarray:
    return 0.3 + 0.55 * (img @ np.array([0.299, 0.587, 0.114]))


def _frame(rows: int, cols: int, side: float, gaps: tuple[float, float], *, left: float, title: str, footer: str,
           head: float = 0.0, below: float = 0.0, min_width: float = 3.6,
           ) -> tuple[Any, Any, list[list[tuple[float, float]]]]:
    """`canvas` with room for a wrapped ``title`` (8 pt, at most 2 lines) on top, ``head`` inches of column
    titles under it, ``below`` inches of cell labels and a wrapped ``footer`` (6.5 pt, at most 4 lines)."""
    span = left + cols * side + (cols - 1) * gaps[0]
    width = max(min_width, span + 0.1)
    top_lines = textwrap.wrap(title, max(20, int(width * 14)))[:2]
    foot_lines = textwrap.wrap(footer, max(24, int(width * 17)))[:4]
    top = 0.1 + 0.15 * len(top_lines) + head
    bottom = below + 0.08 + 0.12 * len(foot_lines)
    fig, ax, cells = canvas(rows, cols, side, gaps, (left, width - span, top, bottom))
    height = fig.get_size_inches()[1]
    fig.text(0.05 / width, 1 - 0.06 / height, "\n".join(top_lines), ha="left", va="top", fontsize=8)
    fig.text(0.05 / width, 0.04 / height, "\n".join(foot_lines), ha="left", va="bottom", fontsize=6.5,
             color="#444444")
    return fig, ax, cells


def _spread(n: int, k: int) -> list[int]:
    """``k`` of ``n`` indices, first and last included, evenly spread (all when ``n <= k``)."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


@styled
def attribution_grid(images: torch.Tensor, maps: Mapping[str, Any], labels: Mapping[str, str],
                     row_titles: Sequence[str]) -> str:
    """Rows: images (at most `MAX_ROWS`); columns: the image, then each method's map (N, H, W) over it."""
    batch = _array(images)
    n = min(len(batch), MAX_ROWS)
    methods = list(maps)[: MAX_COLS - 1]
    hw = (int(batch.shape[-2]), int(batch.shape[-1])) if batch.ndim == 4 else (1, 1)
    left_out = [f"{n} of {len(batch)} images" if len(batch) > n else "",
                f"{len(methods)} of {len(maps)} methods" if len(maps) > len(methods) else ""]
    note = "; ".join(s for s in left_out if s)
    side = 1.0
    fig, ax, cells = _frame(max(1, n), 1 + len(methods), side, (0.1, 0.12), left=0.35, head=0.3,
                            title="Attribution maps" + (f" ({note})" if note else ""), footer=_NOTE + ".")
    for r in range(n):
        img = to_rgb(batch[r])
        draw_image(ax, img, cells[r][0], side, hw)
        cell_text(ax, wrap_name(row_titles[r] if r < len(row_titles) else "", 14), cells[r][0], side, "left", 7)
        for j, m in enumerate(methods, start=1):
            stack = maps[m]
            if r < len(stack):
                _overlay(ax, _faded(img), stack[r], cells[r][j], side, hw)
            else:
                empty_cell(ax, cells[r][j], side, "no map")
    if n == 0:
        empty_cell(ax, cells[0][0], side, "no images")
    for j, title in enumerate(["image", *(labels.get(m, m) for m in methods)]):
        cell_text(ax, wrap_name(title, 16), cells[0][j], side, "above", 7)
    return png_uri(fig)


@styled
def sanity_grid(image: torch.Tensor, stages: Mapping[str, Sequence[Any]], stage_titles: Sequence[str],
                labels: Mapping[str, str]) -> str:
    """A row per method (at most `MAX_ROWS`): ``stages[method][0]`` is its map of ``image`` (3, H, W), the
    next ones the map after each randomisation stage; ``stage_titles`` head the columns. At most `MAX_COLS`
    columns: the first and last stage always, evenly spread between."""
    a = _array(image)
    img = to_rgb(a)
    hw = (int(a.shape[-2]), int(a.shape[-1])) if a.ndim >= 2 else (1, 1)
    methods = list(stages)[:MAX_ROWS]
    longest = max([len(stages[m]) for m in methods] + [1])
    cols = _spread(longest, MAX_COLS)
    shown = f" ({len(cols)} of {longest} stages)" if len(cols) < longest else ""
    side = 1.0
    fig, ax, cells = _frame(max(1, len(methods)), len(cols), side, (0.1, 0.12), left=0.35, head=0.3,
                            title="Model-randomisation sanity check: each map as the model's layers are randomised"
                                  + shown,
                            footer="A map that still looks the same after randomisation does not depend on what the "
                                   "model learned. " + _NOTE + ".")
    faded = _faded(img)
    for r, m in enumerate(methods):
        cell_text(ax, wrap_name(labels.get(m, m), 14), cells[r][0], side, "left", 7)
        for j, k in enumerate(cols):
            if k < len(stages[m]):
                _overlay(ax, faded, stages[m][k], cells[r][j], side, hw)
            else:
                empty_cell(ax, cells[r][j], side, "no map")
    if not methods:
        empty_cell(ax, cells[0][0], side, "no methods")
    for j, k in enumerate(cols):
        cell_text(ax, wrap_name(stage_titles[k] if k < len(stage_titles) else f"stage {k}", 16), cells[0][j], side,
                  "above", 7)
    return png_uri(fig)


@styled
def filter_grid(view: FilterView) -> str:
    """Each first-layer filter (at most `MAX_FILTERS`) as a tile: RGB, or grey for one input channel, each
    scaled to its own min-max; the layer and smoothness on top, the verdict below."""
    w = _array(view.weights)
    n = min(len(w), MAX_FILTERS)
    cols = max(1, min(16, math.ceil(math.sqrt(max(n, 1)))))
    rows = max(1, math.ceil(n / cols))
    kh, kw = (int(w.shape[-2]), int(w.shape[-1])) if w.ndim == 4 else (1, 1)
    smooth = "n/a" if view.smoothness is None else f"{view.smoothness:.2f}"
    shown = f"{n} of {view.n_filters}" if view.n_filters > n else f"{view.n_filters}"
    side = 0.42
    fig, ax, cells = _frame(rows, cols, side, (0.06, 0.06), left=0.15, min_width=4.2,
                            title=f"First-layer filters of {wrap_name(view.layer, 40)}: {shown}, {kh}x{kw}; "
                                  f"smoothness {smooth}",
                            footer=f"{view.verdict} Each filter scaled to its own range.")
    for i in range(n):
        f = np.nan_to_num(w[i], nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(f.min()), float(f.max())
        f = (f - lo) / (hi - lo) if hi > lo else np.full_like(f, 0.5)
        corner = cells[i // cols][i % cols]
        if f.shape[0] == 3:
            draw_image(ax, f.transpose(1, 2, 0), corner, side, (kh, kw), interpolation="nearest")
        else:
            draw_image(ax, f[0], corner, side, (kh, kw), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    if n == 0:
        empty_cell(ax, cells[0][0], side, "none")
    return png_uri(fig)


@styled
def class_model_grid(cm: ClassModels, class_names: Sequence[str]) -> str:
    """The class-model image of each class (at most `MAX_CLASSES`, 8 to a row), its name and final probability
    below."""
    imgs = _array(cm.images)
    n = min(len(imgs), MAX_CLASSES)
    cols = max(1, min(8, n))
    rows = max(1, math.ceil(n / cols))
    hw = (int(imgs.shape[-2]), int(imgs.shape[-1])) if imgs.ndim == 4 else (1, 1)
    shown = f" ({n} of {len(imgs)} classes)" if len(imgs) > n else ""
    side = 1.0
    fig, ax, cells = _frame(rows, cols, side, (0.12, 0.4), left=0.1, below=0.3,
                            title="Class models: inputs grown to maximise each class's score" + shown,
                            footer="Gradient ascent from grey noise with L2 decay, blur and clipping; p: the "
                                   "class's probability for the image.")
    probs = list(cm.final_probability)
    for i in range(n):
        corner = cells[i // cols][i % cols]
        draw_image(ax, to_rgb(imgs[i]), corner, side, hw)
        c = cm.classes[i] if i < len(cm.classes) else i
        name = class_names[c] if 0 <= c < len(class_names) else f"class {c}"
        p = f"p={probs[i]:.2f}" if i < len(probs) and math.isfinite(probs[i]) else "p=n/a"
        cell_text(ax, f"{wrap_name(name, 16)}\n{p}", corner, side, "below")
    if n == 0:
        empty_cell(ax, cells[0][0], side, "no classes")
    return png_uri(fig)
