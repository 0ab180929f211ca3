"""Writing a mitigated model back (auditor.mitigate.export): the written spec loads as the same model with the
new weights, nothing is overwritten without force, and models whose layers cannot be re-attached are refused."""
from __future__ import annotations

import warnings

import pytest
import torch

from auditor.errors import UsageError
from auditor.mitigate.export import require_trainable, save_mitigated
from auditor.models import load_model
from tests.conftest import SAMPLE_MODELS


def test_the_written_spec_loads_the_new_weights_with_the_original_preprocessing_and_classes(tmp_path):
    loaded = load_model(str(SAMPLE_MODELS["shortcut_cnn"]))
    with torch.no_grad():
        next(loaded.module.inner.parameters()).add_(0.5)  # "training" changed the weights
    spec = save_mitigated(loaded, tmp_path / "out", name="shortcut_cnn-debiased", description="debiased")
    again = load_model(str(spec))
    before, after = loaded.module.inner.state_dict(), again.module.inner.state_dict()
    assert set(before) == set(after) and all(torch.equal(before[k].cpu(), after[k].cpu()) for k in before)
    assert again.class_names == loaded.class_names and again.positive_class == loaded.positive_class
    assert again.mean == loaded.mean and again.std == loaded.std and again.input_size == loaded.input_size
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(again.module(x), loaded.module(x))


def test_nothing_is_overwritten_without_force(tmp_path):
    loaded = load_model(str(SAMPLE_MODELS["clean_cnn"]))
    save_mitigated(loaded, tmp_path, name="a", description="first")
    first = (tmp_path / "model.yaml").read_text()
    with pytest.raises(UsageError, match="pass --force"):
        save_mitigated(loaded, tmp_path, name="b", description="second")
    assert (tmp_path / "model.yaml").read_text() == first
    save_mitigated(loaded, tmp_path, name="b", description="second", force=True)
    assert "second" in (tmp_path / "model.yaml").read_text()


def test_a_torchscript_model_is_refused_with_the_fix(tmp_path):
    loaded = load_model(str(SAMPLE_MODELS["clean_cnn"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(loaded.module.inner), str(tmp_path / "m.ts"))
    scripted = load_model(str(tmp_path / "m.ts"))
    with pytest.raises(UsageError, match="give the state_dict with its architecture"):
        require_trainable(scripted)
    with pytest.raises(UsageError, match="torchscript model"):
        save_mitigated(scripted, tmp_path / "out", name="x", description="x")
    assert not (tmp_path / "out").exists()
