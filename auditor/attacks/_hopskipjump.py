"""HopSkipJump through ART: from a seeded adversarial start, binary search to the decision boundary,
estimate its normal from label-only queries, step, repeat, within ``max_queries`` queries per image.

Chen, Jordan & Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack" (IEEE S&P
2020). Public through `auditor.attacks.blackbox`.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from auditor.attacks._args import Cancel, Progress, check_classes, check_int
from auditor.attacks._oracle import (LIBRARY, BlackBoxResult, CountingOracle, OutOfBudget, Remembered, art_estimator,
                                     art_version, check_query_args, derive, perturbation_norms, seeded)
from auditor.errors import AuditCancelled
from auditor.validation import invalid

__all__ = ["hopskipjump"]

log = logging.getLogger(__name__)

_INIT_THRESHOLD = 1e-3  # the start's binary search towards the image stops at this blend step (ART's value)


def _start(predict: Remembered, x: np.ndarray, y: int, init_size: int, rng: np.random.Generator) -> np.ndarray | None:
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
    progress: Progress = None,
    cancel: Cancel = None,
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
    oracle, x_np, y_np, norm, eps, seed = check_query_args(oracle, x, y, norm, eps, seed, progress, cancel, caller,
                                                           eps_optional=True)
    max_queries = check_int(max_queries, "max_queries", caller, 2)
    max_iter = check_int(max_iter, "max_iter", caller, 0)
    init_eval = check_int(init_eval if init_eval is not None else min(100, max(1, max_queries // 20)), "init_eval", caller, 1)
    max_eval = check_int(max_eval if max_eval is not None else max(init_eval, min(10000, max_queries // 4)),
                         "max_eval", caller, 1)
    init_size = check_int(init_size if init_size is not None else min(100, max(1, max_queries // 10)), "init_size", caller, 1)
    if max_eval < init_eval:
        raise invalid("max_eval", caller, f"an int >= init_eval ({init_eval})", max_eval)
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
    with seeded(seed):
        for i in range(n):
            if cancel is not None and cancel():
                raise AuditCancelled("audit cancelled during the hopskipjump attack")
            before = oracle.queries
            predict = Remembered(oracle, capacity=64)
            predict.limit = before + max_queries
            clean = predict.label(x_np[i])
            check_classes(y_np, oracle.n_classes or 2, caller)
            if clean != y_np[i]:
                success[i] = True
            else:
                np.random.seed(derive(seed, i))  # ART's gradient-estimate noise, per image
                adv, iterations[i] = _hsj_image(predict, x_np[i], int(y_np[i]), norm, max_iter, init_eval,
                                                max_eval, init_size, np.random.default_rng(derive(seed, i, 1)),
                                                HopSkipJump, int(oracle.n_classes or 2))
                if adv is None:
                    norms[i] = math.inf
                else:
                    x_adv[i] = adv
                    norms[i] = perturbation_norms(adv[None], x_np[i][None], norm)[0]
                    predict.limit = None  # the result was the last image queried: remembered, costs nothing
                    success[i] = predict.label(adv) != y_np[i] and (eps is None or norms[i] <= eps)
            spent[i] = oracle.queries - before
            if progress is not None:
                progress("hopskipjump", i + 1, n)
    settings = {"attack": "hopskipjump", "norm": norm, "eps": eps, "max_queries": max_queries, "seed": seed,
                "library": LIBRARY, "version": art_version(), "art_estimator": "BlackBoxClassifier",
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


def _hsj_image(predict: Remembered, x: np.ndarray, y: int, norm: str, max_iter: int, init_eval: int, max_eval: int,
               init_size: int, rng: np.random.Generator, attack_cls: Any, n_classes: int) -> tuple[np.ndarray | None, int]:
    """One image: the seeded start, then ART's iterations one call at a time within ``predict.limit``."""
    try:
        current = _start(predict, x, y, init_size, rng)
    except OutOfBudget:
        current = None
    if current is None:
        return None, 0
    estimator = art_estimator(predict, x.shape, n_classes, neural=False)
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
        except OutOfBudget:
            break
        current = np.asarray(found[0], dtype=np.float32)
        last_overhead = max(0, predict.oracle.queries - before - num_eval)
        done += 1
    return current, done
