"""The model-parameter randomisation cascade (auditor.explain.sanity): stages from the top, weights
restored exactly, and rank correlations that tell a map that follows the weights from one that does not."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from auditor.explain.attributions import Settings, attribute
from auditor.explain.sanity import cascade_stages, randomised, rank_correlation, run_cascade
from auditor.frozen import frozen
from auditor.models import AuditModel

pytestmark = pytest.mark.usefixtures("one_thread")


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


class BiasOnly(nn.Module):
    """Logits are fixed linear read-outs of the image plus learned biases: the input gradient does not depend
    on any parameter, so a gradient map cannot change when the parameters are randomised."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.0, 0.5]))
        self.register_buffer("read", torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nchw,kchw->nk", x, self.read) + self.bias


def test_stages_run_from_the_output_layer_down_and_end_with_every_layer_random():
    model = AuditModel(small_net())
    stages = cascade_stages(model, 3)
    assert [s.layer for s in stages] == ["inner.7", "inner.3", "inner.0"]  # linear, then half-way, then all four
    assert [s.n_randomised for s in stages] == [1, 2, 4] and all(s.total == 4 for s in stages)
    assert stages[0].layers == ("inner.7",) and stages[-1].layers == ("inner.7", "inner.3", "inner.1", "inner.0")
    assert len(cascade_stages(model, 50)) == 4
    assert cascade_stages(AuditModel(nn.Flatten()), 3) == []
    with pytest.raises(ValueError, match="n_stages"):
        cascade_stages(model, 0)


def test_randomised_changes_only_the_chosen_layers_and_restores_every_weight_even_after_an_error():
    model = small_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with randomised(model, ("7",), seed=1):
        assert not torch.equal(model[7].weight, before["7.weight"])
        assert torch.equal(model[0].weight, before["0.weight"])
        # a draw keeps the scale of the layer it replaces
        assert 0.5 < float(model[7].weight.detach().std() / before["7.weight"].std()) < 2.0
    with pytest.raises(RuntimeError, match="boom"), randomised(model, ("0", "1", "3", "7"), seed=2):
        raise RuntimeError("boom")
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_randomised_draws_are_seeded():
    model = small_net()
    with randomised(model, ("7",), seed=5):
        a = model[7].weight.clone()
    with randomised(model, ("7",), seed=5):
        b = model[7].weight.clone()
    with randomised(model, ("7",), seed=6):
        c = model[7].weight.clone()
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rank_correlation_is_one_for_the_same_ranking_zero_for_noise_or_a_lost_ranking_undefined_without_one():
    rng = np.random.default_rng(0)
    a = rng.random((3, 16, 16))
    assert np.allclose(rank_correlation(a, a * 5 + 1), 1.0)
    assert np.allclose(rank_correlation(a, -a), 1.0)  # absolute values: a sign flip is the same ranking
    assert np.all(np.abs(rank_correlation(a, rng.random((3, 16, 16)))) < 0.2)
    assert np.array_equal(rank_correlation(a, np.zeros((3, 16, 16))), np.zeros(3))  # the ranking was lost
    assert np.isnan(rank_correlation(np.zeros((3, 16, 16)), a)).all()  # there was no ranking to keep


def test_saliency_of_a_trained_looking_net_changes_under_randomisation_and_of_a_parameter_free_gradient_does_not():
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    settings = Settings(batch_size=64)
    results = {}
    for name, inner in {"net": small_net(), "bias_only": BiasOnly()}.items():
        model = AuditModel(inner)
        with frozen(model):
            y = model(x).argmax(1)
            original = {"saliency": attribute(model, "saliency", x, y, settings).numpy()}
            stages = cascade_stages(model, 2)
            staged = run_cascade(model, stages, 0, lambda: {"saliency": attribute(model, "saliency", x, y, settings).numpy()},
                                 original)
        results[name] = float(staged[-1][0]["saliency"].mean())
        assert staged[-1][1]["saliency"].shape == (16, 16)  # the first image's randomised map, for the figure
    assert results["net"] < 0.5
    assert results["bias_only"] > 0.99
