"""`auditor report` re-renders every format from results.json; `auditor audit --format` writes them all."""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.results import write_results
from tests.conftest import SAMPLE_MODELS, SMALL_PROBE, SMALL_CHECKS
from tests.report_fixtures import results_v2

FILES = {"html": "report.html", "pdf": "report.pdf", "md": "report.md", "junit": "report.junit.xml"}


@pytest.fixture
def results_json(tmp_path: Path) -> Path:
    return write_results(results_v2(), tmp_path / "run")


@pytest.mark.parametrize("fmt", ["html", "md", "junit"])
def test_report_rerenders_each_format_beside_results_json(results_json: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(results_json), "--format", fmt]) == 0
    path = results_json.parent / FILES[fmt]
    assert capsys.readouterr().out.strip() == str(path)
    assert sorted(p.name for p in results_json.parent.iterdir()) == sorted(["results.json", FILES[fmt], "manifest.json"])


def test_report_renders_pdf_and_html_into_another_folder(results_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    assert main(["report", str(results_json), "--format", "pdf,html", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "report.html", "report.pdf"]
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF-")


def test_report_junit_allow_inconclusive_skips_the_undecided_blocker(results_json: Path) -> None:
    assert main(["report", str(results_json), "--format", "junit", "--allow-inconclusive"]) == 0
    root = ET.parse(results_json.parent / "report.junit.xml").getroot()
    case = root.find(".//testcase[@name='tpr-gap[gender+age+race]']")
    assert case.find("skipped") is not None and case.find("failure") is None


@pytest.mark.parametrize("fmt", ["json", "docx", ""])
def test_report_refuses_a_format_it_cannot_render(results_json: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(results_json), "--format", fmt]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "html, pdf, md, junit" in err


def test_report_of_a_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope.json"), "--format", "md"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_pdf_without_weasyprint_is_exit_2_and_writes_nothing(results_json: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    assert main(["report", str(results_json), "--format", "html,pdf"]) == 2
    assert "pip install weasyprint" in capsys.readouterr().err
    assert [p.name for p in results_json.parent.iterdir()] == ["results.json"]


def test_audit_writes_every_format_and_junit_agrees_with_the_exit_code(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(["audit", str(SAMPLE_MODELS["shortcut_cnn"]), "--probe", SMALL_PROBE, "--out", str(out), "--device", "cpu", *SMALL_CHECKS,
                 "--format", "json,html,pdf,md,junit"])
    assert sorted(p.name for p in out.iterdir()) == sorted(["results.json", *FILES.values(), "manifest.json"])
    verdict = json.loads((out / "results.json").read_text())["policy"]["verdict"]
    failures = int(ET.parse(out / "report.junit.xml").getroot().get("failures"))
    assert code == (0 if verdict == "pass" else 1)
    assert (failures > 0) == (code == 1)
    assert verdict.upper() in (out / "report.md").read_text().splitlines()[0]
