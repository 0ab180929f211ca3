"""The black-box attacks' shared parts: the model as a counting oracle, the result, ART's
``predict_fn`` that remembers what it was told, seeding ART, and clipping ART's float32 results.

Public through `auditor.attacks.blackbox`, whose docstring lists the ART quirks handled here.
"""
from __future__ import annotations

import hashlib
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from auditor.attacks._args import (check_batch_size, check_callbacks, check_eps, check_image_shape, check_labels,
                                   check_model, check_norm, check_seed, image_array, l2_ceiling)
from auditor.errors import BadInputError
from auditor.frozen import frozen
from auditor.validation import invalid

__all__ = [
    "LIBRARY", "BlackBoxResult", "CountingOracle", "OutOfBudget", "Remembered", "art_estimator", "art_version",
    "as_oracle", "check_query_args", "clip_to_ball", "derive", "perturbation_norms", "seeded",
]

log = logging.getLogger(__name__)

LIBRARY = "adversarial-robustness-toolbox"


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
        check_model(model, "CountingOracle")
        self.model = model
        self.batch_size = check_batch_size(batch_size, "CountingOracle")
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.queries = 0
        self.n_classes: int | None = None

    def _logits(self, x: np.ndarray | Tensor) -> Tensor:
        xt = check_image_shape(torch.as_tensor(x), "CountingOracle").to(torch.float32)
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


class OutOfBudget(Exception):
    """The next oracle call would exceed the image's query budget."""


class Remembered:
    """ART's ``predict_fn``: the oracle's log-probabilities, remembering the last ``capacity`` images by
    content (float32 bytes) so that an image ART asks about again is not sent again; with ``limit``
    set, a call that would take ``oracle.queries`` past it raises :class:`OutOfBudget` unsent."""

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
                raise OutOfBudget
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
def seeded(seed: int) -> Iterator[None]:
    """Seed ``np.random`` and ``random`` (ART's sources of randomness); restore both afterwards."""
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(derive(seed))
    random.seed(derive(seed))
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def derive(*parts: int) -> int:
    """A 32-bit seed from integers (``np.random.seed`` wants < 2**32)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])


def as_oracle(oracle: CountingOracle | Callable[[Tensor], Tensor], caller: str) -> CountingOracle:
    if isinstance(oracle, CountingOracle):
        return oracle
    if callable(oracle):
        return CountingOracle(oracle)
    raise invalid("oracle", caller, "a CountingOracle (or a model callable to wrap in one)", type(oracle).__name__)


def check_query_args(oracle: Any, x: Any, y: Any, norm: Any, eps: Any, seed: Any, progress: Any, cancel: Any, caller: str,
                     *, eps_optional: bool = False) -> tuple[CountingOracle, np.ndarray, np.ndarray, str, float | None, int]:
    """The arguments every query attack shares, checked: the oracle (a model callable is wrapped in
    one), the images as float32 numpy (N >= 1, 3 channels, in [0, 1]), their labels as int64 numpy,
    the norm, ``eps`` (l2: at most the images' diameter; None allowed when ``eps_optional``), the
    seed and the callbacks."""
    oracle = as_oracle(oracle, caller)
    x_np = image_array(x, caller)
    y_np = check_labels(y, x_np.shape[0], caller).numpy()
    norm = check_norm(norm, caller)
    if eps is not None or not eps_optional:
        eps = check_eps(eps, norm, caller, l2_max=l2_ceiling(x_np.shape))
    seed = check_seed(seed, caller)
    check_callbacks(progress, cancel, caller)
    return oracle, x_np, y_np, norm, eps, seed


def perturbation_norms(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-image perturbation norms, computed in float64 (a float32 difference rounds past eps)."""
    flat = (x_adv.astype(np.float64) - x).reshape(x.shape[0], -1)
    return np.abs(flat).max(axis=1) if norm == "linf" else np.sqrt((flat**2).sum(axis=1))


def clip_to_ball(x_adv: np.ndarray, x: np.ndarray, eps: float, norm: str) -> np.ndarray:
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


def art_estimator(predict: Remembered, shape: tuple[int, ...], n_classes: int, neural: bool) -> Any:
    from art.estimators.classification.blackbox import BlackBoxClassifier, BlackBoxClassifierNeuralNetwork

    if neural:  # SquareAttack's requirement: NeuralNetworkMixin (predictions only all the same)
        return BlackBoxClassifierNeuralNetwork(predict, tuple(shape), n_classes, channels_first=True, clip_values=(0.0, 1.0),
                                               preprocessing=None)  # ART's default (0, 1) "standardises" at full cost
    return BlackBoxClassifier(predict, tuple(shape), n_classes, clip_values=(0.0, 1.0), preprocessing=None)


def art_version() -> str:
    import art

    return str(art.__version__)

