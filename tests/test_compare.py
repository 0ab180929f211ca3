"""The before/after comparison of a mitigation (auditor.compare): rows, significance, the gradient-masking
flag, odd and hostile input, HTML/Markdown/JSON/PDF output."""
from __future__ import annotations

import copy
import json
import math
import time
from typing import Any

import pytest
from report_fixtures import (
    HOSTILE,
    hostile_results,
    results_attacks,
    results_explanations,
    results_spurious,
    results_v2,
)

from auditor.compare import (
    MASKING_FLAG,
    compare_results,
    render_comparison_html,
    render_comparison_markdown,
    significance,
    write_comparison,
)

GM = "group_metrics.{}"


def _row(cmp: dict[str, Any], key: str) -> dict[str, Any]:
    return next(r for s in cmp["sections"] for r in s["rows"] if r["key"] == key)


def _clause(results: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(c for c in results["policy"]["clauses"] if c["id"] == cid)


def _debiased() -> dict[str, Any]:
    """results_v2 after a debiasing run: the race accuracy gap shrinks far outside both intervals, the gender
    gap moves a little inside them, overall accuracy drops by 0.02."""
    after = copy.deepcopy(results_v2())
    race = after["checks"]["group_metrics"]["metrics"]["race"]
    race["accuracy_difference"].update(value=0.08, ci=[0.05, 0.11])
    _clause(after, "accuracy-gap[race]").update(value=0.08, ci=[0.05, 0.11], result="pass")
    after["checks"]["group_metrics"]["metrics"]["gender"]["accuracy_difference"].update(value=0.03, ci=[0.0, 0.08])
    after["checks"]["group_metrics"]["metrics"]["overall"]["accuracy"].update(value=0.85, ci=[0.83, 0.87])
    after["model"].update(source="out/mitigated/model.pt", sha256="9f" * 32)
    return after


def _distilled(*, masked: bool = False, blackbox_gain: float = 0.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """results_attacks before and after defensive distillation: white-box robust accuracy from 0.31 to 0.80."""
    before = results_attacks()
    after = results_attacks(masked)
    overall = after["checks"]["attacks"]["metrics"]["overall"]
    overall["robust_accuracy"].update(value=0.8, ci=[0.73, 0.87])
    overall["attack_success_rate"].update(value=0.12, ci=[0.07, 0.18])
    _clause(after, "robust-accuracy").update(value=0.8, ci=[0.73, 0.87], result="pass")
    for name in ("square", "hopskipjump", "transfer"):
        bb = before["checks"]["attacks"]["metrics"]["overall"]["blackbox"][name]
        overall["blackbox"][name]["robust_accuracy"] = bb["robust_accuracy"] + blackbox_gain
    return before, after


def test_shrunk_gap_with_separate_intervals_is_a_significant_improvement() -> None:
    cmp = compare_results(results_v2(), _debiased(), method="adversarial_debiasing", settings={"adv_weight": 0.5})
    row = _row(cmp, GM.format("race.accuracy_difference"))
    assert row["before"]["value"] == pytest.approx(0.41) and row["after"]["value"] == pytest.approx(0.08)
    assert row["change"] == pytest.approx(-0.33)
    assert row["higher_is_better"] is False
    assert row["direction"] == "improved"
    assert row["significance"] == "significant" and row["significant"] is True
    clause = _row(cmp, "accuracy-gap[race]")
    assert (clause["result_before"], clause["result_after"]) == ("fail", "pass")
    assert clause["direction"] == "improved" and clause["significant"] is True
    assert clause["op"] == "<=" and clause["threshold"] == 0.1
    assert cmp["header"]["method"] == "adversarial_debiasing" and cmp["header"]["settings"] == {"adv_weight": 0.5}
    assert cmp["header"]["after"]["model"]["sha256"] == "9f" * 32 and cmp["header"]["seed"] == 0
    assert cmp["header"]["policy"] == "default" and cmp["header"]["mismatches"] == []
    json.dumps(cmp, allow_nan=False)


def test_change_inside_the_intervals_is_not_significant() -> None:
    cmp = compare_results(results_v2(), _debiased(), method="adversarial_debiasing")
    row = _row(cmp, GM.format("gender.accuracy_difference"))
    assert row["change"] == pytest.approx(0.01)
    assert row["direction"] == "worsened"
    assert row["significance"] == "not significant" and row["significant"] is False
    same = _row(cmp, GM.format("age.accuracy_difference"))
    assert same["direction"] == "unchanged" and same["significance"] == "not significant"
    ratio = _row(cmp, GM.format("race.selection_rate_ratio"))
    assert ratio["higher_is_better"] is True


def test_significance_rule_needs_each_value_outside_the_other_interval() -> None:
    # overlapping intervals, each point outside the other's interval: significant
    assert significance({"value": 0.5, "ci": [0.4, 0.6]}, {"value": 0.65, "ci": [0.55, 0.75]}) == "significant"
    # the after value is outside the before interval but the before value is inside the wide after interval
    assert significance({"value": 0.5, "ci": [0.45, 0.55]}, {"value": 0.6, "ci": [0.3, 0.9]}) == "not significant"
    assert significance({"value": 0.5, "ci": None}, {"value": 0.9, "ci": [0.85, 0.95]}) == "no interval"
    assert significance({"value": None, "ci": None}, {"value": 0.9, "ci": [0.85, 0.95]}) == "n/a"


def test_distillation_white_box_gain_without_black_box_gain_is_flagged_as_masking() -> None:
    before, after = _distilled()
    cmp = compare_results(before, after, method="defensive_distillation", settings={"temperature": 20})
    wb = _row(cmp, "attacks.overall.robust_accuracy")
    assert wb["direction"] == "improved" and wb["significant"] is True
    transfer = _row(cmp, "attacks.overall.blackbox.transfer.robust_accuracy")
    assert transfer["direction"] == "unchanged" and transfer["significance"] == "no interval"
    assert _row(cmp, "attacks.overall.attack_success_rate")["direction"] == "improved"
    flags = [f for f in cmp["flags"] if f["id"] == "gradient_masking_suspected"]
    assert len(flags) == 1 and flags[0]["title"] == MASKING_FLAG
    assert {b["attack"] for b in flags[0]["evidence"]["blackbox_lagging"]} == {"square", "hopskipjump", "transfer"}
    html = render_comparison_html(cmp)
    assert MASKING_FLAG in html
    md = render_comparison_markdown(cmp)
    assert f"**{MASKING_FLAG}**" in md
    assert "Accuracy cost: none — clean accuracy on the attacked images 0.906 → 0.906" in md  # no group_metrics run


def test_reliability_drop_alone_raises_the_masking_flag() -> None:
    before, after = _distilled(masked=True, blackbox_gain=0.45)
    cmp = compare_results(before, after, method="defensive_distillation")
    assert _row(cmp, "attacks.overall.reliable")["direction"] == "worsened"
    flag = next(f for f in cmp["flags"] if f["id"] == "gradient_masking_suspected")
    assert flag["evidence"]["blackbox_lagging"] == [] and flag["evidence"]["reliability_dropped"] is True


def test_real_robustness_gain_is_not_flagged() -> None:
    before, after = _distilled(blackbox_gain=0.3)
    cmp = compare_results(before, after, method="adversarial_training")
    assert cmp["flags"] == []
    assert _row(cmp, "attacks.overall.blackbox.square.robust_accuracy")["direction"] == "improved"


def test_missing_checks_on_one_side_give_na_rows() -> None:
    before = results_v2()
    after = copy.deepcopy(before)
    del after["checks"]["group_metrics"]
    after["policy"]["clauses"] = after["policy"]["clauses"][:2]
    cmp = compare_results(before, after, method="debiasing")
    row = _row(cmp, GM.format("race.accuracy_difference"))
    assert row["present"] == "before" and row["after"]["value"] is None
    assert row["change"] is None and row["direction"] == "n/a" and row["significance"] == "n/a"
    gone = _row(cmp, "overall-accuracy")
    assert gone["present"] == "before" and gone["result_after"] is None
    assert cmp["accuracy"]["change"] is None and "n/a" in cmp["accuracy"]["text"]
    assert cmp["checks"]["group_metrics"] == {"before": "ok", "after": "not run"}
    html = render_comparison_html(cmp)
    assert "Accuracy cost: n/a" in html and '<span class="na">n/a</span>' in html
    assert "Accuracy cost: n/a" in render_comparison_markdown(cmp)


def test_other_checks_compare_across_schemas() -> None:
    ex = compare_results(results_explanations(), results_explanations(), method="x")
    assert _row(ex, "explanations.overall.faithful_methods")["higher_is_better"] is True
    assert _row(ex, "explanations.gender.subject_share_difference")["direction"] == "unchanged"
    after = results_spurious()
    after["checks"]["spurious"]["metrics"]["overall"]["n_findings"]["value"] = 0
    sp = compare_results(results_spurious(), after, method="x")
    assert _row(sp, "spurious.overall.n_findings")["direction"] == "improved"
    assert _row(sp, "spurious.overall.off_subject_share")["higher_is_better"] is False
    # results_v2's spurious entry predates metrics.overall: its findings list is counted
    assert _row(compare_results(results_v2(), results_v2(), method="x"), "spurious.overall.n_findings")["before"]["value"] == 1


def test_odd_values_never_raise() -> None:
    after = results_v2()
    gm = after["checks"]["group_metrics"]["metrics"]
    gm["overall"]["accuracy"] = {"value": math.nan, "ci": [math.inf, "x"]}
    gm["race"]["accuracy_difference"] = {"value": math.inf, "ci": None}
    gm["gender"] = "not a dict"
    after["policy"]["clauses"] = [None, 3, {"id": None, "value": "high", "ci": [1]}, {"id": ["x"], "op": {}}]
    after["checks"]["attacks"] = {"metrics": {"overall": {"robust_accuracy": [1, 2], "blackbox": 7}}}
    after["model"] = 5
    for before, aft in ((results_v2(), after), (None, 42), ({}, {"checks": "garbage", "policy": [1]})):
        cmp = compare_results(before, aft, method=None, settings={"x": math.nan, "path": object()})  # type: ignore[arg-type]
        json.dumps(cmp, allow_nan=False)
        assert render_comparison_html(cmp).startswith("<!DOCTYPE html>")
        assert "Accuracy cost" in render_comparison_markdown(cmp)
    cmp = compare_results(results_v2(), after, method="x")
    assert _row(cmp, GM.format("race.accuracy_difference"))["after"]["value"] is None
    assert cmp["accuracy"]["direction"] == "n/a"
    assert render_comparison_html({"sections": "nope", "flags": [1], "header": None}).startswith("<!DOCTYPE html>")


def test_hostile_strings_are_escaped_in_html() -> None:
    before, after = hostile_results(), hostile_results()
    after["model"]["source"] = HOSTILE[1]
    cmp = compare_results(before, after, method=HOSTILE[0], settings={HOSTILE[1]: HOSTILE[0], "note": HOSTILE[6]})
    html = render_comparison_html(cmp)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;race&lt;/b&gt;" in html
    assert "\x00" not in html and "\x1b" not in html
    md = render_comparison_markdown(cmp)
    assert "<script>" not in md and "](http" not in md


def test_markdown_has_the_accuracy_cost_headline() -> None:
    md = render_comparison_markdown(compare_results(results_v2(), _debiased(), method="adversarial_debiasing"))
    assert md.startswith("## Mitigation comparison: adversarial\\_debiasing")
    assert "**Accuracy cost: 0.020 — overall accuracy 0.870 → 0.850 (−0.020, not significant)**" in md
    assert "❌ FAIL → ❌ FAIL" in md
    assert "| accuracy\\-gap\\[race\\] | <= 0.1 | 0.410 [0.360, 0.460] | fail | 0.080 [0.050, 0.110] | pass |" in md


def test_html_shows_header_headline_and_rows() -> None:
    html = render_comparison_html(compare_results(results_v2(), _debiased(), method="adversarial_debiasing",
                                                  settings={"adv_weight": 0.5}))
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html
    assert "Accuracy cost: 0.020" in html and "out/mitigated/model.pt" in html and "9f" * 32 in html
    assert "<code>adv_weight</code>&nbsp;=&nbsp;0.5" in html
    race = html.split(">race: Accuracy difference<", 1)[1].split("</tr>", 1)[0]
    assert "dir-improved" in race and "sig-significant" in race and "−0.330" in race


def test_write_comparison_writes_json_html_md(tmp_path: Any) -> None:
    cmp = compare_results(results_v2(), _debiased(), method="adversarial_debiasing")
    paths = write_comparison(cmp, tmp_path / "out", formats=("json", "html", "md"))
    assert sorted(p.name for p in paths.values()) == ["compare.html", "compare.json", "compare.md"]
    assert json.loads((tmp_path / "out" / "compare.json").read_text()) == cmp
    assert (tmp_path / "out" / "compare.html").read_text().startswith("<!DOCTYPE html>")
    assert "Accuracy cost" in (tmp_path / "out" / "compare.md").read_text()
    assert not list((tmp_path / "out").glob(".*.tmp"))
    with pytest.raises(ValueError):
        write_comparison(cmp, tmp_path, formats=("docx",))


def test_write_comparison_writes_a_pdf(tmp_path: Any) -> None:
    pytest.importorskip("weasyprint")
    before, after = _distilled()
    start = time.perf_counter()
    paths = write_comparison(compare_results(before, after, method="defensive_distillation"), tmp_path)
    assert paths["pdf"].read_bytes().startswith(b"%PDF")
    assert {p.name for p in tmp_path.iterdir()} == {"compare.json", "compare.html", "compare.md", "compare.pdf"}
    assert time.perf_counter() - start < 30  # about 2 s here: not marked slow
