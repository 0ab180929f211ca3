"""The audit report: HTML (self-contained), PDF (the same HTML through weasyprint), Markdown (a PR
comment) and JUnit XML (a CI test report), all from ``results.json``.

The HTML page inlines its CSS and embeds its figures as data URIs: it fetches nothing and runs no
script, so it can be archived, mailed, or printed as it is. Every value from the results is escaped
(jinja2 autoescape). The same results give the same bytes.

    >>> html = render_html({"schema_version": 1})          # a partial run still renders
"""
from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from auditor._report_format import (
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
from auditor._report_markdown import render_markdown
from auditor._report_view import build_context
from auditor.atomic import atomic_write_text

__all__ = ["REPORT_FILES", "render_html", "render_markdown", "write_html", "write_markdown", "write_report"]

TEMPLATE = "report.html.j2"
STYLESHEETS = ("report.css", "report_print.css")
MAX_ITEMS = 20  # list items shown by the generic renderer before "... and N more"
REPORT_FILES = {"html": "report.html", "pdf": "report.pdf", "md": "report.md", "junit": "report.junit.xml"}


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


def write_html(results: dict[str, Any], out_dir: Path, *, html: str | None = None) -> Path:
    """Atomically write ``out_dir/report.html`` (``html``: the page, when already rendered) and return its path."""
    return atomic_write_text(Path(out_dir) / REPORT_FILES["html"], render_html(results) if html is None else html)


def write_markdown(results: dict[str, Any], out_dir: Path) -> Path:
    """Atomically write ``out_dir/report.md`` (the PR-comment summary) and return its path."""
    return atomic_write_text(Path(out_dir) / REPORT_FILES["md"], render_markdown(results))


def write_report(results: dict[str, Any], out_dir: Path, fmt: str, *, allow_inconclusive: bool | None = None) -> Path:
    """Atomically write one report format (``html``, ``pdf``, ``md``, ``junit``) to ``out_dir``.

    ``allow_inconclusive`` only matters for JUnit (None: read it from the results); PDF raises
    `auditor.report_pdf.PdfUnavailableError` (exit 2) when weasyprint or its libraries are missing.
    """
    out_dir = Path(out_dir)
    if fmt == "html":
        return write_html(results, out_dir)
    if fmt == "md":
        return write_markdown(results, out_dir)
    if fmt == "junit":
        from auditor.report_junit import write_junit

        return write_junit(results, out_dir, allow_inconclusive=allow_inconclusive)
    if fmt == "pdf":
        from auditor.report_pdf import write_pdf

        return write_pdf(results, out_dir)
    raise ValueError(f"The 'fmt' parameter of write_report must be one of {sorted(REPORT_FILES)}. Got {fmt!r} instead.")
