"""`auditor probe synth` and `auditor probe check`."""
from __future__ import annotations

import json

from auditor.cli import main
from tests.conftest import SAMPLE_MODELS, SMALL_CHECKS


def test_probe_synth_writes_a_manifest_folder_that_probe_check_reads(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["probe", "synth", "--out", str(out), "--n", "40", "--seed", "1"]) == 0
    assert (out / "manifest.csv").is_file()
    assert len(list(out.rglob("*.png"))) == 40
    capsys.readouterr()
    assert main(["probe", "check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "40" in text and "race" in text and "gender" in text


def test_probe_synth_refuses_a_non_empty_folder_without_force(tmp_path, capsys):
    out = tmp_path / "synth"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["probe", "synth", "--out", str(out), "--n", "4"]) == 2
    assert (out / "keep.txt").read_text() == "mine"
    assert "force" in capsys.readouterr().err


def test_written_synth_probe_audits_exactly_like_the_generated_one(tmp_path):
    folder = tmp_path / "synth"
    assert main(["probe", "synth", "--out", str(folder), "--n", "120", "--seed", "0", "--watermark", "0.4"]) == 0
    model = str(SAMPLE_MODELS["shortcut_cnn"])
    main(["audit", model, "--probe", "synth:faces:n=120", "--out", str(tmp_path / "a"), "--device", "cpu", *SMALL_CHECKS])
    main(["audit", model, "--probe", str(folder), "--out", str(tmp_path / "b"), "--device", "cpu", *SMALL_CHECKS])
    a = json.loads((tmp_path / "a" / "results.json").read_text())["checks"]
    b = json.loads((tmp_path / "b" / "results.json").read_text())["checks"]
    assert a["group_metrics"]["by_group"] == b["group_metrics"]["by_group"]
    assert a["group_metrics"]["metrics"] == b["group_metrics"]["metrics"]
    assert a["spurious"]["metrics"] == b["spurious"]["metrics"]  # subject boxes and pixels survive the round trip


def test_probe_synth_draws_the_cue_it_is_asked_for(tmp_path):
    import pandas as pd

    assert main(["probe", "synth", "--out", str(tmp_path / "p"), "--n", "8", "--cue", "sticker"]) == 0
    manifest = pd.read_csv(tmp_path / "p" / "manifest.csv")
    assert set(manifest["cue"]) == {"sticker"}
