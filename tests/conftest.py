"""Shared fixtures: the sample models and a small synthetic probe."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from auditor.checks.base import CheckContext, Predictions

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_MODELS = {
    "shortcut_cnn": ROOT / "sample_models" / "shortcut_cnn" / "model.yaml",
    "clean_cnn": ROOT / "sample_models" / "clean_cnn" / "model.yaml",
}
SMALL_PROBE = "synth:faces:n=240"
# The costly checks at a test size: the CLI tests exercise the command, not mask learning, attacks or
# attributions (tests/test_spurious_check.py, test_attacks_check.py and test_explanations_check.py run
# those checks on the sample models).
SMALL_PARAMS: dict[str, dict[str, int | str]] = {
    "spurious": {"n_images": 16, "steps": 10},
    "attacks": {"n_images": 16, "steps": 2, "n_blackbox": 4, "max_queries": 20},
    "explanations": {"methods": "saliency,grad_cam", "n_images": 8, "n_group_images": 8, "n_sanity": 4, "ig_steps": 4, "nt_samples": 2, "sanity_stages": 2, "mask_steps": 4,
                     "class_model_steps": 4, "curve_steps": 4},
}
SMALL_CHECKS = ("--budget", "quick", *(arg for check, params in SMALL_PARAMS.items() for key, value in params.items()
                                       for arg in ("--param", f"{check}.{key}={value}")))

torch.set_num_threads(2)


def check_context(module: torch.nn.Module, probe: Any = 160, **kw: Any) -> CheckContext:
    """A check's context for ``module`` (an nn.Module taking [0, 1] pixels) on ``probe`` (a probe or the size
    of a ``synth:faces`` one), its predictions computed; ``kw`` overrides the context's fields."""
    from auditor.models import LoadedModel
    from probes import make_loader, open_probe

    probe = open_probe(f"synth:faces:n={probe}") if isinstance(probe, int) else probe
    with torch.no_grad():
        logits = torch.cat([module.eval()(b.images) for b in make_loader(probe, (64, 64), batch_size=64)]).double().numpy()
    model = LoadedModel(module=module, source="test", form="module", sha256="0")
    fields = dict(model=model, probe=probe, predictions=Predictions(np.arange(len(logits)), logits, probe.table["label"].to_numpy(),
                                                                    logits.argmax(1)),
                  classes=list(probe.classes), positive_class=1, input_size=(64, 64), device=torch.device("cpu"), seed=0,
                  budget="quick", attributes=list(probe.attributes))
    return CheckContext(**{**fields, **kw})


@pytest.fixture(params=sorted(SAMPLE_MODELS))
def sample_model(request) -> Path:
    """Each sample model's spec YAML in turn."""
    return SAMPLE_MODELS[request.param]


@pytest.fixture(scope="module")
def one_thread_module():
    """`one_thread` for a whole module, its module-scoped fixtures included."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One torch thread for the test: on tiny tensors a second thread only adds synchronisation (and
    stalls on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
