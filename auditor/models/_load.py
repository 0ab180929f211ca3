"""Loading the model under audit in any of its accepted forms.

Forms (README "Usage", Models): TorchScript; ``torch.export`` ``.pt2``; a state_dict (``.safetensors``,
or ``.pt``/``.pth`` read with ``weights_only=True``) plus ``--arch``; ``torchvision:NAME`` plus
``--weights``; a model spec YAML naming one of these; a full pickle only with ``trust_pickle``.
The loaded module is an `AuditModel` in eval mode on the device; parameters keep their
``requires_grad`` as loaded (the audit never trains) and input gradients flow through it.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auditor.errors import ModelLoadError, UsageError
from auditor.models._arch import load_arch, unwrap_state_dict
from auditor.models._assemble import Inner, finish
from auditor.models._declared import Declared
from auditor.models._devices import resolve_device
from auditor.models._files import (
    load_export,
    load_torchscript,
    read_safetensors,
    read_safetensors_metadata,
    read_torch_save,
    sniff_form,
)
from auditor.models._loaded import LoadedModel
from auditor.models._spec import ModelSpec, is_spec_path, load_spec

__all__ = ["load_model"]

log = logging.getLogger(__name__)


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
    _check_num_classes(flags, num_classes)
    if isinstance(source, nn.Module):
        return finish(_module_inner(source, arch, weights, num_classes), f"<in-memory {type(source).__name__}>",
                      None, flags, {"name": type(source).__name__}, {}, None, None, dev)
    source = str(source)
    spec = load_spec(source) if is_spec_path(source) else None
    details: dict[str, Any] = {}
    arch_kwargs: dict[str, Any] = {}
    if spec is not None:
        arch, weights, num_classes = _apply_spec(spec, arch, weights, num_classes, details)
        arch_kwargs = dict(spec.arch_kwargs)
    target = spec.model if spec is not None else source
    if target.startswith("torchvision:"):
        inner = _load_torchvision(target, arch=arch, weights=weights, num_classes=num_classes,
                                  arch_kwargs=arch_kwargs, trust_pickle=trust_pickle)
    else:
        inner = _load_file(Path(target), arch=arch, weights=weights, num_classes=num_classes,
                           arch_kwargs=arch_kwargs, trust_pickle=trust_pickle, device=dev)
    return finish(inner, source, spec, flags, details, arch_kwargs, arch, num_classes, dev)


def _check_num_classes(flags: Declared, num_classes: int | None) -> None:
    """``num_classes`` must be a positive integer that agrees with ``--classes``."""
    if flags.classes is not None and num_classes is not None and max(num_classes, 2) != len(flags.classes):
        raise UsageError(f"--classes names {len(flags.classes)} classes but --num-classes is {num_classes}; drop one")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
        raise UsageError(f"The 'num_classes' parameter of load_model must be a positive integer. Got {num_classes!r} instead.")


def _merge(flag: str, given: Any, from_spec: Any, spec: ModelSpec) -> Any:
    if given is not None and from_spec is not None and given != from_spec:
        log.warning("--%s %s overrides %r from model spec %s", flag, given, from_spec, spec.path)
    return given if given is not None else from_spec


def _apply_spec(spec: ModelSpec, arch: str | None, weights: str | None, num_classes: int | None,
                details: dict[str, Any]) -> tuple[str | None, str | None, int | None]:
    """``arch``, ``weights`` and ``num_classes`` with the spec's keys filling the gaps (a flag wins, with a
    warning); records the spec in ``details`` and checks that the files it names exist."""
    arch = _merge("arch", arch, spec.arch, spec)
    weights = _merge("weights", weights, spec.weights, spec)
    num_classes = _merge("num-classes", num_classes, spec.num_classes, spec)
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
    return arch, weights, num_classes


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


def _load_torchvision(
    target: str, *, arch: str | None, weights: str | None, num_classes: int | None,
    arch_kwargs: dict[str, Any], trust_pickle: bool,
) -> Inner:
    """``torchvision:NAME`` built from its factory, with the state_dict in ``weights`` (nothing is downloaded)."""
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
    return Inner(module, "torchvision", [wpath], head_width=width, full_pickle=pickled, metadata=meta)


def _load_file(
    path: Path, *, arch: str | None, weights: str | None, num_classes: int | None,
    arch_kwargs: dict[str, Any], trust_pickle: bool, device: torch.device,
) -> Inner:
    """A model file in any form, told apart by its content."""
    if weights is not None:
        raise UsageError(f"--weights is only for MODEL torchvision:NAME; {path} already holds the weights, drop --weights")
    form = sniff_form(path)
    if form in ("torchscript", "export") and arch is not None:
        raise UsageError(f"--arch is only for state_dicts; {path} is a {form} model, drop --arch")
    if form == "torchscript":
        return Inner(load_torchscript(path, device), "torchscript", [path])
    if form == "export":
        module, shape = load_export(path, device)
        return Inner(module, "export", [path], export_shape=shape)
    meta: dict[str, str] = {}
    if form == "safetensors":
        obj, pickled = read_safetensors(path), False
        meta = read_safetensors_metadata(path)
    else:
        obj, pickled = read_torch_save(path, trust_pickle=trust_pickle)
    if isinstance(obj, nn.Module):
        if arch is not None:
            raise UsageError(f"--arch is only for state_dicts; {path} holds a whole pickled model, drop --arch")
        return Inner(obj, "pickle", [path], full_pickle=True)
    module, width = _state_dict_model(obj, str(path), arch, num_classes, arch_kwargs)
    return Inner(module, "state_dict", [path], head_width=width, full_pickle=pickled, metadata=meta)


def _module_inner(module: nn.Module, arch: str | None, weights: str | None, num_classes: int | None) -> Inner:
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
    return Inner(inner, "module", [])
