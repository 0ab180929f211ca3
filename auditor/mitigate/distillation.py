"""Defensive distillation (Papernot, McDaniel, Wu, Jha & Swami, IEEE S&P 2016).

The recipe, three steps:

1. train the teacher at temperature T: ``fit(teacher, train_teacher_at_temperature(teacher, T), ...)``
   (cross-entropy of ``logits / T``);
2. distil a student at the same T: ``fit(student, Distillation(teacher, T), ...)``, the student's
   softmax at T fitted to the teacher's soft labels at T (Hinton, Vinyals & Dean 2015's
   ``T^2 * KL``, optionally mixed with the hard-label cross-entropy);
3. serve the student at T = 1, i.e. its raw logits: they are about T times larger than the ones it
   was trained to produce, so its softmax saturates.

Known weakness, to report as such: the saturated softmax makes the input gradients of the
cross-entropy vanish, so gradient attacks (FGSM, PGD on the cross-entropy) fail, but the model is
not more robust. Carlini & Wagner ("Defensive Distillation is Not Robust to Adversarial Examples",
2016; "Towards Evaluating the Robustness of Neural Networks", S&P 2017) break it with a
logit-margin loss, and transfer and query (black-box) attacks break it too. This is gradient
masking: when the audit's black-box checks or the attack curve say so, the robustness gain is
not real.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from auditor.frozen import frozen
from auditor.mitigate._checks import POSITIVE
from auditor.mitigate.loop import Batch, accuracy
from auditor.validation import Hinted, Interval, check, invalid

__all__ = ["Distillation", "TemperatureCrossEntropy", "soft_labels", "train_teacher_at_temperature"]


_TEMPERATURE = Hinted(POSITIVE, "Papernot et al. use 20-100; 1 is no distillation")
_ALPHA = Hinted(Interval(float, 0, 1), "the hard-label share; 0 for pure distillation")


def _check_temperature(temperature: Any, caller: str) -> float:
    return check(temperature, _TEMPERATURE, param="temperature", caller=caller)


def soft_labels(logits: Tensor, temperature: float) -> Tensor:
    """The softmax of ``logits / temperature``: (N, C) probabilities."""
    return F.softmax(logits.float() / temperature, dim=1)


class TemperatureCrossEntropy:
    """Cross-entropy of ``model(x) / T``: step 1 of the recipe (the teacher trained at temperature T).

    Bound to the model it trains (``model``): `loss` refuses another one, so a teacher objective is
    not used on the student by mistake. Logs the batch accuracy (unchanged by T).
    """

    def __init__(self, model: nn.Module, temperature: float) -> None:
        if not isinstance(model, nn.Module):
            raise invalid("model", "TemperatureCrossEntropy", "the torch.nn.Module to train as the teacher",
                          type(model).__name__)
        self.model = model
        self.temperature = _check_temperature(temperature, "TemperatureCrossEntropy")
        self.modules: list[nn.Module] = []

    def loss(self, model: nn.Module, batch: Batch, progress: float) -> tuple[Tensor, dict[str, float]]:
        if model is not self.model:
            raise invalid("model", "TemperatureCrossEntropy.loss", "the model this teacher objective was made for "
                          "(call train_teacher_at_temperature(model, T) with the model fit trains)", type(model).__name__)
        logits = model(batch.x)
        return F.cross_entropy(logits / self.temperature, batch.y), {"accuracy": accuracy(logits, batch.y)}


def train_teacher_at_temperature(model: nn.Module, temperature: float) -> TemperatureCrossEntropy:
    """The objective for step 1: train ``model`` (the teacher) on the cross-entropy of ``logits / temperature``."""
    return TemperatureCrossEntropy(model, temperature)


class Distillation:
    """Step 2: fit the student's soft labels at T to the teacher's; an `Objective`.

    loss = (1 - alpha) * T^2 * KL(p_teacher || p_student) + alpha * CE(student(x), y), with p the
    softmax at temperature T (``F.kl_div(log_softmax(student / T), log_softmax(teacher / T))``, the
    batch mean). T^2 keeps the gradient's scale independent of T (Hinton et al.). The teacher runs
    frozen in eval mode, never trained. ``alpha`` in [0, 1]: 0 is pure distillation (Papernot et
    al.). Logs ``kl`` (at T, without T^2), ``agreement`` (student and teacher top-1 the same) and
    ``accuracy``.
    """

    def __init__(self, teacher: nn.Module, temperature: float, *, alpha: float = 0.0) -> None:
        if not isinstance(teacher, nn.Module):
            raise invalid("teacher", "Distillation", "a trained torch.nn.Module", type(teacher).__name__)
        self.teacher = teacher
        self.temperature = _check_temperature(temperature, "Distillation")
        self.alpha = check(alpha, _ALPHA, param="alpha", caller="Distillation")
        self.modules: list[nn.Module] = []  # the teacher is not trained: not among the modules

    def loss(self, model: nn.Module, batch: Batch, progress: float) -> tuple[Tensor, dict[str, float]]:
        if model is self.teacher:
            raise invalid("model", "Distillation.loss", "the student, not the teacher (pass a fresh model to fit)",
                          type(model).__name__)
        t = self.temperature
        self.teacher.to(batch.x.device)
        with frozen(self.teacher), torch.no_grad():
            teacher_logits = self.teacher(batch.x).float()
        logits = model(batch.x)
        kl = F.kl_div(F.log_softmax(logits.float() / t, 1), F.log_softmax(teacher_logits / t, 1),
                      reduction="batchmean", log_target=True)
        loss = (1.0 - self.alpha) * t * t * kl
        if self.alpha > 0:
            loss = loss + self.alpha * F.cross_entropy(logits, batch.y)
        logs = {"kl": float(kl.detach()), "agreement": accuracy(logits, teacher_logits.argmax(1)),
                "accuracy": accuracy(logits, batch.y)}
        return loss, logs
