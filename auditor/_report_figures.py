"""Figures for the report: matplotlib charts as PNG data URIs, and vetting of check figures.

- `rate_bars`: one panel per key rate (accuracy, selection rate, TPR, FPR), a bar per group with its
  interval as a whisker, groups with too few images pale and hatched, the all-images rate dashed.
- `heatmap_chart`: an intersection as a colour grid (e.g. gender x race accuracy) with the values
  written in the cells; cells with too few images hatched grey and labelled with their n. A third
  attribute splits the grid into panels.
- `robustness_curves`: robust accuracy against the perturbation size (eps), a panel per norm (L-inf,
  L2), a PGD line per group of one scope, the all-images PGD line dashed and FGSM dotted.
- `faithfulness_curves`: the explained class's probability as pixels are deleted and inserted in
  attribution order, a panel each, a line per attribution method and the random order dashed.
- `sanity_chart`: each method's rank correlation with its original map at each stage of the cascading
  model randomisation, the sanity threshold dashed.

Charts are drawn on a bare `matplotlib.figure.Figure` (Agg, no pyplot: no global figure state, safe
in a server thread) under a fixed style with mathtext off (a group called ``$x$`` is a name), and
saved without metadata, so the same numbers give the same bytes. Without matplotlib the report has
no charts; the tables carry the numbers. A chart costs about half a second, so the last few are
cached by their input numbers (re-rendering the same results, e.g. HTML then PDF, draws nothing twice).
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

from auditor._report_format import (
    as_dict,
    as_list,
    metric_ci,
    metric_label,
    metric_value,
    short,
)

__all__ = ["embeddable_figures", "faithfulness_curves", "heatmap_chart", "rate_bars", "robustness_curves", "sanity_chart"]

log = logging.getLogger(__name__)

MAX_BARS = 30
MAX_CELLS = 12  # rows or columns of a heatmap panel
MAX_PANELS = 4
DPI = 150
_DATA_URI = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}")
_STYLE = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: same glyphs on every machine
    "font.size": 8,
    "text.parse_math": False,
    "axes.edgecolor": "#444444",
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "svg.hashsalt": "auditor",
    "path.simplify": True,
}
_OK, _THIN, _LINE, _EMPTY = "#2f5d8a", "#c9d0d8", "#7a3b00", "#f2f2f2"
_SHORT = {"accuracy": "Accuracy", "selection_rate": "Selection rate", "tpr": "TPR", "fpr": "FPR"}
_HEAT_RATES = ("accuracy", "selection_rate")
MAX_LINES = 8  # group lines of a robustness curve
_LINE_COLOURS = ("#2f5d8a", "#c8553d", "#4a8f3c", "#8a5fa8", "#c79100", "#2a9d9a", "#8c564b", "#d16aa8")
_NORMS = (("linf", "L∞"), ("l2", "L2"))


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

    with matplotlib.rc_context(_STYLE):
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

    with matplotlib.rc_context(_STYLE):
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
                    bar.ax.tick_params(labelsize=6)
                    bar.outline.set_visible(False)
        cut = len(levels[axes_idx[0]]) > MAX_CELLS or len(levels[axes_idx[1]]) > MAX_CELLS or (
            split is not None and len(levels[split]) > MAX_PANELS)
        fig.suptitle(f"{_label(scope.replace('+', ' × '), 60)}: values per intersection (hatched: too few images, "
                     f"n shown; –: no images){' — first groups only' if cut else ''}", x=0.01, ha="left", fontsize=8)
        return _png(fig)


def _has_values(cells: dict[tuple[str, ...], dict[str, Any]], rate: str) -> bool:
    return any(metric_value(g.get(rate)) is not None and not g.get("insufficient_data") for g in cells.values())


def _norm(cells: dict[tuple[str, ...], dict[str, Any]], rate: str) -> Any:
    """One colour scale for a rate over every cell with enough images."""
    from matplotlib.colors import Normalize

    vals = [metric_value(g.get(rate)) for g in cells.values() if not g.get("insufficient_data")]
    finite = [v for v in vals if v is not None]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi - lo < 0.05:
        lo, hi = max(0.0, lo - 0.05), min(1.0, hi + 0.05)
    return Normalize(lo, hi)


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


# -- robustness curves ---------------------------------------------------------------------------------------


def _points(eps: Any, values: Any) -> list[tuple[float, float]]:
    """(eps, accuracy) pairs where both are finite and eps > 0 (the x axis is logarithmic)."""
    pairs = zip(as_list(eps), as_list(values))
    return [(float(e), float(v)) for e, v in pairs if metric_value(e) is not None and metric_value(v) is not None and e > 0]


def _eps_tick(e: float, norm: str) -> str:
    k = e * 255
    if norm == "linf" and e < 1 and abs(k - round(k)) < 1e-6 * max(1.0, k):
        return f"{round(k)}/255"
    return f"{e:.3g}"


@_cached
def robustness_curves(curves: Any, scope: Any, groups: Any) -> str | None:
    """Robust accuracy against eps, a panel per norm: a PGD line per group of ``scope`` (the first
    ``MAX_LINES`` groups with enough images), all images' PGD dashed and FGSM dotted; None when nothing to draw.

    ``groups``: ``[name, by_group entry]`` pairs, a list because the cache key sorts a dict's keys."""
    pairs = [as_list(p) for p in as_list(groups)]
    lines = [(_label(p[0], 24), as_dict(as_dict(p[1]).get("curves"))) for p in pairs
             if len(p) == 2 and not as_dict(p[1]).get("insufficient_data")][:MAX_LINES]
    panels = []
    for norm, title in _NORMS:
        c = as_dict(as_dict(curves).get(norm))
        series = [(f"{g} (PGD)", _points(c.get("eps"), as_dict(gc.get(norm)).get("pgd")), "-", colour, 1.1)
                  for (g, gc), colour in zip(lines, _LINE_COLOURS)]
        series += [("all images (PGD)", _points(c.get("eps"), c.get("pgd")), "--", _LINE, 1.4),
                   ("all images (FGSM)", _points(c.get("eps"), c.get("fgsm")), ":", _LINE, 1.4)]
        series = [s for s in series if s[1]]
        if series:
            panels.append((norm, title, series, sorted({e for s in series for e, _ in s[1]})))
    if not panels:
        return None
    fig = _figure(7.2, 2.9, layout="constrained")
    if fig is None:
        return None
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, (norm, title, series, ticks) in zip(axes, panels):
            _plot_series(ax, series, marker="o", markersize=2.5)
            ax.set_xscale("log")
            ax.set_xticks(ticks, [_eps_tick(e, norm) for e in ticks], fontsize=6.5, rotation=40 if len(ticks) > 6 else 0)
            ax.minorticks_off()
            ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0], ["0", "0.25", "0.5", "0.75", "1"])
            ax.set_xlabel(f"eps ({title}, log scale)", fontsize=7)
            ax.set_title(f"{title} perturbations", fontsize=8, loc="left")
        axes[0].set_ylabel("Robust accuracy", fontsize=7)
        _legend(fig, axes)
        by = f" by {_label(scope, 40)}" if lines else ""
        fig.suptitle(f"Robust accuracy against the perturbation size{by}", x=0.01, ha="left", fontsize=8)
        return _png(fig)


# -- explanations: deletion/insertion curves and the sanity cascade -------------------------------------------


def _curve_points(fractions: Any, values: Any) -> list[tuple[float, float]]:
    """(fraction, probability) pairs where both are finite; evenly spaced fractions when none are recorded."""
    values = as_list(values)
    xs = as_list(fractions)
    if not xs and len(values) > 1:
        xs = [i / (len(values) - 1) for i in range(len(values))]
    return [(float(x), float(v)) for x, v in zip(xs, values) if metric_value(x) is not None and metric_value(v) is not None]


@_cached
def faithfulness_curves(fractions: Any, methods: Any, random: Any) -> str | None:
    """The explained class's mean probability as pixels are deleted (left) and inserted (right) in the order
    of each method's attributions (the first `MAX_LINES` methods), the random order dashed; None when nothing
    to draw. ``methods``: ``[label, deletion_curve, insertion_curve]`` triples; ``random``: the random
    order's ``[deletion_curve, insertion_curve]``."""
    triples = [as_list(m) for m in as_list(methods)]
    lines = [(_label(m[0], 24), m[1], m[2]) for m in triples if len(m) == 3][:MAX_LINES]
    base = as_list(random) + [None, None]
    panels = []
    for i, (title, verb) in enumerate((("Deletion (lower is better)", "removed"), ("Insertion (higher is better)", "inserted"))):
        series = [(line[0], _curve_points(fractions, line[i + 1]), "-", colour, 1.1)
                  for line, colour in zip(lines, _LINE_COLOURS)]
        series.append(("random order", _curve_points(fractions, base[i]), "--", "#555555", 1.3))
        series = [s for s in series if len(s[1]) > 1]
        if series:
            panels.append((title, verb, series))
    if not panels:
        return None
    fig = _figure(7.2, 2.7, layout="constrained")
    if fig is None:
        return None
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, (title, verb, series) in zip(axes, panels):
            _plot_series(ax, series)
            ax.set_xlim(0.0, 1.0)
            ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0], ["0", "0.25", "0.5", "0.75", "1"])
            ax.set_xlabel(f"Share of pixels {verb}, most important first", fontsize=7)
            ax.set_title(title, fontsize=8, loc="left")
        axes[0].set_ylabel("Mean probability of the explained class", fontsize=7)
        fig.get_layout_engine().set(wspace=0.06)
        _legend(fig, axes)
        fig.suptitle("Deletion and insertion curves per attribution method", x=0.01, ha="left", fontsize=8)
        return _png(fig)


def _plot_series(ax: Any, series: list[tuple[str, list[tuple[float, float]], str, str, float]], **line: Any) -> None:
    """Draw ``(name, points, linestyle, colour, width)`` lines on a probability axis (0 to 1) with a light grid."""
    for name, pts, style, colour, width in series:
        ax.plot([x for x, _ in pts], [v for _, v in pts], linestyle=style, color=colour, linewidth=width, label=name,
                **line)
    ax.set_ylim(0.0, 1.02)
    ax.grid(which="major", color="#e3e3e3", linewidth=0.5)
    ax.set_axisbelow(True)


def _legend(fig: Any, axes: Any) -> None:
    """One legend for all panels, outside on the right (a panel can have lines the first lacks)."""
    handles, names = [], []
    for ax in axes:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, loc="outside right upper", fontsize=6.5, frameon=False)


@_cached
def sanity_chart(stages: Any, methods: Any, threshold: Any) -> str | None:
    """Each method's rank correlation with its original map against the randomisation stage, its interval as
    a band, ``threshold`` dashed; None when nothing to draw. ``stages``: ``[stage, layer]`` pairs (tick
    labels); ``methods``: ``[label, [[stage, value, lo, hi], ...]]`` pairs (the first `MAX_LINES`)."""
    ticks = {}
    for p in as_list(stages):
        p = as_list(p)
        if len(p) == 2 and metric_value(p[0]) is not None:
            ticks[float(p[0])] = _label(p[1], 16) if p[1] not in (None, "") else ""
    lines = []
    for m in as_list(methods):
        m = as_list(m)
        if len(m) != 2:
            continue
        pts = [as_list(q) + [None] * 4 for q in as_list(m[1])]
        pts = [(float(q[0]), float(q[1]), metric_value(q[2]), metric_value(q[3])) for q in pts
               if metric_value(q[0]) is not None and metric_value(q[1]) is not None]
        if pts:
            lines.append((_label(m[0], 24), pts))
    lines = lines[:MAX_LINES]
    if not lines:
        return None
    fig = _figure(7.2, 2.8, layout="constrained")
    if fig is None:
        return None
    import matplotlib

    values = [v for _, pts in lines for _, v, _, _ in pts]
    cut = metric_value(threshold)
    with matplotlib.rc_context(_STYLE):
        ax = fig.subplots()
        for (name, pts), colour in zip(lines, _LINE_COLOURS):
            ax.plot([s for s, *_ in pts], [v for _, v, _, _ in pts], color=colour, linewidth=1.1, marker="o",
                    markersize=2.5, label=name)
            band = [(s, lo, hi) for s, _, lo, hi in pts if lo is not None and hi is not None]
            if len(band) > 1:
                ax.fill_between([s for s, _, _ in band], [lo for _, lo, _ in band], [hi for _, _, hi in band],
                                color=colour, alpha=0.12, linewidth=0)
        if cut is not None:
            ax.axhline(cut, color=_LINE, linestyle="--", linewidth=0.9, label=f"sanity threshold {cut:g}")
        xs = sorted({s for _, pts in lines for s, *_ in pts} | set(ticks))
        ax.set_xticks(xs, [f"{s:g}" + (f"\n{ticks[s]}" if ticks.get(s) else "") for s in xs], fontsize=6.5)
        low = min(values + ([cut] if cut is not None else []))
        ax.set_ylim(min(-0.1, low - 0.05), 1.05)
        ax.set_xlabel("Randomisation stage and the last layer it randomised (from the output down)", fontsize=7)
        ax.set_ylabel("Rank correlation of |attribution|\nwith the original model's", fontsize=7)
        ax.grid(color="#e3e3e3", linewidth=0.5)
        ax.set_axisbelow(True)
        _legend(fig, [ax])
        fig.suptitle("Sanity check: how much each method's map changes as the model is randomised", x=0.01, ha="left",
                     fontsize=8)
        return _png(fig)


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
