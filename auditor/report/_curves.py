"""Line charts of the report as PNG data URIs, drawn like `auditor.report._charts` (same figure, cache, PNG).

- `robustness_curves`: robust accuracy against the perturbation size (eps), a panel per norm (L-inf,
  L2), a PGD line per group of one scope, the all-images PGD line dashed and FGSM dotted.
- `faithfulness_curves`: the explained class's probability as pixels are deleted and inserted in
  attribution order, a panel each, a line per attribution method and the random order dashed.
- `sanity_chart`: each method's rank correlation with its original map at each stage of the cascading
  model randomisation, the sanity threshold dashed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auditor.plotting import STYLE
from auditor.report._charts import _LINE, _cached, _figure, _label, _png
from auditor.report._format import as_dict, as_list, metric_value

__all__ = ["faithfulness_curves", "robustness_curves", "sanity_chart"]

MAX_LINES = 8  # group lines of a robustness curve
_LINE_COLOURS = ("#2f5d8a", "#c8553d", "#4a8f3c", "#8a5fa8", "#c79100", "#2a9d9a", "#8c564b", "#d16aa8")
_NORMS = (("linf", "L∞"), ("l2", "L2"))


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

    def draw(fig: Any, axes: Any) -> None:
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

    return _panel_chart(panels, 2.9, draw)


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

    def draw(fig: Any, axes: Any) -> None:
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

    return _panel_chart(panels, 2.7, draw)


def _panel_chart(panels: list[Any], height: float, draw: Callable[[Any, Any], None]) -> str | None:
    """A row of panels sharing the y axis, drawn by ``draw(fig, axes)``, as a PNG data URI; None without
    panels or without matplotlib."""
    if not panels:
        return None
    fig = _figure(7.2, height, layout="constrained")
    if fig is None:
        return None
    import matplotlib

    with matplotlib.rc_context(STYLE):
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        draw(fig, axes)
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
    with matplotlib.rc_context(STYLE):
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
