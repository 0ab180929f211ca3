"""Black-box query attacks: the model is only an oracle that answers with its predictions.

Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial attack via random
search" (ECCV 2020): random square-shaped updates kept when they lower the margin loss; an
eps-bounded attack (linf or l2). Chen, Jordan & Wainwright, "HopSkipJumpAttack: A Query-Efficient
Decision-Based Attack" (IEEE S&P 2020): from an adversarial start, binary search to the decision
boundary, estimate the boundary's normal from label-only queries, step, repeat; a
minimal-perturbation attack (l2 or linf).

Both run through ART 1.20.1 (adversarial-robustness-toolbox); what is ours: the
:class:`CountingOracle` that counts every image the model is sent, the budget (``max_queries`` per
image, enforced and measured by our counter, not taken from ART's parameters), seeding, and
HopSkipJump's start (ART draws that from an unseeded generator; we draw it from ``seed``).

ART quirks handled here:

- ``SquareAttack`` requires an estimator with ART's ``NeuralNetworkMixin``, which ART's plain
  ``BlackBoxClassifier`` lacks (it raises ``EstimatorError``); ``BlackBoxClassifierNeuralNetwork`` is
  the smallest ART estimator that has it and still exposes only predictions (its gradient and loss
  methods raise ``NotImplementedError``). HopSkipJump gets the plain ``BlackBoxClassifier``.
- ART asks again for images it has just been told about (Square re-predicts the whole batch each
  iteration and re-evaluates the loss of the current images; HopSkipJump re-predicts its inputs and
  result on every call). The estimator remembers recent answers by image content, so an image is
  sent to the model once: Square costs at most one query per image per iteration.
- ART gets log-probabilities, not probabilities: Square's default loss is then the logit margin of
  the paper, and it does not saturate where a softmax rounds to 1.0 in float32.
- HopSkipJump in ART attacks away from the model's prediction and draws its starting point from
  ``np.random.RandomState()`` with no seed. Images the oracle already gets wrong are not attacked
  (success at distance 0); for the others we draw the start ourselves (uniform noise until the label
  changes, then a binary search towards the image) and pass it as ``x_adv_init``.
- Square's l2 variant uses Python's ``random`` as well as ``np.random``: both are seeded for the
  call and restored afterwards.
"""
from __future__ import annotations

import hashlib
import math
import random
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from auditor.errors import AuditCancelled, BadInputError, UsageError
from auditor.frozen import frozen

__all__ = [
    "LIBRARY",
    "NORMS",
    "BlackBoxParameterError",
    "BlackBoxResult",
    "CountingOracle",
    "hopskipjump",
    "square_attack",
]

NORMS = ("linf", "l2")
LIBRARY = "adversarial-robustness-toolbox"
_SQUARE_MIN_SIDE = 14  # ART's SquareAttack fails below (and on non-square images): a square as large as the image
_INIT_THRESHOLD = 1e-3  # the start's binary search towards the image stops at this blend step (ART's value)


class BlackBoxParameterError(UsageError, ValueError):
    """A bad argument to the black-box attacks (a ValueError, and a UsageError for the CLI's exit 2)."""


def _bad(param: str, caller: str, constraint: str, value: Any) -> BlackBoxParameterError:
    return BlackBoxParameterError(f"The {param!r} parameter of {caller} must be {constraint}. Got {value!r} instead.")


def _model_device(model: Callable[[Tensor], Tensor]) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


class CountingOracle:
    """The model as a prediction-only oracle that counts the images it is sent (``queries``).

    ``model`` maps images (N, 3, H, W) in [0, 1] to logits (N, C), C >= 2. Inputs (numpy arrays or
    tensors) are sent in chunks of ``batch_size`` to ``device`` (default: the model's own device, CPU
    for a plain function) under ``torch.no_grad``, with the model in eval mode and its parameters
    frozen; the model is left as it was found after every call. No gradient is ever asked for, so a
    model that cannot be differentiated is fine. ``n_classes`` is known after the first query.
    """

    def __init__(self, model: Callable[[Tensor], Tensor], *, batch_size: int = 256,
                 device: str | torch.device | None = None) -> None:
        if not callable(model):
            raise _bad("model", "CountingOracle", "a callable mapping images to logits", type(model).__name__)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise _bad("batch_size", "CountingOracle", "an int >= 1", batch_size)
        self.model = model
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.queries = 0
        self.n_classes: int | None = None

    def _logits(self, x: np.ndarray | Tensor) -> Tensor:
        xt = torch.as_tensor(x)
        if xt.ndim != 4 or not (xt.is_floating_point() or xt.numel() == 0):
            raise _bad("x", "CountingOracle", "a float array (N, 3, H, W) in [0, 1]", tuple(xt.shape))
        xt = xt.to(torch.float32)
        out = []
        with frozen(self.model), torch.no_grad():
            for start in range(0, xt.shape[0], self.batch_size):
                chunk = xt[start:start + self.batch_size].to(self.device)
                logits = self.model(chunk)
                if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != chunk.shape[0] or logits.shape[1] < 2:
                    shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
                    raise BadInputError(f"The model must return logits (N, C) with C >= 2 classes. Got {shape} instead.")
                if not bool(torch.isfinite(logits).all()):
                    raise BadInputError("The model returned NaN or infinite logits: check the model and its weights.")
                self.queries += chunk.shape[0]
                self.n_classes = int(logits.shape[1])
                out.append(logits.detach().float().cpu())
        if not out:
            return torch.zeros(0, self.n_classes or 0)
        return torch.cat(out)

    def log_probs(self, x: np.ndarray | Tensor) -> np.ndarray:
        """Log-softmax of the logits, (N, C) float32."""
        return torch.log_softmax(self._logits(x), dim=1).numpy()

    def probs(self, x: np.ndarray | Tensor) -> np.ndarray:
        """Softmax probabilities, (N, C) float32."""
        return torch.softmax(self._logits(x), dim=1).numpy()

    def labels(self, x: np.ndarray | Tensor) -> np.ndarray:
        """Predicted classes, (N,) int64."""
        return self._logits(x).argmax(dim=1).numpy().astype(np.int64)


@dataclass
class BlackBoxResult:
    """What a black-box attack found.

    ``x_adv`` (N, 3, H, W) float32 on CPU; ``success`` (N,) bool: the oracle's label differs from
    ``y`` (and, for HopSkipJump given ``eps``, the perturbation is within it); ``norms`` (N,): the
    perturbation's norm in the attack's norm (HopSkipJump: ``inf`` where no adversarial was found);
    ``queries``: images sent to the oracle by this call, counted by the oracle; ``queries_per_image``
    (N,) where the attack runs image by image (HopSkipJump), else None; ``settings``: how it ran.
    """

    x_adv: Tensor
    success: Tensor
    queries: int
    norms: Tensor
    settings: dict[str, Any]
    queries_per_image: Tensor | None = field(default=None)


class _OutOfBudget(Exception):
    """The next oracle call would exceed the image's query budget."""


class _Remembered:
    """ART's ``predict_fn``: the oracle's log-probabilities, remembering the last ``capacity`` images by
    content (float32 bytes) so that an image ART asks about again is not sent again; with ``limit``
    set, a call that would take ``oracle.queries`` past it raises :class:`_OutOfBudget` unsent."""

    def __init__(self, oracle: CountingOracle, capacity: int) -> None:
        self.oracle = oracle
        self.capacity = max(1, capacity)
        self.memory: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.limit: int | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(batch, dtype=np.float32)
        keys = [hashlib.sha1(row, usedforsecurity=False).digest() for row in arr]  # by content (ART copies); fastest here
        rows: list[np.ndarray | None] = [None] * len(keys)
        missing: dict[bytes, list[int]] = {}
        finite = np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
        for i, key in enumerate(keys):
            if not finite[i]:  # ART's l2 Square can propose NaN images: answer NaN (never kept), send nothing
                rows[i] = np.full(self.oracle.n_classes or 2, np.nan, dtype=np.float32)
            elif key in self.memory:
                self.memory.move_to_end(key)
                rows[i] = self.memory[key]
            else:
                missing.setdefault(key, []).append(i)
        if missing:
            if self.limit is not None and self.oracle.queries + len(missing) > self.limit:
                raise _OutOfBudget
            answers = self.oracle.log_probs(arr[[idx[0] for idx in missing.values()]])
            for (key, idx), answer in zip(missing.items(), answers, strict=True):
                self.memory[key] = answer
                for i in idx:
                    rows[i] = answer
            while len(self.memory) > self.capacity:
                self.memory.popitem(last=False)
        return np.stack(rows)  # type: ignore[arg-type]

    def label(self, image: np.ndarray) -> int:
        return int(np.argmax(self(image[None])[0]))


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed ``np.random`` and ``random`` (ART's sources of randomness); restore both afterwards."""
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(_derive(seed))
    random.seed(_derive(seed))
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _derive(*parts: int) -> int:
    """A 32-bit seed from integers (``np.random.seed`` wants < 2**32)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])


def _as_oracle(oracle: CountingOracle | Callable[[Tensor], Tensor], caller: str) -> CountingOracle:
    if isinstance(oracle, CountingOracle):
        return oracle
    if callable(oracle):
        return CountingOracle(oracle)
    raise _bad("oracle", caller, "a CountingOracle (or a model callable to wrap in one)", type(oracle).__name__)


def _check_images(x: Any, caller: str, name: str = "x") -> np.ndarray:
    """(N, 3, H, W) float in [0, 1], non-empty -> float32 numpy on CPU."""
    if isinstance(x, Tensor):
        arr = x.detach().to("cpu", torch.float32).numpy() if x.is_floating_point() else None
    elif isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
        arr = x.astype(np.float32)
    else:
        arr = None
    if arr is None or arr.ndim != 4 or arr.shape[1] != 3:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise _bad(name, caller, "a float tensor (N, 3, H, W) in [0, 1]", shape)
    if arr.shape[0] == 0:
        raise _bad(name, caller, "a non-empty batch", arr.shape)
    if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
        raise _bad(name, caller, "finite values in [0, 1] (normalisation belongs in the model)",
                   (float(np.nanmin(arr)), float(np.nanmax(arr))))
    return np.ascontiguousarray(arr)


def _check_labels(y: Any, n: int, caller: str, name: str = "y") -> np.ndarray:
    arr = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n or not np.issubdtype(arr.dtype, np.integer) or (n and arr.min() < 0):
        raise _bad(name, caller, f"non-negative integer labels of shape ({n},)", getattr(arr, "shape", arr))
    return arr.astype(np.int64)


def _check_classes(y: np.ndarray, oracle: CountingOracle, caller: str, name: str = "y") -> None:
    n_classes = oracle.n_classes or 2
    if int(y.max()) >= n_classes:
        raise _bad(name, caller, f"class indices in [0, {n_classes - 1}] (the model has {n_classes} outputs)",
                   sorted(set(y.tolist()))[-5:])


def _check_norm(norm: Any, caller: str) -> str:
    if norm not in NORMS:
        raise _bad("norm", caller, f"one of {NORMS}", norm)
    return norm


def _check_eps(eps: Any, norm: str, shape: tuple[int, ...], caller: str) -> float:
    ceiling = 1.0 if norm == "linf" else math.sqrt(float(np.prod(shape[1:])))
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= float(eps) <= ceiling:
        raise _bad("eps", caller, f"a number in [0, {ceiling:.4g}] ({norm}, pixel units in [0, 1])", eps)
    return float(eps)


def _check_int(value: Any, param: str, caller: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(param, caller, f"an int >= {minimum}", value)
    return value


def _norms(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-image perturbation norms, computed in float64 (a float32 difference rounds past eps)."""
    flat = (x_adv.astype(np.float64) - x).reshape(x.shape[0], -1)
    return np.abs(flat).max(axis=1) if norm == "linf" else np.sqrt((flat**2).sum(axis=1))


def _project(x_adv: np.ndarray, x: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """Clip float32 images to the eps ball around ``x`` (measured in float64) and to [0, 1]: ART's
    float32 arithmetic overshoots eps by ~1e-7. Images already inside keep their exact bytes."""
    delta = x_adv.astype(np.float64) - x
    if norm == "linf":
        out = np.clip(x + np.clip(delta, -eps, eps), 0.0, 1.0).astype(np.float32)
        over = np.abs(out.astype(np.float64) - x) > eps  # rounded outwards by the float32 cast
        return np.where(over, np.nextafter(out, x), out)
    length = np.sqrt((delta.reshape(len(delta), -1) ** 2).sum(axis=1)).reshape(-1, 1, 1, 1)
    scale = np.where(length > eps, eps / np.maximum(length, 1e-12) * (1.0 - 1e-6), 1.0)  # margin for the cast
    return np.clip(x + delta * scale, 0.0, 1.0).astype(np.float32)


def _estimator(predict: _Remembered, shape: tuple[int, ...], n_classes: int, neural: bool) -> Any:
    from art.estimators.classification.blackbox import BlackBoxClassifier, BlackBoxClassifierNeuralNetwork

    if neural:  # SquareAttack's requirement: NeuralNetworkMixin (predictions only all the same)
        return BlackBoxClassifierNeuralNetwork(predict, tuple(shape), n_classes, channels_first=True, clip_values=(0.0, 1.0),
                                               preprocessing=None)  # ART's default (0, 1) "standardises" at full cost
    return BlackBoxClassifier(predict, tuple(shape), n_classes, clip_values=(0.0, 1.0), preprocessing=None)


def _art_version() -> str:
    import art

    return str(art.__version__)


def square_attack(
    oracle: CountingOracle | Callable[[Tensor], Tensor],
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    eps: float,
    *,
    norm: str = "linf",
    max_queries: int = 1000,
    p_init: float = 0.8,
    seed: int = 0,
    batch_size: int = 256,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> BlackBoxResult:
    """Square Attack (Andriushchenko et al. 2020) through ART's ``SquareAttack``: at most ``max_queries``
    oracle queries per image, within ``eps`` (``norm`` "linf" or "l2") of each image.

    Each image costs one query for its clean label, one for the initial stripes (linf) or tiles (l2),
    one per iteration while it is still classified as ``y``, and one to confirm the result where it
    had to be re-clipped; so ART's ``max_iter`` = ``max_queries`` - 3 (one restart). Images go to ART
    in chunks of ``batch_size`` (ART's square positions are drawn per chunk, so the result depends on
    the chunking); ``progress("square", done, total)`` and ``cancel()`` are checked between chunks.
    At ``eps`` 0 nothing is attacked: ``success`` is the images the oracle already gets wrong.
    """
    caller = "square_attack"
    oracle = _as_oracle(oracle, caller)
    x_np = _check_images(x, caller)
    y_np = _check_labels(y, x_np.shape[0], caller)
    norm = _check_norm(norm, caller)
    eps = _check_eps(eps, norm, x_np.shape, caller)
    max_queries = _check_int(max_queries, "max_queries", caller, 4)
    batch_size = _check_int(batch_size, "batch_size", caller, 1)
    if isinstance(p_init, bool) or not isinstance(p_init, (int, float)) or not 0.0 < p_init < 1.0:
        raise _bad("p_init", caller, "a number in (0, 1)", p_init)
    if x_np.shape[2] != x_np.shape[3] or x_np.shape[2] < _SQUARE_MIN_SIDE:
        raise _bad("x", caller, f"square images of at least {_SQUARE_MIN_SIDE} x {_SQUARE_MIN_SIDE} pixels "
                   "(ART's Square Attack sizes its squares from the height alone)", tuple(x_np.shape))
    max_iter = max_queries - 3
    art_params = {"max_iter": max_iter, "p_init": float(p_init), "nb_restarts": 1, "batch_size": batch_size}
    start_queries = oracle.queries
    n = x_np.shape[0]
    x_adv = x_np.copy()
    labels = np.empty(n, dtype=np.int64)
    for start in range(0, n, batch_size):
        if cancel is not None and cancel():
            raise AuditCancelled("audit cancelled during the square attack")
        stop = min(n, start + batch_size)
        predict = _Remembered(oracle, capacity=3 * (stop - start) + 8)
        clean = np.argmax(predict(x_np[start:stop]), axis=1)
        _check_classes(y_np, oracle, caller)
        if eps > 0.0 and bool((clean == y_np[start:stop]).any()):
            from art.attacks.evasion.square_attack import SquareAttack

            estimator = _estimator(predict, x_np.shape[1:], int(oracle.n_classes or 2), neural=True)
            attack = SquareAttack(estimator, norm=np.inf if norm == "linf" else 2, eps=eps, max_iter=max_iter,
                                  p_init=float(p_init), nb_restarts=1, batch_size=batch_size, verbose=False)
            with _seeded(_derive(seed, start)), np.errstate(divide="ignore", invalid="ignore"):  # ART's l2 0/0
                found = attack.generate(x_np[start:stop].copy(), y=y_np[start:stop])
            x_adv[start:stop] = _project(np.asarray(found, dtype=np.float32), x_np[start:stop], eps, norm)
        labels[start:stop] = np.argmax(predict(x_adv[start:stop]), axis=1)
        if progress is not None:
            progress("square", stop, n)
    settings = {"attack": "square", "norm": norm, "eps": eps, "max_queries": max_queries, "seed": seed,
                "library": LIBRARY, "version": _art_version(), "art_estimator": "BlackBoxClassifierNeuralNetwork",
                "art_params": art_params, "loss": "logit margin (ART's default loss on log-probabilities)"}
    return BlackBoxResult(
        x_adv=torch.from_numpy(x_adv),
        success=torch.from_numpy(labels != y_np),
        queries=oracle.queries - start_queries,
        norms=torch.from_numpy(_norms(x_adv, x_np, norm)),
        settings=settings,
    )


def _start(predict: _Remembered, x: np.ndarray, y: int, init_size: int, rng: np.random.Generator) -> np.ndarray | None:
    """HopSkipJump's starting point, seeded: uniform noise until the label is not ``y`` (at most
    ``init_size`` draws), then a binary search on the blend towards ``x`` (ART's own start, seeded)."""
    for _ in range(init_size):
        noise = rng.uniform(0.0, 1.0, size=x.shape).astype(np.float32)
        if predict.label(noise) != y:
            break
    else:
        return None
    best, low, high = noise, 0.0, 1.0  # blend weight of the noise: 1 adversarial, 0 the image
    while high - low > _INIT_THRESHOLD:
        mid = (low + high) / 2
        blend = ((1.0 - mid) * x + mid * noise).astype(np.float32)
        if predict.label(blend) != y:
            best, high = blend, mid
        else:
            low = mid
    return best


def hopskipjump(
    oracle: CountingOracle | Callable[[Tensor], Tensor],
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    *,
    norm: str = "l2",
    max_queries: int = 1000,
    eps: float | None = None,
    max_iter: int = 50,
    init_eval: int | None = None,
    max_eval: int | None = None,
    init_size: int | None = None,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> BlackBoxResult:
    """HopSkipJump (Chen et al. 2020) through ART's ``HopSkipJump``: the smallest perturbation (``norm``
    "l2" or "linf") found in at most ``max_queries`` oracle queries per image.

    Image by image: one query for the clean label (an image already not ``y`` is a success at norm
    0), up to ``init_size`` noise draws plus ~10 for the seeded start, then ART's iterations one at a
    time (binary search, ``min(init_eval * sqrt(t), max_eval)`` queries for the gradient estimate,
    the step-size search) until ``max_iter`` iterations or the budget: an iteration that would go
    past it is stopped before the query that would, and the last finished one is kept. Defaults
    scale with the budget: ``init_eval`` = clamp(max_queries / 20, 1, 100), ``max_eval`` = max(init_eval,
    min(10000, max_queries / 4)), ``init_size`` = clamp(max_queries / 10, 1, 100).

    ``x_adv`` is the adversarial found, not clipped to ``eps``; ``norms`` its distance (``inf`` where
    none was found, x_adv = x there); ``success`` = label changed and, when ``eps`` is given, norm <=
    eps. ``progress("hopskipjump", done, total)`` and ``cancel()`` are checked between images.
    """
    caller = "hopskipjump"
    oracle = _as_oracle(oracle, caller)
    x_np = _check_images(x, caller)
    y_np = _check_labels(y, x_np.shape[0], caller)
    norm = _check_norm(norm, caller)
    if eps is not None:
        eps = _check_eps(eps, norm, x_np.shape, caller)
    max_queries = _check_int(max_queries, "max_queries", caller, 2)
    max_iter = _check_int(max_iter, "max_iter", caller, 0)
    init_eval = _check_int(init_eval if init_eval is not None else min(100, max(1, max_queries // 20)), "init_eval", caller, 1)
    max_eval = _check_int(max_eval if max_eval is not None else max(init_eval, min(10000, max_queries // 4)),
                          "max_eval", caller, 1)
    init_size = _check_int(init_size if init_size is not None else min(100, max(1, max_queries // 10)), "init_size", caller, 1)
    if max_eval < init_eval:
        raise _bad("max_eval", caller, f"an int >= init_eval ({init_eval})", max_eval)
    art_params = {"max_iter": max_iter, "max_eval": max_eval, "init_eval": init_eval, "init_size": init_size,
                  "batch_size": oracle.batch_size, "iterations": "one ART call per iteration (resume=True), "
                  "stopped at the query budget"}
    from art.attacks.evasion.hop_skip_jump import HopSkipJump

    n = x_np.shape[0]
    x_adv = x_np.copy()
    norms = np.zeros(n)
    success = np.zeros(n, dtype=bool)
    spent = np.zeros(n, dtype=np.int64)
    iterations = np.zeros(n, dtype=np.int64)
    start_queries = oracle.queries
    with _seeded(seed):
        for i in range(n):
            if cancel is not None and cancel():
                raise AuditCancelled("audit cancelled during the hopskipjump attack")
            before = oracle.queries
            predict = _Remembered(oracle, capacity=64)
            predict.limit = before + max_queries
            clean = predict.label(x_np[i])
            _check_classes(y_np, oracle, caller)
            if clean != y_np[i]:
                success[i] = True
            else:
                np.random.seed(_derive(seed, i))  # ART's gradient-estimate noise, per image
                adv, iterations[i] = _hsj_image(predict, x_np[i], int(y_np[i]), norm, max_iter, init_eval,
                                                max_eval, init_size, np.random.default_rng(_derive(seed, i, 1)),
                                                HopSkipJump, int(oracle.n_classes or 2))
                if adv is None:
                    norms[i] = math.inf
                else:
                    x_adv[i] = adv
                    norms[i] = _norms(adv[None], x_np[i][None], norm)[0]
                    predict.limit = None  # the result was the last image queried: remembered, costs nothing
                    success[i] = predict.label(adv) != y_np[i] and (eps is None or norms[i] <= eps)
            spent[i] = oracle.queries - before
            if progress is not None:
                progress("hopskipjump", i + 1, n)
    settings = {"attack": "hopskipjump", "norm": norm, "eps": eps, "max_queries": max_queries, "seed": seed,
                "library": LIBRARY, "version": _art_version(), "art_estimator": "BlackBoxClassifier",
                "art_params": art_params, "iterations_max": int(iterations.max()),
                "queries_per_image_max": int(spent.max())}
    return BlackBoxResult(
        x_adv=torch.from_numpy(x_adv),
        success=torch.from_numpy(success),
        queries=oracle.queries - start_queries,
        norms=torch.from_numpy(norms),
        settings=settings,
        queries_per_image=torch.from_numpy(spent),
    )


def _hsj_image(predict: _Remembered, x: np.ndarray, y: int, norm: str, max_iter: int, init_eval: int, max_eval: int,
               init_size: int, rng: np.random.Generator, attack_cls: Any, n_classes: int) -> tuple[np.ndarray | None, int]:
    """One image: the seeded start, then ART's iterations one call at a time within ``predict.limit``."""
    try:
        current = _start(predict, x, y, init_size, rng)
    except _OutOfBudget:
        current = None
    if current is None:
        return None, 0
    estimator = _estimator(predict, x.shape, n_classes, neural=False)
    attack = attack_cls(classifier=estimator, batch_size=predict.oracle.batch_size, norm=2 if norm == "l2" else np.inf,
                        max_iter=1, max_eval=max_eval, init_eval=init_eval, init_size=1, verbose=False)
    attack.curr_iter = 0
    done, last_overhead = 0, 0
    while done < max_iter:
        num_eval = min(int(init_eval * math.sqrt(done + 1)), max_eval)
        if predict.oracle.queries + num_eval + last_overhead > predict.limit:  # type: ignore[operator]
            break  # the next iteration would not fit: do not start it
        if predict.label(current) == y:  # never happens (ART keeps the iterate adversarial); guards ART's unseeded start
            break
        before = predict.oracle.queries
        try:
            found = attack.generate(x[None].copy(), y=np.array([y]), x_adv_init=current[None].copy(), resume=True)
        except _OutOfBudget:
            break
        current = np.asarray(found[0], dtype=np.float32)
        last_overhead = max(0, predict.oracle.queries - before - num_eval)
        done += 1
    return current, done
