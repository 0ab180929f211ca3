"""The audit report: HTML (self-contained), PDF (the same HTML through weasyprint), Markdown (a PR
comment) and JUnit XML (a CI test report), all from ``results.json``.

Every renderer accepts a partial or hand-edited ``results.json`` and never raises on an odd value; the
same results give the same bytes. weasyprint is imported only when a PDF is made (optional, slow to load).

    >>> html = render_html({"schema_version": 1})          # a partial run still renders

Each check's part is drawn by its presenter (`presenter`: `Presenter`, `register_presenter`,
`get_presenter`): the renderers iterate over the checks in the results and dispatch to it; a check without
one gets the generic presenter. The built-in presenters are in `sections/`, one module per check.

Layout: `_html` (the page), `_jinja` (the one Jinja environment: ``reports_templates/`` and the presenters'
templates, shared with `auditor.compare`), `_pdf` (HTML to PDF, knows nothing of results), `_markdown`,
`_junit`, `_outputs` (`write_files`, the one writer of output files, also used by `auditor.compare`);
`_view` builds the page's context from `_findings` (the sentences), `_assumptions`, `_method` and the
presenters, with charts from `_charts` and `_curves` and numbers and names written by `_format`; `_rows`
and `_values` are the comparison rows the presenters build.
"""
from __future__ import annotations

from auditor.report import sections  # noqa: F401  # registers the built-in presenters
from auditor.report._context import check_context, load_context
from auditor.report._html import render_html
from auditor.report._jinja import environment
from auditor.report._junit import render_junit
from auditor.report._markdown import render_markdown
from auditor.report._outputs import (
    REPORT_FILES,
    WRITE_ORDER,
    render_pdf,
    write_files,
    write_html,
    write_junit,
    write_markdown,
    write_pdf,
    write_report,
    write_reports,
)
from auditor.report._pdf import PdfUnavailableError, check_pdf_available, html_to_pdf
from auditor.report._rows import higher_is_better, significance
from auditor.report.presenter import (
    GenericPresenter,
    Presenter,
    get_presenter,
    presenter_names,
    register_presenter,
    unregister_presenter,
)

__all__ = [
    "REPORT_FILES",
    "WRITE_ORDER",
    "GenericPresenter",
    "PdfUnavailableError",
    "Presenter",
    "check_context",
    "check_pdf_available",
    "environment",
    "get_presenter",
    "higher_is_better",
    "html_to_pdf",
    "load_context",
    "presenter_names",
    "register_presenter",
    "render_html",
    "render_junit",
    "render_markdown",
    "render_pdf",
    "significance",
    "unregister_presenter",
    "write_files",
    "write_html",
    "write_junit",
    "write_markdown",
    "write_pdf",
    "write_report",
    "write_reports",
]
