"""The report's files: each format rendered from ``results.json`` and written atomically (temporary file,
then rename) into an output folder under its name in `REPORT_FILES`.

HTML and PDF are the same page (`render_html`, then `html_to_pdf` for the PDF); Markdown is the PR-comment
summary, JUnit XML the policy as a CI test report. A caller writing both HTML and PDF renders the page once
and passes it as ``html``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from auditor.atomic import atomic_write_bytes, atomic_write_text
from auditor.report._html import render_html
from auditor.report._junit import write_junit
from auditor.report._markdown import render_markdown
from auditor.report._pdf import check_pdf_available, html_to_pdf

__all__ = ["REPORT_FILES", "render_pdf", "write_html", "write_markdown", "write_pdf", "write_report"]

REPORT_FILES = {"html": "report.html", "pdf": "report.pdf", "md": "report.md", "junit": "report.junit.xml"}


def write_html(results: dict[str, Any], out_dir: Path, *, html: str | None = None) -> Path:
    """Atomically write ``out_dir/report.html`` (``html``: the page, when already rendered) and return its path."""
    return atomic_write_text(Path(out_dir) / REPORT_FILES["html"], render_html(results) if html is None else html)


def write_markdown(results: dict[str, Any], out_dir: Path) -> Path:
    """Atomically write ``out_dir/report.md`` (the PR-comment summary) and return its path."""
    return atomic_write_text(Path(out_dir) / REPORT_FILES["md"], render_markdown(results))


def render_pdf(results: dict[str, Any] | None = None, *, html: str | None = None) -> bytes:
    """The PDF bytes of the report for ``results`` (or of an already rendered report ``html``); its fonts are
    stamped with the audit's ``created`` time, so the same results give the same bytes."""
    if html is None:
        check_pdf_available()  # before the slow page rendering
        html = render_html(results or {})
    return html_to_pdf(html, created=(results or {}).get("created"))


def write_pdf(results: dict[str, Any] | None, out_dir: Path, *, html: str | None = None) -> Path:
    """Atomically write ``out_dir/report.pdf`` and return its path."""
    data = render_pdf(results, html=html)
    return atomic_write_bytes(Path(out_dir) / REPORT_FILES["pdf"], data)


def write_report(results: dict[str, Any], out_dir: Path, fmt: str, *, allow_inconclusive: bool | None = None) -> Path:
    """Atomically write one report format (``html``, ``pdf``, ``md``, ``junit``) to ``out_dir``.

    ``allow_inconclusive`` only matters for JUnit (None: read it from the results); PDF raises
    `auditor.report.PdfUnavailableError` (exit 2) when weasyprint or its libraries are missing.
    """
    out_dir = Path(out_dir)
    if fmt == "html":
        return write_html(results, out_dir)
    if fmt == "md":
        return write_markdown(results, out_dir)
    if fmt == "junit":
        return write_junit(results, out_dir, allow_inconclusive=allow_inconclusive)
    if fmt == "pdf":
        return write_pdf(results, out_dir)
    raise ValueError(f"The 'fmt' parameter of write_report must be one of {sorted(REPORT_FILES)}. Got {fmt!r} instead.")
