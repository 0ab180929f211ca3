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
    assert cmp["overlap"]["n"] == 0 and "images overlap" not in (out / "compare.md").read_text()


def test_training_on_the_audit_images_is_flagged_in_the_comparison(tmp_path, one_thread, caplog):
    out = tmp_path / "out"
    args = [a if a != "synth:faces:n=96,seed=1" else "synth:faces:n=96" for a in TINY]  # --train is the --probe
    main(["mitigate", "distillation", "--model", str(SAMPLE_MODELS["clean_cnn"]), *args, "--out", str(out)])
    cmp = json.loads((out / "compare.json").read_text())
    assert cmp["overlap"]["n"] == cmp["overlap"]["n_probe"] == 96
    assert "96 of the 96 audit images are also in the training data" in caplog.text
    assert "Training and audit images overlap" in (out / "compare.md").read_text()


def test_an_earlier_mitigation_is_not_overwritten_without_force(tmp_path, one_thread, capsys):
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "model.yaml").write_text("name: earlier\n")
    code = main(["mitigate", "adversarial-training", "--model", str(SAMPLE_MODELS["clean_cnn"]), *TINY, "--out", str(out)])
    assert code == 2 and "pass --force" in capsys.readouterr().err
    assert (out / "model" / "model.yaml").read_text() == "name: earlier\n"


@pytest.mark.parametrize("form", [["MODEL"], ["--model", "MODEL"]])  # the argument, and its old spelling
def test_a_torchscript_model_is_refused_with_the_fix(tmp_path, capsys, form):
    loaded = load_model(str(SAMPLE_MODELS["clean_cnn"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(loaded.module.inner), str(tmp_path / "m.ts"))
    model = [str(tmp_path / "m.ts") if w == "MODEL" else w for w in form]
    code = main(["mitigate", "distillation", *model, *TINY, "--out", str(tmp_path / "out")])
    assert code == 2 and "give the state_dict with its architecture" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model").exists()


def test_resume_continues_an_interrupted_mitigation_to_the_weights_of_an_uninterrupted_one(tmp_path, one_thread):
    from auditor.errors import AuditCancelled
    from auditor.mitigate.run import MitigateConfig, run_mitigation

    args = ["mitigate", "adversarial-debiasing", "--model", str(SAMPLE_MODELS["clean_cnn"]), *TINY, "--epochs", "2",
            "--bias", "race"]
    calls = iter(range(1000))
    cfg = MitigateConfig(method="adversarial-debiasing", model=str(SAMPLE_MODELS["clean_cnn"]), train="synth:faces:n=96,seed=1",
                         epochs=2, batch_size=32, probe="synth:faces:n=96", checks=["group_metrics"], budget="quick",
                         formats=["json", "md"], out_dir=tmp_path / "cut")
    with pytest.raises(AuditCancelled):
        run_mitigation(cfg, cancel=lambda: next(calls) >= 4)  # stopped in epoch 2: epoch 1's checkpoint stays
    assert (tmp_path / "cut" / "checkpoints" / "model" / "last.pt").exists()
    assert not (tmp_path / "cut" / "model").exists()
    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) in (0, 1)
    assert main([*args, "--out", str(tmp_path / "whole")]) in (0, 1)
    resumed = load_model(str(tmp_path / "cut" / "model" / "model.yaml")).module.inner.state_dict()
    whole = load_model(str(tmp_path / "whole" / "model" / "model.yaml")).module.inner.state_dict()
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert json.loads((tmp_path / "cut" / "compare.json").read_text())["header"]["settings"]["epochs_run"] == 2


@pytest.mark.parametrize("cfg, message", [
    ({"epochs": 0}, r"^The 'epochs' parameter of mitigate must be an int >= 1\. Got 0 instead\.$"),
    ({"strength": -1.0}, r"^The 'strength' parameter of mitigate must be a float >= 0\. Got -1\.0 instead\.$"),
    ({"debias_mode": "blind"}, "'debias_mode' parameter of mitigate must be one of 'reversal', 'confusion'"),
    ({"keep": "first"}, "'keep' parameter of mitigate must be one of 'best', 'last' or None"),
    ({"method": "pruning"}, "'method' parameter of mitigate must be one of 'adversarial-debiasing'"),
    ({"eps": 1.5}, "'eps' parameter of mitigate must be a float in \\(0, 1\\]"),
    ({"classes": "male"}, "'--classes' parameter of the model options must be at least 2 distinct class names"),
    ({"num_classes": 0}, "'num_classes' parameter of mitigate must be an int >= 1"),
])
def test_bad_mitigation_settings_are_refused_before_anything_is_written(tmp_path, cfg, message):
    from auditor.errors import UsageError
    from auditor.mitigate.run import MitigateConfig, run_mitigation

    args = {"method": "adversarial-debiasing", "model": str(SAMPLE_MODELS["clean_cnn"]), "out_dir": tmp_path / "out", **cfg}
    with pytest.raises(UsageError, match=message):
        run_mitigation(MitigateConfig(**args))
    assert not (tmp_path / "out").exists()


def test_debiasing_keeps_the_last_epoch_and_the_others_the_best_unless_told():
    from auditor.mitigate.run import MitigateConfig, _settings

    assert _settings(MitigateConfig(method="adversarial-debiasing", model="m"))["keep"] == "last"
    assert _settings(MitigateConfig(method="adversarial-debiasing", model="m"))["patience"] is None
    assert _settings(MitigateConfig(method="distillation", model="m"))["keep"] == "best"
    assert _settings(MitigateConfig(method="adversarial-debiasing", model="m", keep="best"))["patience"] == 3


def test_a_torchvision_model_without_an_input_size_is_trained_at_the_probes_size(tmp_path, one_thread):
    import torchvision
    from safetensors.torch import save_file

    save_file(torchvision.models.resnet18(num_classes=2).state_dict(), str(tmp_path / "r18.safetensors"))
    out = tmp_path / "out"
    code = main(["mitigate", "adversarial-debiasing", "--model", "torchvision:resnet18", "--weights",
                 str(tmp_path / "r18.safetensors"), "--num-classes", "2", *TINY, "--out", str(out)])
    assert code in (0, 1)
    loaded = load_model(str(out / "model" / "model.yaml"))
    assert loaded.input_size == (64, 64)  # synth:faces images are 64 x 64; the spec records it
    settings = json.loads((out / "compare.json").read_text())["header"]["settings"]
    assert settings["layer"] == "input of inner.fc"


def test_debiasing_on_training_data_with_one_group_is_refused_in_one_line(tmp_path, capsys):
    from probes.synth import generate_training_set, write_manifest_folder

    one_race = generate_training_set(40, seed=3, group_weights={"race": {"asian": 0, "indian": 0, "white": 0}})
    write_manifest_folder(one_race, tmp_path / "train")
    code = main(["mitigate", "adversarial-debiasing", "--model", str(SAMPLE_MODELS["clean_cnn"]), *TINY,
                 "--train", str(tmp_path / "train"), "--bias", "race", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "one race group only (black)" in err and "--bias" in err
    assert not (tmp_path / "out" / "model").exists()


def _reversed_clean_cnn(tmp_path, *, declare: bool):
    """The clean CNN with its two outputs swapped (output 0 = smiling), as a state_dict and a spec that
    declares that order (``declare``) or leaves it to the auditor's alphabetical assumption."""
    import yaml
    from safetensors.torch import save_file

    weights = load_model(str(SAMPLE_MODELS["clean_cnn"])).module.inner.state_dict()
    for key in ("19.weight", "19.bias"):
        weights[key] = weights[key].flip(0).contiguous()
    save_file(weights, str(tmp_path / "reversed.safetensors"))
    spec = yaml.safe_load((SAMPLE_MODELS["clean_cnn"]).read_text())
    spec.update(name="reversed_cnn", model="reversed.safetensors")
    spec.pop("positive_class")
    if declare:
        spec["classes"] = ["smiling", "not_smiling"]
    else:
        spec.pop("classes")
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "model.yaml"


def test_a_declared_order_unlike_the_alphabetical_one_is_trained_and_written_as_declared(tmp_path, one_thread):
    spec = _reversed_clean_cnn(tmp_path, declare=True)
    out = tmp_path / "out"
    code = main(["mitigate", "adversarial-training", "--model", str(spec), *TINY, "--steps", "2",
                 "--out", str(out)])
    assert code in (0, 1)
    assert load_model(str(out / "model" / "model.yaml")).class_names == ["smiling", "not_smiling"]
    audit = tmp_path / "audit"
    assert main(["audit", str(out / "model" / "model.yaml"), "--probe", "synth:faces:n=96", "--checks", "group_metrics",
                 "--param", "group_metrics.n_boot=0", "--format", "json", "--out", str(audit)]) in (0, 1)
    results = json.loads((audit / "results.json").read_text())
    accuracy = results["checks"]["group_metrics"]["metrics"]["overall"]["accuracy"]["value"]
    assert accuracy > 0.85  # trained and audited in the declared order: one minus this would be < 0.15
    assert results["model"]["assumptions"]["classes"]["evidence"]["verdict"] == "verified"
    after = json.loads((out / "after" / "results.json").read_text())
    assert after["checks"]["group_metrics"]["metrics"]["overall"]["accuracy"]["value"] > 0.85


def test_the_trainer_labels_its_data_in_the_models_declared_order(tmp_path):
    from auditor.mitigate.run import MitigateConfig, _model_and_data

    spec = _reversed_clean_cnn(tmp_path, declare=True)
    loaded, data = _model_and_data(MitigateConfig(method="adversarial-training", model=str(spec),
                                                  train="synth:faces:n=64,seed=1"), torch.device("cpu"))
    truth = load_model(str(SAMPLE_MODELS["clean_cnn"]))
    with torch.no_grad():
        smiling = truth.module(data.images).argmax(dim=1) == 1  # the original model, in its own order
    assert loaded.class_names == ["smiling", "not_smiling"]
    assert ((data.labels == 0) == smiling).float().mean() > 0.85  # label 0 now means smiling, as declared


def test_mitigate_stops_on_a_model_whose_undeclared_order_is_the_reverse(tmp_path, capsys):
    spec = _reversed_clean_cnn(tmp_path, declare=False)
    code = main(["mitigate", "adversarial-training", "--model", str(spec), *TINY, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "pass --classes smiling,not_smiling" in err
    assert not (tmp_path / "out" / "model").exists()
