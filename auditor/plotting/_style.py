"""The house style of every figure (the report's charts and the checks' image panels) and how names are
shown in them and in the report text.

`STYLE`: matplotlib rc settings for a bare `matplotlib.figure.Figure` (Agg, no pyplot): fonts that ship
with matplotlib (same glyphs on every machine), mathtext off (a group called ``$x$`` is a name), a fixed
SVG hash salt. `styled` runs a figure function under it. `clean_text` and `short` make a name from the
data safe to show: control characters and lone surrogates (invalid in XML, invisible in HTML) become
U+FFFD, and `short` caps the length; escaping for each output format is that format's job.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, ParamSpec

__all__ = ["MAX_NAME", "STYLE", "clean_text", "short", "styled"]

MAX_NAME = 120  # characters of a name shown in a table or sentence; results.json keeps the whole name
STYLE = {
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
# C0/C1 controls except tab/newline/CR, bidi overrides, lone surrogates and the XML non-characters.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
P = ParamSpec("P")


def clean_text(x: Any) -> str:
    """``str(x)`` with control characters, lone surrogates and non-characters replaced by U+FFFD."""
    return _CONTROL.sub("\ufffd", x if isinstance(x, str) else str(x))


def short(x: Any, width: int = MAX_NAME) -> str:
    """A cleaned name on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(clean_text(x).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def styled(draw: Callable[P, str]) -> Callable[P, str]:
    """Run a figure function under the house style (rc settings are read as artists are made and drawn)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        import matplotlib  # ImportError reaches the caller; matplotlib is optional and slow to import

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper
