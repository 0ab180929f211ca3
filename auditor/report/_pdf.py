"""HTML to PDF: a self-contained page (the audit report, the comparison) laid out by weasyprint with the
page's own print stylesheet (for the report: A4, running header with the model and the verdict, "Page X
of Y", a table of contents with page numbers). It knows nothing of results: `html_to_pdf` takes the HTML.

The renderer fetches nothing: its URL fetcher refuses every URL except inline ``data:`` URIs (the
report's own figures), so a hostile results.json cannot make it read a local file or reach the
network.

weasyprint needs Pango at run time. When weasyprint or Pango is missing, `PdfUnavailableError` (a
`BadInputError`, exit code 2: the request cannot be served on this machine, and nothing is wrong in
the auditor) says what to install.
"""
from __future__ import annotations

import contextlib
import logging
import re
import os
from datetime import datetime
from typing import Any, Iterator

from auditor.errors import BadInputError

__all__ = ["REFUSED", "PdfUnavailableError", "check_pdf_available", "html_to_pdf"]

log = logging.getLogger(__name__)

INSTALL_HINT = ("install weasyprint and Pango: `pip install weasyprint` and, on Debian/Ubuntu, "
                "`apt-get install libpango-1.0-0 libpangoft2-1.0-0` (macOS: `brew install pango`)")
REFUSED = "refused by the auditor report: only inline data: URIs are embedded"


NOISE = (
    REFUSED,  # weasyprint logs each refused URL as an error; this module reports them once, as warnings
    "instead of HarfBuzz-Subset",  # a per-font packaging note for whoever installs weasyprint; the PDF is the same
)
CSS_NOISE = re.compile(r"^(Ignored `|Invalid media type|Expected a media type)")
"""weasyprint's notes on the screen stylesheet's rules that print has no use for (a phone's media query,
``overflow-x``): the report's own CSS, tested here, so no news to whoever runs an audit."""


class _DropNoise(logging.Filter):
    """Drop weasyprint's messages that are no news to the reader of the report (`NOISE`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in NOISE) and not CSS_NOISE.match(message)


logging.getLogger("weasyprint").addFilter(_DropNoise())


class PdfUnavailableError(BadInputError):
    """PDF output was asked for but weasyprint or its system libraries cannot be loaded (exit 2)."""


def _weasyprint() -> Any:
    try:
        import weasyprint  # here, not at module level: it is optional and slow to import (Pango, fonts)
    except ImportError as exc:
        raise PdfUnavailableError(f"PDF output needs weasyprint, which is not installed ({exc}); {INSTALL_HINT}") from None
    except OSError as exc:  # weasyprint is there but Pango (a system library) is not
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise PdfUnavailableError(f"PDF output needs the Pango library, which cannot be loaded ({reason}); {INSTALL_HINT}") from None
    return weasyprint


def check_pdf_available() -> None:
    """Raise `PdfUnavailableError` now when a PDF could not be written (call it before a long audit)."""
    _weasyprint()


def _fetcher(weasyprint: Any, refused: list[str]) -> Any:
    """A URL fetcher that serves ``data:`` URIs and refuses everything else (http, file, ...)."""
    base = getattr(getattr(weasyprint, "urls", None), "URLFetcher", None)
    if base is not None and hasattr(base, "fetch"):  # weasyprint >= 66: a URLFetcher subclass

        class DataOnlyFetcher(base):  # type: ignore[misc, valid-type]
            def fetch(self, url: str, headers: Any = None) -> Any:
                if url.lower().startswith("data:"):
                    return super().fetch(url, headers)
                refused.append(url)
                raise ValueError(f"{url[:80]}: {REFUSED}")

        return DataOnlyFetcher(timeout=1, allow_redirects=False)

    def fetch(url: str, *args: Any, **kwargs: Any) -> Any:  # older weasyprint: a function
        if url.lower().startswith("data:"):
            return weasyprint.default_url_fetcher(url, *args, **kwargs)
        refused.append(url)
        raise ValueError(f"{url[:80]}: {REFUSED}")

    return fetch


@contextlib.contextmanager
def _source_date_epoch(created: Any) -> Iterator[None]:
    """Pin the timestamps the font subsetter writes (fontTools stamps each subset font's ``head`` table with
    the current time unless ``SOURCE_DATE_EPOCH`` is set) to ``created`` (an ISO time), else to 0, so the
    same page gives the same PDF bytes. A ``SOURCE_DATE_EPOCH`` already set is left as it is."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        yield
        return
    epoch = 0
    try:
        created = str(created or "")
        epoch = int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()) if created else 0
    except ValueError:
        pass
    os.environ["SOURCE_DATE_EPOCH"] = str(max(epoch, 0))
    try:
        yield
    finally:
        os.environ.pop("SOURCE_DATE_EPOCH", None)


def html_to_pdf(html: str, *, created: Any = None) -> bytes:
    """The PDF bytes of the page ``html``; ``created`` (an ISO time, e.g. the audit's) stamps its fonts.

    Raises `PdfUnavailableError` when weasyprint or Pango is missing."""
    weasyprint = _weasyprint()
    refused: list[str] = []
    document = weasyprint.HTML(string=html, base_url="data:,", url_fetcher=_fetcher(weasyprint, refused),
                               media_type="print")
    with _source_date_epoch(created):
        data = document.write_pdf(pdf_tags=True)  # tagged: headings, tables and reading order for screen readers
    for url in refused:
        log.warning("PDF report: refused to fetch %s (only inline data: URIs are embedded)", url[:120])
    return bytes(data)
