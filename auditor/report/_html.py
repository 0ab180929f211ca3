"""The HTML report: one self-contained page from ``results.json`` (the PDF is the same page through
`auditor.report._pdf`).

The page inlines its CSS and embeds its figures as data URIs: it fetches nothing and runs no
script, so it can be archived, mailed, or printed as it is. Every value from the results is escaped
(jinja2 autoescape). The same results give the same bytes.

    >>> html = render_html({"schema_version": 1})          # a partial run still renders
"""
from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable
from typing import Any

import jinja2
from markupsafe import Markup, escape

from auditor.report._format import (
    fmt_num,
    fmt_p,
    fmt_plain,
    is_metric,
    metric_ci,
    metric_html,
    metric_label,
    metric_value,
    short,
)
from auditor.report._view import build_context

__all__ = ["render_html"]

TEMPLATE = "report.html.j2"
STYLESHEETS = ("report.css", "report_print.css")
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


def _breakable(path: Any) -> Markup:
    """A dotted metric path that may wrap after each dot."""
    return Markup(".<wbr>").join(escape(part) for part in short(path, 300).split("."))


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports_templates", "."),
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
    env.globals["max_items"] = MAX_ITEMS
    return env


@functools.lru_cache(maxsize=1)
def _stylesheet() -> Markup:
    files = importlib.resources.files("reports_templates")
    css = "\n".join(files.joinpath(name).read_text(encoding="utf-8") for name in STYLESHEETS)
    return Markup(css.replace("</", "<\\/"))  # our own files, but never let them close the <style> tag


def render_html(results: dict[str, Any]) -> str:
    """The whole report page for ``results`` (a ``results.json`` dict; any part may be missing)."""
    context = build_context(results)
    return _environment().get_template(TEMPLATE).render(css=_stylesheet(), **context)
