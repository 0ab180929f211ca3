"""The preflight verifies what the audit assumes about a model: class order, normalisation, input size.

The planted models are the clean sample CNN re-exported as *bare* files whose conventions differ from
ours: outputs in the reverse order, ImageNet normalisation expected, UTKFace's gender codes. Each is
either audited exactly with no flag, or stopped (exit 2) with a line naming the flag that makes it exact.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from auditor import preflight
from auditor.cli import main
from auditor.models import IMAGENET_MEAN, IMAGENET_STD, load_model
from auditor.preflight import MARGIN, classes_flag, verify_class_order
from probes.synth import open_synth, write_manifest_folder

SPEC = "sample_models/clean_cnn/model.yaml"
PROBE_N = 120


@pytest.fixture(autouse=True)
def _small_preflight_sample(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """64 images per preflight candidate keeps these audits quick; the first test runs the default sample."""
    if "assumed_order_is_verified" not in request.node.name:
        monkeypatch.setattr(preflight, "SAMPLE", 64)


class _Bare(nn.Module):
    """The clean CNN as a bare model: its own normalisation inside, optionally a different convention."""

    def __init__(self, inner: nn.Module, *, outputs: list[int], mean: tuple[float, ...] | None) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("order", torch.tensor(outputs))
        m = torch.tensor(mean if mean is not None else (0.0, 0.0, 0.0)).view(1, 3, 1, 1)
        s = torch.tensor(IMAGENET_STD if mean is not None else (1.0, 1.0, 1.0)).view(1, 3, 1, 1)
        self.register_buffer("in_mean", m)
        self.register_buffer("in_std", s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x * self.in_std + self.in_mean  # undo what the caller applied: the model expects that normalisation
        return self.inner((pixels - 0.5) / 0.25)[:, self.order]


def _bare(tmp: Path, name: str, *, outputs: list[int], imagenet: bool = False) -> str:
    inner = load_model(SPEC).module.inner
    model = _Bare(inner, outputs=outputs, mean=IMAGENET_MEAN if imagenet else None).eval()
    path = tmp / f"{name}.pt"
    torch.jit.save(torch.jit.trace(model, torch.rand(2, 3, 64, 64)), str(path))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("preflight")
    probe = write_manifest_folder(open_synth(f"synth:faces:n={PROBE_N},seed=5"), tmp / "probe")
    utk = tmp / "utkface"
    utk.mkdir()
    synth = open_synth(f"synth:faces:n={PROBE_N},seed=5")
    races = {"white": 0, "black": 1, "asian": 2, "indian": 3}
    for i in range(len(synth)):  # a "gender" label that the clean CNN predicts: its smile, coded 0 for output 0
        row = synth.table.iloc[i]
        code = int(row["label"])
        synth.load_image(i).save(utk / f"{int(row['age_raw'])}_{code}_{races.get(row['race'], 4)}_{i:06d}.jpg", quality=95)
    return {"probe": str(probe), "utkface": str(utk),
            "plain": _bare(tmp, "plain", outputs=[0, 1]),
            "reversed": _bare(tmp, "reversed", outputs=[1, 0]),
            "imagenet": _bare(tmp, "imagenet", outputs=[0, 1], imagenet=True)}


def _audit(tmp: Path, model: str, probe: str, *flags: str) -> tuple[int, dict | None]:
    out = tmp / "out"
    code = main(["audit", model, "--probe", probe, "--checks", "group_metrics", "--format", "json", "--out", str(out),
                 "--param", "group_metrics.n_boot=0", *flags])
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None
    return code, results


def _accuracy(results: dict) -> dict[str, float]:
    groups = results["checks"]["group_metrics"]["by_group"]["race"]
    return {g: round(v["accuracy"]["value"], 6) for g, v in groups.items()}


@pytest.fixture(scope="module")
def truth(files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """Per-race accuracy of the clean CNN audited through its spec (declared classes and normalisation)."""
    code, results = _audit(tmp_path_factory.mktemp("truth"), SPEC, files["probe"])
    assert results is not None and results["model"]["assumptions"]["classes"]["verdict"] == "declared"
    return _accuracy(results)


def test_a_bare_model_in_the_assumed_order_is_verified_and_exact(files, truth, tmp_path):
    code, results = _audit(tmp_path, files["plain"], files["probe"])
    assert code in (0, 1) and results is not None
    assumed = results["model"]["assumptions"]
    assert assumed["classes"]["verdict"] == "verified" and assumed["classes"]["declared_by"] is None
    assert assumed["input_size"]["verdict"] == "verified"  # at 224 px it is at chance
    norm = assumed["normalisation"]  # this CNN barely minds ImageNet's mean/std: nothing to tell them apart by
    assert norm["verdict"] == "undecided" and all(c["best_agreement"] > 0.9 for c in norm["evidence"]["candidates"])
    assert _accuracy(results) == truth


def test_a_bare_model_in_the_reverse_order_stops_naming_the_classes_to_pass(files, tmp_path, capsys):
    code, results = _audit(tmp_path, files["reversed"], files["probe"])
    err = capsys.readouterr().err
    assert code == 2 and results is None
    assert "pass --classes smiling,not_smiling" in err
    assert len([line for line in err.splitlines() if line.startswith("auditor: error")]) == 1


def test_the_reverse_order_passed_as_a_flag_gives_the_true_numbers(files, truth, tmp_path):
    code, results = _audit(tmp_path, files["reversed"], files["probe"], "--classes", "smiling,not_smiling")
    assert results is not None and results["model"]["classes"] == ["smiling", "not_smiling"]
    assert results["model"]["assumptions"]["classes"]["declared_by"] == "flag"
    assert _accuracy(results) == truth


def test_a_model_that_needs_imagenet_normalisation_stops_naming_mean_and_std(files, tmp_path, capsys):
    code, results = _audit(tmp_path, files["imagenet"], files["probe"])
    err = capsys.readouterr().err
    assert code == 2 and results is None
    assert "pass --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225" in err


def test_imagenet_normalisation_passed_as_flags_gives_the_true_numbers(files, truth, tmp_path):
    code, results = _audit(tmp_path, files["imagenet"], files["probe"], "--mean", "0.485,0.456,0.406",
                           "--std", "0.229,0.224,0.225")
    assert results is not None and results["model"]["assumptions"]["normalisation"]["declared_by"] == "flag"
    assert _accuracy(results) == truth


def test_a_bare_utkface_model_on_a_utkface_folder_keeps_the_codes_order_with_no_flag(files, tmp_path):
    code, results = _audit(tmp_path, files["plain"], files["utkface"])
    assert results is not None
    assert results["model"]["classes"] == ["male", "female"]
    classes = results["model"]["assumptions"]["classes"]
    assert classes["verdict"] == "verified" and "codes" in classes["assumed"]
    declared_code, declared = _audit(tmp_path / "declared", files["plain"], files["utkface"], "--classes", "male,female")
    overall = results["checks"]["group_metrics"]["by_group"]
    assert _accuracy(results) == _accuracy(declared)
    assert all(v > 0.8 for v in _accuracy(results).values()), overall  # not one minus the truth


def test_a_declared_order_is_never_second_guessed_beyond_a_warning(files, tmp_path, caplog):
    code, results = _audit(tmp_path, files["plain"], files["probe"], "--classes", "smiling,not_smiling")
    assert results is not None  # the audit runs as declared ...
    classes = results["model"]["assumptions"]["classes"]
    assert classes["verdict"] == "declared" and classes["evidence"]["verdict"] == "contradicted"
    assert any("kept as declared" in r.getMessage() for r in caplog.records)  # ... and says what it found


def test_a_flag_that_contradicts_another_flag_exits_2(files, tmp_path, capsys):
    code, _ = _audit(tmp_path, files["plain"], files["probe"], "--classes", "a,b", "--positive-class", "c")
    assert code == 2 and "--positive-class" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value", [("--mean", "0.5,0.5"), ("--std", "1,0,1"), ("--input-size", "big"),
                                        ("--classes", "a,a")])
def test_a_malformed_model_flag_exits_2_naming_it(files, tmp_path, capsys, flag, value):
    code, results = _audit(tmp_path, files["plain"], files["probe"], flag, value)
    assert code == 2 and results is None and flag in capsys.readouterr().err


# the decision rule on hand-made predictions

def test_order_swap_is_contradicted_when_every_image_says_so():
    y = np.array([0] * 20 + [1] * 20)
    test = verify_class_order(y, 1 - y, 2, 2)
    assert test.verdict == "contradicted" and test.alternative == [1, 0]
    assert test.assumed_agreement == 0.0 and test.alternative_agreement == 1.0


def test_a_constant_predictor_is_undecided_whatever_the_label_mix():
    y = np.array([0] * 30 + [1] * 10)  # always output 0: plain accuracy 0.75 vs 0.25, balanced 0.5 either way
    assert verify_class_order(y, np.zeros(40, dtype=int), 2, 2).verdict == "undecided"


def test_a_gain_below_the_margin_is_not_acted_on():
    y = np.array([0] * 500 + [1] * 500)
    pred = y.copy()
    flip = np.r_[np.arange(0, 275), np.arange(500, 775)]  # 55% wrong: balanced 0.45 vs 0.55 swapped
    pred[flip] = 1 - pred[flip]
    test = verify_class_order(y, pred, 2, 2)
    assert test.alternative_agreement - test.assumed_agreement < MARGIN and test.verdict == "undecided"


def test_three_classes_in_a_rotated_order_are_found_by_assignment():
    y = np.repeat([0, 1, 2], 15)
    test = verify_class_order(y, (y + 1) % 3, 3, 3)
    assert test.verdict == "contradicted" and test.alternative == [1, 2, 0]
    assert classes_flag(["a", "b", "c"], test.alternative, 3) == "--classes c,a,b"


def test_a_correct_order_is_verified_against_its_nearest_rival():
    y = np.repeat([0, 1, 2], 15)
    assert verify_class_order(y, y, 3, 3).verdict == "verified"


def test_a_tiny_probe_cannot_contradict_by_chance():
    y = np.array([0, 0, 1, 1])  # even all four against the assumption: p = 1/16, not below the level
    assert verify_class_order(y, 1 - y, 2, 2).verdict == "undecided"


def test_page_one_says_what_was_assumed_and_what_the_preflight_found(files, tmp_path):
    from auditor.report import render_html
    from auditor.report import render_markdown

    code, results = _audit(tmp_path, files["plain"], files["probe"])
    html = render_html(results)
    header = html[html.index('<header class="report-header">'):html.index("</header>")]
    assert "Output classes" in header and "0 = not_smiling, 1 = smiling" in header
    assert "assumed (the probe&#39;s label names in alphabetical order), verified" in header
    assert 'class="assumption assumption-undecided"' in header  # the normalisation it could not confirm
    assert "was assumed and the probe could not confirm it" in html  # ... also said in the summary
    assert "What the audit took the model to be" in render_markdown(results)
