"""The report's files: each format rendered from ``results.json`` and written atomically (temporary file,
then rename) into an output folder under its name in `REPORT_FILES`.

`write_files` is the one writer of rendered outputs, for the report and for `auditor.compare`: it writes
each format atomically in `WRITE_ORDER` (results first, the PDF last: the slowest, and the one that needs
system libraries, so a missing weasyprint leaves every other file written).

HTML and PDF are the same page (`render_html`, then `html_to_pdf` for the PDF); Markdown is the PR-comment
summary, JUnit XML the policy as a CI test report. A caller writing both HTML and PDF renders the page once
and passes it as ``html``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Union

from auditor.atomic import atomic_write_bytes, atomic_write_text
from auditor.report._html import render_html
from auditor.report._junit import render_junit
from auditor.report._markdown import render_markdown
from auditor.report._pdf import check_pdf_available, html_to_pdf

__all__ = ["REPORT_FILES", "WRITE_ORDER", "render_pdf", "write_files", "write_html", "write_junit", "write_markdown",
           "write_pdf", "write_report", "write_reports"]

REPORT_FILES = {"html": "report.html", "pdf": "report.pdf", "md": "report.md", "junit": "report.junit.xml"}
WRITE_ORDER = ("json", "html", "md", "junit", "pdf")
"""The order `write_files` writes formats in: the PDF last."""

Rendered = Union[str, bytes, Callable[[], Union[str, bytes]]]


def write_files(out_dir: Path, names: Mapping[str, str], rendered: Mapping[str, Rendered]) -> dict[str, Path]:
    """Atomically write each rendered format (text, bytes, or a function that renders it when its turn comes)
    to ``out_dir/names[fmt]``, in `WRITE_ORDER` (formats not in it after, in the given order); returns format -> path."""
    unknown = [f for f in rendered if f not in names]
    if unknown:
        raise ValueError(f"The 'rendered' parameter of write_files must name formats in {sorted(names)}. Got {unknown!r} instead.")
    order = [f for f in WRITE_ORDER if f in rendered] + [f for f in rendered if f not in WRITE_ORDER]
    written: dict[str, Path] = {}
    for fmt in order:
        data = rendered[fmt]
        data = data() if callable(data) else data
        path = Path(out_dir) / names[fmt]
        written[fmt] = atomic_write_bytes(path, data) if isinstance(data, bytes) else atomic_write_text(path, data)
    return written


def _rendered(results: dict[str, Any], fmt: str, html: str | None, allow_inconclusive: bool | None) -> Rendered:
    """What `write_files` writes for ``fmt``: the page now (HTML), the other formats when their turn comes."""
    if fmt == "html":
        return render_html(results) if html is None else html
    if fmt == "md":
        return lambda: render_markdown(results)
    if fmt == "junit":
        return lambda: render_junit(results, allow_inconclusive=allow_inconclusive)
    if fmt == "pdf":
        return lambda: render_pdf(results, html=html)
    raise ValueError(f"The 'fmt' parameter of write_report must be one of {sorted(REPORT_FILES)}. Got {fmt!r} instead.")


def write_reports(results: dict[str, Any], out_dir: Path, formats: Iterable[str], *,
                  allow_inconclusive: bool | None = None) -> dict[str, Path]:
    """Atomically write the report ``formats`` (``html``, ``pdf``, ``md``, ``junit``) to ``out_dir``, the page
    rendered once for HTML and PDF, the PDF last; returns format -> path."""
    wanted = list(dict.fromkeys(formats))
    html = render_html(results) if {"html", "pdf"} & set(wanted) else None
    return write_files(Path(out_dir), REPORT_FILES, {f: _rendered(results, f, html, allow_inconclusive) for f in wanted})


def write_html(results: dict[str, Any], out_dir: Path, *, html: str | None = None) -> Path:
    """Atomically write ``out_dir/report.html`` (``html``: the page, when already rendered) and return its path."""
    return write_files(Path(out_dir), REPORT_FILES, {"html": _rendered(results, "html", html, None)})["html"]


def write_markdown(results: dict[str, Any], out_dir: Path) -> Path:
    """Atomically write ``out_dir/report.md`` (the PR-comment summary) and return its path."""
    return write_files(Path(out_dir), REPORT_FILES, {"md": _rendered(results, "md", None, None)})["md"]


def write_junit(results: dict[str, Any], out_dir: Path, *, allow_inconclusive: bool | None = None) -> Path:
    """Atomically write ``out_dir/report.junit.xml`` and return its path."""
    return write_files(Path(out_dir), REPORT_FILES, {"junit": _rendered(results, "junit", None, allow_inconclusive)})["junit"]


def render_pdf(results: dict[str, Any] | None = None, *, html: str | None = None) -> bytes:
    """The PDF bytes of the report for ``results`` (or of an already rendered report ``html``); its fonts are
    stamped with the audit's ``created`` time, so the same results give the same bytes."""
    if html is None:
        check_pdf_available()  # before the slow page rendering
        html = render_html(results or {})
    return html_to_pdf(html, created=(results or {}).get("created"))


def write_pdf(results: dict[str, Any] | None, out_dir: Path, *, html: str | None = None) -> Path:
    """Atomically write ``out_dir/report.pdf`` and return its path."""
    return write_files(Path(out_dir), REPORT_FILES, {"pdf": lambda: render_pdf(results, html=html)})["pdf"]


def write_report(results: dict[str, Any], out_dir: Path, fmt: str, *, allow_inconclusive: bool | None = None) -> Path:
    """Atomically write one report format (``html``, ``pdf``, ``md``, ``junit``) to ``out_dir``.

    ``allow_inconclusive`` only matters for JUnit (None: read it from the results); PDF raises
    `auditor.report.PdfUnavailableError` (exit 2) when weasyprint or its libraries are missing.
    """
    return write_files(Path(out_dir), REPORT_FILES, {fmt: _rendered(results, fmt, None, allow_inconclusive)})[fmt]
