"""The spurious check's figures: which images to show and what to label them with; drawing is
`figures.py`'s job. Every figure is a PNG data URI, so results.json carries it and a re-render of the
report (`auditor report`) needs no probe images.

- ``evidence_maps``: the mean evidence of each predicted class over the class's mean image;
- ``examples``: the images whose evidence is most concentrated (a finding's carriers first), with
  their masks;
- ``finding_N_counterfactual``: for finding N, images before and after the region is removed (left
  columns) and transplanted into images of another class (right columns), with the predictions.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from auditor.spurious.counterfactual import remove_region, transplant_region

__all__ = ["check_figures"]

N_EXAMPLES = 6
N_PAIRS = 3


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().permute(0, 2, 3, 1).numpy().clip(0.0, 1.0)


def _labels(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, classes: Sequence[str]) -> list[str]:
    if len(x) == 0:
        return []
    with torch.no_grad():
        p = torch.softmax(model(x).float(), dim=1).cpu()
    conf, idx = p.max(dim=1)
    return [f"{classes[int(i)] if int(i) < len(classes) else int(i)} {float(c):.2f}" for i, c in zip(idx, conf)]


def _concentration(evidence: np.ndarray, box: Sequence[int] | None) -> np.ndarray:
    """Per image, the share of its evidence inside ``box`` (or in its densest eighth when none)."""
    total = evidence.sum(axis=(1, 2)) + 1e-12
    if box is not None:
        x0, y0, x1, y1 = box
        return evidence[:, y0:y1, x0:x1].sum(axis=(1, 2)) / total
    flat = np.sort(evidence.reshape(len(evidence), -1), axis=1)[:, ::-1]
    return flat[:, : max(1, flat.shape[1] // 8)].sum(axis=1) / total


def check_figures(
    model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, evidence: np.ndarray, predicted: np.ndarray,
    classes: Sequence[str], maps: dict[str, Any], findings: list[dict[str, Any]], carriers: list[np.ndarray],
) -> dict[str, dict[str, str]]:
    """All figures of one run, keyed by name; ``carriers[i]`` are the image rows behind ``findings[i]``.
    Raises ImportError without matplotlib (imported here, not at start-up)."""
    from auditor import plotting as draw

    out: dict[str, dict[str, str]] = {}
    counts = [int((predicted == k).sum()) for k in range(len(classes))]
    means = [_hwc(images[predicted == k].mean(dim=0, keepdim=True))[0] if counts[k] else None for k in range(len(classes))]
    out["evidence_maps"] = {
        "data_uri": draw.evidence_overview(list(classes), means, [maps.get(c) for c in classes], counts),
        "caption": "Where the model's evidence lies, averaged over the audited images predicted as each class "
                   "(brighter: more evidence), over the class's mean image.",
    }
    box = findings[0]["box"] if findings else None
    pool = carriers[0] if findings and len(carriers[0]) else np.arange(len(images))
    order = pool[np.argsort(-_concentration(evidence[pool], box), kind="stable")][:N_EXAMPLES]
    out["examples"] = {
        "data_uri": draw.example_overlays(_hwc(images[order]), evidence[order], _labels(model, images[order], classes),
                                          [tuple(box)] * len(order) if box else None),
        "caption": ("The images that rely most on the first finding's region, with their masks (the region whose removal "
                    "destroys the prediction); its box is outlined." if box else
                    "The images whose evidence is most concentrated, with their masks (the region whose removal destroys "
                    "the prediction)."),
    }
    for i, (f, rows) in enumerate(zip(findings, carriers), 1):
        k = list(classes).index(f["class"])
        src = torch.as_tensor(rows[:N_PAIRS], dtype=torch.long)
        dst = torch.as_tensor(np.flatnonzero(predicted != k)[:N_PAIRS], dtype=torch.long)
        fbox = tuple(int(v) for v in f["box"])
        before = torch.cat([images[src], images[dst]])
        after = torch.cat([remove_region(images[src], fbox), transplant_region(images[dst], images[rows], fbox)
                           if len(rows) else images[dst]])
        out[f"finding_{i}_counterfactual"] = {
            "data_uri": draw.counterfactual_pairs(_hwc(before), _hwc(after), _labels(model, before, classes),
                                                  _labels(model, after, classes), fbox,
                                                  title=f"Finding {i}: removed (left {len(src)}), transplanted (right {len(dst)})"),
            "caption": (f"Finding {i} ({f['class']}): the region removed from images that rely on it (left) and "
                        "transplanted into images predicted as another class (right), with the model's answer before and after."),
        }
    return out
