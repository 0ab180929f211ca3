"""The HTML report: content, self-containment, partial runs, both schema vintages, atomic output."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from auditor.report import render_html, write_html
from tests.report_fixtures import HOSTILE, PIXEL, results_v1, results_v2

EVIL = HOSTILE[0]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(results_v1())


@pytest.fixture(scope="module")
def page2() -> str:
    return render_html(results_v2())


def _section(html: str, anchor: str) -> str:
    return html.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]


def test_sections_come_in_the_order_a_reader_needs(page2: str) -> None:
    ids = ["decision", "policy", "checks", "appendix", "summary", "methodology", "reproducibility"]
    positions = [page2.index(f'<section id="{i}"') for i in ids]
    assert positions == sorted(positions)


def test_contents_link_every_section_and_check(page2: str) -> None:
    toc = page2.split('<nav class="toc"', 1)[1].split("</nav>", 1)[0]
    for anchor in ("#summary", "#policy", "#checks", "#methodology", "#reproducibility", "#check-0-group-metrics"):
        assert f'href="{anchor}"' in toc


def test_full_report_shows_the_verdict(page: str) -> None:
    assert "FAIL" in page and "verdict-fail" in page


def test_summary_states_the_verdict_in_plain_words(page2: str) -> None:
    assert "FAIL: the model does not meet 2 blocking requirements of policy “default” (version 2)." in page2


def test_summary_names_the_failed_blocker_with_its_interval_and_threshold(page2: str) -> None:
    summary = _section(page2, "summary")
    assert "accuracy-gap[race]: Requirement accuracy-gap[race]. Measured 0.41 [0.36, 0.46]; required ≤ 0.1." in summary


def test_summary_names_the_worst_significant_gap_with_both_groups_and_intervals(page2: str) -> None:
    summary = _section(page2, "summary")
    assert ("True positive rate differs between race groups black (0.51 [0.45, 0.57]) and white (1.00 [0.99, 1.00]): "
            "gap 0.49 [0.44, 0.54], adjusted p &lt; 0.001.") in summary


def test_summary_says_how_many_more_images_would_decide_an_inconclusive_clause(page2: str) -> None:
    summary = _section(page2, "summary")
    assert "tpr-gap[gender+age+race] (blocker) could not be decided" in summary
    assert "about 27 more images of female &amp; 60+ &amp; asian (n=3), 27 of female &amp; 60+ &amp; black (n=3)" in summary


def test_full_report_lists_every_clause_id(page2: str) -> None:
    for clause in results_v2()["policy"]["clauses"]:
        assert f">{clause['id']}<" in page2


def test_regression_clause_shows_baseline_and_change(page2: str) -> None:
    row = page2.split(">no-accuracy-drop[race]<", 1)[1].split("</tr>", 1)[0]
    assert "baseline 0.720" in row and "change −0.130" in row and "drop ≤ 0.02 from baseline, if significant" in row


def test_interval_requirement_is_named(page2: str) -> None:
    row = page2.split(">accuracy-gap[gender]<", 1)[1].split("</tr>", 1)[0]
    assert "≤ 0.1 (whole interval)" in row


def test_clause_shows_adjusted_p_and_significance_mark(page2: str) -> None:
    row = page2.split(">accuracy-gap[race]<", 1)[1].split("</tr>", 1)[0]
    assert "p(adj.) &lt;0.001" in row and 'class="sig"' in row


def test_full_report_lists_every_attribute_group_name(page2: str) -> None:
    for scope in ("gender", "age", "race"):
        for name in results_v2()["checks"]["group_metrics"]["by_group"][scope]:
            assert f">{name}" in page2


def test_each_attribute_has_a_rate_chart_and_each_intersection_a_heatmap(page2: str) -> None:
    assert page2.count("Bar charts of accuracy, selection rate, TPR and FPR") == 3
    assert page2.count("Heatmap of accuracy and selection rate") == 4


def test_intersection_table_lists_only_groups_with_enough_images(page2: str) -> None:
    block = page2.split('id="gm-scope-6"', 1)[1]  # gender+age+race
    table = block.split("</table>", 1)[0]
    assert "The 24 of 32 groups with at least 30 images" in table
    assert "female &amp; 60+ &amp; asian" not in table
    thin = block.split('class="thin-list"', 1)[1].split("</p>", 1)[0]
    assert "female &amp; 60+ &amp; asian (n=3, 27 more needed)" in thin


def test_disparity_rows_show_the_adjusted_p_value_and_significance(page2: str) -> None:
    table = page2.split("Disparities between race groups", 1)[1].split("</table>", 1)[0]
    row = table.split(">Accuracy<", 1)[1].split("</tr>", 1)[0]
    assert "0.410" in row and "[0.360, 0.460]" in row and "&lt;0.001" in row and "black → white" in row


def test_disparity_table_leaves_out_mirror_rates(page2: str) -> None:
    table = page2.split("Disparities between race groups", 1)[1].split("</table>", 1)[0]
    assert ">Accuracy<" in table and ">Error rate<" not in table and ">Equalized odds<" in table


def test_group_significance_is_marked_next_to_the_value(page2: str) -> None:
    table = page2.split("Rates by race group", 1)[1].split("</table>", 1)[0]
    black = table.split(">black<", 1)[1].split("</tr>", 1)[0]
    assert '0.590</span><span class="sig"' in black


def test_methodology_reads_its_numbers_from_the_run(page2: str) -> None:
    method = _section(page2, "methodology")
    assert "95% interval" in method and "Wilson score interval" in method
    assert "percentile bootstrap interval from 1,000 resamples" in method
    assert "10,000 random permutations" in method and "Holm" in method and "alpha = 0.05" in method
    assert "fewer than 30 images" in method and "80% power" in method and "15 equal-width bins" in method


def test_methodology_follows_changed_parameters() -> None:
    results = results_v2()
    results["checks"]["group_metrics"]["params"].update(n_boot=200, correction="bh", min_group_size=50)
    method = _section(render_html(results), "methodology")
    assert "200 resamples" in method and "Benjamini-Hochberg" in method and "fewer than 50 images" in method


def test_methodology_of_a_synthetic_probe_says_so(page2: str) -> None:
    assert "The probe is synthetic" in _section(page2, "methodology")


def test_reproducibility_has_command_seed_and_hashes(page2: str) -> None:
    repro = _section(page2, "reproducibility")
    for text in ("auditor audit sample_models/shortcut_cnn/model.yaml", ">0<", "ab12" * 16, "cd34" * 16, "2.14.1", "old/results.json"):
        assert text in repro


def test_errored_check_shows_its_error_message_in_an_error_box(page: str) -> None:
    box = page.split('class="error-box"', 1)[1].split("</div>", 1)[0]
    assert "ValueError: saliency needs gradients" in box


def test_errored_check_without_a_message_still_says_so() -> None:
    html = render_html({"schema_version": 1, "checks": {"attacks": {"status": "error", "error": None}}})
    box = html.split('class="error-box"', 1)[1].split("</div>", 1)[0]
    assert "recorded no error message" in box


def test_errored_group_metrics_shows_the_error_not_empty_tables() -> None:
    results = results_v2()
    results["checks"]["group_metrics"] = {"status": "error", "error": "RuntimeError: out of memory", "metrics": {}, "by_group": {}}
    check = _section(render_html(results), "check-0-group-metrics")
    assert "RuntimeError: out of memory" in check and "Rates by" not in check


def test_group_label_with_markup_is_escaped(page: str) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_page_contains_no_script_tag(page: str, page2: str) -> None:
    assert "<script" not in page.lower() and "<script" not in page2.lower()


def test_page_has_no_external_references(page2: str) -> None:
    assert "http://" not in page2 and "https://" not in page2
    for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page2):
        assert ref.startswith(("data:image/", "#")), ref
    assert "@import" not in page2 and "url(" not in page2


def test_check_figure_data_uri_is_embedded_and_a_url_is_not(page: str) -> None:
    assert f'src="{PIXEL}"' in page
    assert "Not embedded (not an inline image): remote" in page


def test_metric_interval_is_shown_after_the_value(page: str) -> None:
    assert '<span class="num">0.912</span><br><span class="ci">[0.880, 0.940]</span>' in page


def test_missing_disparity_shows_na_with_its_reason() -> None:
    results = results_v2()
    results["checks"]["group_metrics"]["metrics"]["race"]["tpr_difference"] = {
        "value": None, "ci": None, "groups": [], "reason": "fewer than two groups with a defined tpr"}
    page = render_html(results)
    assert '<span class="na">n/a</span> <span class="reason">(fewer than two groups with a defined tpr)</span>' in page


def test_scope_without_any_disparity_says_why_once_instead_of_a_table(page: str) -> None:
    block = page.split('id="gm-scope-2"', 1)[1].split('class="scope"', 1)[0]  # age: one group too small
    assert "No disparity could be computed: fewer than two groups with at least 30 samples" in block
    assert "Disparities between age groups" not in block


def test_group_with_insufficient_data_is_marked(page: str) -> None:
    row = page.split('<tr class="thin">', 1)[1].split("</tr>", 1)[0]
    assert "60+" in row and "insufficient data" in row


def test_old_results_without_significance_name_the_largest_gap_as_untested(page: str) -> None:
    summary = _section(page, "summary")
    assert "Largest gaps between groups" in summary
    assert "Accuracy differs between race groups black (0.72) and white (0.95): gap 0.23 (significance not tested)." in summary


def test_summary_counts_failed_clauses_by_severity(page: str) -> None:
    assert "1 of 3 clauses failed (1 blocker); 1 could not be decided for lack of data." in page


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
    results = results_v2()
    del results[key]
    assert "Audit report" in render_html(results)


@pytest.mark.parametrize("key", ["metrics", "by_group", "params"])
def test_report_renders_without_each_part_of_group_metrics(key: str) -> None:
    results = results_v2()
    del results["checks"]["group_metrics"][key]
    assert "Audit report" in render_html(results)


def test_report_renders_when_parts_have_unexpected_types() -> None:
    results = {"schema_version": 1, "model": "x", "probe": [], "checks": {"a": None, "group_metrics": {"metrics": 3, "by_group": {"race": None}}},
               "policy": {"verdict": None, "clauses": [None, {"id": "c"}], "warnings": "w", "baseline": 5}, "cost": {"seconds": 5}}
    assert ">c<" in render_html(results)


def test_report_renders_when_metric_entries_are_malformed() -> None:
    results = results_v2()
    race = results["checks"]["group_metrics"]["metrics"]["race"]
    race["accuracy_difference"] = {"value": "high", "ci": [1], "groups": "black", "power": 3, "p_adjusted": "x"}
    race["scope"] = "attribute"
    results["checks"]["group_metrics"]["by_group"]["race"]["black"]["accuracy"] = [0.5]
    assert "Disparities between race groups" in render_html(results)


def test_same_results_give_byte_identical_html() -> None:
    assert render_html(results_v2()) == render_html(copy.deepcopy(results_v2()))


def test_write_html_writes_report_html_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = write_html(results_v1(), tmp_path)
    assert path == tmp_path / "report.html"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_write_html_replaces_an_existing_report(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("old report")
    write_html({"schema_version": 1}, tmp_path)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "old report" not in text and text.startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]



def test_the_chart_cache_hands_groups_over_in_results_order_not_alphabetical():
    from auditor.report._charts import _cached

    seen = []
    chart = _cached(lambda groups: seen.append(list(groups)) or "drawn")
    assert chart({"5-9": 0.9, "10-19": 0.8, "20+": 0.7}) == "drawn"
    assert seen == [["5-9", "10-19", "20+"]]
