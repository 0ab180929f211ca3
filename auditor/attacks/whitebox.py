"""White-box gradient attacks in pixel space: FGSM, PGD, robust-accuracy curves and minimal eps.

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples" (ICLR 2015): FGSM,
one step along the sign (linf) or the normalised gradient (l2) of the cross-entropy loss.
Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to Adversarial
Attacks" (ICLR 2018): PGD, the same step iterated with a projection onto the eps ball and the
[0, 1] box after each step, from a random start in the ball, with restarts.

Our own implementation. The model is frozen for the call (eval mode, no parameter gradients), so
a step costs one forward and one input-only backward. Every image runs every step (no early stop:
the cost is known in advance), and the best iterate so far is kept per image: the first
adversarial one, else the one with the lowest margin (logit of ``y`` minus the best other logit).

Shape: x (N, C, H, W) float in [0, 1] on the model's device; y (N,) int64, the labels to attack
away from; eps a float or a per-image (N,) tensor (linf: pixel units in [0, 1]; l2: the L2 norm of
the perturbation over all pixels). Results stay on x's device, except ``success`` (CPU) and the
numpy arrays of the curve and minimal-eps results.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from auditor.frozen import frozen
from auditor.errors import AuditCancelled, UsageError

__all__ = [
    "ATTACKS",
    "LIBRARY",
    "NORMS",
    "AttackParameterError",
    "AttackResult",
    "CurveResult",
    "MinimalEpsResult",
    "fgsm",
    "input_gradients",
    "minimal_eps",
    "pgd",
    "robust_accuracy_curve",
]

NORMS = ("linf", "l2")
ATTACKS = ("pgd", "fgsm")
LIBRARY = "auditor (torch)"
_STEP_FACTOR = 2.5  # Madry et al.: step size 2.5 * eps / steps, enough to cross the ball and back

Model = Callable[[Tensor], Tensor]
Progress = Callable[[str, int, int], None] | None
Cancel = Callable[[], bool] | None


class AttackParameterError(UsageError, ValueError):
    """A bad argument to an attack (a ValueError, and a UsageError for the CLI's exit 2)."""


def _bad(param: str, caller: str, constraint: str, value: Any) -> AttackParameterError:
    return AttackParameterError(f"The {param!r} parameter of {caller} must be {constraint}. Got {value!r} instead.")


@dataclass
class AttackResult:
    """Adversarial images from :func:`fgsm` or :func:`pgd`.

    ``x_adv`` (N, C, H, W) on x's device, inside the eps ball and [0, 1]; ``success`` (N,) bool on
    CPU: the model's prediction on ``x_adv`` is not ``y`` (an image already misclassified counts,
    with ``x_adv`` = x). ``forward_passes``/``backward_passes`` count images through the model.
    """

    x_adv: Tensor
    success: Tensor
    forward_passes: int
    backward_passes: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if self.success.numel() else 0.0


@dataclass
class CurveResult:
    """Robust accuracy per eps from :func:`robust_accuracy_curve`.

    ``correct`` (E, N) bool: image n is still predicted as its label at ``eps[e]`` (the order of
    the grid given). Each eps is attacked on its own, so the curve is not forced to decrease: a
    rise with eps means the attack failed where it should have succeeded (gradient masking).
    """

    correct: np.ndarray
    eps: list[float]
    forward_passes: int
    backward_passes: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def robust_accuracy(self) -> np.ndarray:
        """(E,) share of images still predicted as their label, per eps."""
        if self.correct.shape[1] == 0:
            return np.zeros(self.correct.shape[0])
        return self.correct.mean(axis=1)


@dataclass
class MinimalEpsResult:
    """Smallest eps found adversarial per image, from :func:`minimal_eps`.

    ``eps`` (N,) float: 0.0 where the image is already misclassified, ``inf`` where PGD at
    ``eps_max`` does not flip it, else an upper bound within ``tol`` of the bisection's lower end.
    ``x_adv`` (N, C, H, W): the adversarial image at that eps (x itself where eps is 0 or inf).
    """

    eps: np.ndarray
    x_adv: Tensor
    forward_passes: int
    backward_passes: int
    settings: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Argument checks


def _check_norm(norm: Any, caller: str) -> str:
    if norm not in NORMS:
        raise _bad("norm", caller, f"one of {', '.join(repr(n) for n in NORMS)}", norm)
    return norm


def _check_int(name: str, value: Any, caller: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise _bad(name, caller, f"an int >= {minimum}", value)
    return int(value)


def _check_float(name: str, value: Any, caller: str, norm: str, *, positive: bool = False) -> float:
    top = 1.0 if norm == "linf" else math.inf
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    lower = "> 0" if positive else ">= 0"
    constraint = f"a number {lower} and <= 1 (linf is in [0, 1] pixel units)" if norm == "linf" else f"a finite number {lower}"
    if not ok or not math.isfinite(float(value)) or float(value) > top or float(value) < 0 or (positive and value == 0):
        raise _bad(name, caller, constraint, value)
    return float(value)


def _check_eps(eps: Any, caller: str, norm: str, n: int, device: torch.device) -> float | Tensor:
    """A float, or a per-image (N,) float tensor on ``device``."""
    if isinstance(eps, Tensor):
        if eps.ndim == 0:
            return _check_float("eps", float(eps), caller, norm)
        top = 1.0 if norm == "linf" else math.inf
        if eps.ndim != 1 or eps.shape[0] != n or not eps.is_floating_point():
            raise _bad("eps", caller, f"a number or a float tensor of shape ({n},) (one eps per image)", tuple(eps.shape))
        if n and (not bool(torch.isfinite(eps).all()) or float(eps.min()) < 0 or float(eps.max()) > top):
            rng = "[0, 1] (linf pixel units)" if norm == "linf" else "finite and >= 0"
            raise _bad("eps", caller, f"per-image values in {rng}", (float(eps.min()), float(eps.max())))
        return eps.detach().to(device=device, dtype=torch.float32)
    return _check_float("eps", eps, caller, norm)


def _check_x(x: Any, caller: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise _bad("x", caller, "a float tensor (N, 3, H, W) in [0, 1]", shape)
    if x.numel() and (not bool(torch.isfinite(x).all()) or float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise _bad("x", caller, "finite pixel values in [0, 1] (normalisation belongs in the model)",
                   (float(x.min()), float(x.max())))
    return x.detach()


def _check_y(y: Any, x: Tensor, caller: str) -> Tensor:
    try:
        y_t = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError):
        raise _bad("y", caller, f"integer labels of shape ({x.shape[0]},)", type(y).__name__) from None
    if y_t.ndim != 1 or y_t.shape[0] != x.shape[0] or y_t.is_floating_point() or y_t.dtype == torch.bool:
        raise _bad("y", caller, f"integer labels of shape ({x.shape[0]},), one per image of x",
                   f"shape {tuple(y_t.shape)}, dtype {y_t.dtype}")
    return y_t.to(device=x.device, dtype=torch.long)


def _check_model(model: Model, x: Tensor, y: Tensor, caller: str) -> int:
    """One image through the model: the logits' shape and the labels' range. Returns the forwards used."""
    if x.shape[0] == 0:
        return 0
    with torch.no_grad():
        logits = model(x[:1])
    if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != 1 or logits.shape[1] < 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise _bad("model", caller, "a callable mapping images (N, 3, H, W) to logits (N, C) with C >= 2", shape)
    n_classes = int(logits.shape[1])
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise _bad("y", caller, f"class indices in [0, {n_classes - 1}]", (int(y.min()), int(y.max())))
    return 1


def _check_common(model: Model, x: Any, y: Any, caller: str, batch_size: Any) -> tuple[Tensor, Tensor, int]:
    """Checks shared by every attack; runs inside the frozen context. Returns x, y and the forwards used."""
    if not callable(model):
        raise _bad("model", caller, "a callable mapping images to logits (a torch.nn.Module)", type(model).__name__)
    _check_int("batch_size", batch_size, caller, 1)
    x_t = _check_x(x, caller)
    y_t = _check_y(y, x_t, caller)
    return x_t, y_t, _check_model(model, x_t, y_t, caller)


# ---------------------------------------------------------------------------------------------
# Core


def _chunks(n: int, batch_size: int, stage: str, progress: Progress, cancel: Cancel):
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


def _flat_norm(t: Tensor, norm: str) -> Tensor:
    flat = t.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _direction(grad: Tensor, norm: str) -> Tensor:
    """The ascent direction of unit norm: sign for linf, g / ||g||_2 for l2 (0 where g is 0)."""
    if norm == "linf":
        return grad.sign()
    length = grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return torch.where(length > 0, grad / length.clamp_min(1e-30), torch.zeros_like(grad))


def _project(x: Tensor, x_new: Tensor, eps: Tensor, norm: str) -> Tensor:
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
    """Per image: the first adversarial iterate seen, else the one with the lowest margin."""

    def __init__(self, x: Tensor) -> None:
        self.x = x.clone()
        self.found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        self.margin = torch.full((x.shape[0],), float("inf"), device=x.device)

    def update(self, x_cur: Tensor, logits: Tensor, y: Tensor) -> None:
        logits = logits.detach().float()
        wrong = _wrong(logits, y)
        margin = _margin(logits, y)
        replace = ~self.found & (wrong | (margin < self.margin))
        self.x = torch.where(replace.view(-1, 1, 1, 1), x_cur, self.x)
        self.margin = torch.where(replace, margin, self.margin)
        self.found |= wrong


@dataclass(frozen=True)
class _PgdConfig:
    norm: str
    steps: int
    step_size: float | None  # None: 2.5 * eps / steps per image
    random_start: bool
    restarts: int


def _grad_and_logits(model: Model, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient of the summed cross-entropy wrt x (per-image gradients, unscaled by the batch) and the logits."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = model(xg)
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xg)
    return grad, logits.detach()


def _pgd_chunk(model: Model, x: Tensor, y: Tensor, eps: Tensor, cfg: _PgdConfig, gens: list[torch.Generator],
               track_clean: bool) -> tuple[Tensor, Tensor, int, int]:
    """PGD on one chunk: (x_adv, found, forwards, backwards). ``eps`` (n, 1, 1, 1); one generator per restart."""
    n = x.shape[0]
    step = eps * (_STEP_FACTOR / cfg.steps) if cfg.step_size is None else _per_image(cfg.step_size, n, x)
    best = _Best(x)
    forward = backward = 0
    if track_clean and cfg.random_start:  # without a random start, the first step sees x itself
        with torch.no_grad():
            best.update(x, model(x), y)
        forward += n
    for gen in gens:
        x_cur = _random_start(x, eps, cfg.norm, gen) if cfg.random_start else x
        for _ in range(cfg.steps):
            grad, logits = _grad_and_logits(model, x_cur, y)
            best.update(x_cur, logits, y)
            x_cur = _project(x, x_cur + step * _direction(grad, cfg.norm), eps, cfg.norm)
        with torch.no_grad():
            best.update(x_cur, model(x_cur), y)
        forward += n * (cfg.steps + 1)
        backward += n * cfg.steps
    return best.x, best.found, forward, backward


def _pgd_all(model: Model, x: Tensor, y: Tensor, eps: float | Tensor, cfg: _PgdConfig, seed: int, batch_size: int,
             progress: Progress, cancel: Cancel, stage: str, track_clean: bool = True) -> tuple[Tensor, Tensor, int, int]:
    """PGD over all images in chunks: (x_adv, success on CPU, forwards, backwards)."""
    n = x.shape[0]
    x_adv = torch.empty_like(x)
    success = torch.zeros(n, dtype=torch.bool)
    # One stream per restart: restart r draws the same starts whatever the number of restarts or chunks,
    # so more restarts never lose an adversarial image that fewer found.
    gens = [torch.Generator(device=x.device).manual_seed((int(seed) * 1_000_003 + r) % 2**63) for r in range(cfg.restarts)]
    forward = backward = 0
    for start, stop in _chunks(n, batch_size, stage, progress, cancel):
        e = eps[start:stop] if isinstance(eps, Tensor) else eps
        xa, found, f, b = _pgd_chunk(model, x[start:stop], y[start:stop], _per_image(e, stop - start, x), cfg, gens,
                                     track_clean)
        x_adv[start:stop] = xa
        success[start:stop] = found.cpu()
        forward += f
        backward += b
    return x_adv, success, forward, backward


def _fgsm_all(model: Model, x: Tensor, y: Tensor, eps: float | Tensor, norm: str, batch_size: int,
              progress: Progress, cancel: Cancel, stage: str) -> tuple[Tensor, Tensor, int, int]:
    n = x.shape[0]
    x_adv = torch.empty_like(x)
    success = torch.zeros(n, dtype=torch.bool)
    for start, stop in _chunks(n, batch_size, stage, progress, cancel):
        xs, ys = x[start:stop], y[start:stop]
        e = _per_image(eps[start:stop] if isinstance(eps, Tensor) else eps, stop - start, x)
        grad, logits = _grad_and_logits(model, xs, ys)
        x1 = _project(xs, xs + e * _direction(grad, norm), e, norm)
        with torch.no_grad():
            wrong1 = _wrong(model(x1), ys)
        wrong0 = _wrong(logits, ys)  # already misclassified: x itself is the adversarial image
        x_adv[start:stop] = torch.where(wrong0.view(-1, 1, 1, 1), xs, x1)
        success[start:stop] = (wrong0 | wrong1).cpu()
    return x_adv, success, 2 * n, n


def _clean_wrong(model: Model, x: Tensor, y: Tensor, batch_size: int, stage: str, progress: Progress,
                 cancel: Cancel) -> Tensor:
    """(N,) bool on CPU: the model does not predict y on x."""
    wrong = torch.zeros(x.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for start, stop in _chunks(x.shape[0], batch_size, stage, progress, cancel):
            wrong[start:stop] = _wrong(model(x[start:stop]), y[start:stop]).cpu()
    return wrong


def _settings(attack: str, norm: str, eps: Any, **extra: Any) -> dict[str, Any]:
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


def _is_zero(eps: float | Tensor) -> bool:
    if isinstance(eps, Tensor):
        return eps.numel() == 0 or float(eps.max()) == 0.0
    return eps == 0.0


def _clean_result(model: Model, x: Tensor, y: Tensor, batch_size: int, stage: str, progress: Progress,
                  cancel: Cancel, checked: int, settings: dict[str, Any]) -> AttackResult:
    wrong = _clean_wrong(model, x, y, batch_size, stage, progress, cancel)
    return AttackResult(x.clone(), wrong, checked + x.shape[0], 0, settings)


# ---------------------------------------------------------------------------------------------
# Public functions


def fgsm(model: Model, x: Tensor, y: Tensor | Sequence[int], eps: float | Tensor, *, norm: str = "linf",
         batch_size: int = 256, progress: Progress = None, cancel: Cancel = None) -> AttackResult:
    """One gradient step of the cross-entropy loss of ``y``: ``eps * sign(g)`` (linf) or
    ``eps * g / ||g||_2`` per image (l2; a zero gradient makes no step), clipped to [0, 1].

    Costs 2 forwards and 1 backward per image. An image already misclassified keeps x as its
    adversarial image.
    """
    caller = "fgsm"
    norm = _check_norm(norm, caller)
    with frozen(model):
        x, y_t, checked = _check_common(model, x, y, caller, batch_size)
        eps_v = _check_eps(eps, caller, norm, x.shape[0], x.device)
        settings = _settings("fgsm", norm, eps_v, steps=1, step_size=eps_v if not isinstance(eps_v, Tensor) else "eps",
                             restarts=1, random_start=False)
        if _is_zero(eps_v):
            return _clean_result(model, x, y_t, batch_size, caller, progress, cancel, checked, settings)
        x_adv, success, f, b = _fgsm_all(model, x, y_t, eps_v, norm, batch_size, progress, cancel, caller)
    return AttackResult(x_adv, success, checked + f, b, settings)


def _check_pgd(caller: str, norm: Any, steps: Any, step_size: Any, random_start: Any, restarts: Any,
               seed: Any) -> _PgdConfig:
    norm = _check_norm(norm, caller)
    steps = _check_int("steps", steps, caller, 1)
    restarts = _check_int("restarts", restarts, caller, 1)
    _check_int("seed", seed, caller, 0)
    if not isinstance(random_start, bool):
        raise _bad("random_start", caller, "True or False", random_start)
    if restarts > 1 and not random_start:
        raise _bad("restarts", caller, "1 when random_start is False (every restart would repeat the first)", restarts)
    if step_size is not None:
        step_size = _check_float("step_size", step_size, caller, "l2", positive=True)
    return _PgdConfig(norm, steps, step_size, random_start, restarts)


def pgd(model: Model, x: Tensor, y: Tensor | Sequence[int], eps: float | Tensor, *, norm: str = "linf",
        steps: int = 10, step_size: float | None = None, random_start: bool = True, restarts: int = 1,
        seed: int = 0, batch_size: int = 256, progress: Progress = None, cancel: Cancel = None) -> AttackResult:
    """Projected gradient descent (Madry et al.) on the cross-entropy loss of ``y``.

    ``eps``: a float or a per-image (N,) tensor. ``step_size`` defaults to ``2.5 * eps / steps``
    (per image). Each restart starts uniformly in the ball (``random_start``) and runs all
    ``steps``; per image the first adversarial iterate found is kept, else the lowest-margin one.
    Costs ``restarts * (steps + 1)`` forwards (+1 for x itself with a random start) and
    ``restarts * steps`` backwards per image. ``eps`` = 0 returns x, success = misclassified.
    ``progress(stage, done, total)`` and ``cancel()`` are called between chunks of ``batch_size``.
    """
    caller = "pgd"
    cfg = _check_pgd(caller, norm, steps, step_size, random_start, restarts, seed)
    with frozen(model):
        x, y_t, checked = _check_common(model, x, y, caller, batch_size)
        eps_v = _check_eps(eps, caller, cfg.norm, x.shape[0], x.device)
        settings = _settings("pgd", cfg.norm, eps_v, steps=cfg.steps,
                             step_size=cfg.step_size if cfg.step_size is not None else f"{_STEP_FACTOR} * eps / steps",
                             restarts=cfg.restarts, random_start=cfg.random_start, seed=int(seed))
        if _is_zero(eps_v):
            return _clean_result(model, x, y_t, batch_size, caller, progress, cancel, checked, settings)
        x_adv, success, f, b = _pgd_all(model, x, y_t, eps_v, cfg, seed, batch_size, progress, cancel, caller)
    return AttackResult(x_adv, success, checked + f, b, settings)


def robust_accuracy_curve(model: Model, x: Tensor, y: Tensor | Sequence[int], eps_grid: Sequence[float], *,
                          attack: str = "pgd", norm: str = "linf", steps: int = 10, restarts: int = 1,
                          random_start: bool = True, seed: int = 0, batch_size: int = 256,
                          progress: Progress = None, cancel: Cancel = None) -> CurveResult:
    """Which images are still predicted as their label at each eps of ``eps_grid``.

    One clean pass, then each eps > 0 is attacked independently (same seed) on the images the model
    gets right at eps 0; images misclassified at eps 0 are wrong at every eps. Nothing carries
    from one eps to the next, so a non-decreasing curve stays visible as a gradient-masking sign.
    ``attack``: "pgd" (``steps``, ``restarts``, ``random_start``) or "fgsm". Costs one forward per
    image plus the attack's cost on the clean-correct images per eps > 0.
    ``progress("robust_accuracy", done, total)`` after each chunk of ``batch_size`` images of each eps, in
    image-eps: ``total`` = E x the images attacked (at least 1 per eps).
    """
    caller = "robust_accuracy_curve"
    if attack not in ATTACKS:
        raise _bad("attack", caller, f"one of {', '.join(repr(a) for a in ATTACKS)}", attack)
    cfg = _check_pgd(caller, norm, steps, None, random_start, restarts, seed)
    if isinstance(eps_grid, (str, bytes)) or not isinstance(eps_grid, Sequence | np.ndarray) or len(eps_grid) == 0:
        raise _bad("eps_grid", caller, "a non-empty list of eps values", eps_grid)
    grid = [_check_float("eps_grid", e, caller, cfg.norm) for e in eps_grid]
    settings = _settings(attack, cfg.norm, list(grid), steps=cfg.steps if attack == "pgd" else 1,
                         step_size=f"{_STEP_FACTOR} * eps / steps" if attack == "pgd" else "eps",
                         restarts=cfg.restarts if attack == "pgd" else 1,
                         random_start=cfg.random_start if attack == "pgd" else False, seed=int(seed))
    with frozen(model):
        x, y_t, forward = _check_common(model, x, y, caller, batch_size)
        n = x.shape[0]
        clean = ~_clean_wrong(model, x, y_t, batch_size, caller, None, cancel)
        forward += n
        backward = 0
        correct = np.zeros((len(grid), n), dtype=bool)
        idx = clean.nonzero().squeeze(1)
        dev_idx = idx.to(x.device)
        xs, ys = x.index_select(0, dev_idx), y_t.index_select(0, dev_idx)
        per, total = max(1, int(idx.numel())), len(grid) * max(1, int(idx.numel()))
        for done, eps in enumerate(grid, start=1):
            row = clean.clone()
            within = None if progress is None else (
                lambda _s, d, _t, base=(done - 1) * per: progress("robust_accuracy", base + d, total))
            if eps > 0 and idx.numel():
                if attack == "pgd":
                    _, broken, f, b = _pgd_all(model, xs, ys, eps, cfg, seed, batch_size, within, cancel, caller,
                                               track_clean=False)
                else:
                    _, broken, f, b = _fgsm_all(model, xs, ys, eps, cfg.norm, batch_size, within, cancel, caller)
                row[idx[broken]] = False
                forward += f
                backward += b
            correct[done - 1] = row.numpy()
            if progress is not None:
                progress("robust_accuracy", done * per, total)
    return CurveResult(correct, grid, forward, backward, settings)


def minimal_eps(model: Model, x: Tensor, y: Tensor | Sequence[int], *, norm: str = "linf", eps_max: float = 0.5,
                tol: float | None = None, steps: int = 10, random_start: bool = True, seed: int = 0,
                batch_size: int = 256, progress: Progress = None, cancel: Cancel = None) -> MinimalEpsResult:
    """The smallest eps at which PGD flips each image, by bisection on a per-image eps.

    0.0 for images already misclassified; ``inf`` where PGD at ``eps_max`` does not flip them; else
    the smallest eps found adversarial (the norm of the perturbation found, at most the bisection's
    upper end), within ``tol`` (default 1/255 for linf, 0.01 for l2) of the largest eps where PGD
    failed. All images are bisected together, each in its own interval. ``progress("minimal_eps", done,
    total)`` after each chunk of each PGD round, in image-rounds (``total`` = max rounds x N; a round's
    chunks share out N whatever the images still bisected), and ``total`` when the bisection ends.
    """
    caller = "minimal_eps"
    cfg = _check_pgd(caller, norm, steps, None, random_start, 1, seed)
    eps_max = _check_float("eps_max", eps_max, caller, cfg.norm, positive=True)
    tol = (1 / 255 if cfg.norm == "linf" else 0.01) if tol is None else _check_float("tol", tol, caller, "l2",
                                                                                       positive=True)
    rounds = 1 + max(0, math.ceil(math.log2(eps_max / tol)))
    settings = _settings("pgd", cfg.norm, "minimal (bisection)", eps_max=eps_max, tol=tol, steps=cfg.steps,
                         step_size=f"{_STEP_FACTOR} * eps / steps", restarts=1, random_start=cfg.random_start,
                         seed=int(seed))
    with frozen(model):
        x, y_t, forward = _check_common(model, x, y, caller, batch_size)
        n = x.shape[0]
        wrong = _clean_wrong(model, x, y_t, batch_size, caller, None, cancel)
        forward += n
        backward = 0
        x_adv = x.clone()
        lo = torch.zeros(n, dtype=torch.float64)
        hi = torch.full((n,), math.inf, dtype=torch.float64)
        hi[wrong] = 0.0
        active = ~wrong
        mid = torch.full((n,), eps_max, dtype=torch.float64)  # the first round tries eps_max
        total = rounds * n
        for done in range(1, rounds + 1):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            dev_idx = idx.to(x.device)
            xs = x.index_select(0, dev_idx)
            eps_try = mid[idx]
            within = None if progress is None else (
                lambda _s, d, t, base=(done - 1) * n: progress("minimal_eps", base + d * n // max(1, t), total))
            xa, broken, f, b = _pgd_all(model, xs, y_t.index_select(0, dev_idx), eps_try.float().to(x.device), cfg,
                                        seed, batch_size, within, cancel, caller, track_clean=False)
            forward += f
            backward += b
            found = _flat_norm(xa - xs, cfg.norm).double().cpu()
            upper = torch.minimum(eps_try, found)
            new_hi = torch.where(broken, upper, hi[idx])
            new_lo = torch.where(broken, torch.minimum(lo[idx], upper), eps_try)
            hi[idx], lo[idx] = new_hi, new_lo
            keep = broken.nonzero().squeeze(1)
            if keep.numel():
                x_adv[dev_idx[keep.to(x.device)]] = xa[keep.to(x.device)]
            active = torch.isfinite(hi) & (hi - lo > tol)
            mid = (lo + hi) / 2
        if progress is not None:
            progress("minimal_eps", total, total)
    return MinimalEpsResult(hi.numpy(), x_adv, forward, backward, settings)


def input_gradients(model: Model, x: Tensor, y: Tensor | Sequence[int], batch_size: int = 256) -> Tensor:
    """Gradient of each image's cross-entropy loss of ``y`` wrt its pixels: (N, C, H, W) on x's device."""
    caller = "input_gradients"
    with frozen(model):
        x, y_t, _ = _check_common(model, x, y, caller, batch_size)
        out = torch.empty_like(x)
        for start, stop in _chunks(x.shape[0], batch_size, caller, None, None):
            out[start:stop], _ = _grad_and_logits(model, x[start:stop], y_t[start:stop])
    return out
