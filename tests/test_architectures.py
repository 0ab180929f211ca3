"""Every registered check on six torchvision architectures at 224 px, randomly initialised (``weights=None``,
two classes; nothing is downloaded), each loaded in the three model forms.

One full audit per architecture (all checks, a tiny budget, results and HTML report written), the form
rotating: TorchScript, ``torch.export`` and state_dict + arch. The two other forms of each architecture are
loaded and run once (their logits must match the eager model's). On the eager model: the Grad-CAM layer
finder, the adversarial-debiasing feature-layer finder and its gradient reversal. The white-box attacks run
in every audit, so through TorchScript, ``torch.export`` and eager graphs.

A random model agrees with the labels at chance, so the preflight's class-order evidence is "undecided" and
the audit goes on: the classes, ImageNet mean/std and the input size are declared, as a user would.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import pytest
import torch
import torchvision
import yaml
from safetensors.torch import save_file
from torch import nn

from auditor.api import AuditConfig, run_audit
from auditor.checks import check_names
from auditor.explain.attributions import Settings, attribute, find_conv_layer
from auditor.frozen import frozen
from auditor.mitigate.debiasing import AdversarialDebiasing, extract_features, find_feature_layer
from auditor.models import IMAGENET_MEAN, IMAGENET_STD, AuditModel, Declared, check_model_output, load_model

pytestmark = pytest.mark.slow

SIZE = 224
CLASSES = ["not_smiling", "smiling"]  # the synthetic probe's target classes, in its order
PROBE = "synth:faces:n=40"  # 2 genders x 4 ages x 4 races, every group present
FORMS = ("torchscript", "export", "state_dict")


@dataclass(frozen=True)
class Arch:
    audit_form: str  # the form the full audit loads; the two others are load-only
    grad_cam: str | None  # the layer Grad-CAM explains by default (None: a reason instead)
    feature: str  # the debiasing adversary's layer: the input of this Linear
    width: int  # its feature width


ARCHS = {
    "resnet50": Arch("torchscript", "inner.layer4.2.conv3", "inner.fc", 2048),
    "mobilenet_v3_small": Arch("export", "inner.features.12.0", "inner.classifier.0", 576),
    "efficientnet_b0": Arch("state_dict", "inner.features.8.0", "inner.classifier.1", 1280),
    "convnext_tiny": Arch("torchscript", "inner.features.7.2.block.0", "inner.classifier.2", 768),
    "regnet_y_400mf": Arch("export", "inner.trunk_output.block4.block4-5.f.c.0", "inner.fc", 440),
    "vit_b_16": Arch("state_dict", None, "inner.heads.head", 768),
}
VIT_TOKEN_LAYER = "inner.encoder.layers.encoder_layer_11.ln_1"  # its patch tokens feed the last attention
ALL_METHODS_ON = "efficientnet_b0"  # every explanation method on one model; Saliency and Grad-CAM on the others

PARAMS: dict[str, dict[str, Any]] = {
    "group_metrics": {"n_boot": 50, "n_perm": 200, "min_group_size": 5},
    "spurious": {"n_images": 2, "steps": 2},
    # the black-box attacks only query the model (any architecture alike) and train a 224-px substitute: off
    "attacks": {"n_images": 2, "steps": 1, "restarts": 1, "eps_linf": "4/255", "eps_l2": "0.5", "reference_eps": "4/255",
                "blackbox": False, "min_group_size": 1},
    "explanations": {"methods": "saliency,grad_cam", "n_images": 2, "n_group_images": 2, "n_sanity": 1, "sanity_stages": 1,
                     "ig_steps": 2, "nt_samples": 2, "occlusion_window": 112, "curve_steps": 2, "mask_steps": 2,
                     "class_model_steps": 1, "min_group_size": 1},
}


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, num_classes=2).eval()
    if name == "vit_b_16":  # torchvision zero-initialises the ViT head: every logit and every gradient would be 0
        nn.init.normal_(model.heads.head.weight, std=0.02)
    return model


@dataclass
class Built:
    """One architecture: its eager model, a few images with the eager logits, and its files (written on demand)."""

    name: str
    arch: Arch
    model: nn.Module
    folder: Path
    x: torch.Tensor
    logits: torch.Tensor
    files: dict[str, str] = field(default_factory=dict)

    def file(self, form: str) -> str:
        """The model saved as ``form``. The audit's export takes any batch size; the load-only one is exported
        for batch 1 (a static batch, which the loader chunks to)."""
        if form in self.files:
            return self.files[form]
        if form == "torchscript":  # check_trace off: a ViT traces attention's slow path but checks without grad
            path = self.folder / "model.pt"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.jit.save(torch.jit.trace(self.model, self.x, check_trace=False), str(path))
        elif form == "export":
            path = self.folder / "model.pt2"
            if self.arch.audit_form == "export":
                dynamic = ({0: torch.export.Dim("batch", min=1, max=1024)},)
                program = torch.export.export(self.model, (self.x,), dynamic_shapes=dynamic)
            else:
                program = torch.export.export(self.model, (self.x[:1],))
            torch.export.save(program, str(path))
        elif self.name == "vit_b_16":  # weights only, as torch.save (read with weights_only=True): torchvision:NAME + --weights
            path = self.folder / "weights.pt"
            torch.save(self.model.state_dict(), str(path))
        else:  # weights only, as safetensors: a spec YAML (efficientnet), else FILE + --arch
            path = self.folder / "weights.safetensors"
            save_file(self.model.state_dict(), str(path))
        self.files[form] = str(path)
        return self.files[form]


@pytest.fixture(scope="module", params=list(ARCHS))
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """Each architecture in turn; its files are deleted when the next one starts (a ViT's are 350 MB each)."""
    name = request.param
    model = _build(name)
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model((x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
    folder = tmp_path_factory.mktemp(name)
    yield Built(name, ARCHS[name], model, folder, x, logits)
    for path in folder.iterdir():
        path.unlink()


def _source(b: Built, form: str, out: Path) -> dict[str, Any]:
    """``model`` (and ``arch``/``weights``) for `AuditConfig` or `load_model` to load ``b`` as ``form``."""
    path = b.file(form)
    if form != "state_dict":
        return {"model": path}
    if b.name == "efficientnet_b0":
        spec = out / "model.yaml"
        spec.write_text(yaml.safe_dump({"name": b.name, "model": path, "arch": f"torchvision:{b.name}", "input_size": [SIZE, SIZE],
                                        "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "classes": CLASSES}))
        return {"model": str(spec)}
    if b.name == "vit_b_16":
        return {"model": f"torchvision:{b.name}", "weights": path}
    return {"model": path, "arch": f"torchvision:{b.name}"}


def _non_finite(obj: Any, where: str = "results") -> Iterator[str]:
    """Paths of NaN or infinite numbers in a results dict (before it is written, where they would become null)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _non_finite(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _non_finite(v, f"{where}[{i}]")
    elif isinstance(obj, (float, np.floating)) and not math.isfinite(float(obj)):
        yield where


def _number(entry: Any) -> float:
    """The ``value`` of a metric entry, asserted to be a finite number."""
    value = entry["value"] if isinstance(entry, dict) else entry
    assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), entry
    return float(value)


def test_every_check_runs_on_the_architecture_in_its_audit_form(built: Built, tmp_path: Path) -> None:
    b, form = built, built.arch.audit_form
    params = {k: dict(v) for k, v in PARAMS.items()}
    if b.name == ALL_METHODS_ON:
        params["explanations"]["methods"] = "all"
    if b.name == "vit_b_16":  # the costliest model (about 18 GFLOPs an image): the spurious check on one image
        params["spurious"]["n_images"] = 1
    out = tmp_path / "report"
    cfg = AuditConfig(**_source(b, form, tmp_path), probe=PROBE, classes=CLASSES, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      input_size=SIZE, check_params=params, budget="quick", device="cpu", seed=0, out_dir=out,
                      formats=["json", "html"], batch_size=2)
    outcome = run_audit(cfg)
    r = outcome.results

    assert r["model"]["input_size"] == [SIZE, SIZE] and r["model"]["classes"] == CLASSES
    assert r["model"]["form"] == ("spec" if b.name == "efficientnet_b0" else {"state_dict": "torchvision"}.get(form, form))
    assert r["model"]["assumptions"]["classes"]["evidence"]["verdict"] == "undecided"  # chance: recorded, not a stop
    assert list(r["checks"]) == check_names()
    for name, check in r["checks"].items():
        assert check["status"] == "ok" and check["error"] is None, (name, check["error"])
    assert list(_non_finite(r)) == []
    assert (out / "results.json").is_file()
    html = (out / "report.html").read_text()
    assert "Grad-CAM" in html and "data:image/png;base64," in html

    # group metrics: every group of every attribute, with its numbers
    gm = r["checks"]["group_metrics"]
    for attribute, counts in r["probe"]["attributes"].items():
        assert set(gm["by_group"][attribute]) == set(counts), attribute
        for group, n in counts.items():
            entry = gm["by_group"][attribute][group]
            assert entry["n"] == n and not entry["insufficient_data"]
            for metric in ("accuracy", "error_rate", "selection_rate", "brier"):
                assert 0.0 <= _number(entry[metric]) <= 1.0
        assert _number(gm["metrics"][attribute]["accuracy_difference"]) >= 0.0
    assert set(r["probe"]["attributes"]) == {"gender", "age", "race"}
    assert [len(r["probe"]["attributes"][a]) for a in ("gender", "age", "race")] == [2, 4, 4]

    # spurious: masks learned and scored, figures drawn
    sp = r["checks"]["spurious"]
    assert _number(sp["metrics"]["overall"]["n_images"]) == params["spurious"]["n_images"]
    _number(sp["metrics"]["overall"]["deletion_score"])
    _number(sp["metrics"]["overall"]["max_consistency"])
    assert {"evidence_maps", "examples"} <= set(sp["figures"])

    # attacks: the white-box attacks ran (input gradients through the loaded graph), with numbers
    at = r["checks"]["attacks"]["metrics"]["overall"]
    assert "not_differentiable" not in at and at["masking"]["gradients"]["differentiable"]
    for key in ("clean_accuracy", "robust_accuracy"):
        assert 0.0 <= _number(at[key]) <= 1.0
    for norm in ("linf", "l2"):
        for attack in ("fgsm", "pgd"):
            assert [0.0 <= _number(v) <= 1.0 for v in at["curves"][norm][attack]] == [True]
    assert set(r["checks"]["attacks"]["by_group"]) >= {"gender", "age", "race"}

    # explanations: each method ran or says why it cannot; Grad-CAM by form
    ex = r["checks"]["explanations"]
    overall = ex["metrics"]["overall"]
    methods = overall["methods"]
    grad_cam = methods["grad_cam"]
    for method, entry in methods.items():
        if method == "grad_cam" and entry["status"] != "ok":
            continue
        assert entry["status"] == "ok", (method, entry["reason"])
        assert 0.0 <= _number(entry["deletion_auc"]) <= 1.0 and 0.0 <= _number(entry["insertion_auc"]) <= 1.0
    if b.name == ALL_METHODS_ON:
        assert set(methods) == {"integrated_gradients", "saliency", "smoothgrad", "grad_cam", "occlusion", "perturbation_mask"}
    if form == "torchscript":
        assert grad_cam["status"] == "not_run" and "cannot be hooked" in grad_cam["reason"]
        assert "load the model as a state_dict" in grad_cam["reason"]
    elif form == "export":
        assert grad_cam["status"] == "not_run" and "graph operations" in grad_cam["reason"]
    elif b.arch.grad_cam is None:  # the ViT: its only convolution is the patch embedding
        assert grad_cam["status"] == "not_run", grad_cam
        assert "patch embedding" in grad_cam["reason"] and "--param explanations.layer=" in grad_cam["reason"]
        assert repr(VIT_TOKEN_LAYER) in grad_cam["reason"]
        assert any(n.startswith("Grad-CAM was not run") for n in overall["notes"])
    else:
        assert grad_cam["status"] == "ok" and ex["params"]["layer"] == b.arch.grad_cam
    first = overall["first_layer"]
    assert first is not None and first["in_channels"] == 3
    _number(first["smoothness"])
    assert [0.0 <= _number(p) <= 1.0 for p in overall["class_models"]["final_probability"]] == [True, True]
    assert {"attributions", "sanity_cascade", "first_layer_filters", "class_models"} <= set(ex["figures"])
    figures = [f["data_uri"] if isinstance(f, dict) else f for c in r["checks"].values() for f in c["figures"].values()]
    assert figures and all(f.startswith("data:image/png;base64,") and len(f) > 1000 for f in figures)


def test_the_other_forms_load_and_give_the_eager_logits(built: Built, tmp_path: Path) -> None:
    b = built
    for form in FORMS:
        if form == b.arch.audit_form:
            continue
        src = _source(b, form, tmp_path)
        loaded = load_model(src.pop("model"), **src, device="cpu",
                            declared=Declared(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=(SIZE, SIZE)))
        assert loaded.form == form and loaded.input_size == (SIZE, SIZE)
        assert check_model_output(loaded, b.x[:1]) == 2, form
        with torch.no_grad():
            logits = loaded.module(b.x)
        assert torch.allclose(logits, b.logits, atol=1e-4, rtol=1e-3), (form, logits, b.logits)


def test_layer_finders_grad_cam_and_debiasing_on_the_eager_model(built: Built) -> None:
    b = built
    model = AuditModel(b.model, mean=IMAGENET_MEAN, std=IMAGENET_STD).eval()
    x = b.x
    with frozen(model):
        choice = find_conv_layer(model, None, x)
        if b.arch.grad_cam is None:
            assert choice.layer is None and "--param explanations.layer=NAME" in choice.reason
            assert "'inner.conv_proj', is a patch embedding" in choice.reason and repr(VIT_TOKEN_LAYER) in choice.reason
            choice = find_conv_layer(model, VIT_TOKEN_LAYER, x)  # the layer the reason names works
            assert choice.tokens == (1, 14, 14)
        else:
            assert choice.name == b.arch.grad_cam and choice.tokens is None
        maps = attribute(model, "grad_cam", torch.cat([x[:1], x[:1]]), torch.tensor([0, 1]), Settings(batch_size=2),
                         layer=choice)
    assert maps.shape == (2, SIZE, SIZE) and bool(torch.isfinite(maps).all())
    assert float(maps.flatten(1).std(dim=1).max()) > 0  # a map, not a constant, for at least one class

    name, layer = find_feature_layer(model, None, example=x[:1])
    assert (name, layer.in_features) == (b.arch.feature, b.arch.width)
    assert extract_features(model, None, x[:1]).shape == (1, b.arch.width)  # the default layer, found by a forward
    with AdversarialDebiasing(model, 2, example_batch=x[:1], seed=0) as objective:
        assert (objective.layer_name, objective.feature_width) == (b.arch.feature, b.arch.width)
        loss, logs = objective.loss(model, SimpleNamespace(x=x, y=torch.tensor([0, 1]), bias=torch.tensor([1, 0])), 1.0)
        loss.backward()
    assert math.isfinite(float(loss.detach())) and set(logs) >= {"task_loss", "adversary_loss"}
    first_conv = next(p for p in b.model.parameters() if p.dim() == 4)
    assert first_conv.grad is not None and float(first_conv.grad.abs().sum()) > 0  # the reversal reaches the backbone
    b.model.zero_grad(set_to_none=True)


def test_a_vit_traced_under_no_grad_gets_reasons_where_it_has_no_gradient(tmp_path: Path) -> None:
    """Traced under ``torch.no_grad`` (a common way to save a model), a torchvision ViT keeps attention's fused
    inference kernel, which has no backward: every gradient method must say so and the rest still run. (A small
    ViT of the same class, at 32 px: the graph is what matters, not the size.)"""
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                               mlp_dim=32, num_classes=2).eval()
    nn.init.normal_(vit.heads.head.weight, std=0.5)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(vit, torch.rand(2, 3, 32, 32), check_trace=False), str(tmp_path / "vit.pt"))
    params = {k: dict(v) for k, v in PARAMS.items()}
    params["explanations"]["methods"] = "saliency,grad_cam,occlusion"
    out = tmp_path / "report"
    r = run_audit(AuditConfig(model=str(tmp_path / "vit.pt"), probe=PROBE, classes=CLASSES, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                              input_size=32, check_params=params, budget="quick", device="cpu", out_dir=out,
                              formats=["json", "html"], batch_size=8)).results
    assert {name: c["status"] for name, c in r["checks"].items()} == dict.fromkeys(check_names(), "ok")
    no_backward = "derivative for aten::_native_multi_head_attention is not implemented"
    spurious = r["checks"]["spurious"]["metrics"]
    assert no_backward in spurious["not_differentiable"] and no_backward in spurious["summary"]
    assert spurious["overall"]["n_findings"]["value"] is None and "no input gradient" in spurious["overall"]["n_findings"]["reason"]
    assert no_backward in r["checks"]["attacks"]["metrics"]["overall"]["not_differentiable"]
    methods = r["checks"]["explanations"]["metrics"]["overall"]["methods"]
    assert methods["saliency"]["status"] == "not_run" and no_backward in methods["saliency"]["reason"]
    assert methods["grad_cam"]["status"] == "not_run" and "cannot be hooked" in methods["grad_cam"]["reason"]
    assert methods["occlusion"]["status"] == "ok"
    clause = next(c for c in r["policy"]["clauses"] if c["metric"].startswith("checks.spurious.metrics.overall.n_findings"))
    assert clause["result"] == "insufficient_data"  # not measured: never a pass
    assert "Not measured: the model has no input gradient" in (out / "report.html").read_text()
