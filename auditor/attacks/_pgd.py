"""FGSM and PGD in pixel space: the steps, the projection, and the best iterate kept per image.

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples" (ICLR 2015): FGSM.
Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to Adversarial
Attacks" (ICLR 2018): PGD. Public through `auditor.attacks.whitebox`, whose docstring states the
contract (shapes, devices, costs).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from auditor.attacks._args import (Cancel, Progress, check_batch_size, check_classes, check_eps, check_flag,
                                   check_images, check_int, check_labels, check_logits, check_model, check_norm,
                                   check_positive, check_seed)
from auditor.errors import AuditCancelled
from auditor.validation import Options, check, invalid

__all__ = [
    "KEEP", "LIBRARY", "STEP_FACTOR", "Model", "PgdConfig", "check_common", "check_eps_per_image", "check_pgd", "chunks",
    "clean_wrong", "direction", "fgsm_all", "flat_norm", "grad_and_logits", "pgd_all", "project", "settings",
]

log = logging.getLogger(__name__)

LIBRARY = "auditor (torch)"
STEP_FACTOR = 2.5  # Madry et al.: step size 2.5 * eps / steps, enough to cross the ball and back
KEEP = ("first", "strongest")  # PGD's iterate kept per image: the first adversarial one, or the lowest-margin one

Model = Callable[[Tensor], Tensor]


# ---------------------------------------------------------------------------------------------
# Argument checks


def check_eps_per_image(eps: Any, caller: str, norm: str, n: int, device: torch.device) -> float | Tensor:
    """A float, or a per-image (N,) float tensor on ``device``."""
    if isinstance(eps, Tensor):
        if eps.ndim == 0:
            return check_eps(float(eps), norm, caller)
        if eps.ndim != 1 or eps.shape[0] != n or not eps.is_floating_point():
            raise invalid("eps", caller, f"a float or a float tensor of shape ({n},) (one eps per image)", tuple(eps.shape))
        top = 1.0 if norm == "linf" else float("inf")
        if n and (not bool(torch.isfinite(eps).all()) or float(eps.min()) < 0 or float(eps.max()) > top):
            rng = "[0, 1] (linf pixel units)" if norm == "linf" else "finite and >= 0"
            raise invalid("eps", caller, f"per-image values in {rng}", (float(eps.min()), float(eps.max())))
        return eps.detach().to(device=device, dtype=torch.float32)
    return check_eps(eps, norm, caller)


def check_common(model: Model, x: Any, y: Any, caller: str, batch_size: Any) -> tuple[Tensor, Tensor, int]:
    """Checks shared by every white-box attack; runs inside the frozen context. One image goes through
    the model (the logits' shape, the labels' range). Returns x, y and the forwards used."""
    check_model(model, caller)
    check_batch_size(batch_size, caller)
    x_t = check_images(x, caller)
    y_t = check_labels(y, x_t.shape[0], caller).to(x_t.device)
    if x_t.shape[0] == 0:
        return x_t, y_t, 0
    with torch.no_grad():
        logits = check_logits(model(x_t[:1]), 1, caller)
    check_classes(y_t, int(logits.shape[1]), caller)
    return x_t, y_t, 1


@dataclass(frozen=True)
class PgdConfig:
    norm: str
    steps: int
    step_size: float | None  # None: 2.5 * eps / steps per image
    random_start: bool
    restarts: int
    keep: str = "first"  # which iterate is returned per image: one of KEEP


def check_pgd(caller: str, norm: Any, steps: Any, step_size: Any, random_start: Any, restarts: Any,
              seed: Any, keep: Any = "first") -> PgdConfig:
    norm = check_norm(norm, caller)
    steps = check_int(steps, "steps", caller, 1)
    restarts = check_int(restarts, "restarts", caller, 1)
    check_seed(seed, caller)
    random_start = check_flag(random_start, "random_start", caller)
    if restarts > 1 and not random_start:
        raise invalid("restarts", caller, "1 when random_start is False (every restart would repeat the first)", restarts)
    if step_size is not None:
        step_size = check_positive(step_size, "step_size", caller)
    keep = check(keep, Options(*KEEP), param="keep", caller=caller)
    return PgdConfig(norm, steps, step_size, random_start, restarts, keep)


# ---------------------------------------------------------------------------------------------
# Core


def chunks(n: int, batch_size: int, stage: str, progress: Progress, cancel: Cancel) -> Iterator[tuple[int, int]]:
    """(start, stop) of each chunk; ``cancel`` is asked before and ``progress`` told after each."""
    for start in range(0, n, batch_size):
        if cancel is not None and cancel():
            raise AuditCancelled(f"audit cancelled during {stage}")
        stop = min(n, start + batch_size)
        yield start, stop
        if progress is not None:
            progress(stage, stop, n)


def _margin(logits: Tensor, y: Tensor) -> Tensor:
    """Logit of ``y`` minus the best other logit: (N,). Negative means misclassified."""
    own = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, y.view(-1, 1), float("-inf"))
    return own - others.amax(1)


def _wrong(logits: Tensor, y: Tensor) -> Tensor:
    return logits.argmax(1) != y


def _per_image(v: float | Tensor, n: int, like: Tensor) -> Tensor:
    """(n, 1, 1, 1) float tensor on like's device."""
    if isinstance(v, Tensor):
        return v.to(device=like.device, dtype=like.dtype).view(n, 1, 1, 1)
    return torch.full((n, 1, 1, 1), float(v), device=like.device, dtype=like.dtype)


def flat_norm(t: Tensor, norm: str) -> Tensor:
    flat = t.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def direction(grad: Tensor, norm: str) -> Tensor:
    """The ascent direction of unit norm: sign for linf, g / ||g||_2 for l2 (0 where g is 0)."""
    if norm == "linf":
        return grad.sign()
    length = grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return torch.where(length > 0, grad / length.clamp_min(1e-30), torch.zeros_like(grad))


def project(x: Tensor, x_new: Tensor, eps: Tensor, norm: str) -> Tensor:
    """Onto the eps ball around x, then into [0, 1] (clipping only shrinks the perturbation)."""
    delta = x_new - x
    if norm == "linf":
        delta = torch.maximum(torch.minimum(delta, eps), -eps)
    else:
        length = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = delta * torch.clamp(eps / length.clamp_min(1e-30), max=1.0)
    return (x + delta).clamp_(0.0, 1.0)


def _random_start(x: Tensor, eps: Tensor, norm: str, gen: torch.Generator) -> Tensor:
    """Uniform in the linf ball, or uniform in the l2 ball (normal direction, radius eps * U^(1/d))."""
    if norm == "linf":
        delta = (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    else:
        d = x[0].numel()
        v = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        v = v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)
        u = torch.rand((x.shape[0], 1, 1, 1), generator=gen, device=x.device, dtype=x.dtype)
        delta = v * eps * u.pow(1.0 / d)
    return (x + delta).clamp_(0.0, 1.0)


class _Best:
    """Per image: the first adversarial iterate seen, else the one with the lowest margin; or, when
    ``strongest``, the one with the lowest margin whatever came first."""

    def __init__(self, x: Tensor, strongest: bool = False) -> None:
        self.strongest = strongest
        self.x = x.clone()
        self.found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        self.margin = torch.full((x.shape[0],), float("inf"), device=x.device)

    def update(self, x_cur: Tensor, logits: Tensor, y: Tensor) -> None:
        logits = logits.detach().float()
        wrong = _wrong(logits, y)
        margin = _margin(logits, y)
        lower = margin < self.margin
        replace = lower if self.strongest else ~self.found & (wrong | lower)
        self.x = torch.where(replace.view(-1, 1, 1, 1), x_cur, self.x)
        self.margin = torch.where(replace, margin, self.margin)
        self.found |= wrong


def grad_and_logits(model: Model, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient of the summed cross-entropy wrt x (per-image gradients, unscaled by the batch) and the logits."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = model(xg)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xg)
    return grad, logits.detach()


def _pgd_chunk(model: Model, x: Tensor, y: Tensor, eps: Tensor, cfg: PgdConfig, gens: list[torch.Generator],
               track_clean: bool) -> tuple[Tensor, Tensor, int, int]:
    """PGD on one chunk: (x_adv, found, forwards, backwards). ``eps`` (n, 1, 1, 1); one generator per restart."""
    n = x.shape[0]
    step = eps * (STEP_FACTOR / cfg.steps) if cfg.step_size is None else _per_image(cfg.step_size, n, x)
    best = _Best(x, strongest=cfg.keep == "strongest")
    forward = backward = 0
    if track_clean and cfg.random_start:  # without a random start, the first step sees x itself
        with torch.no_grad():
            best.update(x, model(x), y)
        forward += n
    for gen in gens:
        x_cur = _random_start(x, eps, cfg.norm, gen) if cfg.random_start else x
        for _ in range(cfg.steps):
            grad, logits = grad_and_logits(model, x_cur, y)
            best.update(x_cur, logits, y)
            x_cur = project(x, x_cur + step * direction(grad, cfg.norm), eps, cfg.norm)
        with torch.no_grad():
            best.update(x_cur, model(x_cur), y)
        forward += n * (cfg.steps + 1)
        backward += n * cfg.steps
    return best.x, best.found, forward, backward


def pgd_all(model: Model, x: Tensor, y: Tensor, eps: float | Tensor, cfg: PgdConfig, seed: int, batch_size: int,
             progress: Progress, cancel: Cancel, stage: str, track_clean: bool = True) -> tuple[Tensor, Tensor, int, int]:
    """PGD over all images in chunks: (x_adv, success on CPU, forwards, backwards)."""
    n = x.shape[0]
    x_adv = torch.empty_like(x)
    success = torch.zeros(n, dtype=torch.bool)
    # One stream per restart: restart r draws the same starts whatever the number of restarts or chunks,
    # so more restarts never lose an adversarial image that fewer found.
    gens = [torch.Generator(device=x.device).manual_seed((int(seed) * 1_000_003 + r) % 2**63) for r in range(cfg.restarts)]
    forward = backward = 0
    for start, stop in chunks(n, batch_size, stage, progress, cancel):
        e = eps[start:stop] if isinstance(eps, Tensor) else eps
        xa, found, f, b = _pgd_chunk(model, x[start:stop], y[start:stop], _per_image(e, stop - start, x), cfg, gens,
                                     track_clean)
        x_adv[start:stop] = xa
        success[start:stop] = found.cpu()
        forward += f
        backward += b
    return x_adv, success, forward, backward


def fgsm_all(model: Model, x: Tensor, y: Tensor, eps: float | Tensor, norm: str, batch_size: int,
              progress: Progress, cancel: Cancel, stage: str) -> tuple[Tensor, Tensor, int, int]:
    n = x.shape[0]
    x_adv = torch.empty_like(x)
    success = torch.zeros(n, dtype=torch.bool)
    for start, stop in chunks(n, batch_size, stage, progress, cancel):
        xs, ys = x[start:stop], y[start:stop]
        e = _per_image(eps[start:stop] if isinstance(eps, Tensor) else eps, stop - start, x)
        grad, logits = grad_and_logits(model, xs, ys)
        x1 = project(xs, xs + e * direction(grad, norm), e, norm)
        with torch.no_grad():
            wrong1 = _wrong(model(x1), ys)
        wrong0 = _wrong(logits, ys)  # already misclassified: x itself is the adversarial image
        x_adv[start:stop] = torch.where(wrong0.view(-1, 1, 1, 1), xs, x1)
        success[start:stop] = (wrong0 | wrong1).cpu()
    return x_adv, success, 2 * n, n


def clean_wrong(model: Model, x: Tensor, y: Tensor, batch_size: int, stage: str, progress: Progress,
                cancel: Cancel) -> Tensor:
    """(N,) bool on CPU: the model does not predict y on x."""
    wrong = torch.zeros(x.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for start, stop in chunks(x.shape[0], batch_size, stage, progress, cancel):
            wrong[start:stop] = _wrong(model(x[start:stop]), y[start:stop]).cpu()
    return wrong


def settings(attack: str, norm: str, eps: Any, **extra: Any) -> dict[str, Any]:
    """How an attack ran, for the results: the attack, its norm and eps, ``extra``, the library."""
    out: dict[str, Any] = {"attack": attack, "norm": norm}
    if isinstance(eps, Tensor):
        out["eps"] = "per-image"
        out["eps_range"] = [float(eps.min()), float(eps.max())] if eps.numel() else []
    else:
        out["eps"] = eps
    out.update(extra)
    out["library"] = LIBRARY
    out["torch"] = torch.__version__
    return out
