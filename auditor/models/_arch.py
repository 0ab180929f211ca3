"""Architectures for state_dicts: ``torchvision:NAME`` or ``package.module:factory``, and fitting weights.

The class count is read from the weights when not given: the final layer is the last weight with 2
(else more) dimensions in the architecture's own order, and its first dimension is the class count.
No weights are ever downloaded: torchvision models are built with ``weights=None``.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import logging
from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch import nn

from auditor.errors import ModelLoadError

__all__ = ["build_arch", "torchvision_names", "unwrap_state_dict", "final_layer_key", "fit_state_dict", "load_arch"]

log = logging.getLogger(__name__)

_STRIP_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile
_ARCH_FORMS = "pass --arch torchvision:NAME or --arch package.module:factory"


def torchvision_names() -> list[str]:
    """Every model name ``torchvision.models.get_model`` knows."""
    import torchvision

    return sorted(torchvision.models.list_models())


def _factory(arch: str) -> tuple[Callable[..., Any], bool]:
    """The callable behind ``arch`` and whether it is torchvision's (which takes ``weights=None``)."""
    if ":" not in arch:
        hint = f"pass --arch torchvision:{arch}" if arch in torchvision_names() else _ARCH_FORMS
        raise ModelLoadError(f"--arch {arch!r} is not understood; {hint}")
    module_name, attr = arch.split(":", 1)
    if module_name == "torchvision":
        names = torchvision_names()
        if attr not in names:
            close = difflib.get_close_matches(attr, names, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join('torchvision:' + c for c in close)}?" if close else "see torchvision.models.list_models()"
            raise ModelLoadError(f"unknown torchvision model {attr!r}; {hint}")
        import torchvision

        return (lambda **kw: torchvision.models.get_model(attr, weights=None, **kw)), True
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - importing user code can raise anything
        raise ModelLoadError(
            f"--arch {arch}: cannot import module {module_name!r} ({type(e).__name__}: {e}); "
            "make it importable (PYTHONPATH or pip install) or " + _ARCH_FORMS
        ) from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ModelLoadError(f"--arch {arch}: module {module_name!r} has no {attr!r}; name a factory that exists")
    if not callable(factory):
        raise ModelLoadError(f"--arch {arch}: {attr!r} is not callable; name a function or class that builds the model")
    return factory, False


def _takes_num_classes(factory: Callable[..., Any], torchvision: bool) -> bool:
    if torchvision:
        return True
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "num_classes" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def build_arch(arch: str, num_classes: int | None = None, arch_kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Build ``arch`` (random weights) with ``num_classes`` when given and the factory takes it."""
    factory, tv = _factory(arch)
    kwargs = dict(arch_kwargs or {})
    if num_classes is not None:
        if _takes_num_classes(factory, tv):
            kwargs["num_classes"] = num_classes
        else:
            log.warning("--arch %s does not take num_classes; building it with its own class count", arch)
    try:
        model = factory(**kwargs)
    except Exception as e:  # noqa: BLE001 - user factories can raise anything
        raise ModelLoadError(
            f"--arch {arch} failed to build with {kwargs} ({type(e).__name__}: {e}); fix arch_kwargs or --num-classes"
        ) from None
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"--arch {arch} returned a {type(model).__name__}, not a torch.nn.Module; name a model factory")
    return model


def unwrap_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The tensors of a state_dict, also when nested under "state_dict" or "model"; prefixes stripped."""
    for _ in range(2):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in ("state_dict", "model", "model_state_dict") if k in obj), None)
            if isinstance(inner, Mapping):
                obj = inner
    if not isinstance(obj, Mapping):
        raise ModelLoadError(f"{source} holds a {type(obj).__name__}, not a state_dict; save model.state_dict() or TorchScript")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelLoadError(f"{source} holds no tensors; save model.state_dict() (or a dict with a 'state_dict' key)")
    for prefix in _STRIP_PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def final_layer_key(state: Mapping[str, torch.Tensor]) -> str | None:
    """The key of the last 2-D weight in ``state``'s order (else the last weight with more dimensions)."""
    weights = [k for k, v in state.items() if k.endswith("weight") and v.dim() >= 2]
    two_d = [k for k in weights if state[k].dim() == 2]
    return (two_d or weights or [None])[-1]


def _short(keys: list[str], n: int = 3) -> str:
    more = f", ... ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def fit_state_dict(model: nn.Module, state: dict[str, torch.Tensor], arch: str, source: str) -> None:
    """Load ``state`` into ``model`` strictly; a mismatch raises `ModelLoadError` naming keys and the fix."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    head = final_layer_key(own)
    head_module = head.rsplit(".", 1)[0] if head is not None else None
    if shapes and not missing and not unexpected and all(k.rsplit(".", 1)[0] == head_module for k in shapes):
        k = shapes[0]
        raise ModelLoadError(
            f"weights {source} do not fit --arch {arch}: {k} is {list(state[k].shape)} in the file but "
            f"{list(own[k].shape)} in the architecture; pass --num-classes {state[k].shape[0]} (or leave it out to infer it)"
        )
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    if shapes:
        k = shapes[0]
        problems.append(f"shape mismatch {k}: {list(state[k].shape)} in the file vs {list(own[k].shape)}")
    if problems:
        raise ModelLoadError(
            f"weights {source} do not fit --arch {arch}: {'; '.join(problems)}; "
            "pass the --arch the weights were saved from (and --num-classes if its head differs)"
        )
    model.load_state_dict(state, strict=False)


def load_arch(
    arch: str, state: dict[str, torch.Tensor], source: str, num_classes: int | None, arch_kwargs: Mapping[str, Any]
) -> tuple[nn.Module, int | None]:
    """Build ``arch`` for ``state`` (class count from the weights unless given), load it; returns the head width."""
    file_head = final_layer_key(state)
    guess = state[file_head].shape[0] if file_head is not None else None
    build_n = num_classes
    if num_classes == 2 and guess == 1:
        build_n = 1  # a binary-logit head serves two classes
    model = build_arch(arch, build_n if build_n is not None else guess, arch_kwargs)
    head = final_layer_key(model.state_dict())
    if build_n is None and head is not None and head in state:
        width = state[head].shape[0]
        if width != model.state_dict()[head].shape[0] and _takes_num_classes(*_factory(arch)):
            model = build_arch(arch, width, arch_kwargs)  # the file's order misled the first guess
    fit_state_dict(model, state, arch, source)
    head = final_layer_key(model.state_dict())
    return model, (int(model.state_dict()[head].shape[0]) if head is not None else None)
