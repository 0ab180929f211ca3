"""The PDF report: rendered once per module from the same HTML, read back with pypdf."""
from __future__ import annotations

import http.server
import re
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest
from pypdf import PdfReader

from auditor.errors import EXIT_BAD_INPUT
from auditor.report import PdfUnavailableError, render_pdf, write_pdf
from tests.report_fixtures import results_v2

A4 = (595, 842)  # points, rounded


@pytest.fixture(scope="module")
def pdf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pdf(results_v2(), tmp_path_factory.mktemp("pdf"))


@pytest.fixture(scope="module")
def pages(pdf_path: Path) -> list[str]:
    return [p.extract_text() for p in PdfReader(pdf_path).pages]


def _page_of(pages: list[str], heading: str) -> int:
    """1-based number of the first page after the contents whose text starts a line with ``heading``."""
    for i, text in enumerate(pages[1:], start=2):
        if re.search(rf"^{re.escape(heading)}$", text, re.MULTILINE):
            return i
    raise AssertionError(f"{heading!r} not found")


def test_write_pdf_leaves_only_the_pdf(pdf_path: Path) -> None:
    assert pdf_path.name == "report.pdf" and [p.name for p in pdf_path.parent.iterdir()] == ["report.pdf"]
    assert pdf_path.read_bytes().startswith(b"%PDF-")


def test_pages_are_a4(pdf_path: Path) -> None:
    for page in PdfReader(pdf_path).pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == A4


def test_first_page_is_the_decision_sheet_and_the_contents_follow(pages: list[str]) -> None:
    first = pages[0]
    assert "FAIL" in first and "Decision sheet" in first and "Contents" not in first.title()
    assert "FAIL: the model does not meet 2 blocking requirements" in re.sub(r"\s+", " ", first)
    assert "Key numbers" in first and "Next steps" in first and "Signature" in first
    assert "Contents" in pages[1].title() and "Decision sheet" in pages[1]


def test_every_page_is_numbered_page_x_of_y(pages: list[str]) -> None:
    n = len(pages)
    assert n > 5
    for i, text in enumerate(pages, start=1):
        assert f"Page {i} of {n}" in text


def test_running_header_names_the_model_and_verdict_after_the_first_page(pages: list[str]) -> None:
    assert "Audit report · shortcut_cnn" not in pages[0]
    for text in pages[1:]:
        assert "Audit report · shortcut_cnn" in text and "Verdict: FAIL" in text


def test_contents_give_the_page_each_section_starts_on(pages: list[str]) -> None:
    toc = dict(re.findall(r"^(Policy clauses|Appendix: tables and details|Methodology and limitations|Reproducibility)[ .]*?(\d+)$",
                          pages[1], re.MULTILINE))
    assert set(toc) == {"Policy clauses", "Appendix: tables and details", "Methodology and limitations", "Reproducibility"}
    toc["Appendix"] = toc.pop("Appendix: tables and details")
    for heading, page in toc.items():
        assert _page_of(pages, heading) == int(page)


def test_clause_ids_and_group_names_are_in_the_text(pages: list[str]) -> None:
    text = "\n".join(pages)
    flat = re.sub(r"\s+", "", text)
    for clause in results_v2()["policy"]["clauses"]:
        assert re.sub(r"\s+", "", clause["id"]) in flat
    for group in ("female", "male", "0-19", "60+", "asian", "black", "indian", "white", "female & black"):
        assert group in text


def test_links_in_the_pdf_are_internal_only(pdf_path: Path) -> None:
    for page in PdfReader(pdf_path).pages:
        for annot in page.get("/Annots") or []:
            action = annot.get_object().get("/A")
            assert action is None or action.get_object().get("/S") != "/URI"
    raw = pdf_path.read_bytes()
    assert b"/JavaScript" not in raw and b"/Launch" not in raw


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Counter.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_external_urls_are_never_fetched(tmp_path: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = tmp_path / "secret.css"
    secret.write_text('body::before { content: "SECRET-FROM-DISK"; }')
    url = f"http://127.0.0.1:{server.server_port}"
    html = (f'<html><head><link rel="stylesheet" href="{url}/a.css"><link rel="stylesheet" href="file://{secret}">'
            f'<style>@import url("{url}/b.css"); p {{ background: url("file:///etc/passwd"); }}</style></head>'
            f'<body><p>visible</p><img src="{url}/c.png"><img src="file:///etc/passwd"><img src="{secret}"></body></html>')
    try:
        data = render_pdf(html=html)
    finally:
        server.shutdown()
    text = "".join(p.extract_text() for p in PdfReader(__import__("io").BytesIO(data)).pages)
    assert _Counter.hits == []
    assert "visible" in text and "SECRET-FROM-DISK" not in text and "root:" not in text


def test_missing_weasyprint_is_exit_2_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # makes `import weasyprint` raise ImportError
    with pytest.raises(PdfUnavailableError) as err:
        render_pdf(html="<p>x</p>")
    assert err.value.exit_code == EXIT_BAD_INPUT
    assert "pip install weasyprint" in str(err.value) and "\n" not in str(err.value)


def test_missing_pango_is_exit_2_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoPango:
        def find_spec(self, name: str, *args: object) -> None:
            if name == "weasyprint":
                raise OSError("cannot load library 'libpango-1.0-0': libpango-1.0-0: cannot open shared object file")

    monkeypatch.delitem(sys.modules, "weasyprint", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPango(), *sys.meta_path])
    with pytest.raises(PdfUnavailableError) as err:
        render_pdf(html="<p>x</p>")
    assert err.value.exit_code == EXIT_BAD_INPUT
    assert "apt-get install libpango-1.0-0 libpangoft2-1.0-0" in str(err.value) and "libpango" in str(err.value)


def test_same_results_give_the_same_pdf_bytes() -> None:
    results = {"schema_version": 1, "created": "2026-01-01T00:00:00Z", "policy": {"name": "p", "verdict": "pass", "clauses": []}}
    first = render_pdf(results)
    time.sleep(1.1)  # the font subsetter stamps the current second unless the render pins it
    assert render_pdf(results) == first


def test_weasyprints_font_subsetter_notice_is_not_repeated_to_the_user(caplog) -> None:
    import logging

    caplog.set_level(logging.WARNING)
    render_pdf({"schema_version": 1, "created": "2026-01-01T00:00:00Z"})
    logging.getLogger("weasyprint").warning('Using fontTools instead of HarfBuzz-Subset for font "X".')
    logging.getLogger("weasyprint").warning("a real weasyprint warning")
    messages = [r.getMessage() for r in caplog.records]
    assert "a real weasyprint warning" in messages and not any("HarfBuzz-Subset" in m for m in messages)


def test_the_pdf_is_tagged_for_screen_readers(pdf_path: Path) -> None:
    root = PdfReader(pdf_path).trailer["/Root"]
    assert "/StructTreeRoot" in root and bool(root["/MarkInfo"]["/Marked"]) and root["/Lang"] == "en"


def _text_runs(page) -> list[tuple[float, float, float, str]]:
    """(x, y, font size, text) of each run of text on ``page``, in page coordinates."""
    runs: list[tuple[float, float, float, str]] = []

    def visit(text, cm, tm, _font, size):
        if text.strip(" .·…"):  # leader dots of the contents are drawn one by one, close together
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            scale = (tm[0] ** 2 + tm[1] ** 2) ** 0.5 * (cm[0] ** 2 + cm[1] ** 2) ** 0.5
            runs.append((x, y, (size or 1) * scale, text.strip()))

    page.extract_text(visitor_text=visit)
    return runs


def _overlaps(runs: list[tuple[float, float, float, str]]) -> list[tuple[str, str]]:
    """Pairs of runs on one baseline whose estimated extents (0.42 em per character, under the real width of
    the report's fonts) cross: text drawn over text, as the badge over the severity column once was."""
    bad = []
    for i, (xa, ya, fa, ta) in enumerate(runs):
        for xb, yb, fb, tb in runs[i + 1:]:
            if abs(ya - yb) < 0.4 * min(fa, fb) and (xa, ya) != (xb, yb):
                if xa < xb + 0.42 * fb * len(tb) - 1 and xb < xa + 0.42 * fa * len(ta) - 1:
                    bad.append((ta[:40], tb[:40]))
    return bad


def test_no_text_is_drawn_over_other_text_and_no_page_holds_only_a_line_or_two(pdf_path: Path) -> None:
    reader = PdfReader(pdf_path)
    for number, page in enumerate(reader.pages, start=1):
        runs = _text_runs(page)
        assert not _overlaps(runs), f"page {number}: text over text: {_overlaps(runs)[:3]}"
        body_lines = len({round(y) for _, y, _, _ in runs}) - 2  # less the running header and footer
        has_figure = bool(page.images)
        assert number == len(reader.pages) or has_figure or body_lines >= 3, (
            f"page {number} holds only {body_lines} line(s): {page.extract_text()[:200]!r}")


def test_the_overlap_finder_sees_text_drawn_over_text() -> None:
    assert _overlaps([(100, 700, 8, "insufficient data"), (130, 700, 8, "blocker")])
    assert not _overlaps([(100, 700, 8, "pass"), (140, 700, 8, "blocker"), (100, 690, 8, "warning")])
