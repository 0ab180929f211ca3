"""Attribution maps (auditor.explain.attributions): each method finds the region a hand-made model reads,
batching does not change the maps, and models that cannot be hooked or differentiated get a reason."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from auditor.explain.attributions import METHODS, MethodUnavailable, Settings, attribute, find_conv_layer
from auditor.frozen import frozen
from auditor.models import AuditModel

SIZE = 32
PATCH = (slice(20, 26), slice(4, 10))
AROUND = (slice(18, 28), slice(2, 12))  # the patch grown by 2 px: an occlusion window reaches that far
SETTINGS = Settings(ig_steps=8, nt_samples=4, occlusion_window=4, occlusion_stride=2, batch_size=64, seed=0)

pytestmark = pytest.mark.usefixtures("one_thread")


class PatchConv(nn.Module):
    """A 1x1 convolution that fires only where a pixel is brighter than 0.7 (the patch is 0.9, the rest at
    most 0.5); the class-1 logit is its mean. So only the patch matters, and Grad-CAM can see where."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / 3)
            self.conv.bias.fill_(-0.7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 1000 * torch.relu(self.conv(x)).mean((1, 2, 3)) - 3
        return torch.stack([torch.zeros_like(z), z], 1)


class NoGrad(PatchConv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return super().forward(x)


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * SIZE * SIZE, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def images(n: int = 4) -> torch.Tensor:
    x = torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 0.5
    x[:, :, PATCH[0], PATCH[1]] = 0.9
    return x


def patch_share(maps: torch.Tensor) -> torch.Tensor:
    """Share of the positive attribution around the patch (10% of the image)."""
    a = maps.clamp_min(0)
    return a[:, AROUND[0], AROUND[1]].flatten(1).sum(1) / a.flatten(1).sum(1)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_puts_its_attribution_on_the_patch_the_model_reads(method):
    model, x = AuditModel(PatchConv()), images()
    with frozen(model):
        layer = find_conv_layer(model, None, x)
        maps = attribute(model, method, x, torch.ones(4, dtype=torch.long), SETTINGS, layer=layer)
    assert maps.shape == (4, SIZE, SIZE) and maps.dtype == torch.float32 and bool(torch.isfinite(maps).all())
    assert float(patch_share(maps).min()) > 0.9


@pytest.mark.parametrize("method", METHODS)
def test_maps_do_not_depend_on_the_batch_size(method):
    model, x = AuditModel(PatchConv()), images(6)
    y = torch.ones(6, dtype=torch.long)
    with frozen(model):
        layer = find_conv_layer(model, None, x)
        big = attribute(model, method, x, y, SETTINGS, layer=layer)
        small = attribute(model, method, x, y, Settings(**{**SETTINGS.__dict__, "batch_size": 4}), layer=layer)
    torch.testing.assert_close(big, small, rtol=1e-4, atol=1e-6)


def test_smoothgrad_is_deterministic_under_the_seed_and_changes_with_it():
    model, x = AuditModel(PatchConv()), images()
    y = torch.ones(4, dtype=torch.long)
    with frozen(model):
        a = attribute(model, "smoothgrad", x, y, SETTINGS)
        b = attribute(model, "smoothgrad", x, y, SETTINGS)
        c = attribute(model, "smoothgrad", x, y, Settings(**{**SETTINGS.__dict__, "seed": 1}))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_model_computed_under_no_grad_gets_a_reason_for_gradient_methods_and_occlusion_still_runs():
    model, x = AuditModel(NoGrad()), images()
    y = torch.ones(4, dtype=torch.long)
    with frozen(model):
        for method in ("integrated_gradients", "saliency", "smoothgrad"):
            with pytest.raises(MethodUnavailable, match="not connected to its input"):
                attribute(model, method, x, y, SETTINGS)
        maps = attribute(model, "occlusion", x, y, SETTINGS)
    assert float(patch_share(maps).min()) > 0.9


def test_grad_cam_names_why_it_cannot_run_on_a_model_without_convolutions():
    model, x = AuditModel(Mlp()), images()
    choice = find_conv_layer(model, None, x)
    assert choice.layer is None and "no convolutional layer" in choice.reason
    with frozen(model), pytest.raises(MethodUnavailable, match="no convolutional layer"):
        attribute(model, "grad_cam", x, torch.ones(4, dtype=torch.long), SETTINGS, layer=choice)


def test_grad_cam_takes_the_last_convolution_or_the_one_named():
    inner = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 2))
    model, x = AuditModel(inner), images()
    assert find_conv_layer(model, None, x).name == "inner.2"
    assert find_conv_layer(model, "inner.0", x).name == "inner.0"
    missing = find_conv_layer(model, "inner.9", x)
    assert missing.layer is None and "no layer named 'inner.9'" in missing.reason and "inner.2" in missing.reason


def test_torchscript_and_exported_models_get_a_reason_instead_of_grad_cam():
    x = images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(PatchConv().eval())
        traced = torch.jit.trace(PatchConv().eval(), x)
    exported = torch.export.export(PatchConv().eval(), (x,)).module()
    assert "cannot be hooked" in find_conv_layer(AuditModel(scripted), None, x).reason
    assert "never ran its hooks" in find_conv_layer(AuditModel(traced), None, x).reason
    assert "graph operations" in find_conv_layer(AuditModel(exported, fixed_mode=True, fixed_batch=4), None, x).reason
    # the input-gradient methods still run on all three
    for inner in (scripted, traced, exported):
        model = AuditModel(inner, fixed_mode=inner is exported, fixed_batch=4 if inner is exported else None)
        with frozen(model):
            maps = attribute(model, "saliency", x, torch.ones(4, dtype=torch.long), SETTINGS)
        assert float(patch_share(maps).min()) > 0.9
