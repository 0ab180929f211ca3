"""Adversarial debiasing (auditor.mitigate.debiasing): gradient reversal, the confusion loss, the feature layer,
schedules, the balancing weights, and that debiasing lowers what a fresh probe can read of the bias from the
features. (That the debiased shortcut sample model shows a smaller race gap: tests/test_mitigate_shortcut.py.)"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from auditor.mitigate.debiasing import (
    AdversarialDebiasing,
    LayerNotReachable,
    adversary_accuracy,
    find_feature_layer,
    grad_reverse,
    schedule_factor,
)

SIZE = 12


@dataclass
class _Batch:
    x: Tensor
    y: Tensor
    bias: Tensor | None


class _Plain:
    modules: ClassVar[list[nn.Module]] = []

    def loss(self, model: nn.Module, batch: _Batch, progress: float) -> tuple[Tensor, dict[str, float]]:
        return F.cross_entropy(model(batch.x), batch.y), {}


def _cnn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))


class _TinyViT(nn.Module):
    """A patch-embedding convolution, a Linear on the tokens (N x T x D), mean over tokens, a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.mlp = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        return self.head(torch.relu(self.mlp(tokens)).mean(1))


def _stripes(n: int, agree: float, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Colored-stripes images: label = stripe orientation, bias = tint (red/green, jittered) agreeing with it ``agree``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    bias = torch.where(torch.rand(n, generator=g) < agree, y, 1 - y)
    phase = torch.randint(0, 4, (n,), generator=g)
    stripes = ((torch.arange(SIZE)[None, :] + phase[:, None]) % 4 < 2).float()
    pattern = torch.where(y[:, None, None] == 0, stripes[:, :, None].expand(n, SIZE, SIZE),
                          stripes[:, None, :].expand(n, SIZE, SIZE))
    tint = torch.tensor([[1.0, 0.25, 0.25], [0.25, 1.0, 0.25]])[bias]
    tint = (tint + 0.3 * torch.randn(n, 3, generator=g)).clamp(0.05, 1) * (0.8 + 0.4 * torch.rand(n, 1, generator=g))
    x = (0.3 + 0.4 * pattern)[:, None] * tint[:, :, None, None] + 0.1 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    return x.clamp(0, 1), y, bias


def _train(model: nn.Module, objective: Any, x: Tensor, y: Tensor, bias: Tensor, *, epochs: int, seed: int,
           lr: float = 1e-3, batch: int = 64) -> dict[str, float]:
    """A minimal seeded Adam loop over the Objective protocol; the last batch's logs."""
    g = torch.Generator().manual_seed(seed)
    params = list(model.parameters()) + [p for m in objective.modules for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    steps, step, logs = epochs * math.ceil(len(x) / batch), 0, {}
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss, logs = objective.loss(model, _Batch(x[idx], y[idx], bias[idx]), step / steps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    model.eval()
    return logs


def test_grad_reverse_is_identity_forward_and_negated_scaled_backward() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    upstream = torch.randn(4, 3)
    out = grad_reverse(x, 0.7)
    assert torch.equal(out, x)
    out.backward(upstream)
    assert torch.equal(x.grad, upstream * -0.7)


def test_schedules_at_start_middle_end() -> None:
    assert [schedule_factor("constant", p) for p in (0, 0.5, 1)] == [1.0, 1.0, 1.0]
    assert [schedule_factor("linear", p) for p in (0, 0.5, 1)] == [0.0, 0.5, 1.0]
    dann = [schedule_factor("dann", p) for p in (0, 0.5, 1)]
    assert dann[0] == 0.0
    assert dann[1] == pytest.approx(2 / (1 + math.exp(-5)) - 1) and dann[1] == pytest.approx(0.98661, abs=1e-5)
    assert dann[2] == pytest.approx(0.9999092, abs=1e-6)
    objective = AdversarialDebiasing(_cnn(), 2, strength=2.0, schedule="linear")
    assert objective.current_strength(0.25) == 0.5
    with pytest.raises(ValueError, match=r"^The 'schedule' parameter of schedule_factor must be one of 'constant', 'linear', 'dann'\. Got 'cosine'"):
        schedule_factor("cosine", 0.5)


def test_feature_layer_default_named_and_unreachable() -> None:
    model = _cnn()
    example = torch.rand(2, 3, SIZE, SIZE)
    name, layer = find_feature_layer(model, None, example=example)
    assert name == "6" and layer is model[6]  # the head's first Linear: its input is the pooled conv features
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 8), nn.ReLU(), nn.Linear(8, 2))
    assert find_feature_layer(mlp, None, example=example)[0] == "3"  # no convolution: the last Linear's input
    assert find_feature_layer(_TinyViT(), None, example=example)[0] == "head"  # token Linears are passed over
    name, layer = find_feature_layer(model, "5", example=example)
    assert name == "5" and layer is model[5]
    with pytest.raises(LayerNotReachable, match=r"no layer named 'fc'; pass one of 0, 1, 2, 3, 4 as layer="):
        find_feature_layer(model, "fc")
    scripted = torch.jit.script(_cnn())
    with pytest.raises(LayerNotReachable, match="TorchScript program.*pass the eager nn.Module"):
        find_feature_layer(scripted, None)
    exported = torch.export.export(_cnn().eval(), (example,)).module()
    with pytest.raises(LayerNotReachable, match="torch.export program.*pass the eager nn.Module"):
        find_feature_layer(exported, None)
    no_linear = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(LayerNotReachable, match="no nn.Linear head.*layer=<module name>"):
        find_feature_layer(no_linear, None)


def test_objective_logs_hooks_and_closes() -> None:
    model = _cnn()
    x, y, bias = _stripes(16, 0.9, 3)
    objective = AdversarialDebiasing(model, 2, layer="3", example_batch=x[:2], hidden=8)
    assert objective.feature_width == 16 and objective.modules == [objective.adversary]  # 4-D map pooled
    loss, logs = objective.loss(model, _Batch(x, y, bias), 0.5)
    loss.backward()
    assert set(logs) == {"task_loss", "adversary_loss", "adversary_accuracy", "strength"}
    assert model[0].weight.grad is not None and objective.adversary[0].weight.grad is not None
    objective.close()
    assert not model[3]._forward_hooks
    with pytest.raises(ValueError, match="needs batch.bias"):
        AdversarialDebiasing(model, 2).loss(model, _Batch(x, y, None), 0.0)


def test_a_fresh_probe_reads_the_bias_from_features_that_carry_it_and_not_from_features_that_do_not() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y, bias = _stripes(400, 0.95, 0)
        hx, _, hbias = _stripes(200, 0.5, 1)
        torch.manual_seed(0)
        plain = _cnn()
        _train(plain, _Plain(), x, y, bias, epochs=5, seed=0)
        blind = _cnn()
        with torch.no_grad():
            for p in blind.parameters():
                p.zero_()  # constant features: nothing to read
        read = adversary_accuracy(plain, None, hx, hbias, seed=0)
        none = adversary_accuracy(blind, None, hx, hbias, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert read > 0.9  # the tint is in a plainly trained model's features
    assert abs(none - 0.5) < 0.05  # balanced accuracy: chance is 1/K whatever the group sizes


def test_balancing_weights_make_a_rare_code_count_as_much_as_a_common_one() -> None:
    objective = AdversarialDebiasing(_cnn(), 3, bias_counts=torch.tensor([90, 10, 0]))
    assert objective.bias_weight.tolist() == pytest.approx([100 / (2 * 90), 100 / (2 * 10), 0.0])
    assert AdversarialDebiasing(_cnn(), 2).bias_weight is None
    with pytest.raises(ValueError, match=r"^The 'bias_counts' parameter of AdversarialDebiasing must be 2 non-negative counts"):
        AdversarialDebiasing(_cnn(), 2, bias_counts=torch.tensor([5, -1]))
    with pytest.raises(ValueError, match=r"^The 'mode' parameter of AdversarialDebiasing must be one of 'confusion', 'reversal'"):
        AdversarialDebiasing(_cnn(), 2, mode="blind")


def test_confusion_mode_trains_the_adversary_on_detached_features_and_pushes_the_model_to_the_uniform_guess() -> None:
    x, y, bias = _stripes(16, 0.9, 3)
    model = _cnn()
    objective = AdversarialDebiasing(model, 2, mode="confusion", example_batch=x[:2], hidden=8, seed=1)
    loss, logs = objective.loss(model, _Batch(x, y, bias), 1.0)
    loss.backward()
    assert set(logs) == {"task_loss", "confusion_loss", "adversary_loss", "adversary_accuracy", "strength"}
    adv_grad = [p.grad.clone() for p in objective.adversary.parameters()]
    # the adversary's gradient is exactly that of its own cross-entropy on the detached features
    for p in objective.adversary.parameters():
        p.grad = None
    model.zero_grad()
    F.cross_entropy(objective.adversary(objective.features(model, x)), bias).backward()
    for got, want in zip(adv_grad, [p.grad for p in objective.adversary.parameters()], strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    # the confusion term is the cross-entropy to the uniform guess: log K at a uniform adversary
    with torch.no_grad():
        for p in objective.adversary.parameters():
            p.zero_()
    _, logs = objective.loss(model, _Batch(x, y, bias), 1.0)
    assert logs["confusion_loss"] == pytest.approx(math.log(2), abs=1e-6)
    objective.close()


def test_debiasing_lowers_what_a_fresh_probe_reads_of_the_bias_and_keeps_the_task(one_thread) -> None:
    # the tint is independent of the label: a plainly trained model carries it in its features anyway
    x, y, bias = _stripes(400, 0.5, 0)
    hx, hy, hbias = _stripes(200, 0.5, 1)
    read = {}
    for name in ("plain", "debiased"):
        torch.manual_seed(0)
        model = _cnn()
        if name == "plain":
            _train(model, _Plain(), x, y, bias, epochs=40, seed=0, lr=3e-3, batch=32)
        else:
            with AdversarialDebiasing(model, 2, mode="confusion", example_batch=x[:2], seed=0,
                                      bias_counts=torch.bincount(bias)) as objective:
                _train(model, objective, x, y, bias, epochs=40, seed=0, lr=3e-3, batch=32)
        with torch.no_grad():
            assert (model(hx).argmax(1) == hy).float().mean() > 0.95  # the task is kept
        read[name] = adversary_accuracy(model, None, hx, hbias, seed=0)
    assert read["plain"] > 0.85
    assert read["debiased"] < read["plain"] - 0.1
