"""Model-parameter randomisation (Adebayo et al. 2018): re-draw the weights layer by layer from the top
and measure how much the attribution maps change. A method whose maps stay the same when the weights it
claims to explain are random does not explain this model.

The cascade works on any module with parameters (plain, TorchScript, ``torch.export``): the weights
are changed in place and restored exactly afterwards, even when a step raises.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

__all__ = ["Stage", "cascade_stages", "randomised", "rank_correlation", "run_cascade"]


@dataclass(frozen=True)
class Stage:
    """Cascade stage: the top ``n_randomised`` of the model's ``total`` parameter-holding layers are random,
    ``layer`` the deepest of them."""

    index: int
    layer: str
    n_randomised: int
    layers: tuple[str, ...]
    total: int


def _layers(module: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """Parameter-holding layers in order of definition (input first): owner name and its parameters."""
    owners: dict[str, list[nn.Parameter]] = {}
    for name, p in module.named_parameters():
        if p.is_floating_point():
            owners.setdefault(name.rpartition(".")[0] or "(model)", []).append(p)
    return list(owners.items())


def cascade_stages(module: nn.Module, n_stages: int) -> list[Stage]:
    """Up to ``n_stages`` cumulative stages from the output layer down to the input layer, evenly spaced
    over the layers; the first randomises the top layer only and the last all of them."""
    if n_stages < 1:
        raise ValueError(f"n_stages must be >= 1. Got {n_stages!r} instead.")
    names = [n for n, _ in reversed(_layers(module))]
    if not names:
        return []
    cuts = sorted({int(round(c)) for c in np.linspace(1, len(names), min(n_stages, len(names)))})
    return [Stage(i + 1, names[c - 1], c, tuple(names[:c]), len(names)) for i, c in enumerate(cuts)]


@contextmanager
def randomised(module: nn.Module, layers: tuple[str, ...], seed: int) -> Iterator[None]:
    """Inside the block the parameters of ``layers`` are re-drawn: each tensor from a normal with its own
    mean and standard deviation (a constant tensor, such as a fresh BatchNorm scale, gets a 10% spread),
    seeded; every parameter is restored exactly on exit."""
    chosen = {name: params for name, params in _layers(module) if name in set(layers)}
    saved = [(p, p.detach().clone()) for params in chosen.values() for p in params]
    gen = torch.Generator().manual_seed(int(seed) % 2**63)
    try:
        with torch.no_grad():
            for params in chosen.values():
                for p in params:
                    values = p.detach().double().cpu()
                    mean = float(values.mean())
                    std = float(values.std()) if values.numel() > 1 else 0.0
                    if not np.isfinite(std) or std == 0.0:
                        std = 0.1 * abs(mean) or 0.02
                    draw = torch.randn(p.shape, generator=gen, dtype=torch.float64) * std + mean
                    p.copy_(draw.to(p.dtype))
        yield
    finally:
        with torch.no_grad():
            for p, original in saved:
                p.copy_(original)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of |a| and |b| per image (N, H, W) -> (N,); ties get average ranks.
    NaN where the original map ``a`` is constant (there is no ranking to keep); 0 where only ``b`` is."""
    x = rankdata(np.abs(a).reshape(len(a), -1), axis=1)
    y = rankdata(np.abs(b).reshape(len(b), -1), axis=1)
    x -= x.mean(axis=1, keepdims=True)
    y -= y.mean(axis=1, keepdims=True)
    den = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(axis=1) / den
    return np.where(den > 0, r, np.where((x * x).sum(axis=1) > 0, 0.0, np.nan))


def run_cascade(module: nn.Module, stages: list[Stage], seed: int,
                maps: Callable[[], dict[str, np.ndarray]], original: dict[str, np.ndarray],
                ) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """For each stage: the rank correlation per method and image between ``original`` maps and the maps
    ``maps()`` computes with that stage's layers randomised (``maps`` reads the model afresh), and those
    randomised maps of the first image (for the figure)."""
    out = []
    for stage in stages:
        with randomised(module, stage.layers, seed + stage.index):
            now = maps()
        out.append(({m: rank_correlation(original[m], now[m]) for m in now if m in original},
                    {m: v[0] for m, v in now.items()}))
    return out
