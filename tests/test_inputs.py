"""No silent resizing or class guessing: the input size is never the first image's, other sizes are resized
keeping the aspect ratio and counted, unnamed extra outputs are exit 2, and a mitigation that audits the
images it trained on says so."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from auditor.api import AuditConfig, run_audit
from auditor.cli import main
from auditor.mitigate.overlap import image_overlap, overlap_warning
from probes import ProbeDataset, fit_image, open_probe, probe_image_size
from probes.synth import write_manifest_folder
from tests.conftest import SAMPLE_MODELS
from tests.probe_fixtures import write_csv, write_image

HEADER = ["path", "label", "gender", "age", "race"]
RED, BLUE = (230, 20, 20), (20, 20, 230)


def colour_probe(folder, sizes):
    """A manifest probe whose label is the image's colour (``red``/``blue``), image ``i`` of ``sizes[i]`` (W, H)."""
    rows = []
    for i, size in enumerate(sizes):
        label = "red" if i % 2 else "blue"
        write_image(folder / f"img/{i}.png", size=size, color=RED if label == "red" else BLUE)
        rows.append([f"img/{i}.png", label, "male" if i % 4 < 2 else "female", str(20 + i), "white"])
    write_csv(folder / "manifest.csv", HEADER, rows)
    return folder


def colour_model(path, outputs=2, blue=0, red=1, side=64):
    """A TorchScript model that only runs at ``side`` px (flatten + linear) and scores blue on output ``blue``, red on ``red``."""
    linear = nn.Linear(3 * side * side, outputs)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        per_pixel = 10.0 / (side * side)
        linear.weight[blue, 2 * side * side:] = per_pixel  # mean of the blue channel
        linear.weight[red, :side * side] = per_pixel  # mean of the red channel
    torch.jit.script(nn.Sequential(nn.Flatten(), linear)).save(str(path))
    return path


def audit(model, probe, **kw):
    cfg = AuditConfig(model=str(model), probe=str(probe), checks=["group_metrics"], budget="quick", device="cpu",
                      out_dir=None, check_params={"group_metrics": {"min_group_size": 1}}, **kw)
    return run_audit(cfg).results


def accuracy(results):
    return results["checks"]["group_metrics"]["metrics"]["overall"]["accuracy"]["value"]


def test_input_size_is_the_most_common_image_size_not_the_first(tmp_path):
    probe = open_probe(str(colour_probe(tmp_path, [(300, 200)] + [(64, 64)] * 5)))
    assert probe_image_size(probe) == (64, 64)


@pytest.mark.parametrize("order", [[(48, 48), (48, 48), (32, 32), (32, 32)], [(32, 32), (32, 32), (48, 48), (48, 48)]])
def test_a_tie_between_sizes_goes_to_the_smaller_whatever_the_order(tmp_path, order):
    assert probe_image_size(open_probe(str(colour_probe(tmp_path, order)))) == (32, 32)


def test_a_wide_image_is_centre_cropped_not_squashed():
    pattern = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    wide = np.zeros((64, 128, 3), dtype=np.uint8)  # 128 wide, 64 high, the pattern in its middle
    wide[:, 32:96] = pattern
    fitted = np.asarray(fit_image(Image.fromarray(wide), (64, 64)))
    assert np.array_equal(fitted, pattern)


def test_a_tall_image_is_scaled_by_its_shorter_side_then_centre_cropped():
    tall = np.zeros((128, 64, 3), dtype=np.uint8)
    tall[32:96] = 200  # the middle square is grey, the bands above and below black
    img = Image.fromarray(tall)
    fitted = np.asarray(fit_image(img, (32, 32)))
    torchvision_eval = np.asarray(img.resize((32, 64), Image.Resampling.BILINEAR).crop((0, 16, 32, 48)))
    assert np.array_equal(fitted, torchvision_eval)
    assert (fitted[1:-1] == 200).all()  # squashing would have put the black bands in the top and bottom quarters


def test_a_square_image_of_another_size_is_only_scaled():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, size=(32, 32, 3), dtype=np.uint8))
    assert np.array_equal(np.asarray(fit_image(img, (64, 64))), np.asarray(img.resize((64, 64), Image.Resampling.BILINEAR)))


def test_the_loader_keeps_each_image_s_own_size(tmp_path):
    probe = open_probe(str(colour_probe(tmp_path, [(300, 200), (64, 64)])))
    image, _, _, size = ProbeDataset(probe, (64, 64))[0]
    assert size == (300, 200) and image.shape == (3, 64, 64)


def test_an_odd_first_image_leaves_the_predictions_of_the_others_alone_and_is_counted(tmp_path):
    model = colour_model(tmp_path / "m.ts")
    results = audit(model, colour_probe(tmp_path / "probe", [(300, 200)] + [(64, 64)] * 11))
    assert results["model"]["input_size"] == [64, 64]
    assert accuracy(results) == 1.0
    assert results["probe"]["resized"]["n"] == 1
    assert results["probe"]["resized"]["from"] == {"300x200": 1}
    assert "most common image size, 11 of 12" in results["model"]["assumptions"]["input_size"]["assumed"]


def test_a_probe_of_one_size_records_no_resized_image(tmp_path):
    results = audit(colour_model(tmp_path / "m.ts"), colour_probe(tmp_path / "probe", [(64, 64)] * 8))
    assert results["probe"]["resized"]["n"] == 0 and results["probe"]["resized"]["from"] == {}


def test_resized_images_get_a_row_on_page_one():
    from auditor.report._assumptions import resized_rows

    results = {"probe": {"n": 12, "n_skipped": 0, "resized": {"n": 1, "to": [64, 64], "method": "centre crop",
                                                               "from": {"300x200": 1}}}}
    [row] = resized_rows(results)
    assert row["value"] == "1 of 12 probe images" and "300x200 (1)" in row["how"] and "64 x 64 px" in row["how"]


def test_more_outputs_than_probe_classes_without_names_is_exit_2_with_one_line(tmp_path, capsys):
    model = colour_model(tmp_path / "m.ts", outputs=10, blue=3, red=7)
    probe = colour_probe(tmp_path / "probe", [(64, 64)] * 8)
    code = main(["audit", str(model), "--probe", str(probe), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--checks", "group_metrics", "--budget", "quick"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{model} outputs 10 classes but probe {probe} has 2 (blue, red); pass --classes with 10 names" in err


def test_index_labels_on_a_model_with_more_outputs_are_refused_too(tmp_path):
    from auditor.errors import ModelLoadError

    model = colour_model(tmp_path / "m.ts", outputs=10, blue=3, red=7)
    probe = colour_probe(tmp_path / "probe", [(64, 64)] * 8)
    text = (probe / "manifest.csv").read_text().replace(",blue,", ",0,").replace(",red,", ",1,")
    (probe / "manifest.csv").write_text(text)  # labels 0/1: indices, which on this model score 0.0, not 1.0
    with pytest.raises(ModelLoadError, match="outputs 10 classes but probe .* has 2 .*index labels point into them"):
        audit(model, probe)


def test_classes_naming_every_output_map_the_probe_labels_by_name(tmp_path):
    model = colour_model(tmp_path / "m.ts", outputs=10, blue=3, red=7)
    names = ["c0", "c1", "c2", "blue", "c4", "c5", "c6", "red", "c8", "c9"]
    results = audit(model, colour_probe(tmp_path / "probe", [(64, 64)] * 8), classes=names)
    assert results["model"]["classes"] == names
    assert accuracy(results) == 1.0


def test_a_one_logit_binary_model_still_counts_as_two_classes(tmp_path):
    model = tmp_path / "m.ts"
    linear = nn.Linear(3 * 64 * 64, 1)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        linear.weight[0, :64 * 64] = 10.0 / 64 ** 2  # red (class 1 of blue, red) raises the logit
        linear.weight[0, 2 * 64 * 64:] = -10.0 / 64 ** 2
    torch.jit.script(nn.Sequential(nn.Flatten(), linear)).save(str(model))
    assert accuracy(audit(model, colour_probe(tmp_path / "probe", [(64, 64)] * 8))) == 1.0


def test_training_and_audit_on_the_same_folder_overlap_wholly(tmp_path):
    folder = str(colour_probe(tmp_path, [(32, 32)] * 6))
    assert image_overlap(open_probe(folder), open_probe(folder)) == {"n": 6, "n_probe": 6, "n_train": 6, "by": "bytes"}


def test_generated_sets_overlap_by_recipe_and_not_across_seeds():
    same = image_overlap(open_probe("synth:faces:n=20,seed=1"), open_probe("synth:faces:n=20,seed=1"))
    other = image_overlap(open_probe("synth:faces:n=20,seed=1"), open_probe("synth:faces:n=20,seed=2"))
    assert (same["n"], same["by"]) == (20, "recipe")
    assert other["n"] == 0 and overlap_warning(other) is None


def test_a_generated_set_written_to_a_folder_overlaps_it_by_pixels(tmp_path):
    synth = open_probe("synth:faces:n=6,seed=4")
    folder = open_probe(str(write_manifest_folder(synth, tmp_path / "written")))
    assert image_overlap(synth, folder) == {"n": 6, "n_probe": 6, "n_train": 6, "by": "pixels"}


def test_mitigate_warns_when_it_audits_on_its_training_images(caplog):
    from auditor.mitigate.run import MitigateConfig, _overlap

    cfg = MitigateConfig(method="distillation", model=str(SAMPLE_MODELS["clean_cnn"]), train="synth:faces:n=30,seed=5",
                         probe="synth:faces:n=30,seed=5")
    with caplog.at_level(logging.WARNING):
        assert _overlap(cfg) == {"n": 30, "n_probe": 30, "n_train": 30, "by": "recipe"}
    assert "30 of the 30 audit images are also in the training data (by content hash)" in caplog.text
