"""The explanations check on a sample model and on models that resist explanation: faithful methods beat
the random baseline, randomising the weights changes the maps of the methods that pass, the groups of
every attribute are compared, a method whose maps ignore the weights is flagged, and a model that cannot
be hooked or differentiated gets the methods that can run and a note for the others."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from auditor.checks.explanations import ALL_METHODS, Explanations, parse_methods
from auditor.errors import UsageError
from auditor.models import load_model
from tests.conftest import SAMPLE_MODELS, check_context

SMALL = {"n_images": 48, "n_group_images": 96, "n_sanity": 6, "ig_steps": 8, "nt_samples": 4, "sanity_stages": 2, "mask_steps": 10,
         "class_model_steps": 8, "curve_steps": 8, "min_group_size": 5}
NO_EXTRA = {**SMALL, "n_group_images": 1}  # the groups compared on the images every method ran on
GRADIENT_METHODS = ("integrated_gradients", "saliency", "smoothgrad", "grad_cam")


class BiasOnly(nn.Module):
    """Fixed read-outs of the image plus learned biases: the input gradient depends on no parameter, so a
    gradient map explains nothing that randomising the parameters could change."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.0, 0.1]))
        self.register_buffer("read", torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) / 300)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nchw,kchw->nk", x, self.read) + self.bias


class NoGradient(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.inner(x)


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _methods(result) -> dict:
    return result.metrics["overall"]["methods"]


@pytest.fixture(scope="module")
def shortcut_model() -> nn.Module:
    return load_model(str(SAMPLE_MODELS["shortcut_cnn"]), device="cpu").module


@pytest.fixture(scope="module")
def shortcut(shortcut_model):
    return Explanations(**SMALL).run(check_context(shortcut_model, 160))


def test_a_faithful_method_beats_the_random_baseline_on_deletion(shortcut):
    overall = shortcut.metrics["overall"]
    random = overall["random_baseline"]["deletion_auc"]["value"]
    faithful = [m for m, e in _methods(shortcut).items() if e.get("faithful")]
    assert overall["faithful_methods"]["value"] == len(faithful) >= 3
    assert {"integrated_gradients", "occlusion"} <= set(faithful)
    for m in faithful:
        e = _methods(shortcut)[m]
        assert e["deletion_auc"]["value"] < random and e["deletion_gain"]["ci"][0] > 0
        assert len(e["deletion_curve"]) == len(overall["curve_fractions"]) == SMALL["curve_steps"] + 1


def test_randomising_the_weights_changes_the_maps_of_the_methods_that_pass(shortcut):
    passed = {m: e["sanity"] for m, e in _methods(shortcut).items() if e.get("sanity", {}).get("status") == "passed"}
    assert set(GRADIENT_METHODS) <= set(passed)
    for m, s in passed.items():
        final = s["final_rank_correlation"]["value"]
        assert final < shortcut.params["sanity_threshold"]
        assert s["cascade"][-1]["n_randomised"] > s["cascade"][0]["n_randomised"] == 1, m
    assert _methods(shortcut)["perturbation_mask"]["sanity"]["status"] == "not_run"
    assert shortcut.metrics["overall"]["methods_failing_sanity"]["value"] == 0


def test_the_groups_of_every_attribute_are_compared_with_intervals(shortcut):
    for attribute in ("gender", "age", "race"):
        scope = shortcut.metrics[attribute]
        for key in ("deletion_auc_difference", "insertion_auc_difference", "subject_share_difference"):
            entry = scope[key]
            assert entry["groups_compared"] >= 2, (attribute, key, entry["reason"])
            assert entry["value"] >= 0 and entry["ci"][0] <= entry["value"] <= entry["ci"][1]
            assert entry["method"] == shortcut.metrics["overall"]["reference_method"]
        # every method on n_images; the reference method on n_group_images, which the differences compare
        groups = shortcut.by_group[attribute]
        assert sum(g["n"] for g in groups.values()) == shortcut.params["n_group_images"] == SMALL["n_group_images"]
        assert sum(g["n_all_methods"] for g in groups.values()) == SMALL["n_images"]
        for g in groups.values():
            assert shortcut.metrics["overall"]["reference_method"] in g["methods"]
            assert g["n_all_methods"] == 0 or set(g["methods"]) == set(ALL_METHODS)


def test_the_subject_share_is_measured_from_the_probes_boxes(shortcut):
    for m, e in _methods(shortcut).items():
        share = e["subject_share"]
        assert 0 < share["value"] < 1, m


def test_figures_are_inline_pngs(shortcut):
    assert set(shortcut.figures) == {"attributions", "sanity_cascade", "first_layer_filters", "class_models"}
    assert all(v.startswith("data:image/png;base64,") for v in shortcut.figures.values())
    overall = shortcut.metrics["overall"]
    assert overall["first_layer"]["n_filters"] == 16 and overall["first_layer"]["noisy"] is False
    assert overall["class_models"]["classes"] == ["not_smiling", "smiling"]


def test_a_method_whose_maps_ignore_the_weights_fails_the_sanity_check():
    result = Explanations(**{**NO_EXTRA, "methods": "saliency,integrated_gradients"}).run(check_context(BiasOnly(), 64))
    overall = result.metrics["overall"]
    for m in ("saliency", "integrated_gradients"):
        sanity = overall["methods"][m]["sanity"]
        assert sanity["status"] == "failed" and sanity["final_rank_correlation"]["value"] > 0.99
    assert overall["methods_failing_sanity"] == {"value": 2, "ci": None, "of": 2,
                                                 "names": ["integrated_gradients", "saliency"]}
    assert "failed the sanity check" in overall["summary"]


def test_a_model_without_gradients_gets_occlusion_and_a_reason_for_the_rest(shortcut_model):
    result = Explanations(**NO_EXTRA).run(check_context(NoGradient(shortcut_model), 64))
    methods = _methods(result)
    for m in (*GRADIENT_METHODS, "perturbation_mask"):
        assert methods[m]["status"] == "not_run" and "not connected to its input" in methods[m]["reason"], m
    assert methods["occlusion"]["status"] == "ok" and methods["occlusion"]["sanity"]["status"] in ("passed", "failed")
    assert result.metrics["overall"]["class_models"] is None
    assert any("Class models were not drawn" in n for n in result.metrics["overall"]["notes"])


def test_a_model_without_convolutions_gets_every_method_but_grad_cam(one_thread):
    result = Explanations(**NO_EXTRA).run(check_context(Mlp(), 64))
    methods = _methods(result)
    assert methods["grad_cam"]["status"] == "not_run" and "no convolutional layer" in methods["grad_cam"]["reason"]
    assert all(methods[m]["status"] == "ok" for m in ALL_METHODS if m != "grad_cam")
    assert result.metrics["overall"]["first_layer"] is None
    assert any(n.startswith("Grad-CAM was not run") for n in result.metrics["overall"]["notes"])


def test_a_torchscript_model_gets_the_input_gradient_methods_and_a_note_for_grad_cam(shortcut_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(shortcut_model.inner.eval())
    model = type(shortcut_model)(scripted, mean=shortcut_model.mean.flatten().tolist(), std=shortcut_model.std.flatten().tolist())
    before = {k: v.clone() for k, v in scripted.state_dict().items()}
    result = Explanations(**{**NO_EXTRA, "methods": "saliency,grad_cam"}).run(check_context(model, 64))
    methods = _methods(result)
    assert methods["grad_cam"]["status"] == "not_run" and "cannot be hooked" in methods["grad_cam"]["reason"]
    assert methods["saliency"]["status"] == "ok" and methods["saliency"]["sanity"]["status"] == "passed"
    assert all(torch.equal(scripted.state_dict()[k], v) for k, v in before.items())  # weights restored after the cascade


def test_the_methods_parameter_takes_all_or_a_subset_in_canonical_order():
    assert parse_methods("all") == list(ALL_METHODS)
    assert parse_methods("occlusion, saliency") == ["saliency", "occlusion"]
    for bad in ("", "lime", "all,saliency"):
        with pytest.raises(UsageError, match="'methods' parameter of explanations"):
            parse_methods(bad)


def test_the_same_seed_gives_the_same_numbers(shortcut_model):
    small = {**NO_EXTRA, "n_images": 12, "methods": "smoothgrad,occlusion", "figures": False}
    a = Explanations(**small).run(check_context(shortcut_model, 64)).metrics
    b = Explanations(**small).run(check_context(shortcut_model, 64)).metrics
    assert a == b
    assert np.isfinite(a["overall"]["methods"]["smoothgrad"]["deletion_auc"]["value"])


def test_a_group_difference_is_a_finding_only_when_the_permutation_test_says_it_is_not_chance():
    from auditor.checks.explanations import _finding, _scope

    rng = np.random.default_rng(0)
    labels = np.array(["a"] * 40 + ["b"] * 40, dtype=object)
    shifted = {"deletion_auc": np.r_[rng.normal(0.3, 0.1, 40), rng.normal(0.5, 0.1, 40)],
               "insertion_auc": rng.normal(0.7, 0.3, 80), "subject_share": rng.normal(0.5, 0.3, 80)}
    scope = _scope(labels, shifted, "saliency", 30, True, np.random.default_rng(1))
    real, noise = scope["deletion_auc_difference"], scope["insertion_auc_difference"]
    assert real["lowest"] == "a" and real["highest"] == "b" and real["p_value"] < 0.01
    assert noise["p_value"] > 0.05 and noise["ci"][0] > 0  # a max - min gap's interval sits above 0 even for noise
    real["p_adjusted"], noise["p_adjusted"] = real["p_value"], noise["p_value"]
    assert _finding("race", "deletion_auc_difference", real, 0.1)["text"].startswith("By race, the deletion AUC")
    assert _finding("race", "insertion_auc_difference", noise, 0.0) is None
    assert _finding("race", "deletion_auc_difference", real, 0.5) is None  # below min_difference
    thin = _scope(labels[:50], {k: v[:50] for k, v in shifted.items()}, "saliency", 30, True, np.random.default_rng(1))
    assert thin["deletion_auc_difference"]["value"] is None and "fewer than two groups" in thin["deletion_auc_difference"]["reason"]


class Constant(nn.Module):
    """Answers the same whatever the image: there is nothing to explain."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.3, -0.3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias + 0 * x.mean((1, 2, 3), keepdim=True).flatten(1)


def test_a_model_that_ignores_its_input_has_no_faithful_method_and_no_sanity_verdict(one_thread):
    result = Explanations(**{**NO_EXTRA, "methods": "saliency,occlusion", "n_images": 12}).run(check_context(Constant(), 24))
    overall = result.metrics["overall"]
    assert overall["faithful_methods"]["value"] == 0
    for m in ("saliency", "occlusion"):
        assert overall["methods"][m]["faithful"] is False
        assert overall["methods"][m]["sanity"]["status"] == "not_run" and "constant" in overall["methods"][m]["sanity"]["reason"]
    assert overall["summary"].startswith("0 of 2 methods beat a random ranking")
