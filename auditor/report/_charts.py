"""Figures for the report: matplotlib charts as PNG data URIs, and vetting of check figures.

- `rate_bars`: one panel per key rate (accuracy, selection rate, TPR, FPR), a bar per group with its
  interval as a whisker, groups with too few images pale and hatched, the all-images rate dashed.
- `heatmap_chart`: an intersection as a colour grid (e.g. gender x race accuracy) with the values
  written in the cells; cells with too few images hatched grey and labelled with their n. A third
  attribute splits the grid into panels.
- `embeddable_figures`: the figures a check wrote that the report may show (inline raster data URIs).

The line charts (robustness, faithfulness, sanity) are in `auditor.report._curves`, drawn with this
module's figure, cache and PNG helpers.

Charts are drawn on a bare `matplotlib.figure.Figure` (Agg, no pyplot: no global figure state, safe
in a server thread) under the house style (`auditor.plotting.STYLE`, mathtext off: a group called
``$x$`` is a name), and saved without metadata, so the same numbers give the same bytes. Without
matplotlib the report has no charts; the tables carry the numbers. A chart costs about half a second,
so the last few are cached by their input numbers (re-rendering the same results, e.g. HTML then PDF,
draws nothing twice).
"""
from __future__ import annotations

import base64
import functools
import io
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from auditor.plotting import STYLE
from auditor.report._format import as_dict, as_list, metric_ci, metric_label, metric_value, short

__all__ = ["embeddable_figures", "heatmap_chart", "rate_bars"]

log = logging.getLogger(__name__)

MAX_BARS = 30
MAX_CELLS = 12  # rows or columns of a heatmap panel
MAX_PANELS = 4
DPI = 150
_DATA_URI = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}")
_OK, _THIN, _LINE, _EMPTY = "#2f5d8a", "#c9d0d8", "#7a3b00", "#f2f2f2"
_SHORT = {"accuracy": "Accuracy", "selection_rate": "Selection rate", "tpr": "TPR", "fpr": "FPR"}
_HEAT_RATES = ("accuracy", "selection_rate")


def _figure(width: float, height: float, layout: str | None = None) -> Any:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:  # charts are a nicety; the tables carry the numbers
        log.info("matplotlib is not installed: the report has no charts")
        return None
    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


def _cached(draw: Callable[..., str | None]) -> Callable[..., str | None]:
    """Memoise a chart function on the JSON text of its arguments (they are plain results data). Keys
    keep their order (no sort_keys): a dict of groups reaches the chart in results order, not A-Z."""

    @functools.lru_cache(maxsize=32)
    def by_key(key: str) -> str | None:
        return draw(*json.loads(key))

    @functools.wraps(draw)
    def wrapper(*args: Any) -> str | None:
        try:
            key = json.dumps(args, allow_nan=True, default=str)
        except (TypeError, ValueError):  # not plain data: draw it uncached
            return draw(*args)
        return by_key(key)

    return wrapper


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _label(text: Any, width: int = 28) -> str:
    return short(text, width)


# -- per-group bars -----------------------------------------------------------------------------------


@_cached
def rate_bars(scope: str, groups: dict[str, Any], overall: Any, rates: tuple[str, ...]) -> str | None:
    """Panels of per-group bars with interval whiskers, one panel per rate; None when nothing to draw."""
    rows = [(_label(g), as_dict(v)) for g, v in as_dict(groups).items()]
    rows = [(g, v) for g, v in rows if any(metric_value(v.get(r)) is not None for r in rates)]
    rates = tuple(r for r in rates if any(metric_value(v.get(r)) is not None for _, v in rows))
    if not rows or not rates:
        return None
    cut = len(rows) > MAX_BARS
    title = f"{_label(scope, 40)}: rates by group" + (f" (first {MAX_BARS} of {len(rows)} groups)" if cut else "")
    rows = rows[:MAX_BARS]
    fig = _figure(7.2, 0.95 + 0.24 * len(rows))
    if fig is None:
        return None
    import matplotlib

    with matplotlib.rc_context(STYLE):
        axes = fig.subplots(1, len(rates), sharey=True, squeeze=False)[0]
        for ax, rate in zip(axes, rates):
            _bars(ax, rows, rate, as_dict(overall).get(rate))
        axes[0].set_yticks(range(len(rows))[::-1])
        axes[0].set_yticklabels([g for g, _ in rows])
        fig.suptitle(title + "  (whiskers: interval; dashed: all images; hatched: too few images)",
                     x=0.01, ha="left", fontsize=8)
        fig.tight_layout(pad=0.4, w_pad=0.6)
        return _png(fig)


def _bars(ax: Any, rows: list[tuple[str, dict[str, Any]]], rate: str, overall: Any) -> None:
    pos = list(range(len(rows)))[::-1]  # first group on top
    for p, (_, g) in zip(pos, rows):
        m = g.get(rate)
        v = metric_value(m)
        if v is None:
            ax.text(0.02, p, "n/a", va="center", fontsize=6.5, color="#666666")
            continue
        thin = bool(g.get("insufficient_data"))
        bar = ax.barh([p], [v], color=_THIN if thin else _OK, height=0.62)[0]
        if thin:
            bar.set_hatch("////")
            bar.set_edgecolor("#7d8791")
        ci = metric_ci(m)
        if ci is not None:
            ax.errorbar([v], [p], xerr=[[max(0.0, v - ci[0])], [max(0.0, ci[1] - v)]], fmt="none",
                        ecolor="#222222", elinewidth=0.8, capsize=2)
    ref = metric_value(overall)
    if ref is not None:
        ax.axvline(ref, color=_LINE, linestyle="--", linewidth=0.8)
    ax.set_xlim(0.0, 1.05)
    ax.set_xticks([0.0, 0.5, 1.0], ["0", "0.5", "1"])
    ax.set_xticks([0.25, 0.75], minor=True)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_title(_SHORT.get(rate, metric_label(rate)), fontsize=8, loc="left")
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", which="both", color="#e3e3e3", linewidth=0.5)
    ax.set_axisbelow(True)


# -- intersection heatmaps -------------------------------------------------------------------------------


def _members(name: str, g: dict[str, Any], attributes: list[str]) -> dict[str, str] | None:
    members = as_dict(g.get("members"))
    if all(a in members for a in attributes):
        return {a: str(members[a]) for a in attributes}
    parts = str(name).split(" & ")
    return dict(zip(attributes, parts)) if len(parts) == len(attributes) else None


def _levels(cells: dict[tuple[str, ...], dict[str, Any]], i: int) -> list[str]:
    return list(dict.fromkeys(k[i] for k in cells))


@_cached
def heatmap_chart(scope: str, attributes: list[str], groups: dict[str, Any]) -> str | None:
    """The intersection's accuracy and selection rate as colour grids; None for other than 2 or 3 attributes."""
    attributes = [str(a) for a in as_list(attributes)]
    if len(attributes) not in (2, 3):
        return None
    cells: dict[tuple[str, ...], dict[str, Any]] = {}
    for name, g in as_dict(groups).items():
        m = _members(str(name), as_dict(g), attributes)
        if m is not None:
            cells[tuple(m[a] for a in attributes)] = as_dict(g)
    if not cells:
        return None
    levels = [_levels(cells, i) for i in range(len(attributes))]
    if len(attributes) == 3:  # the attribute with the fewest groups splits the grid into panels
        split = min(range(3), key=lambda i: len(levels[i]))
        axes_idx = [i for i in range(3) if i != split]
        panels = levels[split][:MAX_PANELS]
    else:
        split, axes_idx, panels = None, [0, 1], [None]
    rows, cols = levels[axes_idx[0]][:MAX_CELLS], levels[axes_idx[1]][:MAX_CELLS]
    rates = [r for r in _HEAT_RATES if any(metric_value(g.get(r)) is not None for g in cells.values())]
    if not rates:
        return None
    n_panels = len(panels) * len(rates) if split is None else len(panels)
    n_rows = 1 if split is None else len(rates)
    n_cols = len(rates) if split is None else len(panels)
    cell_w, cell_h = 0.5, 0.34
    width = min(7.2, 1.6 + n_cols * (len(cols) * cell_w + 0.9))
    height = 0.9 + n_rows * (len(rows) * cell_h + 0.9)
    fig = _figure(width, height, layout="constrained")
    if fig is None or n_panels == 0:
        return None
    import matplotlib

    with matplotlib.rc_context(STYLE):
        grid = fig.subplots(n_rows, n_cols, squeeze=False)
        for ri, rate in enumerate(rates if split is not None else [None]):
            for ci in range(n_cols):
                r = rates[ci] if split is None else rate
                fixed = None if split is None else (split, panels[ci])
                image = _panel(grid[ri][ci], cells, attributes, axes_idx, rows, cols, r, _norm(cells, r), fixed,
                               show_y=ci == 0 or split is None)
                if (split is None or ci == n_cols - 1) and _has_values(cells, r):  # one colour scale per rate
                    axes = [grid[ri][ci]] if split is None else list(grid[ri])
                    bar = fig.colorbar(image, ax=axes, fraction=0.04, pad=0.01, aspect=25)
                    bar.ax.tick_params(labelsize=7)
                    bar.outline.set_visible(False)
        cut = len(levels[axes_idx[0]]) > MAX_CELLS or len(levels[axes_idx[1]]) > MAX_CELLS or (
            split is not None and len(levels[split]) > MAX_PANELS)
        fig.suptitle(f"{_label(scope.replace('+', ' × '), 60)}: values per intersection (hatched: too few images, "
                     f"n shown; –: no images){' — first groups only' if cut else ''}", x=0.01, ha="left", fontsize=8)
        return _png(fig)


def _has_values(cells: dict[tuple[str, ...], dict[str, Any]], rate: str) -> bool:
    return any(metric_value(g.get(rate)) is not None and not g.get("insufficient_data") for g in cells.values())


def _norm(cells: dict[tuple[str, ...], dict[str, Any]], rate: str) -> Any:
    """The colour scale of a rate: fixed at 0..1 for every heatmap, so the same colour is the same rate in every
    figure (a scale re-ranged per figure makes a 2-point difference look like 40)."""
    from matplotlib.colors import Normalize

    return Normalize(0.0, 1.0)


def _panel(ax: Any, cells: dict[tuple[str, ...], dict[str, Any]], attributes: list[str], axes_idx: list[int],
           rows: list[str], cols: list[str], rate: str, norm: Any, fixed: tuple[int, str] | None, show_y: bool) -> Any:
    """Draw one grid of ``rate``; returns the image (for the colour bar)."""
    import numpy as np
    from matplotlib.patches import Rectangle

    def key(r: str, c: str) -> tuple[str, ...]:
        k = [""] * len(attributes)
        k[axes_idx[0]], k[axes_idx[1]] = r, c
        if fixed is not None:
            k[fixed[0]] = fixed[1]
        return tuple(k)

    values = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            g = cells.get(key(r, c))
            v = metric_value(as_dict(g).get(rate)) if g is not None else None
            if g is not None and v is not None and not g.get("insufficient_data"):
                values[i, j] = v
    image = ax.imshow(np.ma.masked_invalid(values), cmap=_cmap(), norm=norm, aspect="auto")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            g = cells.get(key(r, c))
            if g is None:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#ffffff", edgecolor="#dddddd", linewidth=0.5))
                ax.text(j, i, "–", ha="center", va="center", fontsize=6.5, color="#888888")
                continue
            n = g.get("n")
            if g.get("insufficient_data") or not np.isfinite(values[i, j]):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=_EMPTY, edgecolor="#9aa3ad", hatch="////",
                                       linewidth=0.5))
                ax.text(j, i, f"n={n}", ha="center", va="center", fontsize=6, color="#333333",
                        bbox={"facecolor": "#ffffff", "edgecolor": "none", "pad": 0.6, "alpha": 0.85})
                continue
            v = values[i, j]
            ax.text(j, i - 0.1, f"{v:.2f}", ha="center", va="center", fontsize=7.5,
                    color="#ffffff" if norm(v) < 0.55 else "#111111")
            ax.text(j, i + 0.27, f"n={n}", ha="center", va="center", fontsize=5.5,
                    color="#e8e8e8" if norm(v) < 0.55 else "#333333")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([_label(c, 14) for c in cols], rotation=30 if max(len(c) for c in cols) > 6 else 0,
                       ha="right" if max(len(c) for c in cols) > 6 else "center", fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_label(r, 18) for r in rows] if show_y else [], fontsize=7)
    ax.set_xlabel(_label(attributes[axes_idx[1]], 30), fontsize=7)
    if show_y:
        ax.set_ylabel(_label(attributes[axes_idx[0]], 30), fontsize=7)
    title = metric_label(rate)
    if fixed is not None:
        title += f" — {_label(attributes[fixed[0]], 20)}: {_label(fixed[1], 20)}"
    ax.set_title(title, fontsize=7.5, loc="left")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    return image


def _cmap() -> Any:
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(bad=_EMPTY)


# -- figures written by checks ----------------------------------------------------------------------------


def embeddable_figures(figures: Any) -> tuple[list[dict[str, str]], list[str]]:
    """The check's figures that are inline raster data URIs, and the names of those that are not.

    A figure is a data URI string, or a dict with ``data_uri`` (or ``data``/``src``) and an optional
    ``caption``. Anything else (a path, a URL, SVG) is refused: the report fetches nothing.
    """
    shown: list[dict[str, str]] = []
    refused: list[str] = []
    for name, fig in as_dict(figures).items():
        caption = short(name)
        uri = fig
        if isinstance(fig, dict):
            uri = fig.get("data_uri", fig.get("data", fig.get("src")))
            caption = short(fig.get("caption") or name, 300)
        if isinstance(uri, str) and _DATA_URI.fullmatch(uri.strip()):
            shown.append({"name": short(name), "caption": caption, "uri": uri.strip()})
        else:
            refused.append(short(name))
    return shown, refused
