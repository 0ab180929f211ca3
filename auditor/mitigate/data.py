"""Training data for the companion trainer: images in the model's input frame, labels and an optional bias.

`TrainingData` holds everything in memory on the CPU (the trainer's probes are small: thousands of
images at the model's input size). `from_probe` reads any probe `probes.open_probe` opens, through
the same loader and resizing the checks use, so a model is trained on exactly what it is audited on.
A bad argument raises `auditor.validation.ParameterError` in the one message template.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from auditor.mitigate._checks import Hinted, at_least
from auditor.validation import Interval, check, invalid
from probes import Probe, make_loader, open_probe

__all__ = ["TrainingData", "from_probe"]

log = logging.getLogger(__name__)

_MISSING_BIAS = {"", "(missing)", "nan", "None"}


@dataclass
class TrainingData:
    """Images (N, 3, H, W) float32 in [0, 1] on the CPU, labels (N,) long, and an optional bias (N,) long.

    ``bias`` codes a sensitive attribute or a known bias variable as 0..K-1; ``bias_names`` names the
    K codes (``[]`` when ``bias`` is None).
    """

    images: Tensor
    labels: Tensor
    bias: Tensor | None = None
    bias_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        caller = "TrainingData"
        if not isinstance(self.images, Tensor) or self.images.ndim != 4 or self.images.shape[1] != 3:
            shape = tuple(self.images.shape) if isinstance(self.images, Tensor) else type(self.images).__name__
            raise invalid("images", caller, "a float tensor (N, 3, H, W) in [0, 1]", shape)
        n = self.images.shape[0]
        self.images = self.images.detach().to("cpu", torch.float32)
        if n and (not bool(torch.isfinite(self.images).all()) or float(self.images.min()) < 0 or float(self.images.max()) > 1):
            raise invalid("images", caller, "pixel values in [0, 1] (normalisation belongs in the model)",
                          (round(float(self.images.min()), 3), round(float(self.images.max()), 3)))
        self.labels = _codes("labels", self.labels, n)
        if self.bias is None:
            if self.bias_names:
                raise invalid("bias_names", caller, "[] when bias is None (pass the bias codes or drop the names)",
                              self.bias_names)
            return
        self.bias = _codes("bias", self.bias, n)
        if n and int(self.bias.max()) >= len(self.bias_names):
            raise invalid("bias_names", caller, f"a name for every bias code 0..{int(self.bias.max())}", self.bias_names)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_classes(self) -> int:
        """The number of classes the labels imply (largest label + 1)."""
        return int(self.labels.max()) + 1 if len(self) else 0

    def subset(self, index: Tensor | np.ndarray) -> TrainingData:
        """The rows ``index`` (integer positions, in that order)."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long).reshape(-1)
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise invalid("index", "TrainingData.subset", f"row positions in [0, {len(self) - 1}]",
                          (int(idx.min()), int(idx.max())))
        bias = None if self.bias is None else self.bias[idx]
        return TrainingData(self.images[idx], self.labels[idx], bias, list(self.bias_names))

    def split(self, val_share: float, seed: int) -> tuple[TrainingData, TrainingData]:
        """(train, val): ``val_share`` of each label's rows go to val (rounded, seeded), the rest to train.

        A label with at least two rows keeps at least one on each side; rows keep their order.
        """
        caller = "TrainingData.split"
        val_share = check(val_share, Hinted(Interval(float, 0, 1, closed="neither"), "e.g. 0.2"), param="val_share",
                          caller=caller)
        gen = torch.Generator().manual_seed(int(seed))
        val_rows: list[Tensor] = []
        for c in torch.unique(self.labels).tolist():
            rows = (self.labels == c).nonzero().squeeze(1)
            k = round(val_share * rows.numel())
            if rows.numel() >= 2:
                k = min(max(k, 1), rows.numel() - 1)
            val_rows.append(rows[torch.randperm(rows.numel(), generator=gen)[:k]])
        in_val = torch.zeros(len(self), dtype=torch.bool)
        if val_rows:
            in_val[torch.cat(val_rows)] = True
        if not bool(in_val.any()) or bool(in_val.all()):
            raise invalid("val_share", caller, f"a share that leaves rows on both sides of a split of {len(self)} rows "
                          "(a val_share nearer 0.5, or more rows)", val_share)
        return self.subset((~in_val).nonzero().squeeze(1)), self.subset(in_val.nonzero().squeeze(1))


def _codes(name: str, values: object, n: int) -> Tensor:
    """``values`` as an (n,) long CPU tensor of non-negative codes."""
    t = torch.as_tensor(values)
    if t.ndim != 1 or t.shape[0] != n or t.is_floating_point() or t.dtype == torch.bool:
        raise invalid(name, "TrainingData", f"{n} integer codes, one per image", f"shape {tuple(t.shape)}, dtype {t.dtype}")
    t = t.to("cpu", torch.long)
    if n and int(t.min()) < 0:
        raise invalid(name, "TrainingData", "codes >= 0", int(t.min()))
    return t


def _bias_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows with a value, their codes (sorted names), and the names."""
    text = column.astype(object).where(column.notna(), None)
    present = np.array([v is not None and str(v) not in _MISSING_BIAS for v in text], dtype=bool)
    names = sorted({str(v) for v, ok in zip(text, present) if ok})
    lookup = {name: k for k, name in enumerate(names)}
    codes = np.array([lookup[str(v)] if ok else -1 for v, ok in zip(text, present)], dtype=np.int64)
    return present, codes, names


def from_probe(source: str | Probe, input_size: tuple[int, int], *, target: str | None = None, bias: str | None = None,
               limit: int | None = None, class_names: Sequence[str] | None = None) -> TrainingData:
    """Read a probe (any format `probes.open_probe` reads, incl. ``"synth:faces:n=..."``, or one already open)
    as training data.

    Labels are coded in ``class_names``' order (the model's declared classes) when given, else in the
    probe's own order (a coded format's codes, else its label names sorted), exactly as the audit codes them.

    Images come through `probes.make_loader` at ``input_size`` (H, W), as the checks see them.
    ``target`` picks the label column (the probe format's default otherwise); ``bias`` names an
    annotation (e.g. ``"race"``) coded 0..K-1 in sorted order of its values, rows without a value
    left out; ``limit`` keeps the first ``limit`` rows. Unreadable images are left out (logged).
    """
    caller = "from_probe"
    limit = check(limit, at_least(1, "rows to read"), None, param="limit", caller=caller)
    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_size)):
        raise invalid("input_size", caller, "two positive ints (H, W), e.g. (64, 64)", input_size)
    if isinstance(source, Probe):  # opened by the caller, with sensitive=bias when a bias is wanted
        probe = source
    else:
        probe = open_probe(source, target=target, sensitive=bias, class_names=class_names)
    source = probe.source
    rows = np.arange(len(probe) if limit is None else min(limit, len(probe)))
    codes: np.ndarray | None = None
    names: list[str] = []
    if bias is not None:
        column = probe.attributes[0]
        if column == probe.target:
            raise invalid("bias", caller, f"an annotation other than the label {probe.target!r} (pick another column)", bias)
        present, codes, names = _bias_codes(probe.table[column].iloc[rows])
        if not present.any():
            raise invalid("bias", caller, f"a column of {source} with a value in the rows read (pick another column)", column)
        if not present.all():
            log.warning("%s: %d row(s) without a %s value left out", source, int((~present).sum()), column)
        rows, codes = rows[present], codes[present]
    images, got = [], []
    for batch in make_loader(probe, tuple(input_size), batch_size=64, indices=rows.tolist()):
        for i, message in batch.failed:
            log.warning("%s: image %d unreadable, left out (%s)", source, i, message)
        if len(batch):
            images.append(batch.images)
            got.append(batch.indices.numpy())
    if not images:
        raise invalid("source", caller, "a probe with readable images (check its image files)", source)
    index = np.concatenate(got)
    labels = torch.as_tensor(probe.table["label"].to_numpy()[index], dtype=torch.long)
    bias_t = None
    if codes is not None:
        position = {int(r): k for k, r in enumerate(rows)}
        bias_t = torch.as_tensor(codes[[position[int(i)] for i in index]], dtype=torch.long)
    return TrainingData(torch.cat(images), labels, bias_t, names)
