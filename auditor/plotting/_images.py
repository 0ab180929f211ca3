"""Image-panel figures as PNG data URIs, for the checks that show images (``checks.*.figures``): `evidence_overview`
(mean evidence grid per class over its mean image), `example_overlays` (images over their evidence maps),
`counterfactual_pairs` (before/after a removal or transplant).

The building blocks (`canvas`, `draw_image`, `empty_cell`, `cell_text`, `wrap_name`, `to_rgb`, `png_uri`)
are shared with the other check-side figures (`auditor.explain.figures`).

House style (`auditor.plotting.STYLE`): a bare `matplotlib.figure.Figure` (Agg, no pyplot) under its
fixed style, mathtext off (a class called ``$x$`` is a name), names cut to `NAME` characters. Panels are
laid out by hand on one axes in inches (an axes per image takes twice as long); PIL writes the PNG on a
256-colour palette, without metadata: the same input gives the same bytes. Images over `MAX_SIDE` pixels
are downscaled first; boxes stay in input pixels; NaN is drawn as 0. Without matplotlib: ImportError.
"""
from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from auditor.plotting._style import short, styled

__all__ = ["MAX_SIDE", "canvas", "cell_text", "counterfactual_pairs", "draw_image", "empty_cell",
           "evidence_overview", "example_overlays", "image_rows", "png_uri", "to_rgb", "wrap_name"]

DPI = 100
MAX_PANELS = 8  # classes in the overview, columns in the other figures
MAX_SIDE = 128  # longer side an image is downscaled to before drawing
NAME = 30  # characters of a name shown
_HEAT, _BOX, _MISSING, _EDGE = "inferno", "#00e5ff", "#f2f2f2", "#999999"
Box = tuple[int, int, int, int]


def canvas(rows: int, cols: int, side: float, gaps: tuple[float, float],
           margins: tuple[float, float, float, float]) -> tuple[Any, Any, list[list[tuple[float, float]]]]:
    """A figure, one axes over all of it in inches (y down), and the top-left corner of each square cell
    of ``side`` inches; ``gaps`` (across, down) between cells, ``margins`` (left, right, top, bottom)."""
    from matplotlib.figure import Figure

    left, right, top, bottom = margins
    width = max(2.6, left + cols * side + (cols - 1) * gaps[0] + right)
    height = top + rows * side + (rows - 1) * gaps[1] + bottom
    fig = Figure(figsize=(width, height), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    cells = [[(left + c * (side + gaps[0]), top + r * (side + gaps[1])) for c in range(cols)] for r in range(rows)]
    return fig, ax, cells


def _encode(rgb: Any) -> str:
    """A PIL RGB image as a PNG data URI on an adaptive 256-colour palette with Floyd-Steinberg dither
    (photos make full-colour PNGs 2-3 times larger)."""
    from PIL import Image

    palette = rgb.quantize(256, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    rgb.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_uri(fig: Any) -> str:
    """The figure as a PNG data URI (see `_encode`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    agg = FigureCanvasAgg(fig)
    agg.draw()
    return _encode(Image.fromarray(np.asarray(agg.buffer_rgba())[..., :3]))


def wrap_name(text: Any, width: int = 18) -> str:
    """A name cut to `NAME` characters, wrapped onto (at most 2) lines of ``width`` to fit its column."""
    return "\n".join(textwrap.wrap(short(text, NAME), width, break_long_words=True)[:2])


def _plane(x: Any) -> np.ndarray:
    """A finite, non-negative 2-D float map (NaN and inf drawn as 0), downscaled to `MAX_SIDE`."""
    a = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    a = np.clip(a.reshape(a.shape[-2:]) if a.ndim > 2 else np.atleast_2d(a), 0.0, None)
    h, w = a.shape
    if max(h, w) <= MAX_SIDE:
        return a
    from PIL import Image

    s = MAX_SIDE / max(h, w)
    small = Image.fromarray(a.astype(np.float32), mode="F").resize(
        (max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float64)


def to_rgb(x: Any) -> np.ndarray:
    """An (H, W, 3) image in [0, 1] (greyscale and channel-first accepted), downscaled to `MAX_SIDE`."""
    a = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    a = a[..., None] if a.ndim == 2 else a
    a = np.clip(np.repeat(a[..., :1], 3, axis=-1) if a.shape[-1] < 3 else a[..., :3], 0.0, 1.0)
    if max(a.shape[:2]) <= MAX_SIDE:
        return a
    return np.stack([_plane(a[..., c]) for c in range(3)], axis=-1).clip(0.0, 1.0)


def _batch(x: Any, rgb: bool) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Up to `MAX_PANELS` images (or maps) of a batch, and the input (H, W) its boxes are given in."""
    a = np.asarray(x, dtype=np.float64) if x is not None else np.zeros((0, 1, 1))
    if a.ndim == 2 or (rgb and a.ndim == 3 and a.shape[-1] in (1, 3, 4)):  # one image, no batch axis
        a = a[None]
    hw = a.shape[1:3] if rgb and a.ndim == 4 and a.shape[-1] in (1, 3, 4) else a.shape[-2:]
    return [(to_rgb if rgb else _plane)(a[i]) for i in range(min(len(a), MAX_PANELS))], (int(hw[0]), int(hw[1]))


def _place(corner: tuple[float, float], side: float, hw: tuple[int, int]) -> tuple[float, float, float]:
    """Where an image of input size ``hw`` sits centred in a cell: its top-left (inches), inches per pixel."""
    scale = side / max(1, hw[0], hw[1])
    return corner[0] + (side - hw[1] * scale) / 2, corner[1] + (side - hw[0] * scale) / 2, scale


def draw_image(ax: Any, img: np.ndarray, corner: tuple[float, float], side: float, hw: tuple[int, int],
               box: Any = None, **kw: Any) -> tuple[float, ...]:
    """``img`` fitted into a cell, framed, ``box`` (input pixels x0, y0, x1, y1, end exclusive) outlined,
    clipped to the image; a malformed box is skipped. Returns the image's extent for overlays."""
    from matplotlib.patches import Rectangle
    from matplotlib.patheffects import withStroke

    x, y, s = _place(corner, side, hw)
    extent = (x, x + hw[1] * s, y + hw[0] * s, y)
    ax.imshow(img, extent=extent, aspect="auto", interpolation=kw.pop("interpolation", "bilinear"), **kw)
    ax.add_patch(Rectangle((x, y), hw[1] * s, hw[0] * s, fill=False, linewidth=0.4, edgecolor=_EDGE, zorder=2))
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return extent
    x0, x1 = np.clip([x0, x1], 0, hw[1])
    y0, y1 = np.clip([y0, y1], 0, hw[0])
    if x1 > x0 and y1 > y0:  # NaN compares false
        ax.add_patch(Rectangle((x + x0 * s, y + y0 * s), (x1 - x0) * s, (y1 - y0) * s, fill=False, edgecolor=_BOX,
                               linewidth=1.2, zorder=3, path_effects=[withStroke(linewidth=2.4, foreground="black")]))
    return extent


def empty_cell(ax: Any, corner: tuple[float, float], side: float, text: str) -> None:
    """A grey cell with ``text`` in its middle (a missing image or map)."""
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle(corner, side, side, facecolor=_MISSING, edgecolor=_EDGE, linewidth=0.4))
    ax.text(corner[0] + side / 2, corner[1] + side / 2, text, ha="center", va="center", fontsize=6.5,
            color="#555555", multialignment="center")


def cell_text(ax: Any, text: str, corner: tuple[float, float], side: float, where: str, size: float = 6.5) -> None:
    """``text`` centred above or below a cell, or rotated on its left (``where``: above, below, left)."""
    (x, y), mid = corner, side / 2
    at = {"above": (x + mid, y - 0.04, "center", "bottom", 0), "below": (x + mid, y + side + 0.04, "center", "top", 0),
          "left": (x - 0.06, y + mid, "right", "center", 90)}[where]
    ax.text(*at[:2], text, ha=at[2], va=at[3], rotation=at[4], fontsize=size, multialignment="center")


def _grid(m: Any) -> np.ndarray | None:
    try:
        a = np.asarray(m, dtype=np.float64) if m is not None else None
    except (TypeError, ValueError):  # ragged lists
        return None
    return _plane(a) if a is not None and a.size and a.ndim >= 1 else None


def _pad(xs: Sequence[Any] | None, n: int, fill: Any) -> list[Any]:
    xs = list(xs if xs is not None else [])[:n]
    return xs + [fill] * (n - len(xs))


def _count(x: Any) -> int:
    return int(x) if isinstance(x, (int, float, np.number)) and np.isfinite(x) else 0


@styled
def evidence_overview(classes: list[str], mean_images: Sequence[np.ndarray | None],
                      maps: Sequence[list[list[float]] | np.ndarray | None], counts: Sequence[int]) -> str:
    """One panel per class (at most `MAX_PANELS`: those with most images): the class's mean image faded
    to grey under its evidence grid, one colour scale for all panels; a class without a map says so."""
    n = len(classes)
    images, grids = _pad(mean_images, n, None), [_grid(m) for m in _pad(maps, n, None)]
    count = [_count(c) for c in _pad(counts, n, 0)]
    keep = sorted(sorted(range(n), key=lambda i: (grids[i] is None, -count[i], i))[:MAX_PANELS])
    vmax = max([float(g.max()) for i in keep if (g := grids[i]) is not None] + [0.0]) or 1.0
    cols, side = min(4, max(1, len(keep))), 1.5
    fig, ax, cells = canvas(max(1, -(-len(keep) // cols)), cols, side, (0.25, 0.45), (0.1, 0.9, 0.6, 0.1))
    heat = None
    for k, i in enumerate(keep):
        corner, g = cells[k // cols][k % cols], grids[i]
        cell_text(ax, f"{wrap_name(classes[i], 22)} (n={count[i]})", corner, side, "above")
        if g is None:
            empty_cell(ax, corner, side, "no image predicted\nas this class")
            continue
        img = to_rgb(images[i]) if images[i] is not None else np.full(g.shape + (3,), 0.95)
        faded = 0.25 + 0.6 * (img @ np.array([0.299, 0.587, 0.114]))
        extent = draw_image(ax, faded, corner, side, faded.shape, cmap="gray", vmin=0.0, vmax=1.0)
        heat = ax.imshow(g, cmap=_HEAT, vmin=0.0, vmax=vmax, alpha=0.55, extent=extent, aspect="auto",
                         interpolation="nearest")
    if not keep:
        empty_cell(ax, cells[0][0], side, "no classes")
    if heat is not None:
        w, h = fig.get_size_inches()
        bar = fig.colorbar(heat, cax=fig.add_axes((1 - 0.75 / w, 0.1 / h, 0.1 / w, 1 - 0.8 / h)))
        bar.ax.tick_params(labelsize=6)
        bar.set_label("share of evidence per cell", fontsize=6.5)
    note = f" ({MAX_PANELS} of {n} classes: those with most images)" if n > MAX_PANELS else ""
    fig.suptitle(f"Mean evidence per predicted class over its mean image{note}", x=0.01, y=0.99, ha="left",
                 va="top", fontsize=8)
    return png_uri(fig)


@styled
def example_overlays(images: np.ndarray, evidence: np.ndarray, titles: list[str],
                     boxes: list[Box | None] | None = None) -> str:
    """Two rows, at most `MAX_PANELS` columns: the images, then the same under their evidence maps
    (1 = evidence); a column's box, when given, outlined on both."""
    (imgs, hw), (maps, _) = _batch(images, rgb=True), _batch(evidence, rgb=False)
    n, side = max(1, len(imgs)), 1.05
    fig, ax, cells = canvas(2, n, side, (0.15, 0.1), (0.3, 0.1, 0.35, 0.05))
    for j, (top, bottom) in enumerate(zip(*cells)):
        if j >= len(imgs):
            empty_cell(ax, top, side, "no images")
            continue
        box = boxes[j] if boxes is not None and j < len(boxes) else None
        draw_image(ax, imgs[j], top, side, hw, box)
        cell_text(ax, wrap_name(titles[j] if j < len(titles) else ""), top, side, "above")
        extent = draw_image(ax, imgs[j], bottom, side, hw, box)
        if j < len(maps):
            ax.imshow(np.clip(maps[j], 0.0, 1.0), cmap=_HEAT, vmin=0.0, vmax=1.0, alpha=0.6, extent=extent,
                      aspect="auto", interpolation="bilinear")
    cell_text(ax, "image", cells[0][0], side, "left", 7)
    cell_text(ax, "evidence", cells[1][0], side, "left", 7)
    return png_uri(fig)


@styled
def image_rows(rows: Sequence[np.ndarray], labels: Sequence[Sequence[str]], row_titles: Sequence[str],
               box: Box | None = None, title: str = "") -> str:
    """Rows of at most `MAX_PANELS` images each, a label under every image, ``box`` (input pixels, end
    exclusive) outlined on every image when given; row titles on the left, ``title`` on top."""
    batches = [_batch(r, rgb=True) for r in rows]
    n, side = max([1] + [len(b[0]) for b in batches]), 1.05
    fig, ax, cells = canvas(max(1, len(batches)), n, side, (0.15, 0.4), (0.35, 0.1, 0.3 if title else 0.1, 0.3))
    for r, (imgs, hw) in enumerate(batches):
        names = list(labels[r]) if r < len(labels) else []
        for j, corner in enumerate(cells[r]):
            if j >= len(imgs):
                empty_cell(ax, corner, side, "no image")
                continue
            draw_image(ax, imgs[j], corner, side, hw, box)
            cell_text(ax, wrap_name(names[j] if j < len(names) else ""), corner, side, "below")
        cell_text(ax, wrap_name(row_titles[r] if r < len(row_titles) else "", 14), cells[r][0], side, "left", 7.5)
    if title:
        fig.suptitle(short(title, int(fig.get_size_inches()[0] * 15)), x=0.01, y=0.99, ha="left", va="top",
                     fontsize=8)
    return png_uri(fig)


def counterfactual_pairs(before: np.ndarray, after: np.ndarray, labels_before: list[str],
                         labels_after: list[str], box: Box, row_titles: tuple[str, str] = ("before", "after"),
                         title: str = "") -> str:
    """Two rows (before, after) of `image_rows`, the model's label under each image and ``box`` outlined."""
    return image_rows([before, after], [labels_before, labels_after], row_titles, box, title)
