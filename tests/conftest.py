"""Shared fixtures: the sample models and a small synthetic probe."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_MODELS = {
    "shortcut_cnn": ROOT / "sample_models" / "shortcut_cnn" / "model.yaml",
    "clean_cnn": ROOT / "sample_models" / "clean_cnn" / "model.yaml",
}
SMALL_PROBE = "synth:faces:n=240"
# The costly checks at a test size: the CLI tests exercise the command, not mask learning or attacks
# (tests/test_spurious_check.py and tests/test_attacks_check.py run those checks on the sample models).
SMALL_CHECKS = ("--budget", "quick", "--param", "spurious.n_images=16", "--param", "spurious.steps=10",
                  "--param", "attacks.n_images=16", "--param", "attacks.steps=2", "--param", "attacks.n_blackbox=4",
                  "--param", "attacks.max_queries=20")

torch.set_num_threads(2)


@pytest.fixture(params=sorted(SAMPLE_MODELS))
def sample_model(request) -> Path:
    """Each sample model's spec YAML in turn."""
    return SAMPLE_MODELS[request.param]


@pytest.fixture
def one_thread():
    """One torch thread for the test: on tiny tensors a second thread only adds synchronisation (and
    stalls on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
