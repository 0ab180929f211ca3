"""Model loading: every accepted form, the wrapper's contract, and each refusal with its message."""
from __future__ import annotations

import hashlib
import json
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from safetensors.torch import save_file

import model_fixtures
from auditor.errors import ModelLoadError, UsageError
from auditor.models import AuditModel, LoadedModel, check_model_output, load_model, resolve_device
from model_fixtures import NaNModel, ProjHead, Touch, make_tiny

FIXTURES = model_fixtures.__name__  # importable as this name however pytest put tests/ on the path
TINY_ARCH = f"{FIXTURES}:make_tiny"


@pytest.fixture
def tiny() -> torch.nn.Module:
    return make_tiny()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def script(module: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(module), str(path))
    return path


def write_spec(path: Path, **keys) -> Path:
    path.write_text(yaml.safe_dump(keys), encoding="utf-8")
    return path


# --- forms -------------------------------------------------------------------------------------


def test_scripted_torchscript_gives_the_inner_models_logits(tmp_path, tiny, x):
    model = load_model(str(script(tiny, tmp_path / "m.pt")))
    assert model.form == "torchscript"
    assert isinstance(model.module, AuditModel) and not model.module.training
    torch.testing.assert_close(model.module(x), tiny(x))


def test_traced_torchscript_loads(tmp_path, tiny, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(tiny, x), str(tmp_path / "m.pt"))
    torch.testing.assert_close(load_model(str(tmp_path / "m.pt")).module(x), tiny(x))


def test_torchscript_is_recognised_by_content_whatever_the_extension(tmp_path, tiny):
    assert load_model(str(script(tiny, tmp_path / "model.bin"))).form == "torchscript"


def test_export_program_loads_with_its_input_size(tmp_path, tiny, x):
    torch.export.save(torch.export.export(tiny, (x,)), str(tmp_path / "m.pt2"))
    model = load_model(str(tmp_path / "m.pt2"))
    assert (model.form, model.input_size) == ("export", (16, 16))
    torch.testing.assert_close(model.module(x), tiny(x))


def test_export_with_a_static_batch_takes_any_batch_size(tmp_path, tiny, x):
    torch.export.save(torch.export.export(tiny, (x,)), str(tmp_path / "m.pt2"))  # exported for batch 4
    batch = torch.rand(7, 3, 16, 16)
    torch.testing.assert_close(load_model(str(tmp_path / "m.pt2")).module(batch), tiny(batch))


def test_input_gradients_flow_through_an_exported_model(tmp_path, tiny, x):
    torch.export.save(torch.export.export(tiny, (x,)), str(tmp_path / "m.pt2"))
    xi = x.clone().requires_grad_(True)
    load_model(str(tmp_path / "m.pt2")).module(xi)[:, 0].sum().backward()
    assert xi.grad is not None and xi.grad.abs().sum() > 0


def test_safetensors_with_a_factory_arch_infers_num_classes(tmp_path, x):
    inner = make_tiny(num_classes=5)
    save_file(inner.state_dict(), str(tmp_path / "w.safetensors"))
    model = load_model(str(tmp_path / "w.safetensors"), arch=TINY_ARCH)
    assert (model.form, model.num_classes, model.details["arch"]) == ("state_dict", 5, TINY_ARCH)
    torch.testing.assert_close(model.module(x), inner(x))


def test_num_classes_comes_from_the_head_even_when_file_order_misleads(tmp_path):
    # safetensors stores keys sorted: proj.weight (6 rows) comes after head.weight (5 rows)
    save_file(ProjHead(num_classes=5).state_dict(), str(tmp_path / "w.safetensors"))
    assert load_model(str(tmp_path / "w.safetensors"), arch=f"{FIXTURES}:ProjHead").num_classes == 5


def test_pt_state_dict_with_torchvision_arch_infers_classes_from_fc(tmp_path):
    net = torchvision.models.resnet18(weights=None, num_classes=4).eval()
    torch.save(net.state_dict(), tmp_path / "r.pt")
    model = load_model(str(tmp_path / "r.pt"), arch="torchvision:resnet18")
    assert model.num_classes == 4
    batch = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(model.module(batch), net(batch))


def test_nested_state_dict_with_dataparallel_prefix_is_accepted(tmp_path, tiny, x):
    state = {"module." + k: v for k, v in tiny.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "ckpt.pth")
    torch.testing.assert_close(load_model(str(tmp_path / "ckpt.pth"), arch=TINY_ARCH).module(x), tiny(x))


def test_torchvision_name_with_weights_file(tmp_path):
    net = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    save_file(net.state_dict(), str(tmp_path / "r.safetensors"))
    model = load_model("torchvision:resnet18", weights=str(tmp_path / "r.safetensors"))
    assert (model.form, model.num_classes) == ("torchvision", 3)
    batch = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(model.module(batch), net(batch))


def test_spec_normalises_inside_the_wrapper(tmp_path, tiny, x):
    save_file(tiny.state_dict(), str(tmp_path / "w.safetensors"))
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    spec = write_spec(tmp_path / "m.yaml", model="w.safetensors", arch=TINY_ARCH, mean=mean, std=std)
    expected = tiny((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    torch.testing.assert_close(load_model(str(spec)).module(x), expected)


def test_spec_records_classes_positive_class_size_and_a_hash_of_spec_and_weights(tmp_path, tiny):
    save_file(tiny.state_dict(), str(tmp_path / "w.safetensors"))
    spec = write_spec(tmp_path / "m.yaml", name="tiny", model="w.safetensors", arch=TINY_ARCH,
                      input_size=[16, 16], classes=["a", "b", "c"], positive_class="b")
    model = load_model(str(spec))
    assert (model.form, model.details["inner_form"]) == ("spec", "state_dict")
    assert (model.class_names, model.positive_class, model.input_size, model.num_classes) == (["a", "b", "c"], 1, (16, 16), 3)
    assert model.sha256 == hashlib.sha256(spec.read_bytes() + (tmp_path / "w.safetensors").read_bytes()).hexdigest()
    json.dumps(model.details)


def test_model_sha256_is_the_files_sha256(tmp_path, tiny):
    path = script(tiny, tmp_path / "m.pt")
    assert load_model(str(path)).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_binary_logit_becomes_two_columns_whose_softmax_is_the_sigmoid(tmp_path, x):
    inner = make_tiny(num_classes=1)
    save_file(inner.state_dict(), str(tmp_path / "w.safetensors"))
    model = load_model(str(tmp_path / "w.safetensors"), arch=TINY_ARCH)
    out = model.module(x)
    assert out.shape == (4, 2) and model.num_classes == 2 and model.details["binary_logit"] is True
    torch.testing.assert_close(out.softmax(1)[:, 1], torch.sigmoid(inner(x)[:, 0]))


def test_wrapper_is_in_eval_mode_and_keeps_requires_grad(tmp_path, x):
    save_file(make_tiny().state_dict(), str(tmp_path / "w.safetensors"))
    model = load_model(str(tmp_path / "w.safetensors"), arch=TINY_ARCH)
    assert not model.module.training and all(p.requires_grad for p in model.module.parameters())
    xi = x.clone().requires_grad_(True)
    model.module(xi)[:, 1].sum().backward()
    assert xi.grad is not None and xi.grad.abs().sum() > 0


def test_full_pickle_loads_with_trust_pickle(tmp_path, tiny, x):
    torch.save(tiny, tmp_path / "whole.pt")
    model = load_model(str(tmp_path / "whole.pt"), trust_pickle=True)
    assert model.form == "pickle" and model.details["full_pickle_trusted"] is True
    torch.testing.assert_close(model.module(x), tiny(x))


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_full_pickle_is_refused_without_running_it(tmp_path, writer):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save({"model": Touch(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Touch(marker), protocol=4))
    with pytest.raises(ModelLoadError, match="is a full pickle.*pass --trust-pickle only if you trust its source"):
        load_model(str(path))
    assert not marker.exists()
    pickle.loads(path.read_bytes()) if writer == "pickle.dump" else torch.load(path, weights_only=False)
    assert marker.exists()  # the fixture is live: unpickling it does create the file


def test_garbage_file_is_refused_listing_the_accepted_forms(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"\x80\x02 this is not a model" * 20)
    with pytest.raises(ModelLoadError, match=r"m\.pt cannot be read.*accepted: a TorchScript file"):
        load_model(str(path))


def test_zip_that_is_no_model_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "m.onnx", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ModelLoadError, match="not a TorchScript, torch.export or torch.save"):
        load_model(str(tmp_path / "m.onnx"))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match=r"nope\.pt does not exist"):
        load_model(str(tmp_path / "nope.pt"))


def test_state_dict_without_arch_asks_for_one(tmp_path, tiny):
    save_file(tiny.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelLoadError, match="is a state_dict.*pass --arch"):
        load_model(str(tmp_path / "w.safetensors"))


def test_wrong_arch_names_the_mismatched_keys(tmp_path, tiny):
    save_file(tiny.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelLoadError, match=r"missing keys conv1\.weight.*unexpected keys c1\.bias.*--arch"):
        load_model(str(tmp_path / "w.safetensors"), arch="torchvision:resnet18")


def test_wrong_num_classes_suggests_the_one_in_the_weights(tmp_path, tiny):
    save_file(tiny.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelLoadError, match=r"fc\.weight is \[3, 128\] in the file.*pass --num-classes 3"):
        load_model(str(tmp_path / "w.safetensors"), arch=TINY_ARCH, num_classes=7)


def test_unimportable_factory_is_refused(tmp_path, tiny):
    save_file(tiny.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelLoadError, match="cannot import module 'no_such_pkg.models'"):
        load_model(str(tmp_path / "w.safetensors"), arch="no_such_pkg.models:build")


def test_torchvision_name_without_weights_is_refused():
    with pytest.raises(ModelLoadError, match="no weights can be downloaded here; pass --weights FILE"):
        load_model("torchvision:resnet18")


def test_unknown_torchvision_name_suggests_the_closest(tmp_path):
    save_file({"w": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelLoadError, match="unknown torchvision model 'resnt18'; did you mean torchvision:resnet18"):
        load_model("torchvision:resnt18", weights=str(tmp_path / "w.safetensors"))


def test_spec_with_an_unknown_key_lists_the_valid_keys(tmp_path):
    spec = write_spec(tmp_path / "m.yaml", model="w.safetensors", normalise=True)
    with pytest.raises(ModelLoadError, match="unknown key.*normalise; valid keys: name, model, arch"):
        load_model(str(spec))


def test_spec_naming_a_missing_model_file_says_paths_are_relative_to_it(tmp_path):
    spec = write_spec(tmp_path / "m.yaml", model="gone.safetensors", arch=TINY_ARCH)
    with pytest.raises(ModelLoadError, match=r"names model .*gone\.safetensors, which does not exist.*relative to the spec"):
        load_model(str(spec))


def test_spec_std_must_be_three_positive_numbers(tmp_path):
    spec = write_spec(tmp_path / "m.yaml", model="w.safetensors", std=[0.2, 0, 0.2])
    with pytest.raises(ModelLoadError, match="'std' parameter of model spec .* must be a list of 3 positive numbers"):
        load_model(str(spec))


def test_spec_with_unquoted_yes_no_classes_says_to_quote_them(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text("model: w.safetensors\nclasses: [no, yes]\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="YAML reads unquoted yes/no.*quote the class names"):
        load_model(str(spec))


# --- the validation forward pass ---------------------------------------------------------------


def test_check_model_output_returns_the_class_count(tmp_path, tiny, x):
    model = load_model(str(script(tiny, tmp_path / "m.pt")))
    assert model.num_classes is None
    assert check_model_output(model, x) == 3 and model.num_classes == 3


def test_non_finite_output_is_caught(tmp_path, x):
    model = load_model(str(script(NaNModel(), tmp_path / "nan.pt")))
    with pytest.raises(ModelLoadError, match=r"non-finite logits \(NaN/inf\) for 4 of 4 images"):
        check_model_output(model, x)


def test_wrong_input_size_is_caught_with_the_size_to_pass(tmp_path, tiny):
    model = load_model(str(script(tiny, tmp_path / "m.pt")))
    hint = r"failed on a batch of 2x3x32x32.*runs at 16x16; pass --input-size 16"
    with pytest.raises(ModelLoadError, match=hint) as info:
        check_model_output(model, torch.rand(2, 3, 32, 32))
    assert "\n" not in str(info.value)


def test_wrong_channel_count_is_caught_saying_the_model_takes_one_channel(tmp_path, x):
    model = load_model(str(script(torch.nn.Conv2d(1, 2, 3), tmp_path / "gray.pt")))
    with pytest.raises(ModelLoadError, match="takes 1-channel images but the auditor feeds RGB"):
        check_model_output(model, x)


def test_class_count_disagreeing_with_num_classes_is_caught(tmp_path, tiny, x):
    model = load_model(str(script(tiny, tmp_path / "m.pt")), num_classes=5)
    with pytest.raises(ModelLoadError, match="outputs 3 class logits but .* say 5"):
        check_model_output(model, x)


# --- devices -----------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_a_usage_error():
    with pytest.raises(UsageError, match="CUDA is not available on this machine; pass --device cpu"):
        resolve_device("cuda")


def test_unknown_device_string_is_a_usage_error():
    with pytest.raises(UsageError, match="must be one of auto, cpu, cuda, cuda:N. Got 'gpu'"):
        resolve_device("gpu")


def test_auto_device_is_cuda_when_available_else_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_loaded_model_is_a_dataclass_with_the_documented_fields():
    assert list(LoadedModel.__dataclass_fields__) == [
        "module", "source", "form", "sha256", "input_size", "num_classes", "class_names",
        "positive_class", "mean", "std", "details", "declared_by",
    ]


def test_safetensors_metadata_declares_what_the_file_means_and_a_flag_beats_it(tmp_path, caplog):
    from auditor.models import Declared

    meta = {"classes": json.dumps(["male", "female"]), "mean": "0.485,0.456,0.406", "std": "[0.229, 0.224, 0.225]",
            "input_size": "224"}
    save_file(torchvision.models.resnet18(num_classes=2).state_dict(), str(tmp_path / "w.safetensors"), metadata=meta)
    loaded = load_model("torchvision:resnet18", weights=str(tmp_path / "w.safetensors"))
    assert loaded.class_names == ["male", "female"] and loaded.input_size == (224, 224)
    assert loaded.mean == pytest.approx((0.485, 0.456, 0.406)) and loaded.std == pytest.approx((0.229, 0.224, 0.225))
    assert loaded.declared_by == {"classes": "weights", "mean": "weights", "std": "weights", "input_size": "weights"}
    flagged = load_model("torchvision:resnet18", weights=str(tmp_path / "w.safetensors"),
                         declared=Declared(classes=("female", "male")))
    assert flagged.class_names == ["female", "male"] and flagged.declared_by["classes"] == "flag"
    assert any("overrides" in r.getMessage() and "weights' metadata" in r.getMessage() for r in caplog.records)


def test_unreadable_safetensors_metadata_is_refused_naming_the_file(tmp_path):
    save_file(torchvision.models.resnet18(num_classes=2).state_dict(), str(tmp_path / "w.safetensors"),
              metadata={"mean": "0.4,0.4"})
    with pytest.raises(ModelLoadError, match=r"w.safetensors: its safetensors metadata .*'--mean'"):
        load_model("torchvision:resnet18", weights=str(tmp_path / "w.safetensors"))
