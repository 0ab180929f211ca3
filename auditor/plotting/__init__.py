"""Figures shared by the checks and the report: the house style and the image panels.

The checks draw their figures (``checks.*.figures``) with these; the report draws its charts under the same
`STYLE` and shows names through the same `short`. Nothing here imports matplotlib at import time (each
figure imports it when drawn: it is optional and slow to load; the image panels, with numpy, load on first
use), and nothing here knows the report.

- `STYLE`, `styled`: matplotlib rc settings of every figure, and a decorator that draws under them.
- `clean_text`, `short`, `MAX_NAME`: a name from the data made safe to show, and cut to a width.
- `evidence_overview`, `example_overlays`, `image_rows`, `counterfactual_pairs`: image-panel figures.
- `canvas`, `draw_image`, `empty_cell`, `cell_text`, `wrap_name`, `to_rgb`, `png_uri`: their building blocks.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditor.plotting._style import MAX_NAME, STYLE, clean_text, short, styled

if TYPE_CHECKING:
    from auditor.plotting._images import (
        MAX_SIDE,
        canvas,
        cell_text,
        counterfactual_pairs,
        draw_image,
        empty_cell,
        evidence_overview,
        example_overlays,
        image_rows,
        png_uri,
        to_rgb,
        wrap_name,
    )

__all__ = [
    "MAX_NAME",
    "MAX_SIDE",
    "STYLE",
    "canvas",
    "cell_text",
    "clean_text",
    "counterfactual_pairs",
    "draw_image",
    "empty_cell",
    "evidence_overview",
    "example_overlays",
    "image_rows",
    "png_uri",
    "short",
    "styled",
    "to_rgb",
    "wrap_name",
]
_IMAGES = frozenset(__all__) - {"MAX_NAME", "STYLE", "clean_text", "short", "styled"}


def __getattr__(name: str) -> Any:
    """The image panels, imported on first use: they load numpy, which the report (it needs only the style
    and `short`) does not otherwise import."""
    if name in _IMAGES:
        from auditor.plotting import _images

        return getattr(_images, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
