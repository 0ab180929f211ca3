"""Adversarial debiasing: train the classifier while an adversary tries to predict the bias (a sensitive
attribute or a known bias variable) from its features, and make the features useless to it.

Two ways to turn the adversary against the features (``mode``): ``reversal``, a gradient-reversal
layer (Ganin & Lempitsky 2015; Zhang, Lemoine & Mitchell 2018), where the features maximise the
adversary's cross-entropy; and ``confusion`` (Alvi et al. 2018; the entropy term of Kim et al. 2019
"Learning Not to Learn"), where they are pushed towards the adversary predicting the uniform
distribution. The training adversary's own accuracy is a poor measure of success (it is trained
against a moving target), so `adversary_accuracy` fits a fresh probe on the frozen features of
held-out images instead.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AdversarialDebiasing",
    "LayerNotReachable",
    "MODES",
    "SCHEDULES",
    "adversary_accuracy",
    "extract_features",
    "find_feature_layer",
    "grad_reverse",
    "schedule_factor",
]

Schedule = Literal["constant", "linear", "dann"]
SCHEDULES: tuple[str, ...] = ("constant", "linear", "dann")
Mode = Literal["confusion", "reversal"]
MODES: tuple[str, ...] = ("confusion", "reversal")


class LayerNotReachable(ValueError):
    """The feature layer cannot be hooked: the model is compiled/exported, has no Linear, or the name is wrong."""


class _GradReverse(torch.autograd.Function):
    """Identity forward; the gradient multiplied by ``-strength`` backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, strength: float) -> Tensor:
        ctx.strength = float(strength)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.strength, None


def grad_reverse(x: Tensor, strength: float = 1.0) -> Tensor:
    """``x`` unchanged; in the backward pass its gradient is multiplied by ``-strength``."""
    return _GradReverse.apply(x, strength)


def schedule_factor(schedule: str, progress: float) -> float:
    """The share of the full reversal strength at ``progress`` in [0, 1] of training.

    ``constant``: 1; ``linear``: ``progress``; ``dann``: ``2 / (1 + exp(-10 p)) - 1`` (Ganin & Lempitsky).
    """
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return p
    if schedule == "dann":
        return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0
    raise ValueError(f"unknown debiasing schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")


# --- finding and hooking the feature layer --------------------------------------------------------------


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
        _eval_forward(model, example)
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
        _eval_forward(model, example)
    finally:
        handle.remove()
    if not fired:
        raise LayerNotReachable(
            f"layer {name!r} is never called in the model's forward (a compiled or exported graph?); "
            "pass the eager nn.Module, or name a layer its forward calls with layer="
        )


def _eval_forward(model: nn.Module, x: Tensor) -> Tensor:
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


class _FeatureTap:
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


def _tap(model: nn.Module, layer: str | None, example: Tensor | None) -> tuple[str, _FeatureTap, int | None]:
    """Hook the feature layer; its name, the tap, and the feature width (None if it needs a forward to know)."""
    name, module = find_feature_layer(model, layer, example=example)
    tap = _FeatureTap(module, use_input=layer is None)
    width = module.in_features if layer is None and isinstance(module, nn.Linear) else None
    return name, tap, width


def _balancing_weights(counts: Tensor | None, n_bias: int) -> Tensor | None:
    """Per-code weights ``N / (K * count)`` (0 for an absent code) from the training counts, or None."""
    if counts is None:
        return None
    c = torch.as_tensor(counts, dtype=torch.float32).detach().cpu().reshape(-1)
    if c.numel() != n_bias or bool((c < 0).any()) or not bool(torch.isfinite(c).all()) or float(c.sum()) <= 0:
        raise ValueError(f"bias_counts must be {n_bias} non-negative counts (images per bias code) with a positive sum; "
                         f"got {c.tolist()}")
    present = c > 0
    weight = torch.zeros(n_bias)
    weight[present] = float(c.sum()) / (int(present.sum()) * c[present])
    return weight


def _confusion(adversary: nn.Module, features: Tensor, bias: Tensor, weight: Tensor | None) -> Tensor:
    """The cross-entropy between the adversary's prediction and the uniform distribution over the codes
    (weighted per image by its code's weight): smallest when the adversary cannot tell the codes apart.
    The adversary's parameters are used frozen, so only the features get this gradient."""
    frozen = {name: p.detach() for name, p in adversary.named_parameters()}
    log_p = F.log_softmax(torch.func.functional_call(adversary, frozen, (features,)), dim=1)
    per_image = -log_p.mean(dim=1)
    if weight is None:
        return per_image.mean()
    w = weight[bias]
    return (per_image * w).sum() / w.sum().clamp_min(1e-12)


# --- the objective --------------------------------------------------------------------------------------


class AdversarialDebiasing:
    """An Objective (see ``auditor.mitigate.loop``): the task's cross-entropy, an adversary learning to predict
    ``batch.bias`` from the model's features, and a term that makes the features useless to it.

    ``mode``: ``reversal`` (default; Ganin & Lempitsky 2015, Zhang et al. 2018): one cross-entropy, its
    gradient reversed (times ``strength``) into the features. ``confusion`` (Alvi et al. 2018, the entropy
    term of Kim et al. 2019): the adversary trains on detached features, and the model is pushed, with
    weight ``strength``, towards features on which the (frozen) adversary predicts the uniform
    distribution. Neither wins everywhere (README, "Mitigations"): on a tint independent of the label,
    reversal leaves the tint readable and can collapse the task while confusion removes part of it and
    keeps the task; on the shortcut sample model, reversal narrows the race gap and confusion does not.

    ``layer``: the module whose output is the feature (default: the input of the first Linear after the
    last convolution, i.e. the backbone's pooled features; a model without convolutions: the input of
    its last Linear).
    ``strength``: the full reversal strength (lambda); ``schedule`` ramps it over training:
    ``constant``, ``linear`` or ``dann`` (``2 / (1 + exp(-10 p)) - 1``). ``hidden``: the adversary MLP's
    width. ``example_batch``: a few input images, run once to find the feature width (needed when
    ``layer`` is named) and to prove the layer is reached. ``seed``: the adversary's initialisation
    (the global RNG is left as it was). ``bias_counts``: the training images per bias code; given, the
    adversary's cross-entropy weighs each code by ``N / (K * count)``, so that it must also recover a rare
    group (an unweighted adversary can ignore a group of 6% and still look good, leaving exactly that
    group's information in the features). Call `close` to remove the hook.
    """

    def __init__(self, model: nn.Module, n_bias: int, *, layer: str | None = None, strength: float = 1.0,
                 schedule: Schedule = "constant", hidden: int = 64, example_batch: Tensor | None = None,
                 bias_counts: Tensor | None = None, mode: Mode = "reversal", seed: int = 0) -> None:
        if n_bias < 2:
            raise ValueError(f"n_bias is {n_bias}; adversarial debiasing needs a bias variable with at least 2 codes")
        if strength < 0:
            raise ValueError(f"strength is {strength}; use a reversal strength >= 0")
        if hidden < 1:
            raise ValueError(f"hidden is {hidden}; use an adversary width >= 1")
        schedule_factor(schedule, 0.0)  # validates the name
        if mode not in MODES:
            raise ValueError(f"unknown debiasing mode {mode!r}; use one of {', '.join(MODES)}")
        self.mode: str = mode
        self.n_bias = int(n_bias)
        self.bias_weight = _balancing_weights(bias_counts, self.n_bias)
        self.strength = float(strength)
        self.schedule: str = schedule
        self.layer_name, self._tap, width = _tap(model, layer, example_batch)
        if example_batch is not None:
            _eval_forward(model, example_batch)
            width = self._tap.take().shape[1]
        if width is None:
            self._tap.close()
            raise ValueError(
                f"the width of layer {self.layer_name!r} is unknown; pass example_batch= (a few input images) to find it"
            )
        self.feature_width = int(width)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.adversary = nn.Sequential(nn.Linear(self.feature_width, hidden), nn.ReLU(),
                                           nn.Linear(hidden, self.n_bias))
        param = next(model.parameters(), None)
        if param is not None:
            self.adversary.to(param.device)
            if self.bias_weight is not None:
                self.bias_weight = self.bias_weight.to(param.device)
        self.modules: list[nn.Module] = [self.adversary]

    def current_strength(self, progress: float) -> float:
        """The reversal strength at ``progress`` in [0, 1]: ``strength * schedule(progress)``."""
        return self.strength * schedule_factor(self.schedule, progress)

    def loss(self, model: nn.Module, batch: Any, progress: float) -> tuple[Tensor, dict[str, float]]:
        """Task CE + the adversary's CE + (``mode``) the model's adversarial term; logs the losses, the
        adversary's batch accuracy and the strength."""
        if batch.bias is None:
            raise ValueError("adversarial debiasing needs batch.bias (the bias code per image); load the training data with bias=")
        logits = model(batch.x)
        features = self._tap.take()
        task = F.cross_entropy(logits, batch.y)
        lam = self.current_strength(progress)
        bias = batch.bias.to(features.device).long()
        if bias.numel() and (int(bias.min()) < 0 or int(bias.max()) >= self.n_bias):
            raise ValueError(f"batch.bias holds codes outside 0..{self.n_bias - 1}; pass n_bias= the number of bias codes")
        weight = None if self.bias_weight is None else self.bias_weight.to(features.device)
        logs: dict[str, float] = {"task_loss": task.item()}
        if self.mode == "reversal":
            adv_logits = self.adversary(grad_reverse(features, lam))
            adv = F.cross_entropy(adv_logits, bias, weight=weight)
            total = task + adv
        else:
            adv_logits = self.adversary(features.detach())  # the adversary learns; the model gets no gradient here
            adv = F.cross_entropy(adv_logits, bias, weight=weight)
            confusion = _confusion(self.adversary, features, bias, weight)
            logs["confusion_loss"] = confusion.item()
            total = task + lam * confusion + adv
        with torch.no_grad():
            adv_acc = (adv_logits.argmax(1) == bias).float().mean().item()
        logs.update({"adversary_loss": adv.item(), "adversary_accuracy": adv_acc, "strength": lam})
        return total, logs

    def features(self, model: nn.Module, x: Tensor) -> Tensor:
        """The (flattened) features of ``x`` at the hooked layer, no grad, eval mode."""
        _eval_forward(model, x)
        return self._tap.take()

    def close(self) -> None:
        """Remove the feature hook (the model is then exactly as before, bar its trained weights)."""
        self._tap.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# --- the honest measure: a fresh probe on frozen features ----------------------------------------------


def extract_features(model: nn.Module, objective_or_layer: AdversarialDebiasing | str | None, images: Tensor,
                     *, batch_size: int = 256) -> Tensor:
    """Frozen N x D features of ``images`` (eval mode, no grad, on CPU) at the objective's layer, a named layer,
    or (None) the default feature layer (see `find_feature_layer`)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    if isinstance(objective_or_layer, AdversarialDebiasing):
        grab = objective_or_layer.features
        close = None
    else:  # the default layer is found with a forward of a few images (a ConvNeXt's block Linears or a
        # transformer's token Linears come after the last convolution too, but do not see N x D features)
        example = images[:2].to(device) if objective_or_layer is None and len(images) else None
        _, tap, _ = _tap(model, objective_or_layer, example)
        close = tap

        def grab(m: nn.Module, x: Tensor) -> Tensor:
            _eval_forward(m, x)
            return tap.take()
    try:
        parts = [grab(model, images[i:i + batch_size].to(device)).detach().float().cpu()
                 for i in range(0, len(images), batch_size)]
    finally:
        if close is not None:
            close.close()
    return torch.cat(parts)


def _probe_split(bias: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded half/half split of the indices, stratified by bias code."""
    rng = np.random.default_rng(seed)
    fit_idx: list[int] = []
    test_idx: list[int] = []
    codes = bias.numpy()
    for code in np.unique(codes):
        idx = rng.permutation(np.flatnonzero(codes == code))
        cut = len(idx) // 2
        fit_idx += idx[:cut].tolist()
        test_idx += idx[cut:].tolist()
    return torch.tensor(sorted(fit_idx)), torch.tensor(sorted(test_idx))


def adversary_accuracy(model: nn.Module, objective_or_layer: AdversarialDebiasing | str | None, data_images: Tensor,
                       bias: Tensor, *, epochs: int = 200, seed: int = 0, hidden: int = 0, lr: float = 0.05,
                       weight_decay: float = 1e-3) -> float:
    """How well a FRESH probe predicts the bias from the model's frozen features: balanced accuracy in [0, 1].

    ``data_images``/``bias`` should be held out from training, ideally with the bias independent of the label
    (otherwise the probe can read the bias off the label information). They are split half/half (seeded,
    stratified by bias): the probe (logistic regression on standardised features, or an MLP with ``hidden``
    units) is fit full-batch with Adam for ``epochs`` steps on one half and scored on the other. Balanced
    accuracy (mean per-code recall) makes chance 1/K whatever the bias shares. The model is not changed.
    """
    bias = bias.detach().cpu().long()
    if len(data_images) != len(bias):
        raise ValueError(f"{len(data_images)} images but {len(bias)} bias codes; pass one bias code per image")
    codes = torch.unique(bias)
    if len(codes) < 2:
        raise ValueError("the held-out bias holds one code only; pass images from at least 2 bias groups")
    counts = torch.bincount(bias)
    if int(counts[counts > 0].min()) < 2:
        raise ValueError("a bias code has fewer than 2 held-out images; pass at least 2 images per bias code")
    feats = extract_features(model, objective_or_layer, data_images)
    fit_idx, test_idx = _probe_split(bias, seed)
    remap = torch.full((int(bias.max()) + 1,), -1, dtype=torch.long)
    remap[codes] = torch.arange(len(codes))
    target = remap[bias]
    x_fit, x_test = feats[fit_idx], feats[test_idx]
    mean, std = x_fit.mean(0), x_fit.std(0).clamp_min(1e-6)
    x_fit, x_test = (x_fit - mean) / std, (x_test - mean) / std
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        width = feats.shape[1]
        probe: nn.Module = (nn.Linear(width, len(codes)) if hidden <= 0 else
                            nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, len(codes))))
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(epochs):
            opt.zero_grad()
            F.cross_entropy(probe(x_fit), target[fit_idx]).backward()
            opt.step()
    with torch.no_grad():
        pred = probe(x_test).argmax(1)
    truth = target[test_idx]
    recalls = [(pred[truth == k] == k).float().mean().item() for k in range(len(codes)) if (truth == k).any()]
    return float(sum(recalls) / len(recalls))
