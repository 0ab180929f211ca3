"""The Python API a notebook uses: `auditor.audit(module_or_path, probe, ...)` -> `AuditResult`."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import auditor
from auditor.api import AuditConfig, ModelOptions, declared_from
from auditor.errors import UsageError
from auditor.validation import ParameterError
from auditor.models import load_model
from tests.conftest import SAMPLE_MODELS

PROBE = "synth:faces:n=120"
FAST = {"group_metrics.n_boot": 50}


@pytest.fixture(scope="module")
def clean() -> torch.nn.Module:
    """clean_cnn's bare network (no normalisation inside), in train mode as a notebook may leave it."""
    return load_model(str(SAMPLE_MODELS["clean_cnn"])).module.inner.train()


@pytest.fixture(scope="module")
def result(clean: torch.nn.Module) -> auditor.AuditResult:
    return auditor.audit(clean, PROBE, classes="not_smiling,smiling", mean=[0.5] * 3, std=(0.25, 0.25, 0.25),
                         checks="group_metrics", budget="quick", params=FAST)


def test_an_in_memory_module_is_audited_with_its_declared_classes(result: auditor.AuditResult) -> None:
    assert result.verdict == "pass" and result.exit_code == 0 and result.passed
    model = result.results["model"]
    assert model["source"] == "<in-memory Sequential>" and model["form"] == "module"
    assert model["classes"] == ["not_smiling", "smiling"]
    assert model["assumptions"]["classes"]["verdict"] == "declared"
    assert len(model["sha256"]) == 64


def test_the_callers_module_is_left_as_found(clean: torch.nn.Module, result: auditor.AuditResult) -> None:
    assert clean.training  # the audit ran on a copy in eval mode
    assert all(p.device.type == "cpu" for p in clean.parameters())


def test_by_group_is_a_dataframe_of_one_scope_with_the_results_numbers(result: auditor.AuditResult) -> None:
    frame = result.by_group("accuracy", "race")
    assert isinstance(frame, pd.DataFrame)
    node = result.results["checks"]["group_metrics"]["by_group"]["race"]
    assert list(frame.index) == list(node)
    for group, row in frame.iterrows():
        assert row["value"] == node[group]["accuracy"]["value"]
        assert [row["ci_low"], row["ci_high"]] == node[group]["accuracy"]["ci"]
        assert row["n"] == node[group]["n"]


def test_by_group_without_a_scope_spans_every_scope(result: auditor.AuditResult) -> None:
    frame = result.by_group("selection_rate")
    assert frame.index.names == ["scope", "group"]
    assert set(frame.index.get_level_values("scope")) == set(result.results["checks"]["group_metrics"]["by_group"])


def test_by_group_names_the_metric_it_does_not_know(result: auditor.AuditResult) -> None:
    with pytest.raises(UsageError, match="did you mean 'accuracy'"):
        result.by_group("acuracy")
    with pytest.raises(UsageError, match="scope 'religion'"):
        result.by_group("accuracy", "religion")


def test_to_json_is_the_results_document(result: auditor.AuditResult, tmp_path: Path) -> None:
    text = result.to_json(tmp_path / "r.json")
    assert json.loads(text) == json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(result.results))


def test_report_writes_an_audit_folder_and_refuses_to_merge_into_one(result: auditor.AuditResult, tmp_path: Path) -> None:
    paths = result.report(tmp_path / "out", "md")
    assert {p.name for p in paths.values()} >= {"results.json", "report.md"}
    with pytest.raises(UsageError, match="--force"):
        result.report(tmp_path / "out", ["md"])
    result.report(tmp_path / "out", ["html"], force=True)
    assert not (tmp_path / "out" / "report.md").exists()  # replaced whole, never merged


def test_paths_and_comma_strings_are_accepted() -> None:
    cfg = AuditConfig(model=Path("m.pt"), probe=Path("probe"), checks="group_metrics", sensitive="gender, race",
                      formats="json,md", classes="a,b", mean="0.5,0.5,0.5", input_size="224", baseline=Path("b.json"))
    assert (cfg.model, cfg.probe, cfg.baseline) == ("m.pt", "probe", "b.json")
    assert cfg.checks == ["group_metrics"] and cfg.sensitive == ["gender", "race"] and cfg.formats == ["json", "md"]
    assert cfg.classes == ["a", "b"] and cfg.mean == (0.5, 0.5, 0.5) and cfg.input_size == 224


def test_an_unknown_option_is_refused_with_the_closest_name(clean: torch.nn.Module) -> None:
    with pytest.raises(UsageError, match="unknown option 'budgett' \\(did you mean 'budget'\\?\\)"):
        auditor.audit(clean, PROBE, budgett="quick")


def test_file_options_do_not_apply_to_a_module(clean: torch.nn.Module) -> None:
    with pytest.raises(UsageError, match="drop arch="):
        auditor.audit(clean, PROBE, arch="torchvision:resnet18", checks="group_metrics")


def test_a_bad_config_value_is_refused_when_the_config_is_built_with_the_one_message() -> None:
    with pytest.raises(ParameterError, match=r"The 'batch_size' parameter of audit must be an int >= 1\. Got 0 instead\."):
        AuditConfig(model="m.pt", batch_size=0)
    with pytest.raises(ParameterError, match=r"The 'formats' parameter of audit must be one of 'json', 'html'"):
        AuditConfig(model="m.pt", formats="json,xml")
    with pytest.raises(UsageError, match="'budget'"):  # a UsageError too: the CLI exits 2
        AuditConfig(model="m.pt", budget="fast")


def test_the_model_flags_are_shared_model_options() -> None:
    cfg = AuditConfig(model="m.pt", classes="a,b", weights=Path("w.pt"))
    assert isinstance(cfg, ModelOptions) and cfg.weights == "w.pt"
    assert declared_from(cfg).classes == ("a", "b")
