"""The audit report: HTML (self-contained), PDF (the same HTML through weasyprint), Markdown (a PR
comment) and JUnit XML (a CI test report), all from ``results.json``.

Every renderer accepts a partial or hand-edited ``results.json`` and never raises on an odd value; the
same results give the same bytes. weasyprint is imported only when a PDF is made (optional, slow to load).

    >>> html = render_html({"schema_version": 1})          # a partial run still renders

Layout: `_html` (the page: jinja2 templates in ``reports_templates/``), `_pdf` (HTML to PDF, knows nothing
of results), `_markdown`, `_junit`, `_outputs` (each format written to its file); `_view` builds the page's
context from `_findings` (the sentences), `_assumptions`, `_method` and `sections/` (one module per check),
with charts from `_charts` and `_curves` and numbers and names written by `_format`.
"""
from __future__ import annotations

from auditor.report._html import render_html
from auditor.report._junit import render_junit, write_junit
from auditor.report._markdown import render_markdown
from auditor.report._outputs import (
    REPORT_FILES,
    render_pdf,
    write_html,
    write_markdown,
    write_pdf,
    write_report,
)
from auditor.report._pdf import PdfUnavailableError, check_pdf_available, html_to_pdf

__all__ = [
    "REPORT_FILES",
    "PdfUnavailableError",
    "check_pdf_available",
    "html_to_pdf",
    "render_html",
    "render_junit",
    "render_markdown",
    "render_pdf",
    "write_html",
    "write_junit",
    "write_markdown",
    "write_pdf",
    "write_report",
]
