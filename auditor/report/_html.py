"""The HTML report: one self-contained page from ``results.json`` (the PDF is the same page through
`auditor.report._pdf`).

The page inlines its CSS and embeds its figures as data URIs: it fetches nothing and runs no
script, so it can be archived, mailed, or printed as it is. Every value from the results is escaped
(jinja2 autoescape, in the one environment of `auditor.report._jinja`). The same results give the same bytes.

    >>> html = render_html({"schema_version": 1})          # a partial run still renders
"""
from __future__ import annotations

from typing import Any

from auditor.report._jinja import environment, stylesheet
from auditor.report._view import build_context

__all__ = ["render_html"]

TEMPLATE = "report.html.j2"
STYLESHEETS = ("report.css", "report_print.css")


def render_html(results: dict[str, Any]) -> str:
    """The whole report page for ``results`` (a ``results.json`` dict; any part may be missing)."""
    context = build_context(results)
    return environment().get_template(TEMPLATE).render(css=stylesheet(*STYLESHEETS), **context)
