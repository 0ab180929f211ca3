"""The model meets the probe: the class names and positive class of its outputs, and the one prediction pass."""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import torch

from auditor.checks import Predictions
from auditor.errors import ModelLoadError, ProbeError
from auditor.models import LoadedModel
from auditor.validation import ParameterError
from probes import Probe, ResizeTally, make_loader
from probes.loader import Batch

__all__ = ["first_batch", "positive_index", "predict", "resolve_classes"]

log = logging.getLogger(__name__)


def resolve_classes(model: LoadedModel, probe: Probe, width: int) -> list[str]:
    """Class names for the model's ``width`` outputs, reconciled with the probe's labels.

    A model that names no classes and has another number of outputs than the probe has classes is refused
    (`ModelLoadError`, exit 2): which outputs the probe's classes are would be a guess, for index labels too
    (a 10-output model on labels 0/1 may be anything but a model of those two classes)."""
    if model.class_names is not None and len(model.class_names) != width:
        raise ModelLoadError(
            f"{model.source}: the spec names {len(model.class_names)} classes but the model outputs {width}; fix 'classes' in the spec"
        )
    max_label = int(probe.table["label"].max())
    if max_label >= width:
        raise ModelLoadError(
            f"{model.source} outputs {width} classes but probe {probe.source} has labels up to index {max_label} "
            f"({len(probe.classes)} classes: {', '.join(probe.classes[:6])}); audit it with a matching probe or --target"
        )
    if model.class_names is not None:
        return list(model.class_names)
    if len(probe.classes) == width:
        return list(probe.classes)
    indices = probe.meta.get("class_order") == "indices"
    raise ModelLoadError(
        f"{model.source} outputs {width} classes but probe {probe.source} has {len(probe.classes)} "
        f"({', '.join(probe.classes[:6])}{', ...' if len(probe.classes) > 6 else ''}); pass --classes with {width} "
        + ("names in output order (the probe's index labels point into them)" if indices else
           "names in output order (the probe's classes among them)") + ", or audit it on a matching probe"
    )


def positive_index(model: LoadedModel, classes: list[str], width: int) -> int:
    """The positive class as an output index: declared (name or index), else output 1 of two, else 0."""
    pos = model.positive_class
    if pos is None:
        return 1 if width == 2 else 0
    if isinstance(pos, str):
        if pos not in classes:
            raise ParameterError(f"the positive class {pos!r} is not among the model's classes {','.join(classes)}; "
                                 "fix --positive-class (or declare the classes with --classes)")
        return classes.index(pos)
    if pos >= width:
        raise ParameterError(f"the positive class index {pos} is out of range for the model's {width} outputs; "
                             "fix --positive-class")
    return pos


def first_batch(probe: Probe, input_size: tuple[int, int]) -> Batch:
    """The first readable images of ``probe`` (up to 4): the model's first forward pass and the cost plan's sample."""
    first = next((b for b in make_loader(probe, input_size, batch_size=min(4, len(probe))) if len(b.indices)), None)
    if first is None:
        raise ProbeError(f"no image of probe {probe.source} can be read; check the image files")
    return first


def predict(
    model: LoadedModel, probe: Probe, input_size: tuple[int, int], device: torch.device, *, batch_size: int,
    num_workers: int, strict: bool, report: Callable[[str, int, int], None],
) -> tuple[Predictions, list[dict[str, Any]], dict[str, Any]]:
    """Stream the probe through the model once; unreadable images are skipped and listed (``strict``: refused), the
    images of another size than ``input_size`` counted (`ResizeTally.to_dict`: ``results.json``'s ``probe.resized``)."""
    tally = ResizeTally(tuple(input_size))  # type: ignore[arg-type]
    idx: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    skipped: list[dict[str, Any]] = []
    total = len(probe)
    done = 0
    loader = make_loader(probe, input_size, batch_size=batch_size, num_workers=num_workers)
    with torch.no_grad():
        for batch in loader:
            report("predict", done, total)
            for i, err in batch.failed:
                if strict:
                    raise ProbeError(f"unreadable image in probe {probe.source}: {err}; fix or remove it, or drop --strict to skip it")
                path = str(probe.table.at[i, "path"]) if "path" in probe.table else ""
                log.warning("skipping unreadable image %s", err)
                skipped.append({"index": int(i), "path": path, "error": err})
            tally.add(batch)
            if len(batch.indices):
                out = model.module(batch.images.to(device))
                logits.append(out.detach().double().cpu().numpy())
                idx.append(batch.indices.numpy())
            done += len(batch.indices) + len(batch.failed)
    report("predict", total, total)
    if not idx:
        raise ProbeError(f"no image of probe {probe.source} could be read ({len(skipped)} skipped); check the image files")
    index = np.concatenate(idx)
    predictions = _predictions(model, probe, index, np.concatenate(logits))
    resized = tally.to_dict()
    if resized["n"]:
        log.warning("%d of %d probe images are not %dx%d (WxH) and were resized keeping their aspect ratio (centre crop): %s",
                    resized["n"], len(index), input_size[1], input_size[0],
                    ", ".join(f"{k} ({v})" for k, v in list(resized["from"].items())[:5]))
    return predictions, skipped, resized


def _predictions(model: LoadedModel, probe: Probe, index: np.ndarray, z: np.ndarray) -> Predictions:
    """The logits ``z`` of the probe rows ``index`` as `Predictions`; a non-finite output is refused."""
    if not np.isfinite(z).all():
        bad = int(index[~np.isfinite(z).all(axis=1)][0])
        raise ModelLoadError(f"{model.source} gave non-finite outputs on probe image {bad}; the model is broken for this input")
    y_true = probe.table["label"].to_numpy()[index].astype(np.int64)
    return Predictions(index=index, logits=z, y_true=y_true, y_pred=z.argmax(axis=1))
