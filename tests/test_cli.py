"""The CLI end to end on the sample models: exit codes, files, numbers against a hand computation."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch
import yaml
from safetensors.torch import load_file

from auditor.cli import main
from probes import open_probe
from sample_models import architectures
from tests.conftest import ROOT, SAMPLE_MODELS, SMALL_PROBE, SMALL_CHECKS


def _audit(tmp_path, model, *extra):
    out = tmp_path / "out"
    code = main(["audit", str(model), "--probe", SMALL_PROBE, "--out", str(out), "--device", "cpu", *SMALL_CHECKS, *extra])
    return code, out


def _hand_predictions(spec_path):
    spec = yaml.safe_load(spec_path.read_text())
    net = getattr(architectures, spec["arch"].split(":")[1])(**spec.get("arch_kwargs", {}))
    net.load_state_dict(load_file(spec_path.parent / spec["model"]))
    net.eval()
    probe = open_probe(SMALL_PROBE)
    mean = torch.tensor(spec["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(spec["std"]).view(1, 3, 1, 1)
    images = np.stack([np.asarray(probe.load_image(i), dtype=np.float32) / 255 for i in range(len(probe))])
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    with torch.no_grad():
        preds = net((x - mean) / std).argmax(1).numpy()
    return probe, preds


def test_shortcut_model_fails_the_default_policy_with_exit_1(tmp_path, capsys):
    code, out = _audit(tmp_path, SAMPLE_MODELS["shortcut_cnn"])
    assert code == 1
    assert (out / "results.json").is_file() and (out / "report.html").is_file()
    assert capsys.readouterr().out.startswith("FAIL")


def test_clean_model_passes_the_default_policy_with_exit_0(tmp_path, capsys):
    code, out = _audit(tmp_path, SAMPLE_MODELS["clean_cnn"], "--allow-inconclusive")
    results = json.loads((out / "results.json").read_text())
    assert results["policy"]["verdict"] in ("pass", "inconclusive")
    assert code == 0


def test_group_accuracy_in_results_matches_a_hand_computation(tmp_path):
    _, out = _audit(tmp_path, SAMPLE_MODELS["shortcut_cnn"])
    results = json.loads((out / "results.json").read_text())
    probe, preds = _hand_predictions(SAMPLE_MODELS["shortcut_cnn"])
    labels = probe.table["label"].to_numpy()
    for race, entry in results["checks"]["group_metrics"]["by_group"]["race"].items():
        mask = (probe.table["race"] == race).to_numpy()
        assert entry["n"] == int(mask.sum())
        assert entry["accuracy"]["value"] == round(float((preds[mask] == labels[mask]).mean()), 6)


def test_same_seed_gives_the_same_results_apart_from_created_and_timings(tmp_path):
    def stable(path):
        r = json.loads(path.read_text())
        r.pop("created")
        r.pop("cost")
        r.pop("command")  # differs only in --out
        for c in r["checks"].values():
            c.pop("seconds")
        return r

    _, a = _audit(tmp_path / "a", SAMPLE_MODELS["clean_cnn"], "--seed", "3")
    _, b = _audit(tmp_path / "b", SAMPLE_MODELS["clean_cnn"], "--seed", "3")
    assert stable(a / "results.json") == stable(b / "results.json")


def test_results_json_has_every_top_level_key(tmp_path):
    _, out = _audit(tmp_path, SAMPLE_MODELS["clean_cnn"])
    results = json.loads((out / "results.json").read_text())
    from auditor.results import TOP_LEVEL_KEYS

    assert set(TOP_LEVEL_KEYS) <= set(results)
    assert results["probe"]["n"] == 240
    assert set(results["probe"]["attributes"]) == {"gender", "age", "race"}


def test_missing_model_file_is_exit_2_with_one_line(tmp_path, capsys):
    code, out = _audit(tmp_path, tmp_path / "nope.pt")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "nope.pt" in err
    assert not out.exists()


def test_unknown_check_is_exit_2(tmp_path, capsys):
    code, _ = _audit(tmp_path, SAMPLE_MODELS["clean_cnn"], "--checks", "group_metric")
    assert code == 2
    assert "did you mean 'group_metrics'" in capsys.readouterr().err


def test_report_rerenders_without_rerunning(tmp_path, capsys):
    _, out = _audit(tmp_path, SAMPLE_MODELS["clean_cnn"])
    (out / "report.html").unlink()
    assert main(["report", str(out / "results.json"), "--format", "html,md"]) == 0
    assert (out / "report.html").is_file() and (out / "report.md").is_file()


def test_checks_command_lists_group_metrics(capsys):
    assert main(["checks"]) == 0
    assert "group_metrics" in capsys.readouterr().out


def test_python_dash_m_auditor_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "auditor", "checks"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "group_metrics" in proc.stdout
