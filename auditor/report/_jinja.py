"""The one Jinja environment of every rendered page (the report and the comparison): templates from
``reports_templates`` and from the presenters (`auditor.report.presenter`, loaded as
``presenters/<check>.html.j2``), autoescape on for everything, lenient about missing values, and the shared
filters that format numbers, metrics and names.
"""
from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable
from typing import Any

import jinja2
from markupsafe import Markup, escape

from auditor.report._format import (
    fmt_num, fmt_p, fmt_plain, is_metric, metric_ci, metric_html, metric_label, metric_value, short
)
from auditor.report.presenter import presenter_template

__all__ = ["environment", "stylesheet"]

MAX_ITEMS = 20  # list items shown by the generic renderer before "... and N more"


def _kind(x: Any) -> str:
    """What the generic renderer does with a value: metric, mapping, scalars (a flat list), list, scalar."""
    if is_metric(x):
        return "metric"
    if isinstance(x, dict):
        return "mapping"
    if isinstance(x, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in x):
            return "scalars"
        return "list"
    return "scalar"


def _scalars(x: Any) -> str:
    items = [fmt_num(v) for v in list(x)[:MAX_ITEMS]]
    more = len(x) - MAX_ITEMS
    return ", ".join(items) + (f", … and {more} more" if more > 0 else "")


def _defined(fmt: Callable[..., Any]) -> Callable[..., Any]:
    """``fmt`` with a missing template value (jinja2 Undefined) read as None, so it shows "n/a"."""

    def wrapped(x: Any, *args: Any) -> Any:
        return fmt(None if isinstance(x, jinja2.Undefined) else x, *args)

    return wrapped


def _ci_text(x: Any) -> str:
    ci = metric_ci(x)
    return f"[{fmt_num(ci[0])}, {fmt_num(ci[1])}]" if ci else ""


def _value(x: Any) -> float | int | None:
    """The number of a metric object; an int stays an int (a count prints without decimals)."""
    v = x.get("value") if isinstance(x, dict) else x
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    return metric_value(x)


def _signed(x: Any) -> str:
    v = metric_value(x)
    return "n/a" if v is None else ("+" if v > 0 else "−" if v < 0 else "±") + fmt_num(abs(v))


def _breakable(path: Any, width: int = 300) -> Markup:
    """A dotted metric path or a file path that may wrap after each dot and slash (never inside a word)."""
    return Markup("/<wbr>").join(Markup(".<wbr>").join(escape(part) for part in piece.split("."))
                                 for piece in short(path, width).split("/"))


def _hexdigest(x: Any) -> bool:
    """Whether ``x`` is a SHA-256 hex digest (shown as a hash block, not as text)."""
    return isinstance(x, str) and len(x) == 64 and all(ch in "0123456789abcdefABCDEF" for ch in x)


def _presenter_source(name: str) -> tuple[str, None, Callable[[], bool]] | None:
    """A presenter's own template; reloaded when the presenter registered under that name changes."""
    source = presenter_template(name)
    if source is None:
        return None
    return source, None, lambda: presenter_template(name) == source


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The shared environment (built once)."""
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.PackageLoader("reports_templates", "."),
                                    jinja2.FunctionLoader(_presenter_source)]),
        autoescape=True,  # everything, whatever the template's name
        undefined=jinja2.Undefined,  # lenient: a missing key renders as nothing, never raises
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=_defined(fmt_num), plain=_defined(fmt_plain), metric=_defined(metric_html), label=metric_label,
        kind=_kind, scalars=_scalars, value=_defined(_value), ci=_defined(_ci_text), p=_defined(fmt_p),
        name=_defined(lambda x, width=120: "" if x is None else short(x, width)), signed=_defined(_signed),
        breakable=_breakable,
    )
    env.tests["hexdigest"] = _hexdigest
    env.globals["max_items"] = MAX_ITEMS
    return env


@functools.lru_cache(maxsize=8)
def stylesheet(*names: str) -> Markup:
    """The CSS files ``names`` of ``reports_templates``, joined, safe to inline in a ``<style>`` element."""
    files = importlib.resources.files("reports_templates")
    css = "\n".join(files.joinpath(name).read_text(encoding="utf-8") for name in names)
    return Markup(css.replace("</", "<\\/"))  # our own files, but never let them close the <style> tag
