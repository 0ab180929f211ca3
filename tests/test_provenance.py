"""Provenance a reviewer can check (issue 17): the policy recorded as given with its hash, the package
versions the numbers depend on, every report file named on the CLI's last line, JUnit messages free of
Python literals, and HTML whose hashes and words wrap sanely on a narrow screen."""
from __future__ import annotations

import copy
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.cli._main import _written
from auditor.policy import evaluate_policy, load_policy, resolve_policy_path
from auditor.report import REPORT_FILES, render_html, render_junit
from auditor.results import environment
from tests.conftest import ROOT, SAMPLE_MODELS, SMALL_PROBE
from tests.report_fixtures import results_attacks, results_explanations, results_spurious, results_v2

POLICY = """\
name: mine
version: "3"
clauses:
  - id: acc
    metric: checks.group_metrics.metrics.overall.accuracy
    op: ">="
    threshold: 0.5
"""
HASH = "0123456789abcdef" * 4
TEMPLATES = ROOT / "reports_templates"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _results() -> dict:
    return {"schema_version": 1, "checks": {"group_metrics": {"status": "ok", "metrics": {
        "overall": {"n": 100, "accuracy": {"value": 0.9, "ci": [0.85, 0.95]}}}}}}


# 1. The policy: the source as given, and the hash of its bytes


def test_a_relative_policy_path_is_recorded_as_given_with_the_hash_of_its_bytes(tmp_path, monkeypatch):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "mine.yaml").write_text(POLICY)
    monkeypatch.chdir(tmp_path)
    block = evaluate_policy(load_policy("policies/mine.yaml"), _results(), None)
    assert block["source"] == "policies/mine.yaml"
    assert block["shipped"] is False
    assert block["sha256"] == hashlib.sha256(POLICY.encode()).hexdigest()


@pytest.mark.parametrize("given", [None, "default", "strict-ci", "eu-ai-act-high-risk"])
def test_a_shipped_policy_is_recorded_by_name_never_by_its_local_path(given):
    policy = load_policy(given)
    name = given or "default"
    block = evaluate_policy(policy, _results(), None)
    assert (block["source"], block["shipped"]) == (name, True)
    assert block["sha256"] == _sha(resolve_policy_path(name))
    assert str(ROOT) not in json.dumps(block) and "/" not in block["source"]


def test_the_hash_changes_when_one_byte_of_the_policy_does(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(POLICY)
    b.write_text(POLICY.replace("0.5", "0.6"))
    assert load_policy(a).sha256 != load_policy(b).sha256
    assert load_policy(a).sha256 == _sha(a)


def test_the_policy_block_only_gains_keys():
    block = evaluate_policy(load_policy(), _results(), None)
    keys = list(block)
    assert keys[:5] == ["name", "version", "source", "sha256", "shipped"]
    assert {"description", "requires", "missing_required", "verdict", "regressed", "clauses"} <= set(keys)


def test_the_report_shows_the_policy_hash_short_in_the_header_and_full_in_the_provenance():
    results = results_v2()
    results["policy"].update(source="default", shipped=True, sha256=HASH)
    html = render_html(results)
    assert f'title="{HASH}">{HASH[:12]}…' in html  # the header: shortened, the full hash in the title
    prov = html[html.index("Policy and baseline"):]
    assert f'<span class="mono hash">{HASH}</span>' in prov
    assert "shipped with auditor" in prov


def test_a_report_of_results_without_a_policy_hash_still_renders():
    html = render_html(results_v2())
    assert "Policy SHA-256" not in html and 'class="mono hash-short"' not in html


# 2. The environment


def test_environment_records_every_package_the_numbers_and_reports_depend_on():
    env = environment()
    for name in ("torch", "captum", "adversarial-robustness-toolbox", "matplotlib", "safetensors", "click", "fairlearn",
                 "weasyprint", "scipy"):
        assert name in env, name
        assert env[name] == "not installed" or re.match(r"\d", env[name]), (name, env[name])
    assert env["captum"] != "not installed" and env["safetensors"] != "not installed"


# 3. The CLI's last line


def test_the_last_line_names_every_report_file_written():
    paths = {"json": Path("OUT/results.json"), **{k: Path("OUT") / v for k, v in REPORT_FILES.items()}}
    assert _written(paths) == ("; results in OUT/results.json, reports OUT/report.html, OUT/report.pdf, "
                               "OUT/report.md, OUT/report.junit.xml")
    assert _written({"json": paths["json"], "html": paths["html"]}) == "; results in OUT/results.json, report OUT/report.html"
    assert _written({"json": paths["json"]}) == "; results in OUT/results.json"


def test_audit_names_results_json_and_each_report_and_records_the_policy_as_given(tmp_path, monkeypatch, capsys):
    (tmp_path / "mine.yaml").write_text(POLICY)
    monkeypatch.chdir(tmp_path)
    code = main(["audit", str(SAMPLE_MODELS["clean_cnn"]), "--probe", SMALL_PROBE, "--out", "out", "--device", "cpu",
                 "--budget", "quick", "--checks", "group_metrics", "--policy", "mine.yaml", "--format", "json,html,pdf,md,junit"])
    assert code in (0, 1)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith("; results in out/results.json, reports out/report.html, out/report.pdf, out/report.md, "
                         "out/report.junit.xml"), last
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["policy"]["source"] == "mine.yaml" and results["policy"]["shipped"] is False
    assert results["policy"]["sha256"] == _sha(tmp_path / "mine.yaml")
    assert results["environment"]["captum"] != "not installed"
    junit = ET.parse(tmp_path / "out" / "report.junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert props["policy_source"] == "mine.yaml" and props["policy_sha256"] == results["policy"]["sha256"]


# 4. JUnit: no Python literal in any message or text

LITERAL = re.compile(r"\b(None|True|False|nan|NaN|inf)\b")
ODD = [None, float("nan"), True, False]


def _spoil(x: object, i: list[int]) -> None:
    """Put None, nan, True and False, in turn, in place of each metric value and number under ``x``."""
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, v in list(items):
        if isinstance(v, dict) and "value" in v:
            v["value"], v["ci"] = ODD[i[0] % 4], [None, float("nan")]
            i[0] += 1
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("n", "seconds"):
            x[k] = ODD[i[0] % 4]
            i[0] += 1
        else:
            _spoil(v, i)


def _odd(results: dict) -> dict:
    """``results`` with None, nan, True and False in its metrics and in every field of its clauses."""
    r = copy.deepcopy(results)
    for check in r["checks"].values():
        _spoil(check.get("metrics") or {}, [0])
        _spoil(check.get("by_group") or {}, [1])
    clauses = r["policy"]["clauses"]
    while len(clauses) < 4:
        clauses.append({**copy.deepcopy(clauses[0]), "id": f"extra-{len(clauses)}"})
    results_cycle = ["fail", "insufficient_data", "not_run", "borderline"]
    for i, c in enumerate(clauses):
        odd = ODD[i % 4]
        c.update(value=odd, ci=[odd, float("nan")], p_value=ODD[(i + 1) % 4], p_adjusted=ODD[(i + 2) % 4],
                 significant=ODD[(i + 3) % 4], reason=ODD[i % 4], baseline_value=ODD[(i + 1) % 4], delta=float("nan"),
                 maps_to=[None, False], result=results_cycle[i % 4])
        if i % 2:
            c["kind"] = "regression"
    return r


@pytest.mark.parametrize("make", [results_v2, results_spurious, results_attacks, results_explanations])
def test_junit_messages_never_show_a_python_literal(make):
    root = ET.fromstring(render_junit(_odd(make())))
    texts = [t for el in root.iter() for t in (el.get("message"), el.text) if t and t.strip()]
    assert any("not measured" in t for t in texts)
    leaks = [line for t in texts for line in t.splitlines() if LITERAL.search(line)]
    assert not leaks, leaks[:5]


def test_junit_writes_booleans_as_yes_no_and_a_missing_value_with_its_reason():
    r = results_v2(baseline=False)
    c = r["policy"]["clauses"][3]  # the insufficient_data blocker
    c.update(p_adjusted=0.2, significant=False)
    root = ET.fromstring(render_junit(r))
    case = next(x for x in root.iter("testcase") if x.get("name") == c["id"])
    body = "".join(case.itertext())
    assert "significant: no" in body
    assert f"measured: not measured ({c['reason']})" in body


# 5. HTML: hashes wrap as a block, words never break inside, wide tables scroll


def _rules(css: str) -> list[tuple[str, str]]:
    """(selector, declarations) of each rule, @media blocks flattened."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    return [(sel.strip(), body) for sel, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css)]


def test_no_stylesheet_breaks_words_anywhere():
    for css in TEMPLATES.glob("*.css"):
        assert not any("break-all" in body for _, body in _rules(css.read_text(encoding="utf-8"))), css.name


def test_only_hashes_and_command_lines_may_break_anywhere_on_screen():
    rules = _rules((TEMPLATES / "report.css").read_text(encoding="utf-8"))
    anywhere = [sel for sel, body in rules if re.search(r"overflow-wrap:\s*anywhere", body)]
    assert anywhere == [".hash", "code.cmd"]  # a next step's command line is code: it wraps where it must
    hash_rule = dict(rules)[".hash"]
    assert "monospace" in hash_rule and "word-break: normal" in hash_rule


def test_wide_tables_scroll_sideways_on_screen_but_not_on_paper():
    screen = dict(_rules((TEMPLATES / "report.css").read_text(encoding="utf-8")))
    assert re.search(r"overflow-x:\s*auto", screen[".table-scroll"])
    printed = dict(_rules((TEMPLATES / "report_print.css").read_text(encoding="utf-8")))
    assert "overflow: visible" in printed[".table-scroll"]


def test_the_clause_table_and_hashes_are_marked_up_for_a_narrow_screen():
    html = render_html(results_v2())
    assert re.search(r'<div class="table-scroll">\s*<table class="data clauses">', html)
    for sha in ("ab12" * 16, "cd34" * 16):  # model and probe hashes: one hash element each, not text in a squeezed cell
        assert f'<span class="mono hash">{sha}</span>' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html



@pytest.mark.parametrize("make", [results_v2, results_spurious, results_attacks, results_explanations])
def test_every_data_table_sits_in_a_scroll_box(make):
    html = render_html(make())
    # the attack curves' three narrow columns sit side by side in a wrapping flex row instead
    tables = [t for t in re.findall(r'<table class="data[^"]*"', html) if "at-curve" not in t]
    assert tables
    assert re.findall(r'<div class="table-scroll">\s*(<table class="data[^"]*")', html) == tables
