"""The HTML and Markdown audit reports: content, escaping, self-containment, partial runs, atomic output."""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from auditor.report import render_html, render_markdown, write_html, write_markdown

EVIL = "<script>alert(1)</script>"
# A 1x1 transparent PNG.
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def _m(value: float | None, ci: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    return {"value": value, "ci": ci, **extra}


def _group(n: int, acc: float, sel: float, tpr: float, fpr: float, thin: bool = False) -> dict[str, Any]:
    return {"n": n, "insufficient_data": thin, "accuracy": _m(acc), "selection_rate": _m(sel), "tpr": _m(tpr), "fpr": _m(fpr)}


def full_results() -> dict[str, Any]:
    """A complete run: a failing policy, three attributes, an errored check, an unknown check."""
    race_disp = {
        "accuracy_difference": _m(0.23, groups=["black", "white"]),
        "accuracy_ratio": _m(0.758, groups=["black", "white"]),
        "selection_rate_difference": _m(0.19, groups=["black", "white"]),
        "selection_rate_ratio": _m(0.62, groups=["black", "white"]),
        "tpr_difference": _m(0.1, groups=["black", "white"]),
        "tpr_ratio": _m(0.88, groups=["black", "white"]),
        "fpr_difference": _m(0.05, groups=["white", "black"]),
        "fpr_ratio": _m(0.5, groups=["white", "black"]),
        "equalized_odds_difference": _m(0.1, groups=["black", "white"]),
        "worst_group_accuracy": _m(0.72, groups=["black"]),
    }
    reason = "fewer than two groups with at least 30 samples and a defined tpr"
    return {
        "schema_version": 1, "auditor_version": "0.1.0", "created": "2026-11-23T17:00:00Z",
        "command": "auditor audit sample_models/shortcut_cnn/model.yaml --probe synth:faces",
        "seed": 0, "budget": "standard", "device": "cpu",
        "model": {"source": "sample_models/shortcut_cnn/model.yaml", "name": "shortcut_cnn", "form": "spec",
                  "sha256": "ab12" * 16, "classes": ["not_smiling", "smiling"], "positive_class": "smiling",
                  "input_size": [64, 64], "details": {"arch": "ShortcutCNN", "mean": [0.5, 0.5, 0.5]}},
        "probe": {"source": "synth:faces", "format": "synth", "sha256": "cd34" * 16, "n": 1200, "n_skipped": 2,
                  "skipped": [{"index": 5, "path": "img/5.png", "error": "cannot identify image file"},
                              {"index": 9, "path": "img/9.png", "error": "truncated file"}],
                  "target": "smiling", "classes": ["not_smiling", "smiling"],
                  "attributes": {"gender": {"female": 600, "male": 600}, "age": {"0-19": 300, "60+": 12},
                                 "race": {"white": 300, "black": 300, EVIL: 40}}},
        "checks": {
            "group_metrics": {
                "status": "ok", "params": {"min_group_size": 30, "positive_class": "smiling"}, "seconds": 0.4,
                "error": None, "figures": {},
                "metrics": {
                    "overall": {"n": 1198, "accuracy": _m(0.912, [0.88, 0.94]), "selection_rate": _m(0.5),
                                "tpr": _m(0.9), "fpr": _m(0.08)},
                    "race": race_disp,
                    "gender": {"accuracy_difference": _m(0.02, groups=["female", "male"]),
                               "selection_rate_ratio": _m(0.97, groups=["female", "male"])},
                    "age": {"accuracy_difference": _m(None, groups=[], reason=reason),
                            "tpr_difference": _m(None, groups=[], reason=reason)},
                },
                "by_group": {
                    "race": {"white": _group(300, 0.95, 0.6, 0.97, 0.05), "black": _group(300, 0.72, 0.41, 0.87, 0.1),
                             EVIL: _group(40, 0.9, 0.5, 0.9, 0.1)},
                    "gender": {"female": _group(600, 0.91, 0.5, 0.9, 0.08), "male": _group(598, 0.93, 0.5, 0.9, 0.08)},
                    "age": {"0-19": _group(300, 0.9, 0.5, 0.9, 0.1), "60+": _group(12, 0.5, 0.5, 0.5, 0.5, thin=True)},
                },
            },
            "explanations": {"status": "error", "error": "ValueError: saliency needs gradients", "params": {},
                             "metrics": {}, "by_group": {}, "figures": {}, "seconds": 0.1},
            "spurious": {"status": "ok", "params": {"grid": 4}, "seconds": 1.5, "error": None,
                         "metrics": {"evidence_maps": {"smiling": [[0.1, 0.2], [0.3, 0.4]]},
                                     "findings": [{"cue": "corner patch", "box": [0, 0, 8, 8], "off_subject": _m(0.7, [0.6, 0.8])}]},
                         "by_group": {}, "figures": {"heatmap": PIXEL, "remote": "https://example.com/x.png"}},
        },
        "policy": {"name": "default", "version": "1", "verdict": "fail", "clauses": [
            {"id": "dp-ratio", "description": "Selection rate ratio between groups (four-fifths rule)",
             "metric": "checks.group_metrics.metrics.race.selection_rate_ratio", "op": ">=", "threshold": 0.8,
             "value": 0.62, "ci": None, "result": "fail", "severity": "blocker", "maps_to": ["EU AI Act Art. 10(2)(f)"]},
            {"id": "acc-gap", "description": "Accuracy gap between groups",
             "metric": "checks.group_metrics.metrics.gender.accuracy_difference", "op": "<=", "threshold": 0.05,
             "value": 0.02, "ci": None, "result": "pass", "severity": "warning", "maps_to": []},
            {"id": "age-tpr", "description": "TPR gap across ages",
             "metric": "checks.group_metrics.metrics.age.tpr_difference", "op": "<=", "threshold": 0.1,
             "value": None, "ci": None, "result": "insufficient_data", "severity": "warning", "maps_to": ["NIST AI RMF MEASURE 2.11"]},
        ]},
        "cost": {"forward_passes": 1200, "backward_passes": 0, "seconds": {"predict": 1.2, "group_metrics": 0.4}, "seconds_total": 2.0},
        "environment": {"python": "3.11.7", "torch": "2.14.1", "torchvision": "0.29.1", "fairlearn": "0.15.0", "platform": "Linux-x86_64"},
    }


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(full_results())


def test_full_report_shows_the_verdict(page: str) -> None:
    assert "FAIL" in page and "verdict-fail" in page


def test_full_report_lists_every_clause_id(page: str) -> None:
    for clause in full_results()["policy"]["clauses"]:
        assert clause["id"] in page


def test_full_report_lists_every_group_name(page: str) -> None:
    for groups in full_results()["checks"]["group_metrics"]["by_group"].values():
        for name in groups:
            if name != EVIL:
                assert f">{name}" in page


def test_errored_check_shows_its_error_message_in_an_error_box(page: str) -> None:
    box = page.split('class="error-box"', 1)[1].split("</div>", 1)[0]
    assert "ValueError: saliency needs gradients" in box


def test_errored_check_without_a_message_still_says_so() -> None:
    html = render_html({"schema_version": 1, "checks": {"attacks": {"status": "error", "error": None}}})
    box = html.split('class="error-box"', 1)[1].split("</div>", 1)[0]
    assert "recorded no error message" in box


def test_group_label_with_markup_is_escaped(page: str) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_page_contains_no_script_tag(page: str) -> None:
    assert "<script" not in page.lower()


def test_page_has_no_external_references(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page):
        assert ref.startswith(("data:image/", "#")), ref
    assert "@import" not in page and "url(" not in page


def test_check_figure_data_uri_is_embedded_and_a_url_is_not(page: str) -> None:
    assert f'src="{PIXEL}"' in page
    assert "Not embedded (not an inline image): remote" in page


def test_group_metrics_have_an_embedded_accuracy_chart(page: str) -> None:
    assert page.count('src="data:image/png;base64,') >= 1 + 3  # the check's figure + one chart per attribute


def test_metric_interval_is_shown_after_the_value(page: str) -> None:
    assert '<span class="num">0.912</span> <span class="ci">[0.880, 0.940]</span>' in page


def test_missing_disparity_shows_na_with_its_reason(page: str) -> None:
    assert '<span class="na">n/a</span> <span class="reason">(fewer than two groups' in page


def test_group_with_insufficient_data_is_marked(page: str) -> None:
    row = page.split('<tr class="thin">', 1)[1].split("</tr>", 1)[0]
    assert "60+" in row and "insufficient data" in row


def test_summary_names_the_worst_disparity_with_group_values(page: str) -> None:
    assert "Accuracy differs by 0.23 between race groups white (0.95) and black (0.72)." in page


def test_summary_counts_failed_clauses_by_severity(page: str) -> None:
    assert "1 of 3 clauses failed (1 blocker); 1 could not be evaluated for lack of data." in page


def test_summary_reports_skipped_images(page: str) -> None:
    assert "2 probe images could not be read and were skipped" in page


def test_unknown_check_is_rendered_as_nested_key_values(page: str) -> None:
    section = page.split('id="check-2-spurious"', 1)[1].split("</section>", 1)[0]
    assert "evidence_maps" in section and "corner patch" in section and "0.700" in section


def test_clause_threshold_is_shown_with_its_operator(page: str) -> None:
    assert "≥ 0.8" in page and "≤ 0.05" in page


def test_minimal_results_render() -> None:
    html = render_html({"schema_version": 1, "checks": {}})
    assert "NO VERDICT" in html and "No check was run." in html and "No policy was evaluated" in html


@pytest.mark.parametrize("key", ["model", "probe", "checks", "policy", "cost", "environment", "command"])
def test_report_renders_without_each_top_level_part(key: str) -> None:
    results = full_results()
    del results[key]
    assert "Audit report" in render_html(results)


def test_report_renders_when_parts_have_unexpected_types() -> None:
    results = {"schema_version": 1, "model": "x", "probe": [], "checks": {"a": None, "group_metrics": {"metrics": 3, "by_group": {"race": None}}},
               "policy": {"verdict": None, "clauses": [None, {"id": "c"}]}, "cost": {"seconds": 5}}
    assert ">c<" in render_html(results)


def test_same_results_give_byte_identical_html() -> None:
    assert render_html(full_results()) == render_html(copy.deepcopy(full_results()))


def test_write_html_writes_report_html_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = write_html(full_results(), tmp_path)
    assert path == tmp_path / "report.html"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_write_html_replaces_an_existing_report(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("old report")
    write_html({"schema_version": 1}, tmp_path)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "old report" not in text and text.startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_markdown_contains_the_verdict_and_failing_clause_ids() -> None:
    text = render_markdown(full_results())
    assert "FAIL" in text.splitlines()[0]
    assert "**dp-ratio**" in text
    assert "acc-gap" not in text  # passing clauses are not listed


def test_markdown_has_a_disparity_row_per_attribute() -> None:
    rows = [line for line in render_markdown(full_results()).splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows] == ["Attribute", "race", "gender", "age"]


def test_markdown_escapes_table_and_html_characters() -> None:
    results = full_results()
    results["checks"]["group_metrics"]["metrics"]["a|b<i>"] = {"accuracy_difference": _m(0.1)}
    text = render_markdown(results)
    assert "a\\|b\\<i\\>" in text and "<i>" not in text


def test_write_markdown_writes_report_md(tmp_path: Path) -> None:
    path = write_markdown({"schema_version": 1}, tmp_path)
    assert path == tmp_path / "report.md" and "No verdict" in path.read_text(encoding="utf-8")
