"""`auditor mitigate` end to end on a sample model with tiny settings: the mitigated model is written in a
loadable form, both audits and the comparison are written, nothing is overwritten without --force, and
models whose layers cannot be trained are refused with exit 2."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from auditor.cli import main
from auditor.models import load_model
from tests.conftest import SAMPLE_MODELS

TINY = ["--train", "synth:faces:n=96,seed=1", "--epochs", "1", "--batch-size", "32", "--probe", "synth:faces:n=96",
        "--checks", "group_metrics", "--budget", "quick", "--format", "json,md"]


@pytest.mark.parametrize("method, extra", [("adversarial-training", ["--steps", "2"]),
                                           ("distillation", ["--temperature", "5"]),
                                           ("adversarial-debiasing", ["--bias", "race", "--strength", "0.3"])])
def test_mitigate_writes_the_model_both_audits_and_the_comparison(tmp_path, one_thread, method, extra):
    out = tmp_path / "out"
    code = main(["mitigate", method, "--model", str(SAMPLE_MODELS["clean_cnn"]), *TINY, *extra, "--out", str(out)])
    after = json.loads((out / "after" / "results.json").read_text())
    assert code == {"pass": 0}.get(after["policy"]["verdict"], 1)  # the mitigated model's own gate
    cmp = json.loads((out / "compare.json").read_text())
    assert cmp["header"]["method"] == method and "text" in cmp["accuracy"]
    assert (out / "compare.md").read_text().startswith("## Mitigation comparison")
    before = load_model(str(SAMPLE_MODELS["clean_cnn"])).module.inner.state_dict()
    mitigated = load_model(str(out / "model" / "model.yaml")).module.inner.state_dict()
    assert any(not torch.equal(before[k], mitigated[k]) for k in before)  # it was trained
    assert (out / "checkpoints" / "model" / "last.pt").exists()


def test_an_earlier_mitigation_is_not_overwritten_without_force(tmp_path, one_thread, capsys):
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "model.yaml").write_text("name: earlier\n")
    code = main(["mitigate", "adversarial-training", "--model", str(SAMPLE_MODELS["clean_cnn"]), *TINY, "--out", str(out)])
    assert code == 2 and "pass --force" in capsys.readouterr().err
    assert (out / "model" / "model.yaml").read_text() == "name: earlier\n"


def test_a_torchscript_model_is_refused_with_the_fix(tmp_path, capsys):
    loaded = load_model(str(SAMPLE_MODELS["clean_cnn"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(loaded.module.inner), str(tmp_path / "m.ts"))
    code = main(["mitigate", "distillation", "--model", str(tmp_path / "m.ts"), *TINY, "--out", str(tmp_path / "out")])
    assert code == 2 and "give the state_dict with its architecture" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model").exists()
