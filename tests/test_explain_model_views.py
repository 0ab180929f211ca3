"""First-layer filter views, class-model images and the explanation figures (auditor.explain.model_views,
auditor.explain.figures)."""
from __future__ import annotations

import base64
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixtures import TinyCNN
from safetensors.torch import load_file
from torch import nn

from auditor.explain import figures
from auditor.explain.model_views import (
    ClassModels,
    FilterView,
    _null_sd,
    _shuffled_sd,
    class_model_images,
    first_layer_filters,
)
from auditor.models import AuditModel, load_model
from sample_models.architectures import small_cnn, tiny_resnet

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ("clean_cnn", "shortcut_cnn", "sticker_cnn")


def trained(name: str) -> nn.Module:
    model = small_cnn(num_classes=2)
    model.load_state_dict(load_file(str(ROOT / "sample_models" / name / "model.safetensors")))
    return model.eval()


def fresh(factory, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return factory(num_classes=2).eval()


def smooth_bank(n: int = 16, k: int = 5, noise: float = 0.05) -> torch.Tensor:
    """Oriented ramps and blobs under a little noise: what trained first layers look like."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, k), torch.linspace(-1, 1, k), indexing="ij")
    out = []
    for i in range(n):
        angle = torch.tensor(i * np.pi / n)
        ramp = torch.cos(angle) * xx + torch.sin(angle) * yy
        blob = torch.exp(-(xx**2 + yy**2) * (1 + i % 3))
        base = ramp if i % 2 else blob
        colour = torch.randn(3, 1, 1, generator=g)
        out.append(colour * base + noise * torch.randn(3, k, k, generator=g))
    return torch.stack(out)


def conv_with(weight: torch.Tensor) -> nn.Module:
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[-2:]), bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight)
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def same_view(a: FilterView, b: FilterView) -> bool:
    fields = ("layer", "n_filters", "kernel", "in_channels", "smoothness", "noisy", "verdict", "z")
    return all(getattr(a, f) == getattr(b, f) for f in fields) and torch.equal(a.weights, b.weights)


def png_bytes(uri: str) -> bytes:
    assert uri.startswith("data:image/png;base64,")
    return base64.b64decode(uri.split(",", 1)[1])


# --- first-layer filters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SAMPLES)
def test_trained_sample_models_first_layers_are_not_noisy(name):
    view = first_layer_filters(trained(name))
    assert (view.layer, view.n_filters, view.kernel, view.in_channels) == ("0", 16, (3, 3), 3)
    assert not view.noisy and view.smoothness > 0.05 and view.z > 2.0, view
    assert "learned spatial structure" in view.verdict


@pytest.mark.parametrize(("factory", "seed"), [(small_cnn, 0), (small_cnn, 1), (small_cnn, 2), (tiny_resnet, 0)])
def test_freshly_initialised_first_layers_are_noisy(factory, seed):
    view = first_layer_filters(fresh(factory, seed))
    assert view.noisy and abs(view.smoothness) < 0.1, view
    assert "no smoother than random" in view.verdict and "weak evidence" in view.verdict


def test_random_resnet18_7x7_stem_is_noisy():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    view = first_layer_filters(torchvision.models.resnet18())
    assert (view.layer, view.n_filters, view.kernel) == ("conv1", 64, (7, 7))
    assert view.noisy and abs(view.smoothness) < 0.03
    assert "weak evidence" not in view.verdict  # 7x7 kernels: a clear signal either way


def test_smooth_filters_score_high_and_shuffled_ones_near_zero():
    bank = smooth_bank()
    shuffled = bank.flatten(2)[..., torch.randperm(25, generator=torch.Generator().manual_seed(1))].view_as(bank)
    smooth, noise = first_layer_filters(conv_with(bank)), first_layer_filters(conv_with(shuffled))
    assert smooth.smoothness > 0.7 and not smooth.noisy and smooth.z > 10
    assert abs(noise.smoothness) < 0.15 and noise.noisy


@pytest.mark.parametrize("shape", [(16, 3, 3, 3), (8, 3, 5, 5), (12, 1, 2, 4)])
def test_the_null_spread_matches_shuffling_the_weights(shape):
    patches = (torch.rand(shape, generator=torch.Generator().manual_seed(5)) ** 3).reshape(-1, *shape[-2:])
    analytic, shuffled = _null_sd(patches), _shuffled_sd(patches)
    assert 0.85 < analytic / shuffled < 1.15, (analytic, shuffled)


def test_one_by_one_kernels_have_no_spatial_structure():
    view = first_layer_filters(nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 4, 3)))
    assert (view.layer, view.kernel, view.n_filters) == ("0", (1, 1), 8)
    assert view.smoothness is None and view.noisy is False and view.z is None
    assert "1x1" in view.verdict and "no spatial structure" in view.verdict


def test_greyscale_first_layer_is_found_and_wrapper_names_carry_inner():
    model = nn.Sequential(nn.Conv2d(1, 4, 5), nn.Flatten())
    assert first_layer_filters(model).in_channels == 1
    assert first_layer_filters(AuditModel(trained("clean_cnn"))).layer == "inner.0"


def test_a_model_without_convolutions_gives_none():
    assert first_layer_filters(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))) is None
    assert first_layer_filters(nn.Sequential(nn.Conv2d(4, 3, 3), nn.Conv2d(3, 8, 3))) is None  # not on colour channels


def test_a_per_channel_parameter_is_not_taken_for_the_first_layer():
    class Normalised(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mean = nn.Parameter(torch.full((1, 3, 1, 1), 0.5))
            self.conv = nn.Conv2d(3, 8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x - self.mean).mean(dim=(2, 3))

    assert first_layer_filters(Normalised()).layer == "conv"


def test_flat_and_broken_filters_are_described_not_scored():
    flat = first_layer_filters(conv_with(torch.ones(4, 3, 3, 3)))
    broken = first_layer_filters(conv_with(torch.full((4, 3, 3, 3), float("nan"))))
    assert flat.smoothness is None and not flat.noisy and "flat" in flat.verdict
    assert broken.smoothness is None and "broken" in broken.verdict


def test_torchscript_and_export_give_the_same_view_as_the_module():
    model = TinyCNN()
    x = torch.rand(2, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(model)
        exported = torch.export.export(model, (x,)).module()
    plain = first_layer_filters(model)
    assert not isinstance(dict(exported.named_modules()).get("c1"), nn.Conv2d)
    assert same_view(plain, first_layer_filters(scripted)) and same_view(plain, first_layer_filters(exported))
    assert plain.layer == "c1" and plain.weights.device.type == "cpu"
    assert plain.weights.data_ptr() != model.c1.weight.data_ptr()  # a copy


# --- class-model images ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_wrapper() -> AuditModel:
    return load_model(str(ROOT / "sample_models" / "shortcut_cnn" / "model.yaml")).module


def test_class_models_raise_each_class_probability_well_above_the_start(sample_wrapper, one_thread):
    cm = class_model_images(sample_wrapper, 2, (64, 64), steps=24)
    assert cm.classes == [0, 1] and tuple(cm.images.shape) == (2, 3, 64, 64)
    assert min(cm.start_probability) < 0.2  # the grey start reads as one class
    for start, final in zip(cm.start_probability, cm.final_probability):
        assert final > 0.9 and final > start + 0.05
    assert (cm.forward_passes, cm.backward_passes) == (2 * 25, 2 * 24)


def tiny_wrapper() -> AuditModel:
    torch.manual_seed(0)
    return AuditModel(TinyCNN(3), mean=[0.5] * 3, std=[0.25] * 3)


def test_class_models_are_deterministic_in_range_and_leave_the_model_as_found(one_thread):
    model = tiny_wrapper()
    model.train()
    model.inner.c2.weight.requires_grad_(False)
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    a = class_model_images(model, 3, (16, 16), classes=[2, 0], steps=12, seed=3)
    b = class_model_images(model, 3, (16, 16), classes=[2, 0], steps=12, seed=3)
    c = class_model_images(model, 3, (16, 16), classes=[2, 0], steps=12, seed=4)
    assert torch.equal(a.images, b.images) and a.final_probability == b.final_probability
    assert not torch.equal(a.images, c.images)
    assert a.classes == [2, 0] and a.images.dtype == torch.float32 and a.images.device.type == "cpu"
    assert float(a.images.min()) >= 0.0 and float(a.images.max()) <= 1.0
    assert all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads


def test_class_models_leave_the_model_as_found_when_they_fail():
    model = tiny_wrapper()
    model.train()
    with pytest.raises(ValueError, match="n_classes"):
        class_model_images(model, 5, (16, 16), steps=2)  # the model has 3 outputs
    assert all(m.training for m in model.modules()) and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"n_classes": 0}, "n_classes"), ({"input_size": (16,)}, "input_size"), ({"steps": 0}, "steps"),
    ({"lr": -1.0}, "lr"), ({"l2": 1.0}, "l2"), ({"blur_every": -1}, "blur_every"),
    ({"blur_sigma": float("nan")}, "blur_sigma"),
    ({"clip_quantile": 1.0}, "clip_quantile"), ({"classes": []}, "classes"), ({"classes": [3]}, "classes"),
])
def test_class_model_arguments_are_checked_with_the_fix(kwargs, word):
    args = {"n_classes": 3, "input_size": (16, 16), **kwargs}
    with pytest.raises(ValueError, match=word) as info:
        class_model_images(tiny_wrapper(), args.pop("n_classes"), args.pop("input_size"), **args)
    assert "\n" not in str(info.value) and "pass" in str(info.value)


# --- figures -------------------------------------------------------------------------------------------------

def test_figures_are_png_data_uris_identical_across_calls():
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    maps = {"saliency": rng.random((3, 16, 16)), "integrated_gradients": rng.normal(size=(3, 16, 16)),
            "grad_cam": rng.random((3, 4, 4))}
    labels = {"saliency": "Saliency", "integrated_gradients": "Integrated Gradients", "grad_cam": "Grad-CAM"}
    stages = {"Saliency": [rng.random((16, 16)) for _ in range(4)],
              "Grad-CAM": [rng.random((16, 16)) for _ in range(3)]}
    cm = ClassModels(images=images[:2], classes=[1, 0], final_probability=[0.99, 0.5], forward_passes=0,
                     backward_passes=0)
    colour = first_layer_filters(trained("clean_cnn"))
    grey = first_layer_filters(fresh(lambda num_classes: nn.Sequential(nn.Conv2d(1, 6, 5)), 0))
    draws = {
        "attributions": lambda: figures.attribution_grid(images, maps, labels, ["#0: a", "#1: b", "#2: c"]),
        "sanity": lambda: figures.sanity_grid(images[0], stages, ["original", "head", "conv2", "all"],
                                              {k: k for k in stages}),
        "filters": lambda: figures.filter_grid(colour),
        "grey filters": lambda: figures.filter_grid(grey),
        "class models": lambda: figures.class_model_grid(cm, ["cat", "dog"]),
    }
    for name, draw in draws.items():
        first, second = draw(), draw()
        assert png_bytes(first).startswith(b"\x89PNG\r\n\x1a\n"), name
        assert first == second, name


def test_figures_cap_what_they_draw():
    pytest.importorskip("matplotlib")
    from PIL import Image

    images = torch.rand(20, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    maps = {f"m{i}": np.ones((20, 8, 8)) for i in range(12)}
    wide = Image.open(io.BytesIO(png_bytes(figures.attribution_grid(images, maps, {}, []))))
    cm = ClassModels(images=images, classes=list(range(20)), final_probability=[0.5] * 20, forward_passes=0,
                     backward_passes=0)
    many = Image.open(io.BytesIO(png_bytes(figures.class_model_grid(cm, []))))
    assert wide.size[0] < 1000 and wide.size[1] < 1000
    assert many.size[0] < 1000 and many.size[1] < 400
