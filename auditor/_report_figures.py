"""Figures for the report: small matplotlib charts as PNG data URIs, and vetting of check figures.

Charts are drawn on a bare `matplotlib.figure.Figure` (Agg, no pyplot: no global figure state, safe
in a server thread) under a fixed style, and saved without metadata, so the same numbers give the
same bytes. Without matplotlib the report simply has no charts.
"""
from __future__ import annotations

import base64
import io
import logging
import re
from typing import Any

from auditor._report_format import as_dict, metric_value

__all__ = ["accuracy_chart", "embeddable_figures"]

log = logging.getLogger(__name__)

MAX_BARS = 30
_DATA_URI = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}")
_STYLE = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: same glyphs on every machine
    "font.size": 8,
    "axes.edgecolor": "#444444",
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "svg.hashsalt": "auditor",
    "path.simplify": True,
}
_OK, _THIN, _LINE = "#2f5d8a", "#b9c2cc", "#7a3b00"


def accuracy_chart(attribute: str, groups: dict[str, Any], overall: Any = None) -> str | None:
    """A horizontal bar chart of accuracy per group as a PNG data URI; None when nothing to draw.

    Groups flagged ``insufficient_data`` are drawn pale and hatched; intervals become error bars;
    ``overall`` (a metric object) is a dashed reference line.
    """
    rows = [(_short(str(g)), as_dict(v)) for g, v in groups.items()]
    rows = [(g, v) for g, v in rows if metric_value(v.get("accuracy")) is not None]
    title = f"Accuracy by {_short(attribute, 24)}" + (f" (first {MAX_BARS} of {len(rows)} groups)" if len(rows) > MAX_BARS else "")
    rows = rows[:MAX_BARS]
    if not rows:
        return None
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:  # charts are a nicety; the tables carry the numbers
        log.info("matplotlib is not installed: the report has no charts")
        return None
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.2, 0.6 + 0.28 * len(rows)), dpi=110)
        ax = fig.add_subplot()
        _draw(ax, rows, overall)
        fig.suptitle(title, x=0.01, ha="left", fontsize=9, parse_math=False)
        fig.tight_layout(pad=0.4)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _short(text: str, width: int = 32) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _draw(ax: Any, rows: list[tuple[str, dict[str, Any]]], overall: Any) -> None:
    pos = list(range(len(rows)))[::-1]  # first group on top
    values, colours, hatches, errs = [], [], [], [[], []]
    for _, g in rows:
        acc = g.get("accuracy")
        v = metric_value(acc)
        values.append(v)
        thin = bool(g.get("insufficient_data"))
        colours.append(_THIN if thin else _OK)
        hatches.append("///" if thin else "")
        ci = acc.get("ci") if isinstance(acc, dict) else None
        ok = isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci)
        errs[0].append(max(0.0, v - ci[0]) if ok else 0.0)
        errs[1].append(max(0.0, ci[1] - v) if ok else 0.0)
    bars = ax.barh(pos, values, color=colours, height=0.62)
    for bar, hatch in zip(bars, hatches):
        bar.set_hatch(hatch)
        bar.set_edgecolor("#ffffff" if not hatch else "#7d8791")
    if any(errs[0]) or any(errs[1]):
        ax.errorbar(values, pos, xerr=errs, fmt="none", ecolor="#222222", elinewidth=0.8, capsize=2)
    for p, v, hi in zip(pos, values, errs[1]):
        ax.text(min(v + hi + 0.01, 1.02), p, f"{v:.3f}", va="center", fontsize=7, color="#222222")
    ref = metric_value(overall)
    if ref is not None:
        ax.axvline(ref, color=_LINE, linestyle="--", linewidth=0.8)
    ax.set_yticks(pos)
    ax.set_yticklabels([g for g, _ in rows])
    for label in ax.get_yticklabels():
        label.set_parse_math(False)  # a group called "$x$" is a name, not a formula
    ax.set_xlim(0.0, 1.12)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("accuracy" if ref is None else f"accuracy (dashed line: all images, {ref:.3f})")


def embeddable_figures(figures: Any) -> tuple[list[dict[str, str]], list[str]]:
    """The check's figures that are inline raster data URIs, and the names of those that are not.

    A figure is a data URI string, or a dict with ``data_uri`` (or ``data``/``src``) and an optional
    ``caption``. Anything else (a path, a URL, SVG) is refused: the report fetches nothing.
    """
    shown: list[dict[str, str]] = []
    refused: list[str] = []
    for name, fig in as_dict(figures).items():
        caption = str(name)
        uri = fig
        if isinstance(fig, dict):
            uri = fig.get("data_uri", fig.get("data", fig.get("src")))
            caption = str(fig.get("caption") or name)
        if isinstance(uri, str) and _DATA_URI.fullmatch(uri.strip()):
            shown.append({"name": str(name), "caption": caption, "uri": uri.strip()})
        else:
            refused.append(str(name))
    return shown, refused
