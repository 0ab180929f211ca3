"""Images a mitigation both trains on and is audited on, found by content hash.

Two file probes are compared by the sha256 of each image file's bytes (streamed); two generated probes by
the hash of what their pixels are a pure function of (`probes.synth.SynthProbe.image_key`, nothing
rendered); a generated probe and a file probe by the hash of the decoded RGB pixels. An image the
training data share with the audit probe makes the before/after audits measure memory, not the model.
"""
from __future__ import annotations

import logging
from typing import Any

from auditor.errors import ProbeError
from probes import ImageUnreadable, Probe

__all__ = ["content_keys", "image_overlap", "overlap_warning"]

log = logging.getLogger(__name__)


def _hash_by(a: Probe, b: Probe) -> str:
    """How two probes' images are compared: ``bytes`` (both have files), ``recipe`` (both generated), else ``pixels``."""
    if a.root is not None and b.root is not None:
        return "bytes"
    if a.format == "synth" and b.format == "synth":
        return "recipe"
    return "pixels"


def content_keys(probe: Probe, by: str) -> set[str]:
    """The content hash (`probes.base.Probe.image_key`) of every readable image of ``probe``."""
    keys: set[str] = set()
    for i in range(len(probe)):
        try:
            keys.add(probe.image_key(i, by))
        except (ImageUnreadable, ProbeError):
            continue
    return keys


def image_overlap(train: Probe, probe: Probe) -> dict[str, Any]:
    """``{"n": audit images also in the training data, "n_probe", "n_train", "by": how they were compared}``.

    ``n_probe`` and ``n_train`` count images, ``n`` the audit probe's images whose content a training image has.
    """
    by = _hash_by(train, probe)
    train_keys = content_keys(train, by)
    n = 0
    n_probe = 0
    for i in range(len(probe)):
        try:
            key = probe.image_key(i, by)
        except (ImageUnreadable, ProbeError):
            continue
        n_probe += 1
        n += key in train_keys
    return {"n": n, "n_probe": n_probe, "n_train": len(train), "by": by}


def overlap_warning(overlap: dict[str, Any]) -> str | None:
    """The warning for an overlap of `image_overlap`, or None when the audit images are all unseen."""
    if not overlap.get("n"):
        return None
    return (f"{overlap['n']} of the {overlap['n_probe']} audit images are also in the training data (by content hash); "
            "the before/after audits overstate how well the mitigated model does on images it has not seen: "
            "audit on a --probe held out from --train")
