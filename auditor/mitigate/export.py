"""Write a mitigated model in the forms the auditor loads: its weights as safetensors and a model spec
YAML naming the same architecture, preprocessing and classes as the original, so `auditor audit
OUT/model.yaml` audits it like the original.

Only a model whose architecture is known (a state_dict with ``--arch``, a spec with ``arch:``, or
``torchvision:NAME``) can be trained and written back; TorchScript and ``torch.export`` programs are
refused with the fix, because their weights cannot be re-attached to an architecture.
"""
from __future__ import annotations

import json

from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import save as safetensors_bytes

from auditor.atomic import atomic_write_bytes, atomic_write_text
from auditor.errors import UsageError

__all__ = ["TRAINABLE_FORMS", "require_trainable", "save_mitigated"]

TRAINABLE_FORMS = ("state_dict", "torchvision")


def _inner_form(loaded: Any) -> str:
    return str(loaded.details.get("inner_form", loaded.form))


def _arch(loaded: Any) -> str | None:
    arch = loaded.details.get("arch")
    if arch:
        return str(arch)
    model = str(loaded.details.get("model") or loaded.source)
    return model if model.startswith("torchvision:") else None


def require_trainable(loaded: Any) -> None:
    """Raise `UsageError` unless ``loaded`` (a `LoadedModel`) can be trained and written back."""
    form = _inner_form(loaded)
    if form not in TRAINABLE_FORMS or _arch(loaded) is None:
        raise UsageError(
            f"{loaded.source} is a {form} model: its layers cannot be trained and written back as weights; "
            "give the state_dict with its architecture (--arch or a model spec with arch:) instead")


def save_mitigated(loaded: Any, out_dir: str | Path, *, name: str, description: str, force: bool = False) -> Path:
    """Write ``loaded``'s current weights to ``out_dir/model.safetensors`` and a spec to ``out_dir/model.yaml``
    (both atomically); returns the spec's path. Existing files are kept unless ``force``."""
    require_trainable(loaded)
    out = Path(out_dir)
    weights, spec_path = out / "model.safetensors", out / "model.yaml"
    existing = [str(p) for p in (weights, spec_path) if p.exists()]
    if existing and not force:
        raise UsageError(f"{existing[0]} exists; pass --force to overwrite it or choose another --out")
    inner = loaded.module.inner
    state = {k: v.detach().cpu().contiguous() for k, v in inner.state_dict().items()}
    spec: dict[str, Any] = {"name": name, "model": weights.name, "arch": _arch(loaded)}
    if loaded.details.get("arch_kwargs"):
        spec["arch_kwargs"] = dict(loaded.details["arch_kwargs"])
    if str(spec["arch"]).startswith("torchvision:") and loaded.num_classes:
        spec["num_classes"] = int(loaded.num_classes)
    if loaded.input_size:
        spec["input_size"] = [int(v) for v in loaded.input_size]
    for key in ("mean", "std"):
        if getattr(loaded, key) is not None:
            spec[key] = [float(v) for v in getattr(loaded, key)]
    if loaded.class_names:
        spec["classes"] = list(loaded.class_names)
    if loaded.positive_class is not None:
        spec["positive_class"] = int(loaded.positive_class)
    spec["description"] = description
    # the weights carry what the spec declares too, so the file alone still says what its outputs mean
    metadata = {k: json.dumps(spec[k]) for k in ("classes", "mean", "std", "input_size") if k in spec}
    atomic_write_bytes(weights, safetensors_bytes(state, metadata=metadata or None))
    atomic_write_text(spec_path, yaml.safe_dump(spec, sort_keys=False))
    return spec_path
