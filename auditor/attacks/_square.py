"""Square Attack through ART: random square-shaped updates within an eps ball, at most ``max_queries``
oracle queries per image.

Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box adversarial
attack via random search" (ECCV 2020). Public through `auditor.attacks.blackbox`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from auditor.attacks._args import Cancel, Progress, check_batch_size, check_classes, check_int
from auditor.attacks._oracle import (LIBRARY, BlackBoxResult, CountingOracle, Remembered, art_estimator, art_version,
                                     check_query_args, clip_to_ball, derive, perturbation_norms, seeded)
from auditor.errors import AuditCancelled
from auditor.validation import Interval, check, invalid

__all__ = ["square_attack"]

log = logging.getLogger(__name__)

_SQUARE_MIN_SIDE = 14  # ART's SquareAttack fails below (and on non-square images): a square as large as the image


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
    progress: Progress = None,
    cancel: Cancel = None,
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
    oracle, x_np, y_np, norm, eps, seed = check_query_args(oracle, x, y, norm, eps, seed, progress, cancel, caller)
    max_queries = check_int(max_queries, "max_queries", caller, 4)
    batch_size = check_batch_size(batch_size, caller)
    p_init = check(p_init, Interval(float, 0, 1, closed="neither"), param="p_init", caller=caller)
    if x_np.shape[2] != x_np.shape[3] or x_np.shape[2] < _SQUARE_MIN_SIDE:
        raise invalid("x", caller, f"square images of at least {_SQUARE_MIN_SIDE} x {_SQUARE_MIN_SIDE} pixels "
                      "(ART's Square Attack sizes its squares from the height alone)", tuple(x_np.shape))
    max_iter = max_queries - 3
    art_params = {"max_iter": max_iter, "p_init": p_init, "nb_restarts": 1, "batch_size": batch_size}
    start_queries = oracle.queries
    n = x_np.shape[0]
    x_adv = x_np.copy()
    labels = np.empty(n, dtype=np.int64)
    for start in range(0, n, batch_size):
        if cancel is not None and cancel():
            raise AuditCancelled("audit cancelled during the square attack")
        stop = min(n, start + batch_size)
        predict = Remembered(oracle, capacity=3 * (stop - start) + 8)
        clean = np.argmax(predict(x_np[start:stop]), axis=1)
        check_classes(y_np, oracle.n_classes or 2, caller)
        if eps > 0.0 and bool((clean == y_np[start:stop]).any()):
            from art.attacks.evasion.square_attack import SquareAttack

            estimator = art_estimator(predict, x_np.shape[1:], int(oracle.n_classes or 2), neural=True)
            attack = SquareAttack(estimator, norm=np.inf if norm == "linf" else 2, eps=eps, max_iter=max_iter,
                                  p_init=p_init, nb_restarts=1, batch_size=batch_size, verbose=False)
            with seeded(derive(seed, start)), np.errstate(divide="ignore", invalid="ignore"):  # ART's l2 0/0
                found = attack.generate(x_np[start:stop].copy(), y=y_np[start:stop])
            x_adv[start:stop] = clip_to_ball(np.asarray(found, dtype=np.float32), x_np[start:stop], eps, norm)
        labels[start:stop] = np.argmax(predict(x_adv[start:stop]), axis=1)
        if progress is not None:
            progress("square", stop, n)
    settings = {"attack": "square", "norm": norm, "eps": eps, "max_queries": max_queries, "seed": seed,
                "library": LIBRARY, "version": art_version(), "art_estimator": "BlackBoxClassifierNeuralNetwork",
                "art_params": art_params, "loss": "logit margin (ART's default loss on log-probabilities)"}
    return BlackBoxResult(
        x_adv=torch.from_numpy(x_adv),
        success=torch.from_numpy(labels != y_np),
        queries=oracle.queries - start_queries,
        norms=torch.from_numpy(perturbation_norms(x_adv, x_np, norm)),
        settings=settings,
    )
