"""Adversarial training: fit the model on PGD adversarial images instead of (or besides) clean ones.

Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to Adversarial
Attacks" (ICLR 2018): minimise the cross-entropy of the worst image in the eps ball, found by PGD
from a random start. The adversarial images come from the project's own attack,
`auditor.attacks.whitebox.pgd`, with the model in eval mode (batch norm and dropout as at test
time) and frozen; the update then runs in train mode. The step size is the attack's, 2.5 * eps /
steps. One difference from the paper's loop: `pgd` keeps, per image, the first iterate that is
misclassified (else the lowest-margin one), so an image is not pushed further than it takes to
flip it: close to the early-stopped PGD of "friendly" adversarial training (Zhang, Xu, Han, Niu,
Cui, Sugiyama & Kankanhalli, ICML 2020), not the paper's last iterate.

Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically Principled Trade-off between Robustness
and Accuracy" (ICML 2019), TRADES, with ``trades_beta``: loss = CE(f(x), y) + beta * KL(f(x) || f(x'))
(``F.kl_div(log_softmax(f(x')), softmax(f(x)))``, averaged over the batch, as the authors' code),
x' found by PGD steps that maximise that KL from a start at x + 0.001 * N(0, 1) (our own short
loop: `pgd` attacks the cross-entropy of a label, not a KL).

eps is in pixel units of [0, 1] images (linf), or the L2 norm of the perturbation over all pixels
(l2), as for the audit's attacks: train at the eps the audit will attack at. ``eps_warmup`` ramps
eps linearly from 0 over that share of training, which helps small models start.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from auditor.attacks.whitebox import _STEP_FACTOR, NORMS, _direction, _project, pgd
from auditor.frozen import frozen
from auditor.mitigate._checks import POSITIVE, at_least
from auditor.mitigate.loop import Batch, accuracy
from auditor.validation import Hinted, Interval, Options, check

__all__ = ["AdversarialTraining"]

_TRADES_START = 0.001  # std of the Gaussian start of the TRADES attack (the authors' value)


class AdversarialTraining:
    """PGD adversarial training (Madry et al.), or TRADES (Zhang et al.) with ``trades_beta``; an `Objective`.

    ``eps``: linf in [0, 1] pixel units, l2 a norm >= 0; ``norm``: "linf" or "l2"; ``steps``: PGD
    steps per batch (step size 2.5 * eps / steps); ``trades_beta``: None for PGD-AT, else the
    weight of the TRADES KL term (the paper uses 1 to 6); ``eps_warmup``: the share of training
    over which eps ramps up from 0. Logs ``clean_accuracy`` and ``adv_accuracy`` of each batch
    (model in eval mode, before the update) and the ``eps`` used.
    """

    def __init__(self, eps: float, *, norm: str = "linf", steps: int = 7, trades_beta: float | None = None,
                 eps_warmup: float = 0.0) -> None:
        caller = "AdversarialTraining"
        self.norm = check(norm, Options(*NORMS), param="norm", caller=caller)
        if norm == "linf":
            budget = Hinted(Interval(float, 0, 1), "pixel units of [0, 1] images, e.g. 8/255")
        else:
            budget = Hinted(Interval(float, 0, None), "the perturbation's L2 norm over all pixels")
        self.eps = check(eps, budget, param="eps", caller=caller)
        self.steps = check(steps, at_least(1, "PGD steps per batch, e.g. 7"), param="steps", caller=caller)
        self.trades_beta = check(trades_beta, Hinted(POSITIVE, "e.g. 6.0"), None, param="trades_beta", caller=caller)
        self.eps_warmup = check(eps_warmup, Hinted(Interval(float, 0, 1, closed="left"), "a share of training, e.g. 0.2"),
                                param="eps_warmup", caller=caller)
        self.modules: list[nn.Module] = []

    def settings(self) -> dict[str, Any]:
        """The recipe, for a report: method, eps, norm, steps, step size, beta, warm-up."""
        return {"method": "trades" if self.trades_beta is not None else "pgd-at", "eps": self.eps, "norm": self.norm,
                "steps": self.steps, "step_size": f"{_STEP_FACTOR} * eps / steps", "random_start": True,
                "trades_beta": self.trades_beta, "eps_warmup": self.eps_warmup}

    def eps_at(self, progress: float) -> float:
        """eps at ``progress`` (share of training done): ramped up over ``eps_warmup``, then constant."""
        if self.eps_warmup == 0.0:
            return self.eps
        return self.eps * min(1.0, max(0.0, progress) / self.eps_warmup)

    def loss(self, model: nn.Module, batch: Batch, progress: float) -> tuple[Tensor, dict[str, float]]:
        eps = self.eps_at(progress)
        seed = int(torch.randint(0, 2**31 - 1, ()).item())  # from the loop's seeded RNG: resumable
        if self.trades_beta is not None:
            return self._trades(model, batch, eps, seed)
        with frozen(model), torch.no_grad():
            clean = model(batch.x)
        attack = pgd(model, batch.x, batch.y, eps, norm=self.norm, steps=self.steps, seed=seed,
                     batch_size=max(1, batch.x.shape[0]))
        logits = model(attack.x_adv.detach())  # train mode again: frozen() restored it
        logs = {"clean_accuracy": accuracy(clean, batch.y), "adv_accuracy": 1.0 - attack.success_rate, "eps": eps}
        return F.cross_entropy(logits, batch.y), logs

    def _trades(self, model: nn.Module, batch: Batch, eps: float, seed: int) -> tuple[Tensor, dict[str, float]]:
        x_adv, clean, adv = trades_examples(model, batch.x, eps, norm=self.norm, steps=self.steps, seed=seed)
        logits_clean = model(batch.x)
        logits_adv = model(x_adv)
        kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="batchmean")
        logs = {"clean_accuracy": accuracy(clean, batch.y), "adv_accuracy": accuracy(adv, batch.y),
                "kl": float(kl.detach()), "eps": eps}
        return F.cross_entropy(logits_clean, batch.y) + self.trades_beta * kl, logs


def trades_examples(model: nn.Module, x: Tensor, eps: float, *, norm: str = "linf", steps: int = 7,
                    seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """The TRADES attack: x' in the eps ball and [0, 1] maximising KL(f(x) || f(x')), model frozen in eval mode.

    Returns x' (detached), and the eval-mode logits on x and on x'. Step 2.5 * eps / steps along the
    sign (linf) or the normalised gradient (l2), projected after each step, as `pgd` does.
    """
    with frozen(model):
        with torch.no_grad():
            clean = model(x)
        if eps == 0.0:
            return x.detach(), clean, clean
        p_clean = F.softmax(clean.float(), 1)
        radius = torch.full((x.shape[0], 1, 1, 1), float(eps), device=x.device, dtype=x.dtype)
        gen = torch.Generator(device=x.device).manual_seed(seed)
        noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        x_adv = _project(x, x + _TRADES_START * noise, radius, norm)
        step = radius * (_STEP_FACTOR / steps)
        for _ in range(steps):
            with torch.enable_grad():
                xg = x_adv.detach().requires_grad_(True)
                kl = F.kl_div(F.log_softmax(model(xg).float(), 1), p_clean, reduction="sum")
                (grad,) = torch.autograd.grad(kl, xg)
            x_adv = _project(x, x_adv + step * _direction(grad, norm), radius, norm)
        with torch.no_grad():
            adv = model(x_adv)
    return x_adv.detach(), clean, adv

