"""Presenters: a check's presentation is one module. A toy check written outside the package, with its
presenter, shows up in the HTML report, the Markdown, the JUnit XML and a comparison, with no other file
edited; a check without a presenter gets the generic one; a duplicate name is an error."""
from __future__ import annotations

import importlib
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import auditor
from auditor.checks import registry as check_registry
from auditor.compare import compare_results, render_comparison_html, render_comparison_markdown
from auditor.errors import InternalError
from auditor.models import load_model
from auditor.report import (
    GenericPresenter,
    Presenter,
    get_presenter,
    presenter_names,
    register_presenter,
    render_html,
    render_junit,
    render_markdown,
    unregister_presenter,
)
from tests.conftest import SAMPLE_MODELS

TOY = "toy_confidence"
TOY_MODULE = textwrap.dedent('''
    """A toy check and its presenter, as a user would write them outside the package."""
    from __future__ import annotations

    import numpy as np

    from auditor.checks import Check, CheckResult, register_check
    from auditor.report import Presenter, register_presenter
    from auditor.report._rows import metric_row


    @register_check
    class ToyConfidence(Check):
        name = "toy_confidence"
        description = "mean top-class probability, overall and per group of the first attribute"
        order = 90
        scoped = False

        def run(self, ctx):
            probs = ctx.predictions.probs.max(axis=1)
            attr = ctx.attributes[0]
            groups = ctx.probe.table.loc[ctx.predictions.index, attr].astype(str).to_numpy()
            by_group = {g: {"mean_confidence": round(float(probs[groups == g].mean()), 4)} for g in sorted(set(groups))}
            overall = {"mean_confidence": {"value": round(float(probs.mean()), 4), "ci": None}}
            return CheckResult(params={"attribute": attr}, metrics={"overall": overall}, by_group={attr: by_group})


    @register_presenter
    class ToyConfidencePresenter(Presenter):
        name = "toy_confidence"
        title = "Toy confidence"
        labels = {"mean_confidence": "Mean confidence"}
        directions = {"mean_confidence": True}
        template = (
            "{% macro section(v) %}<h4>Toy confidence</h4>"
            "<p class='toy'>Mean confidence {{ v.mean|num(4) }}</p>{% endmacro %}"
        )

        def view(self, check, figures):
            return {"mean": check["metrics"]["overall"]["mean_confidence"]["value"]}

        def markdown(self, check, results):
            return ["### Toy confidence", "", f"Mean confidence {check['metrics']['overall']['mean_confidence']['value']:.4f}", ""]

        def junit(self, check, results):
            return [f"mean confidence: {check['metrics']['overall']['mean_confidence']['value']:.4f}"]

        def compare_rows(self, before, after):
            b = before.get("metrics", {}).get("overall", {}).get("mean_confidence")
            a = after.get("metrics", {}).get("overall", {}).get("mean_confidence")
            row = metric_row(self.name, "toy_confidence.overall.mean_confidence", "Mean confidence", b, a, True,
                             key_metric=True, scope="overall", metric="mean_confidence")
            return [row] if row else []
''')


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The toy module, imported from a temporary folder; removed from both registries and sys.modules after
    this module's tests, so later tests do not see it."""
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toy_confidence_check.py").write_text(TOY_MODULE, encoding="utf-8")
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("toy_confidence_check")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("toy_confidence_check", None)
        check_registry._REGISTRY.pop(TOY, None)
        unregister_presenter(TOY)
    assert TOY not in check_registry.check_names() and TOY not in presenter_names()


@pytest.fixture(scope="module")
def toy_results(toy: ModuleType) -> dict[str, Any]:
    module = load_model(str(SAMPLE_MODELS["clean_cnn"])).module.inner
    result = auditor.audit(module, "synth:faces:n=60", classes="not_smiling,smiling", mean=[0.5] * 3, std=[0.25] * 3,
                           checks=TOY, budget="quick", out=None, device="cpu")
    return result.results


def _toy_mean(results: dict[str, Any]) -> str:
    return f"{results['checks'][TOY]['metrics']['overall']['mean_confidence']['value']:.4f}"


def test_the_toy_check_runs_and_records_its_number(toy_results: dict[str, Any]) -> None:
    assert toy_results["checks"][TOY]["status"] == "ok"
    assert 0.5 <= float(_toy_mean(toy_results)) <= 1.0


def test_the_toy_section_is_in_the_html_report(toy_results: dict[str, Any]) -> None:
    html = render_html(toy_results)
    assert "<h4>Toy confidence</h4>" in html
    assert f"<p class='toy'>Mean confidence {_toy_mean(toy_results)}</p>" in html


def test_the_toy_lines_are_in_the_markdown(toy_results: dict[str, Any]) -> None:
    text = render_markdown(toy_results)
    assert "### Toy confidence" in text and f"Mean confidence {_toy_mean(toy_results)}" in text


def test_the_toy_testcase_is_in_the_junit_checks_suite(toy_results: dict[str, Any]) -> None:
    root = ET.fromstring(render_junit(toy_results))
    case = next(c for c in root.iter("testcase") if c.get("classname") == "checks" and c.get("name") == TOY)
    assert f"mean confidence: {_toy_mean(toy_results)}" in case.find("system-out").text
    assert case.find("failure") is None


def test_the_toy_section_is_in_a_comparison(toy_results: dict[str, Any]) -> None:
    after = {**toy_results, "checks": {TOY: {"status": "ok", "metrics": {"overall": {"mean_confidence": {"value": 0.5}}}}}}
    cmp = compare_results(toy_results, after, method="none")
    section = next(s for s in cmp["sections"] if s["id"] == TOY)
    assert section["title"] == "Toy confidence"
    assert section["rows"][0]["before"]["value"] == float(_toy_mean(toy_results))
    assert section["rows"][0]["direction"] == "worsened"
    assert "Toy confidence" in render_comparison_html(cmp) and "Mean confidence" in render_comparison_markdown(cmp)


def test_the_built_in_checks_have_presenters_in_report_order() -> None:
    assert presenter_names()[:4] == ["group_metrics", "spurious", "attacks", "explanations"]


def test_a_check_without_a_presenter_gets_the_generic_one() -> None:
    p = get_presenter("mystery")
    assert isinstance(p, GenericPresenter) and p.heading == "mystery" and p.section_template() is None
    rows = p.compare_rows({"metrics": {"overall": {"score": {"value": 0.5, "ci": [0.4, 0.6]}, "note": "x"}}}, {})
    assert [r["key"] for r in rows] == ["mystery.overall.score"]


def test_a_check_without_a_presenter_is_a_generic_tree_in_the_report() -> None:
    results = {"checks": {"mystery": {"status": "ok", "metrics": {"overall": {"score": {"value": 0.5, "ci": None}}}}}}
    html = render_html(results)
    assert 'id="check-0-mystery"' in html and "<h4>Metrics</h4>" in html


def test_a_duplicate_presenter_name_is_an_error() -> None:
    class Again(Presenter):
        name = "group_metrics"

    with pytest.raises(InternalError, match="already registered"):
        register_presenter(Again)
