"""Model spec YAML: a model file (or ``torchvision:NAME``) with its preprocessing and class names.

Example::

    name: smile-resnet
    model: weights.safetensors        # relative to this file, or torchvision:NAME
    arch: torchvision:resnet18        # for a state_dict
    arch_kwargs: {}                   # passed to the architecture's factory
    weights: null                     # for model: torchvision:NAME
    input_size: [64, 64]              # H, W
    mean: [0.485, 0.456, 0.406]
    std: [0.229, 0.224, 0.225]
    classes: [not_smiling, smiling]
    positive_class: smiling           # name or index
    num_classes: 2                    # optional when classes are given
    description: ResNet-18 smile classifier

A spec cannot grant ``--trust-pickle``: that stays a decision of whoever runs the audit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from auditor.errors import ModelLoadError
from auditor.validation import message

__all__ = ["ModelSpec", "SPEC_KEYS", "load_spec", "is_spec_path"]

SPEC_KEYS = (
    "name", "model", "arch", "arch_kwargs", "weights", "input_size", "mean", "std",
    "classes", "positive_class", "num_classes", "description",
)
SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec; ``model`` and ``weights`` are resolved against the spec's folder."""

    path: Path
    model: str
    name: str | None = None
    arch: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    classes: list[str] | None = None
    positive_class: int | None = None
    num_classes: int | None = None
    description: str | None = None


def is_spec_path(source: str) -> bool:
    """Whether ``source`` names a model spec (by its extension)."""
    return Path(source).suffix.lower() in SPEC_SUFFIXES


def _invalid(path: Path, key: str, constraint: str, value: Any) -> ModelLoadError:
    """A bad ``key`` of the spec at ``path``: the one message template, raised as `ModelLoadError` (its own exit code)."""
    return ModelLoadError(message(key, f"model spec {path}", constraint, value))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt_str(path: Path, raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise _invalid(path, key, "a non-empty string", value)
    return value


def _triple(path: Path, raw: dict[str, Any], key: str, positive: bool) -> tuple[float, float, float] | None:
    value = raw.get(key)
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == 3 and all(_is_number(v) for v in value)
    if ok and positive:
        ok = all(v > 0 for v in value)
    if not ok:
        raise _invalid(path, key, "a list of 3 " + ("positive numbers" if positive else "numbers"), value)
    return (float(value[0]), float(value[1]), float(value[2]))


def _resolve(path: Path, ref: str) -> str:
    """A file named in the spec, relative to the spec's folder; ``torchvision:NAME`` is kept as is."""
    if ref.startswith("torchvision:"):
        return ref
    p = Path(ref).expanduser()
    return str(p if p.is_absolute() else path.parent / p)


def _positive_class(path: Path, value: Any, classes: list[str] | None, n: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        if classes is None or value not in classes:
            raise _invalid(path, "positive_class", f"one of the names in 'classes' ({classes}) or a class index", value)
        return classes.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0 and (n is None or value < n):
        return value
    limit = f" below {n}" if n is not None else ""
    raise _invalid(path, "positive_class", f"a class name or an index >= 0{limit}", value)


def load_spec(source: str | Path) -> ModelSpec:
    """Read and validate a model spec YAML; raises `ModelLoadError` naming the key and the fix."""
    path = Path(source)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"model spec {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"model spec {path} cannot be read as YAML ({first}); fix the file") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"model spec {path} must be a YAML mapping with keys {', '.join(SPEC_KEYS)}")
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        raise ModelLoadError(
            f"model spec {path} has unknown key(s) {', '.join(map(str, unknown))}; valid keys: {', '.join(SPEC_KEYS)}"
        )
    model = raw.get("model")
    if not (isinstance(model, str) and model.strip()):
        raise _invalid(path, "model", "a model file path (relative to the spec) or torchvision:NAME", model)
    if is_spec_path(model):
        raise _invalid(path, "model", "a model file, not another spec", model)
    arch_kwargs = raw.get("arch_kwargs") or {}
    if not (isinstance(arch_kwargs, dict) and all(isinstance(k, str) for k in arch_kwargs)):
        raise _invalid(path, "arch_kwargs", "a mapping of keyword arguments for the architecture's factory", arch_kwargs)
    size = raw.get("input_size")
    if size is not None and not (
        isinstance(size, list) and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise _invalid(path, "input_size", "a list [H, W] of 2 positive integers", size)
    classes = raw.get("classes")
    boolean_check = (("classes", classes if isinstance(classes, list) else []), ("positive_class", [raw.get("positive_class")]))
    for key, value in boolean_check:
        if any(isinstance(v, bool) for v in value):
            raise ModelLoadError(
                f"The {key!r} key of model spec {path} holds a boolean: YAML reads unquoted yes/no/on/off/true/false "
                "as booleans; quote the class names"
            )
    if isinstance(classes, list) and all(isinstance(c, (str, int)) for c in classes):
        classes = [str(c) for c in classes]  # numeric names such as [0, 1] are fine
    if classes is not None and not (
        isinstance(classes, list) and len(classes) >= 2
        and all(isinstance(c, str) and c for c in classes) and len(set(classes)) == len(classes)
    ):
        raise _invalid(path, "classes", "a list of at least 2 distinct non-empty class names", classes)
    n = raw.get("num_classes")
    if n is not None and not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise _invalid(path, "num_classes", "a positive integer", n)
    if n is not None and classes is not None and n != len(classes) and not (n == 1 and len(classes) == 2):
        raise _invalid(path, "num_classes", f"the number of names in 'classes' ({len(classes)})", n)
    n_known = len(classes) if classes is not None else (max(n, 2) if n is not None else None)
    weights = _opt_str(path, raw, "weights")
    return ModelSpec(
        path=path,
        model=_resolve(path, model),
        name=_opt_str(path, raw, "name"),
        arch=_opt_str(path, raw, "arch"),
        arch_kwargs=dict(arch_kwargs),
        weights=_resolve(path, weights) if weights is not None else None,
        input_size=(size[0], size[1]) if size is not None else None,
        mean=_triple(path, raw, "mean", positive=False),
        std=_triple(path, raw, "std", positive=True),
        classes=list(classes) if classes is not None else None,
        positive_class=_positive_class(path, raw.get("positive_class"), classes, n_known),
        num_classes=n if n is not None else (len(classes) if classes is not None else None),
        description=_opt_str(path, raw, "description"),
    )
