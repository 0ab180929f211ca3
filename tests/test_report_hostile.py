"""Hostile names from the data (groups, attributes, model, clause ids, error messages) come out inert in
every format: HTML, PDF text, Markdown and JUnit XML."""
from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
from pypdf import PdfReader

from auditor.report import render_html, render_junit, render_markdown, render_pdf
from auditor.report._format import MAX_NAME
from tests.report_fixtures import HOSTILE, LONG_NAME, hostile_results

CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@pytest.fixture(scope="module")
def html() -> str:
    return render_html(hostile_results())


@pytest.fixture(scope="module")
def pdf_text(html: str) -> str:
    data = render_pdf(html=html)
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture(scope="module")
def markdown() -> str:
    return render_markdown(hostile_results())


@pytest.fixture(scope="module")
def junit() -> bytes:
    return render_junit(hostile_results())


# -- HTML --------------------------------------------------------------------------------------------


def test_html_has_no_markup_from_the_data(html: str) -> None:
    assert "<script" not in html.lower() and "<b>" not in html
    tags = re.findall(r"<img\b[^>]*>", html)
    assert tags and all(re.fullmatch(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"<>]*">', t) for t in tags)
    assert "onerror=alert(1)" not in html.replace("&#34;&gt;&lt;img src=x onerror=alert(1)&gt;", "")


def test_html_shows_the_hostile_names_escaped(html: str) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&amp;amp;" in html and "]]&gt;" in html and "&lt;b&gt;race&lt;/b&gt;" in html


def test_html_links_only_to_its_own_anchors(html: str) -> None:
    for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html):
        assert ref.startswith(("data:image/png;base64,", "#")), ref[:80]


def test_html_has_no_control_characters(html: str) -> None:
    assert not CONTROL.search(html)


def test_html_cuts_a_5000_character_name(html: str) -> None:
    assert LONG_NAME not in html and LONG_NAME[: MAX_NAME - 1] + "…" in html


def test_dollar_signs_do_not_break_the_charts(html: str) -> None:
    # every attribute scope still has its chart and the intersection its heatmap: mathtext was not parsed
    assert html.count("Bar charts of accuracy, selection rate, TPR and FPR") == 2
    assert html.count("Heatmap of accuracy and selection rate") == 1
    assert "$\\frac{1}{0}$" in html


# -- PDF ---------------------------------------------------------------------------------------------


def test_pdf_shows_hostile_names_as_plain_text(pdf_text: str) -> None:
    flat = re.sub(r"\s+", "", pdf_text)
    assert "<script>alert(1)</script>" in flat
    assert '"><imgsrc=xonerror=alert(1)>' in flat
    assert "&amp;" in flat and "]]>" in flat


def test_pdf_has_no_control_characters_and_a_cut_long_name(pdf_text: str) -> None:
    assert not CONTROL.search(pdf_text)
    assert "L" * 200 not in re.sub(r"\s+", "", pdf_text)


# -- Markdown ----------------------------------------------------------------------------------------


def test_markdown_has_no_raw_html_link_image_or_mention(markdown: str) -> None:
    assert not re.search(r"(?<!\\)<[a-zA-Z/!]", markdown)  # no tag can open
    assert not re.search(r"(?<!\\)\]\(", markdown)  # no link or image
    assert not re.search(r"(?<!\\)@[a-z]", markdown) and "http://" not in markdown
    assert "\\<script\\>alert\\(1\\)\\<\\/script\\>" in markdown


def test_markdown_table_rows_keep_their_cell_count(markdown: str) -> None:
    for block in markdown.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows:
            cells = {len(re.split(r"(?<!\\)\|", r)) for r in rows}
            assert len(cells) == 1, rows


def test_markdown_has_no_control_characters_or_long_lines(markdown: str) -> None:
    assert not CONTROL.search(markdown)
    assert LONG_NAME not in markdown


# -- JUnit -------------------------------------------------------------------------------------------


def test_junit_parses_and_keeps_the_hostile_clause_id_as_text(junit: bytes) -> None:
    root = ET.fromstring(junit)
    case = root.find(".//testcase")
    assert case.get("name") == HOSTILE[0] + "]]>"
    assert b"<script>" not in junit and b"&lt;script&gt;" in junit


def test_junit_has_no_control_characters(junit: bytes) -> None:
    assert not CONTROL.search(junit.decode("utf-8"))
    assert "\ufffd" in ET.fromstring(junit).find(".//system-err").text  # the control characters, replaced


def test_junit_failure_message_mentions_hostile_text_escaped(junit: bytes) -> None:
    failure = ET.fromstring(junit).find(".//failure")
    assert "[x](http://evil.example/)" in failure.get("message")  # plain text in XML: inert there
