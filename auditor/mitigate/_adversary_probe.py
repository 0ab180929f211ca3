"""The honest measure of adversarial debiasing: a FRESH probe fit on the model's frozen features.

The training adversary's own accuracy is a poor measure (it is trained against a moving target), so
`adversary_accuracy` fits a new probe on held-out images' features (`extract_features`) and reports its
balanced accuracy.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from auditor.mitigate._features import eval_forward, tap_layer
from auditor.validation import ParameterError, invalid

__all__ = ["FeatureReader", "adversary_accuracy", "extract_features"]


class FeatureReader(Protocol):
    """What reads a model's features at its hooked layer: an `AdversarialDebiasing` objective."""

    def features(self, model: nn.Module, x: Tensor) -> Tensor: ...


def extract_features(model: nn.Module, objective_or_layer: FeatureReader | str | None, images: Tensor,
                     *, batch_size: int = 256) -> Tensor:
    """Frozen N x D features of ``images`` (eval mode, no grad, on CPU) at the objective's layer, a named layer,
    or (None) the default feature layer (see `find_feature_layer`)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    if objective_or_layer is not None and not isinstance(objective_or_layer, str):
        if not callable(getattr(objective_or_layer, "features", None)):
            raise invalid("objective_or_layer", "extract_features", "an AdversarialDebiasing, a layer name or None",
                          type(objective_or_layer).__name__)
        grab = objective_or_layer.features
        close = None
    else:  # the default layer is found with a forward of a few images (a ConvNeXt's block Linears or a
        # transformer's token Linears come after the last convolution too, but do not see N x D features)
        example = images[:2].to(device) if objective_or_layer is None and len(images) else None
        _, tap, _ = tap_layer(model, objective_or_layer, example)
        close = tap

        def grab(m: nn.Module, x: Tensor) -> Tensor:
            eval_forward(m, x)
            return tap.take()
    try:
        parts = [grab(model, images[i:i + batch_size].to(device)).detach().float().cpu()
                 for i in range(0, len(images), batch_size)]
    finally:
        if close is not None:
            close.close()
    return torch.cat(parts)


def _probe_split(bias: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded half/half split of the indices, stratified by bias code."""
    rng = np.random.default_rng(seed)
    fit_idx: list[int] = []
    test_idx: list[int] = []
    codes = bias.numpy()
    for code in np.unique(codes):
        idx = rng.permutation(np.flatnonzero(codes == code))
        cut = len(idx) // 2
        fit_idx += idx[:cut].tolist()
        test_idx += idx[cut:].tolist()
    return torch.tensor(sorted(fit_idx)), torch.tensor(sorted(test_idx))


def adversary_accuracy(model: nn.Module, objective_or_layer: FeatureReader | str | None, data_images: Tensor,
                       bias: Tensor, *, epochs: int = 200, seed: int = 0, hidden: int = 0, lr: float = 0.05,
                       weight_decay: float = 1e-3) -> float:
    """How well a FRESH probe predicts the bias from the model's frozen features: balanced accuracy in [0, 1].

    ``data_images``/``bias`` should be held out from training, ideally with the bias independent of the label
    (otherwise the probe can read the bias off the label information). They are split half/half (seeded,
    stratified by bias): the probe (logistic regression on standardised features, or an MLP with ``hidden``
    units) is fit full-batch with Adam for ``epochs`` steps on one half and scored on the other. Balanced
    accuracy (mean per-code recall) makes chance 1/K whatever the bias shares. The model is not changed.
    """
    caller = "adversary_accuracy"
    bias = bias.detach().cpu().long()
    if len(data_images) != len(bias):
        raise invalid("bias", caller, f"one bias code per image ({len(data_images)} codes)", f"{len(bias)} codes")
    codes = torch.unique(bias)
    if len(codes) < 2:
        raise ParameterError("the held-out bias holds one code only; pass images from at least 2 bias groups")
    counts = torch.bincount(bias)
    if int(counts[counts > 0].min()) < 2:
        raise ParameterError("a bias code has fewer than 2 held-out images; pass at least 2 images per bias code")
    feats = extract_features(model, objective_or_layer, data_images)
    fit_idx, test_idx = _probe_split(bias, seed)
    remap = torch.full((int(bias.max()) + 1,), -1, dtype=torch.long)
    remap[codes] = torch.arange(len(codes))
    target = remap[bias]
    x_fit, x_test = feats[fit_idx], feats[test_idx]
    mean, std = x_fit.mean(0), x_fit.std(0).clamp_min(1e-6)
    x_fit, x_test = (x_fit - mean) / std, (x_test - mean) / std
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        width = feats.shape[1]
        probe: nn.Module = (nn.Linear(width, len(codes)) if hidden <= 0 else
                            nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, len(codes))))
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(epochs):
            opt.zero_grad()
            F.cross_entropy(probe(x_fit), target[fit_idx]).backward()
            opt.step()
    with torch.no_grad():
        pred = probe(x_test).argmax(1)
    truth = target[test_idx]
    recalls = [(pred[truth == k] == k).float().mean().item() for k in range(len(codes)) if (truth == k).any()]
    return float(sum(recalls) / len(recalls))
