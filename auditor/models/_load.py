"""Loading the model under audit in any of its accepted forms, and the validation forward pass.

Forms (README "Usage", Models): TorchScript; ``torch.export`` ``.pt2``; a state_dict (``.safetensors``,
or ``.pt``/``.pth`` read with ``weights_only=True``) plus ``--arch``; ``torchvision:NAME`` plus
``--weights``; a model spec YAML naming one of these; a full pickle only with ``trust_pickle``.
The loaded module is an `AuditModel` in eval mode on the device; parameters keep their
``requires_grad`` as loaded (the audit never trains) and input gradients flow through it.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from auditor.audit_model import AuditModel
from auditor.devices import resolve_device
from auditor.errors import ModelLoadError, UsageError
from auditor.model_arch import load_arch, unwrap_state_dict
from auditor.model_check import check_model_output
from auditor.model_declared import Declared, parse_declared
from auditor.model_files import (
    load_export,
    load_torchscript,
    read_safetensors,
    read_safetensors_metadata,
    read_torch_save,
    sha256_files,
    sniff_form,
)
from auditor.model_spec import ModelSpec, is_spec_path, load_spec

__all__ = ["LoadedModel", "AuditModel", "load_model", "module_sha256", "check_model_output", "resolve_device"]

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model ready for the checks, with what is known about it before the first forward pass."""

    module: nn.Module
    source: str
    form: str
    sha256: str
    input_size: tuple[int, int] | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    positive_class: int | str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    declared_by: dict[str, str] = field(default_factory=dict)
    """Who declared each of classes, positive_class, mean, std, input_size: ``flag``, ``spec``, ``export``, ``weights``."""


@dataclass
class _Inner:
    module: nn.Module
    form: str
    files: list[Path]
    head_width: int | None = None
    export_shape: list[int | None] | None = None
    full_pickle: bool = False
    metadata: dict[str, str] = field(default_factory=dict)  # a safetensors header's metadata


WEIGHTS_KEYS = ("classes", "positive_class", "mean", "std", "input_size")
"""Keys a safetensors file's metadata may declare (strings: ``"male,female"`` or a JSON list)."""


def _weights_declared(metadata: dict[str, str], path: Path | None) -> Declared:
    """What a safetensors header declares, read like the flags; a bad value is a `ModelLoadError` naming it."""
    given = {}
    for key in WEIGHTS_KEYS:
        raw = metadata.get(key)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        given[key] = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if not given:
        return Declared()
    try:
        return parse_declared(**given)
    except UsageError as e:
        raise ModelLoadError(f"{path}: its safetensors metadata does not read as a model declaration ({e}); fix the "
                             "metadata or override it with the flag") from None


def _state_dict_model(
    state_obj: Any, source: str, arch: str | None, num_classes: int | None, arch_kwargs: dict[str, Any]
) -> tuple[nn.Module, int | None]:
    state = unwrap_state_dict(state_obj, source)
    if arch is None:
        raise ModelLoadError(
            f"{source} is a state_dict (weights only), so its architecture is unknown; pass --arch torchvision:NAME "
            "or --arch package.module:factory (or a model spec with arch:)"
        )
    return load_arch(arch, state, source, num_classes, arch_kwargs)


def _load_inner(
    target: str, *, arch: str | None, weights: str | None, num_classes: int | None,
    arch_kwargs: dict[str, Any], trust_pickle: bool, device: torch.device,
) -> _Inner:
    if target.startswith("torchvision:"):
        if weights is None:
            raise ModelLoadError(f"{target}: no weights can be downloaded here; pass --weights FILE (a state_dict)")
        if arch is not None and arch != target:
            raise UsageError(f"--arch {arch} conflicts with MODEL {target}; drop --arch")
        wpath = Path(weights)
        form = sniff_form(wpath)
        pickled = False
        meta: dict[str, str] = {}
        if form == "safetensors":
            state: Any = read_safetensors(wpath)
            meta = read_safetensors_metadata(wpath)
        elif form == "torch_save":
            state, pickled = read_torch_save(wpath, trust_pickle=trust_pickle)
        else:
            raise ModelLoadError(f"--weights {wpath} is a {form} file; pass a state_dict (.safetensors or .pt)")
        module, width = _state_dict_model(state, str(wpath), target, num_classes, arch_kwargs)
        return _Inner(module, "torchvision", [wpath], head_width=width, full_pickle=pickled, metadata=meta)
    path = Path(target)
    if weights is not None:
        raise UsageError(f"--weights is only for MODEL torchvision:NAME; {path} already holds the weights, drop --weights")
    form = sniff_form(path)
    if form in ("torchscript", "export") and arch is not None:
        raise UsageError(f"--arch is only for state_dicts; {path} is a {form} model, drop --arch")
    if form == "torchscript":
        return _Inner(load_torchscript(path, device), "torchscript", [path])
    if form == "export":
        module, shape = load_export(path, device)
        return _Inner(module, "export", [path], export_shape=shape)
    meta = {}
    if form == "safetensors":
        obj, pickled = read_safetensors(path), False
        meta = read_safetensors_metadata(path)
    else:
        obj, pickled = read_torch_save(path, trust_pickle=trust_pickle)
    if isinstance(obj, nn.Module):
        if arch is not None:
            raise UsageError(f"--arch is only for state_dicts; {path} holds a whole pickled model, drop --arch")
        return _Inner(obj, "pickle", [path], full_pickle=True)
    module, width = _state_dict_model(obj, str(path), arch, num_classes, arch_kwargs)
    return _Inner(module, "state_dict", [path], head_width=width, full_pickle=pickled, metadata=meta)


def module_sha256(module: nn.Module) -> str:
    """sha256 of an in-memory module: its class name, then each state_dict entry's name, dtype, shape and bytes."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _module_inner(module: nn.Module, arch: str | None, weights: str | None, num_classes: int | None) -> _Inner:
    """An in-memory ``nn.Module`` (a notebook's model), audited as a copy so the caller's object is left as found."""
    for flag, value in (("arch", arch), ("weights", weights), ("num_classes", num_classes)):
        if value is not None:
            raise UsageError(f"{flag}= is for models loaded from files; an nn.Module already has its architecture and "
                             f"weights, drop {flag}=")
    if isinstance(module, torch.jit.ScriptModule):
        inner: nn.Module = module  # scripted modules cannot always be deep-copied; the wrapper only reads them
    else:
        try:
            inner = copy.deepcopy(module)
        except Exception as exc:  # e.g. a module holding an open file or a lock
            raise ModelLoadError(f"the nn.Module {type(module).__name__} cannot be copied for the audit ({exc}); save it "
                                 "with torch.jit.script or as a state_dict and pass the file") from None
    return _Inner(inner, "module", [])


def _merge(flag: str, given: Any, from_spec: Any, spec: ModelSpec) -> Any:
    if given is not None and from_spec is not None and given != from_spec:
        logger.warning("--%s %s overrides %r from model spec %s", flag, given, from_spec, spec.path)
    return given if given is not None else from_spec


def load_model(
    source: str | nn.Module,
    *,
    arch: str | None = None,
    weights: str | None = None,
    num_classes: int | None = None,
    trust_pickle: bool = False,
    device: torch.device | str = "cpu",
    declared: Declared | None = None,
) -> LoadedModel:
    """Load ``source`` (a file, ``torchvision:NAME``, a spec YAML, or an in-memory ``nn.Module``, which is
    copied) as an `AuditModel` on ``device``.

    ``declared`` holds the flags ``--classes``, ``--positive-class``, ``--mean``, ``--std`` and
    ``--input-size``; each beats the spec's key (with a warning). Raises `ModelLoadError` with a
    one-line reason and fix when it cannot be loaded, and `UsageError` for arguments that do not
    apply to the form found or contradict each other.
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    flags = (declared or Declared()).validated()
    if flags.classes is not None and num_classes is not None and max(num_classes, 2) != len(flags.classes):
        raise UsageError(f"--classes names {len(flags.classes)} classes but --num-classes is {num_classes}; drop one")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
        raise UsageError(f"The 'num_classes' parameter of load_model must be a positive integer. Got {num_classes!r} instead.")
    if isinstance(source, nn.Module):
        return _finish(_module_inner(source, arch, weights, num_classes), f"<in-memory {type(source).__name__}>",
                       None, flags, {"name": type(source).__name__}, {}, None, None, dev)
    source = str(source)
    spec = load_spec(source) if is_spec_path(source) else None
    details: dict[str, Any] = {}
    arch_kwargs: dict[str, Any] = {}
    if spec is not None:
        arch = _merge("arch", arch, spec.arch, spec)
        weights = _merge("weights", weights, spec.weights, spec)
        num_classes = _merge("num-classes", num_classes, spec.num_classes, spec)
        arch_kwargs = dict(spec.arch_kwargs)
        details.update({"spec": str(spec.path), "model": spec.model, "name": spec.name, "description": spec.description})
        if spec.classes is not None and num_classes is not None and max(num_classes, 2) != len(spec.classes):
            raise ModelLoadError(
                f"model spec {spec.path} names {len(spec.classes)} classes but --num-classes is {num_classes}; drop one"
            )
        for key, ref in (("model", spec.model), ("weights", weights)):
            if ref is not None and not ref.startswith("torchvision:") and not Path(ref).exists():
                raise ModelLoadError(
                    f"model spec {spec.path} names {key} {ref}, which does not exist; fix {key!r} (relative to the spec)"
                )
    inner = _load_inner(
        spec.model if spec is not None else source, arch=arch, weights=weights, num_classes=num_classes,
        arch_kwargs=arch_kwargs, trust_pickle=trust_pickle, device=dev,
    )
    return _finish(inner, source, spec, flags, details, arch_kwargs, arch, num_classes, dev)


def _finish(inner: _Inner, source: str, spec: ModelSpec | None, flags: Declared, details: dict[str, Any],
            arch_kwargs: dict[str, Any], arch: str | None, num_classes: int | None, dev: torch.device) -> LoadedModel:
    """The loaded module wrapped with what the flags, spec and weights declare."""
    files = ([spec.path] if spec is not None else []) + inner.files
    if inner.form == "module":
        sha, per_file = module_sha256(inner.module), {}
    else:
        sha, per_file = sha256_files(files)
    facts = _declared_facts(flags, spec, _weights_declared(inner.metadata, inner.files[-1] if inner.files else None))
    declared_by = {k: who for k, (_, who) in facts.items() if who is not None}
    input_size = facts["input_size"][0]
    fixed_batch = None
    if inner.export_shape is not None:
        details["export_input_shape"] = inner.export_shape
        shape = inner.export_shape
        if len(shape) == 4 and shape[2] is not None and shape[3] is not None and input_size is None:
            input_size = (shape[2], shape[3])
            declared_by["input_size"] = "export"
        fixed_batch = shape[0] if shape else None  # a static batch size, or None where it is dynamic
    classes = facts["classes"][0]
    if classes is not None and num_classes is not None and max(num_classes, 2) != len(classes) and facts["classes"][1] == "flag":
        raise UsageError(f"--classes names {len(classes)} classes but the model spec {spec.path if spec else ''} says "
                         f"num_classes {num_classes}; drop num_classes from the spec or fix --classes")
    if classes is not None:
        num_classes = len(classes)
    if num_classes is None and inner.head_width is not None:
        num_classes = inner.head_width
        details["num_classes_from"] = "weights"
    if num_classes == 1:
        num_classes = 2  # a binary logit: the wrapper returns two columns
    if arch is not None:
        details["arch"] = arch
    if arch_kwargs:
        details["arch_kwargs"] = arch_kwargs
    if inner.full_pickle:
        details["full_pickle_trusted"] = True
    if per_file:
        details["files"] = per_file
    details["params"] = sum(p.numel() for p in inner.module.parameters())
    details = {k: v for k, v in details.items() if v is not None}
    mean, std = facts["mean"][0], facts["std"][0]
    wrapper = AuditModel(
        inner.module,
        mean=mean,
        std=std,
        fixed_batch=fixed_batch,
        fixed_mode=inner.form == "export",
        details=details,
    ).to(dev)
    wrapper.eval()
    form = inner.form
    if spec is not None:
        details["inner_form"] = inner.form
        form = "spec"
    logger.info("loaded %s as %s (%s parameters) on %s", source, form, details["params"], dev)
    return LoadedModel(
        module=wrapper, source=source, form=form, sha256=sha, input_size=input_size, num_classes=num_classes,
        class_names=list(classes) if classes is not None else None,
        positive_class=_positive(facts["positive_class"][0], classes), mean=mean, std=std, details=details,
        declared_by=declared_by,
    )


def _declared_facts(flags: Declared, spec: ModelSpec | None,
                    weights: Declared | None = None) -> dict[str, tuple[Any, str | None]]:
    """Each declarable fact as ``(value, "flag" | "spec" | "weights" | None)``: a flag beats the spec, which
    beats the weights' metadata (each override with a warning)."""
    out: dict[str, tuple[Any, str | None]] = {}
    weights = weights or Declared()
    for key in ("classes", "positive_class", "mean", "std", "input_size"):
        given = getattr(flags, key)
        from_spec = getattr(spec, key) if spec is not None else None
        from_weights = getattr(weights, key)
        if key == "classes" and from_spec is not None:
            from_spec = tuple(from_spec)
        if key == "input_size" and isinstance(from_weights, int):
            from_weights = (from_weights, from_weights)
        if given is not None:
            if spec is not None and from_spec is not None and given != from_spec:
                logger.warning("--%s %s overrides %r from model spec %s", key.replace("_", "-"), given, from_spec, spec.path)
            elif from_weights is not None and given != from_weights:
                logger.warning("--%s %s overrides %r from the weights' metadata", key.replace("_", "-"), given, from_weights)
            out[key] = (given, "flag")
        elif from_spec is not None:
            if from_weights is not None and from_spec != from_weights:
                logger.warning("model spec %s's %s %r overrides %r from the weights' metadata", spec.path, key, from_spec,
                               from_weights)
            out[key] = (from_spec, "spec")
        else:
            out[key] = (from_weights, "weights" if from_weights is not None else None)
    pos, who = out["positive_class"]
    if who == "spec" and out["classes"][1] == "flag" and spec is not None and spec.classes is not None:
        out["positive_class"] = (spec.classes[pos], "spec")  # the spec's index means its own class list: keep the name
    return out


def _positive(value: int | str | None, classes: Sequence[str] | None) -> int | str | None:
    """The positive class as an output index where the classes are known, else as given (resolved later)."""
    if isinstance(value, str) and classes is not None:
        if value not in classes:
            raise UsageError(f"the positive class {value!r} is not among the classes {','.join(classes)}; "
                             "fix --positive-class or --classes")
        return list(classes).index(value)
    if isinstance(value, int) and classes is not None and value >= len(classes):
        raise UsageError(f"the positive class index {value} is out of range for {len(classes)} classes; fix --positive-class")
    return value
