"""Transfer attack: train a substitute on the oracle's labels, attack the substitute, replay on the oracle.

Papernot et al., "Practical Black-Box Attacks against Machine Learning" (AsiaCCS 2017): an attacker
who can only query the model labels a pool of images with it, trains a local substitute on those
labels, crafts white-box adversarial examples on the substitute and sends them to the model;
adversarial examples transfer between models that learned the same cue. Madry et al., "Towards Deep
Learning Models Resistant to Adversarial Attacks" (ICLR 2018): the PGD attack used on the substitute,
`auditor.attacks.whitebox.pgd` itself.

Our own implementation (no Jacobian-based pool augmentation: the pool is the caller's). The model is
only queried for labels through a :class:`~auditor.attacks.blackbox.CountingOracle`, so a model that
cannot be differentiated is fine. Every query is counted: the pool's labels, the evaluation images'
clean labels, and the adversarial images.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from auditor.attacks._args import (Cancel, Progress, check_batch_size, check_callbacks, check_classes, check_eps,
                                   check_flag, check_int, check_labels, check_norm, check_positive, check_seed,
                                   image_array, l2_ceiling)
from auditor.attacks._oracle import CountingOracle, as_oracle
from auditor.attacks._pgd import STEP_FACTOR
from auditor.attacks.whitebox import pgd
from auditor.errors import AuditCancelled
from auditor.validation import Instance, check, invalid

__all__ = ["SubstituteCNN", "TransferResult", "transfer_attack"]

log = logging.getLogger(__name__)

_DEFAULT_SUBSTITUTE = "SubstituteCNN: conv 32, 32/2, 64, 64/2, 128 (3x3, ReLU), adaptive avg pool 4x4, linear 2048-256-C"


class SubstituteCNN(nn.Module):
    """The default substitute: five 3x3 convolutions (32, 32/2, 64, 64/2, 128 channels; /2 = stride 2)
    with ReLU, adaptive average pooling to 4 x 4, then 2048 -> 256 -> ``n_classes``. Any H, W >= 1;
    input in [0, 1] (centred on 0.5 inside)."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128 * 16, 256), nn.ReLU(), nn.Linear(256, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x - 0.5))


@dataclass
class TransferResult:
    """What the transfer attack found.

    ``x_adv`` (N, 3, H, W) float32 on CPU (the clean image where the oracle already got it wrong);
    ``success`` (N,) bool: the oracle does not predict ``y_eval`` on ``x_adv`` (images it already got
    wrong count: the clean image is in the ball); ``n_already_wrong`` of them were wrong before any
    attack; ``queries``: images sent to the oracle (pool + clean eval + adversarial);
    ``substitute_agreement``: share of ``x_eval`` where the substitute and the oracle predict the same
    class; ``substitute``: the trained substitute (eval mode); ``settings``: how it ran.
    """

    x_adv: Tensor
    success: Tensor
    queries: int
    substitute_agreement: float
    n_already_wrong: int
    substitute: nn.Module
    settings: dict[str, Any]


def _train(model: nn.Module, x: Tensor, labels: Tensor, epochs: int, lr: float, batch_size: int, augment: bool,
           device: torch.device, gen: torch.Generator, cancel: Cancel, progress: Progress) -> float:
    """Adam on cross-entropy with the oracle's labels; random horizontal flips when ``augment``.
    Returns the share of the pool the trained substitute labels as the oracle did (``pool_agreement``)."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    n = x.shape[0]
    model.train()
    for epoch in range(epochs):
        if cancel is not None and cancel():
            raise AuditCancelled("audit cancelled while training the transfer substitute")
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb = x[idx]
            if augment:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
            loss = F.cross_entropy(model(xb.to(device)), labels[idx].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        if progress is not None:
            progress("substitute", epoch + 1, epochs)
    model.eval()
    return float((_predict(model, x, batch_size, device) == labels).float().mean())


def _predict(model: nn.Module, x: Tensor, batch_size: int, device: torch.device) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(x[s:s + batch_size].to(device)).argmax(1).cpu() for s in range(0, x.shape[0], batch_size)])


def transfer_attack(
    oracle: CountingOracle | Callable[[Tensor], Tensor],
    x_pool: Tensor | np.ndarray,
    x_eval: Tensor | np.ndarray,
    y_eval: Tensor | np.ndarray,
    eps: float,
    *,
    norm: str = "linf",
    substitute: nn.Module | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    train_batch_size: int = 32,
    augment: bool = True,
    steps: int = 10,
    step_size: float | None = None,
    seed: int = 0,
    batch_size: int = 256,
    progress: Progress = None,
    cancel: Cancel = None,
) -> TransferResult:
    """Label ``x_pool`` with the oracle, train a substitute on those labels, attack it with PGD within
    ``eps`` (``norm`` "linf" or "l2") on ``x_eval``, and replay the adversarial images on the oracle.

    ``substitute``: an untrained module mapping [0, 1] images to ``C`` logits (copied, never trained
    in place); default :class:`SubstituteCNN`, initialised from ``seed``. Training: ``epochs`` of Adam
    (``lr``) in minibatches of ``train_batch_size``, random horizontal flips when ``augment`` (the oracle's
    label is assumed flip-invariant). PGD: `auditor.attacks.whitebox.pgd` on the substitute, ``steps``
    steps of ``step_size`` (default 2.5 eps / steps) from a random start, on cross-entropy against
    ``y_eval``, keeping per image the lowest-margin iterate (``keep="strongest"``: an example that only
    just crosses the substitute's boundary transfers worse than the most confidently wrong one); only images the oracle gets right are attacked and sent again. At ``eps`` 0 nothing is
    attacked. Everything random (initialisation, shuffling, flips, PGD start) comes from ``seed``;
    torch's global generator is left as it was. ``progress("substitute", epoch, epochs)`` after each
    epoch and ``progress("transfer", done, total)`` after each PGD chunk of ``batch_size``;
    ``cancel()`` is checked before each.
    """
    caller = "transfer_attack"
    oracle = as_oracle(oracle, caller)
    pool = torch.from_numpy(image_array(x_pool, caller, "x_pool"))
    xe = torch.from_numpy(image_array(x_eval, caller, "x_eval"))
    if pool.shape[1:] != xe.shape[1:]:
        raise invalid("x_eval", caller, f"images of the pool's shape {tuple(pool.shape[1:])}", tuple(xe.shape[1:]))
    ye = check_labels(y_eval, xe.shape[0], caller, "y_eval")
    norm = check_norm(norm, caller)
    eps = check_eps(eps, norm, caller, l2_max=l2_ceiling(tuple(xe.shape)))
    epochs = check_int(epochs, "epochs", caller, 1)
    steps = check_int(steps, "steps", caller, 1)
    batch_size = check_batch_size(batch_size, caller)
    train_batch_size = check_int(train_batch_size, "train_batch_size", caller, 1)
    lr = check_positive(lr, "lr", caller)
    augment = check_flag(augment, "augment", caller)
    step_size = None if step_size is None else check_positive(step_size, "step_size", caller)
    seed = check_seed(seed, caller)
    check_callbacks(progress, cancel, caller)
    check(substitute, None, Instance(nn.Module, "an untrained torch.nn.Module"), param="substitute", caller=caller)

    start_queries = oracle.queries
    pool_labels = torch.from_numpy(oracle.labels(pool))
    check_classes(ye, oracle.n_classes or 2, caller, "y_eval")
    n_classes = int(oracle.n_classes or 2)
    device = oracle.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SubstituteCNN(n_classes) if substitute is None else copy.deepcopy(substitute)
    model = model.to(device)
    gen = torch.Generator().manual_seed(seed)
    pool_agreement = _train(model, pool, pool_labels, epochs, lr, train_batch_size, augment, device, gen,
                            cancel, progress)

    clean = torch.from_numpy(oracle.labels(xe))
    substitute_agreement = float((_predict(model, xe, batch_size, device) == clean).float().mean())
    already_wrong = clean != ye
    x_adv = xe.clone()
    success = already_wrong.clone()
    todo = torch.nonzero(~already_wrong).flatten()
    if eps > 0.0 and len(todo) > 0:
        within = None if progress is None else (lambda _stage, done, total: progress("transfer", done, total))
        crafted = pgd(model, xe[todo].to(device), ye[todo].to(device), eps, norm=norm, steps=steps, step_size=step_size,
                      random_start=True, seed=seed, keep="strongest", batch_size=batch_size, progress=within,
                      cancel=cancel)
        x_adv[todo] = crafted.x_adv.cpu()
        success[todo] = torch.from_numpy(oracle.labels(x_adv[todo])) != ye[todo]
    settings = {
        "attack": "transfer", "norm": norm, "eps": eps, "seed": seed,
        "substitute": _DEFAULT_SUBSTITUTE if substitute is None else type(model).__name__,
        "substitute_parameters": sum(p.numel() for p in model.parameters()),
        "epochs": epochs, "lr": lr, "train_batch_size": train_batch_size,
        "augment": "random horizontal flips" if augment else "none",
        "pool_size": int(pool.shape[0]), "pool_agreement": pool_agreement,
        "pgd": {"steps": steps, "step_size": STEP_FACTOR * eps / steps if step_size is None else step_size, "random_start": True,
                "keep": "strongest", "loss": "cross-entropy"},
        "queries_pool": int(pool.shape[0]), "queries_eval": int(xe.shape[0]),
        "queries_adversarial": len(todo) if eps > 0 else 0,
    }
    return TransferResult(
        x_adv=x_adv,
        success=success,
        queries=oracle.queries - start_queries,
        substitute_agreement=substitute_agreement,
        n_already_wrong=int(already_wrong.sum()),
        substitute=model,
        settings=settings,
    )
