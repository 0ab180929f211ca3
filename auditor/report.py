"""The audit report: one self-contained HTML page (and a short Markdown summary) from ``results.json``.

The page inlines its CSS and embeds its figures as data URIs: it fetches nothing and runs no script,
so it can be archived, mailed, or printed to PDF as it is. Every value from the results is escaped
(jinja2 autoescape). The same results give the same bytes.

    >>> html = render_html({"schema_version": 1})          # a partial run still renders
"""
from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path
from typing import Any, Callable

import jinja2
from markupsafe import Markup

from auditor._report_format import fmt_num, fmt_plain, is_metric, metric_html, metric_label
from auditor._report_markdown import render_markdown
from auditor._report_view import build_context
from auditor.atomic import atomic_write_text

__all__ = ["render_html", "render_markdown", "write_html", "write_markdown"]

TEMPLATE = "report.html.j2"
STYLESHEET = "report.css"
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
        num=_defined(fmt_num), plain=_defined(fmt_plain), metric=_defined(metric_html),
        label=metric_label, kind=_kind, scalars=_scalars,
    )
    env.globals["max_items"] = MAX_ITEMS
    return env


@functools.lru_cache(maxsize=1)
def _stylesheet() -> Markup:
    css = importlib.resources.files("reports_templates").joinpath(STYLESHEET).read_text(encoding="utf-8")
    return Markup(css.replace("</", "<\\/"))  # our own file, but never let it close the <style> tag


def render_html(results: dict[str, Any]) -> str:
    """The whole report page for ``results`` (a ``results.json`` dict; any part may be missing)."""
    context = build_context(results)
    return _environment().get_template(TEMPLATE).render(css=_stylesheet(), **context)


def write_html(results: dict[str, Any], out_dir: Path) -> Path:
    """Atomically write ``out_dir/report.html`` and return its path."""
    return atomic_write_text(Path(out_dir) / "report.html", render_html(results))


def write_markdown(results: dict[str, Any], out_dir: Path) -> Path:
    """Atomically write ``out_dir/report.md`` (the PR-comment summary) and return its path."""
    return atomic_write_text(Path(out_dir) / "report.md", render_markdown(results))
