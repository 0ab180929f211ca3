"""Adversarial debiasing: train the classifier while an adversary tries to predict the bias (a sensitive
attribute or a known bias variable) from its features, and make the features useless to it.

Two ways to turn the adversary against the features (``mode``): ``reversal``, a gradient-reversal
layer (Ganin & Lempitsky 2015; Zhang, Lemoine & Mitchell 2018), where the features maximise the
adversary's cross-entropy; and ``confusion`` (Alvi et al. 2018; the entropy term of Kim et al. 2019
"Learning Not to Learn"), where they are pushed towards the adversary predicting the uniform
distribution. The training adversary's own accuracy is a poor measure of success (it is trained
against a moving target), so `adversary_accuracy` fits a fresh probe on the frozen features of
held-out images instead.

Inside: ``_features`` (finding and hooking the feature layer) and ``_adversary_probe`` (the fresh probe);
their public names are importable from here.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Self

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from auditor.mitigate._adversary_probe import adversary_accuracy, extract_features
from auditor.mitigate._checks import Hinted, at_least
from auditor.mitigate._features import LayerNotReachable, eval_forward, find_feature_layer, tap_layer
from auditor.validation import Interval, Options, ParameterError, check, invalid

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
_CALLER = "AdversarialDebiasing"


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
    check(schedule, Options(*SCHEDULES), param="schedule", caller="schedule_factor")
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return p
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0  # dann


def _balancing_weights(counts: Tensor | None, n_bias: int) -> Tensor | None:
    """Per-code weights ``N / (K * count)`` (0 for an absent code) from the training counts, or None."""
    if counts is None:
        return None
    c = torch.as_tensor(counts, dtype=torch.float32).detach().cpu().reshape(-1)
    if c.numel() != n_bias or bool((c < 0).any()) or not bool(torch.isfinite(c).all()) or float(c.sum()) <= 0:
        raise invalid("bias_counts", _CALLER, f"{n_bias} non-negative counts (images per bias code) with a positive sum",
                      c.tolist())
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
        self.n_bias: int = check(n_bias, at_least(2, "the bias variable's codes"), param="n_bias", caller=_CALLER)
        self.strength: float = check(strength, Hinted(Interval(float, 0, None), "the full reversal strength"),
                                     param="strength", caller=_CALLER)
        hidden = check(hidden, at_least(1, "the adversary MLP's width"), param="hidden", caller=_CALLER)
        self.schedule: str = check(schedule, Options(*SCHEDULES), param="schedule", caller=_CALLER)
        self.mode: str = check(mode, Options(*MODES), param="mode", caller=_CALLER)
        self.bias_weight = _balancing_weights(bias_counts, self.n_bias)
        self.layer_name, self._tap, width = tap_layer(model, layer, example_batch)
        if example_batch is not None:
            eval_forward(model, example_batch)
            width = self._tap.take().shape[1]
        if width is None:
            self._tap.close()
            raise invalid("example_batch", _CALLER, f"a few input images when layer {self.layer_name!r} is named "
                          "(its feature width is found with a forward)", None)
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
            raise ParameterError("adversarial debiasing needs batch.bias (the bias code per image); "
                                 "load the training data with bias=")
        logits = model(batch.x)
        features = self._tap.take()
        task = F.cross_entropy(logits, batch.y)
        lam = self.current_strength(progress)
        bias = batch.bias.to(features.device).long()
        if bias.numel() and (int(bias.min()) < 0 or int(bias.max()) >= self.n_bias):
            raise ParameterError(f"batch.bias holds codes outside 0..{self.n_bias - 1}; pass n_bias= the number of bias codes")
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
        eval_forward(model, x)
        return self._tap.take()

    def close(self) -> None:
        """Remove the feature hook (the model is then exactly as before, bar its trained weights)."""
        self._tap.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
