"""Wrapping a loaded module as a `LoadedModel`: its hash, and what the flags, spec and weights declare.

A flag beats the model spec, which beats a safetensors header's metadata (each override with a
warning); an export fixes the input size where nothing declared one; the class count comes from the
declared classes, ``--num-classes``, or the width of the weights' final layer.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from auditor.errors import ModelLoadError, UsageError
from auditor.models._declared import Declared, parse_declared
from auditor.models._files import sha256_files
from auditor.models._loaded import LoadedModel
from auditor.models._spec import ModelSpec
from auditor.models._wrapper import AuditModel

__all__ = ["Inner", "WEIGHTS_KEYS", "finish", "module_sha256"]

log = logging.getLogger(__name__)


@dataclass
class Inner:
    """The module as read from its form, before wrapping, with what its files said about it."""

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


def module_sha256(module: nn.Module) -> str:
    """sha256 of an in-memory module: its class name, then each state_dict entry's name, dtype, shape and bytes."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def finish(inner: Inner, source: str, spec: ModelSpec | None, flags: Declared, details: dict[str, Any],
           arch_kwargs: dict[str, Any], arch: str | None, num_classes: int | None, dev: torch.device) -> LoadedModel:
    """The loaded module wrapped with what the flags, spec and weights declare."""
    files = ([spec.path] if spec is not None else []) + inner.files
    if inner.form == "module":
        sha, per_file = module_sha256(inner.module), {}
    else:
        sha, per_file = sha256_files(files)
    facts = _declared_facts(flags, spec, _weights_declared(inner.metadata, inner.files[-1] if inner.files else None))
    declared_by = {k: who for k, (_, who) in facts.items() if who is not None}
    input_size, fixed_batch = _export_input(inner, facts["input_size"][0], declared_by, details)
    classes = facts["classes"][0]
    num_classes = _class_count(facts["classes"], num_classes, inner.head_width, spec, details)
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
    log.info("loaded %s as %s (%s parameters) on %s", source, form, details["params"], dev)
    return LoadedModel(
        module=wrapper, source=source, form=form, sha256=sha, input_size=input_size, num_classes=num_classes,
        class_names=list(classes) if classes is not None else None,
        positive_class=_positive(facts["positive_class"][0], classes), mean=mean, std=std, details=details,
        declared_by=declared_by,
    )


def _export_input(inner: Inner, input_size: tuple[int, int] | None, declared_by: dict[str, str],
                  details: dict[str, Any]) -> tuple[tuple[int, int] | None, int | None]:
    """The input size an export fixes (where nothing declared one) and its static batch size (None where dynamic)."""
    if inner.export_shape is None:
        return input_size, None
    details["export_input_shape"] = inner.export_shape
    shape = inner.export_shape
    if len(shape) == 4 and shape[2] is not None and shape[3] is not None and input_size is None:
        input_size = (shape[2], shape[3])
        declared_by["input_size"] = "export"
    fixed_batch = shape[0] if shape else None  # a static batch size, or None where it is dynamic
    return input_size, fixed_batch


def _class_count(classes_fact: tuple[Any, str | None], num_classes: int | None, head_width: int | None,
                 spec: ModelSpec | None, details: dict[str, Any]) -> int | None:
    """The class count from the declared classes, else ``num_classes``, else the weights' head; a binary logit is 2."""
    classes, who = classes_fact
    if classes is not None and num_classes is not None and max(num_classes, 2) != len(classes) and who == "flag":
        raise UsageError(f"--classes names {len(classes)} classes but the model spec {spec.path if spec else ''} says "
                         f"num_classes {num_classes}; drop num_classes from the spec or fix --classes")
    if classes is not None:
        num_classes = len(classes)
    if num_classes is None and head_width is not None:
        num_classes = head_width
        details["num_classes_from"] = "weights"
    if num_classes == 1:
        num_classes = 2  # a binary logit: the wrapper returns two columns
    return num_classes


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
                log.warning("--%s %s overrides %r from model spec %s", key.replace("_", "-"), given, from_spec, spec.path)
            elif from_weights is not None and given != from_weights:
                log.warning("--%s %s overrides %r from the weights' metadata", key.replace("_", "-"), given, from_weights)
            out[key] = (given, "flag")
        elif from_spec is not None:
            if from_weights is not None and from_spec != from_weights:
                log.warning("model spec %s's %s %r overrides %r from the weights' metadata", spec.path, key, from_spec,
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
