"""The Markdown summary for PR comments: content, brevity, escaping, the size limit."""
from __future__ import annotations

from pathlib import Path

from auditor.report._markdown import LIMIT, TRUNCATED, _fit, md
from auditor.report import render_markdown, write_markdown
from tests.report_fixtures import results_v1, results_v2


def _table(text: str, heading: str) -> list[str]:
    block = text.split(heading, 1)[1].split("\n### ", 1)[0]
    return [line for line in block.splitlines() if line.startswith("| ")]


def test_first_line_is_the_verdict_badge():
    assert render_markdown(results_v2()).splitlines()[0] == "## Audit report: ❌ FAIL"


def test_failing_clauses_are_listed_with_interval_and_requirement_and_passing_ones_are_not():
    text = render_markdown(results_v2())
    rows = _table(text, "### Failing clauses (3)")
    assert rows[1] == ("| accuracy\\-gap\\[race\\] | blocker | 0.410 [0.360, 0.460] · p(adj.) <0.001 ✱ | "
                       "≤ 0.1 | EU AI Act Art\\. 10\\(2\\)\\(f\\) |")
    assert "four\\-fifths\\[race\\]" not in text


def test_regression_table_shows_baseline_now_and_change():
    rows = _table(render_markdown(results_v2()), "### Against the baseline")
    assert rows[1] == ("| no\\-accuracy\\-drop\\[race\\] | 0.720 | 0.590 | −0.130 | drop ≤ 0.02 from baseline, if significant "
                       "| fail |")


def test_no_regression_section_without_a_baseline():
    assert "Against the baseline" not in render_markdown(results_v2(baseline=False))


def test_undecided_clause_says_how_many_more_images_are_needed():
    text = render_markdown(results_v2())
    assert "### Could not be decided (1)" in text and "about 27 more images of female \\& 60\\+ \\& asian \\(n\\=3\\)" in text


def test_top_gaps_have_groups_intervals_and_significance():
    rows = _table(render_markdown(results_v2()), "### Largest significant gaps between groups")
    assert rows[1] == ("| race | True positive rate | black 0.51 [0.45, 0.57] | white 1.00 [0.99, 1.00] | "
                       "0.490 [0.440, 0.540] | <0.001 ✱ |")
    assert "| female \\& black 0.51 [0.43, 0.59] |" in "\n".join(rows)


def test_attribute_table_has_a_row_per_attribute_not_per_intersection():
    rows = _table(render_markdown(results_v2()), "### Disparities by attribute")
    assert [r.split("|")[1].strip() for r in rows if not r.startswith("|---")] == ["Attribute", "gender", "age", "race"]
    assert rows[-1].startswith("| race | 0.410 [0.360, 0.460] ✱ | 0.840 [0.790, 0.890] |")


def test_old_results_still_give_a_summary():
    text = render_markdown(results_v1())
    assert "**accuracy\\-gap**" not in text and "| dp\\-ratio |" in text and "Largest gaps between groups" in text


def test_summary_is_short():
    assert len(render_markdown(results_v2())) < 6000


def test_md_escapes_every_markdown_and_html_special():
    assert md("a|b [x](http://evil) <i> @all #1 *e* _u_ `c` &amp; ~s~") == (
        "a\\|b \\[x\\]\\(http\\:\\/\\/evil\\) \\<i\\> \\@all \\#1 \\*e\\* \\_u\\_ \\`c\\` \\&amp\\; \\~s\\~")


def test_md_keeps_a_name_on_one_line_and_cuts_it():
    assert md("a\nb\r\n  c\x00", 100) == "a b c\ufffd"
    assert len(md("x" * 5000, 100)) == 100


def test_output_stays_under_the_comment_limit_and_is_cut_at_a_line():
    results = results_v2()
    long = "[x](http://evil) " * 60
    clauses = results["policy"]["clauses"]
    clauses += [{**clauses[0], "id": f"c{i}", "maps_to": [long]} for i in range(100)]
    clauses += [{**clauses[3], "id": f"u{i}", "reason": long} for i in range(100)]
    results["checks"].update({f"check{i}": {"status": "error", "error": long} for i in range(100)})
    results["policy"]["warnings"] = [long] * 100
    text = render_markdown(results)
    assert len(text) <= LIMIT < 65536


def test_long_text_is_cut_at_a_line_boundary_with_a_note():
    text = "".join(f"line {i} \\[x\\]\n" for i in range(1000))
    cut = _fit(text, limit=500)
    assert len(cut) <= 500 and cut.endswith(TRUNCATED)
    assert all(line.startswith("line ") and line.endswith("\\]") for line in cut.split("\n")[:-3] if line)


def test_write_markdown_writes_report_md(tmp_path: Path):
    path = write_markdown({"schema_version": 1}, tmp_path)
    assert path == tmp_path / "report.md" and "NO VERDICT" in path.read_text(encoding="utf-8")
