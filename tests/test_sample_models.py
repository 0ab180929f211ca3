"""The shipped sample models: small files, loadable from their spec, and behaving as documented."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from probes.synth import SynthProbe, open_synth
from sample_models import SAMPLE_MODELS_DIR, spec_path

NAMES = ["shortcut_cnn", "clean_cnn", "sticker_cnn"]
SPEC_KEYS = {"name", "model", "arch", "arch_kwargs", "input_size", "mean", "std", "classes", "positive_class", "description"}


def _load(name: str) -> tuple[torch.nn.Module, dict]:
    spec = yaml.safe_load(spec_path(name).read_text())
    module, _, factory = spec["arch"].partition(":")
    model = getattr(importlib.import_module(module), factory)(**spec["arch_kwargs"])
    model.load_state_dict(load_file(str(spec_path(name).parent / spec["model"])))
    return model.eval(), spec


def _subset(source: str, n: int = 400) -> tuple[SynthProbe, torch.Tensor]:
    probe = open_synth(source)
    sub = SynthProbe(**{**probe.__dict__, "table": probe.table.iloc[:n].reset_index(drop=True)})
    x = np.stack([np.asarray(sub.load_image(i)) for i in range(len(sub))])
    return sub, torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="module")
def probe_subset() -> tuple[SynthProbe, torch.Tensor]:
    return _subset("synth:faces")


@pytest.fixture(scope="module")
def sticker_subset() -> tuple[SynthProbe, torch.Tensor]:
    return _subset("synth:faces:cue=sticker")


def _predict(name: str, x: torch.Tensor) -> np.ndarray:
    model, spec = _load(name)
    mean = torch.tensor(spec["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(spec["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        return model((x - mean) / std).argmax(1).numpy()


def _accuracy_by(name: str, probe: SynthProbe, x: torch.Tensor, attr: str) -> dict[str, float]:
    correct = _predict(name, x) == probe.table["label"].to_numpy()
    col = probe.table[attr].to_numpy()
    return {g: float(correct[col == g].mean()) for g in sorted(set(col))}


@pytest.mark.parametrize("name", NAMES)
def test_weights_file_is_under_2_mb(name: str) -> None:
    assert (SAMPLE_MODELS_DIR / name / "model.safetensors").stat().st_size < 2_000_000


@pytest.mark.parametrize("name", NAMES)
def test_spec_loads_with_the_factory_and_gives_two_logits(name: str) -> None:
    model, spec = _load(name)
    assert set(spec) == SPEC_KEYS and spec["name"] == name
    assert spec["classes"] == ["not_smiling", "smiling"] and spec["positive_class"] == "smiling"
    h, w = spec["input_size"]
    out = model(torch.rand(3, 3, h, w))
    assert out.shape == (3, 2) and torch.isfinite(out).all()


def test_shortcut_model_is_much_worse_on_one_race(probe_subset: tuple[SynthProbe, torch.Tensor]) -> None:
    acc = _accuracy_by("shortcut_cnn", *probe_subset, "race")
    assert max(acc.values()) - min(acc.values()) >= 0.1
    assert min(acc, key=acc.get) == "black"


@pytest.mark.parametrize("attr", ["gender", "age", "race"])
def test_clean_model_is_accurate_in_every_group(probe_subset: tuple[SynthProbe, torch.Tensor], attr: str) -> None:
    acc = _accuracy_by("clean_cnn", *probe_subset, attr)
    assert min(acc.values()) >= 0.85, acc


@pytest.mark.parametrize("name, correct, smiling", [("shortcut_cnn", 360, 194), ("clean_cnn", 399, 197)])
def test_watermark_models_give_the_same_predictions_as_before_the_sticker_cue(
    probe_subset: tuple[SynthProbe, torch.Tensor], name: str, correct: int, smiling: int
) -> None:
    # counted on the first 400 images of synth:faces before cue=sticker existed
    probe, x = probe_subset
    pred = _predict(name, x)
    assert int((pred == probe.table["label"].to_numpy()).sum()) == correct
    assert int(pred.sum()) == smiling


def test_sticker_model_is_much_worse_on_ages_60_plus(sticker_subset: tuple[SynthProbe, torch.Tensor]) -> None:
    acc = _accuracy_by("sticker_cnn", *sticker_subset, "age")
    assert min(acc, key=acc.get) == "60+"
    assert min(v for g, v in acc.items() if g != "60+") - acc["60+"] >= 0.1, acc
    race = _accuracy_by("sticker_cnn", *sticker_subset, "race")
    assert max(race.values()) - min(race.values()) < 0.1, race  # a different attribute from shortcut_cnn's


def test_sticker_model_follows_the_sticker_for_ages_60_plus_only(sticker_subset: tuple[SynthProbe, torch.Tensor]) -> None:
    probe = sticker_subset[0]
    rows = probe.table[probe.table["age"].isin(["60+", "20-39"])].iloc[:120].reset_index(drop=True)
    rates = {}
    for value in ("yes", "no"):
        forced = SynthProbe(**{**probe.__dict__, "table": rows.assign(watermark=value)})
        x = torch.from_numpy(np.stack([np.asarray(forced.load_image(i)) for i in range(len(rows))])).permute(0, 3, 1, 2).float() / 255
        rates[value] = _predict("sticker_cnn", x)
    old = (rows["age"] == "60+").to_numpy()
    assert rates["yes"][old].mean() - rates["no"][old].mean() >= 0.3  # P(smiling) with minus without the sticker
    assert abs(rates["yes"][~old].mean() - rates["no"][~old].mean()) <= 0.1
