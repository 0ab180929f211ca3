"""The feature layer adversarial debiasing reads: finding it, proving a forward reaches it, and hooking it.

`find_feature_layer` picks the module (by name, or the input of the head's first Linear); `FeatureTap`
keeps the last features seen there, flattened to N x D. A TorchScript or ``torch.export`` program has no
layers to hook: `LayerNotReachable` says to pass the eager ``nn.Module``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["FeatureTap", "LayerNotReachable", "eval_forward", "find_feature_layer", "tap_layer"]


class LayerNotReachable(ValueError):
    """The feature layer cannot be hooked: the model is compiled/exported, has no Linear, or the name is wrong."""


def _opaque_form(model: nn.Module) -> str | None:
    """'TorchScript' or 'torch.export' when the model (or a part of it) cannot have its layers hooked."""
    for module in model.modules():
        if isinstance(module, torch.jit.ScriptModule):
            return "TorchScript"
        if isinstance(module, torch.fx.GraphModule) and any(  # exported graphs call aten ops, not the layers
                node.op == "call_function" and str(node.target).startswith("aten.") for node in module.graph.nodes):
            return "torch.export"
    return None


def _not_hookable(form: str) -> LayerNotReachable:
    return LayerNotReachable(
        f"the model is a {form} program, whose layers cannot be hooked for features; "
        "pass the eager nn.Module (the Python class with its state_dict) to debias it"
    )


def find_feature_layer(model: nn.Module, name: str | None = None, *,
                       example: Tensor | None = None) -> tuple[str, nn.Module]:
    """The module whose features the adversary sees, and its name.

    ``name`` given: that module (its OUTPUT is the feature). ``name`` None: the first ``nn.Linear`` after
    the last convolution that gets an N x D input (its INPUT, the backbone's pooled features, is the
    feature; a transformer's token Linears are passed over when ``example`` shows their input); a model
    without convolutions: its last ``nn.Linear`` (the penultimate features). With ``example`` (a small input
    batch), a hook is registered and one forward run to prove that the module is reached.
    Raises `LayerNotReachable` for TorchScript / ``torch.export`` models, a model without Linear,
    or a missing name.
    """
    form = _opaque_form(model)
    if form is not None:
        raise _not_hookable(form)
    named = dict(model.named_modules())
    if name is not None:
        if name not in named or name == "":
            close = [n for n in named if n and (name in n or n.split(".")[-1] == name.split(".")[-1])]
            candidates = (close or [n for n in named if n])[:5]
            raise LayerNotReachable(
                f"the model has no layer named {name!r}; pass one of {', '.join(candidates) or '(no named layers)'}"
                " as layer= (or leave it out to use the input of the head's first Linear)"
            )
        chosen = (name, named[name])
    else:
        chosen = _default_layer(model, list(named.items()), example)
    if example is not None:
        _check_reached(model, chosen[1], chosen[0], example)
    return chosen


def _default_layer(model: nn.Module, named: list[tuple[str, nn.Module]],
                   example: Tensor | None) -> tuple[str, nn.Module]:
    """The first Linear after the last convolution (in registration order), else the last Linear. With
    ``example``, the first such Linear whose input is N x D (a Linear inside a transformer block sees
    N x tokens x D: not the image's features), else the last Linear."""
    linears = [(i, n, m) for i, (n, m) in enumerate(named) if isinstance(m, nn.Linear)]
    if not linears:
        raise LayerNotReachable(
            f"the {type(model).__name__} model has no nn.Linear head to take features from; "
            "name the feature layer with layer=<module name>"
        )
    convs = [i for i, (_n, m) in enumerate(named) if isinstance(m, nn.modules.conv._ConvNd)]
    after = [(n, m) for i, n, m in linears if convs and i > convs[-1]]
    last = (linears[-1][1], linears[-1][2])
    if example is None:
        return after[0] if after else last
    ranks: dict[str, int] = {}

    def record(name: str) -> Any:
        def hook(_module: nn.Module, inputs: tuple[Any, ...]) -> None:  # returns None: the input is left alone
            ranks.setdefault(name, inputs[0].dim() if inputs and isinstance(inputs[0], Tensor) else -1)
        return hook

    handles = [m.register_forward_pre_hook(record(n)) for n, m in after]
    try:
        eval_forward(model, example)
    finally:
        for h in handles:
            h.remove()
    return next(((n, m) for n, m in after if ranks.get(n) == 2), last)


def _check_reached(model: nn.Module, module: nn.Module, name: str, example: Tensor) -> None:
    """Run one forward of ``example`` with a hook on ``module``; raise `LayerNotReachable` if it never fires."""
    fired: list[bool] = []
    try:
        handle = module.register_forward_pre_hook(lambda _m, _i: fired.append(True))
    except RuntimeError as exc:  # ScriptModules refuse hooks
        raise _not_hookable("TorchScript") from exc
    try:
        eval_forward(model, example)
    finally:
        handle.remove()
    if not fired:
        raise LayerNotReachable(
            f"layer {name!r} is never called in the model's forward (a compiled or exported graph?); "
            "pass the eager nn.Module, or name a layer its forward calls with layer="
        )


def eval_forward(model: nn.Module, x: Tensor) -> Tensor:
    """One no-grad forward in eval mode (BatchNorm statistics untouched), the mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(was_training)


def _flat(features: Tensor) -> Tensor:
    """N x D features: a 4-D map is global-average-pooled, anything else flattened after the batch axis."""
    if features.dim() == 4:
        return features.mean(dim=(2, 3))
    if features.dim() > 2:
        return features.flatten(1)
    if features.dim() == 1:
        return features.unsqueeze(1)
    return features


class FeatureTap:
    """Keeps the last features seen at a layer: the input of a Linear (``use_input``) or a module's output."""

    def __init__(self, module: nn.Module, use_input: bool) -> None:
        self.features: Tensor | None = None
        if use_input:
            self.handle = module.register_forward_pre_hook(self._pre)
        else:
            self.handle = module.register_forward_hook(self._post)

    def _pre(self, _module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self.features = _flat(inputs[0])

    def _post(self, _module: nn.Module, _inputs: tuple[Any, ...], output: Any) -> None:
        out = output[0] if isinstance(output, (tuple, list)) else output
        self.features = _flat(out.clone())  # a clone: a later in-place op (ReLU(inplace)) cannot corrupt it

    def take(self) -> Tensor:
        """The features of the last forward (cleared, so a stale tensor is never reused)."""
        features, self.features = self.features, None
        if features is None:
            raise LayerNotReachable(
                "the feature hook did not fire during the forward (compiled or exported model?); "
                "pass the eager nn.Module or name a layer its forward calls with layer="
            )
        return features

    def close(self) -> None:
        self.handle.remove()
        self.features = None


def tap_layer(model: nn.Module, layer: str | None, example: Tensor | None) -> tuple[str, FeatureTap, int | None]:
    """Hook the feature layer; its name, the tap, and the feature width (None if it needs a forward to know)."""
    name, module = find_feature_layer(model, layer, example=example)
    tap = FeatureTap(module, use_input=layer is None)
    width = module.in_features if layer is None and isinstance(module, nn.Linear) else None
    return name, tap, width
