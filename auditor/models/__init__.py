"""The model under audit: loading it in any accepted form, wrapping it, and the validation pass.

`load_model` reads a TorchScript, ``torch.export``, state_dict (with an architecture), ``torchvision:NAME``,
model spec YAML, trusted full pickle, or an in-memory ``nn.Module`` and returns a `LoadedModel` whose
``module`` is an `AuditModel` (pixels in [0, 1] in, logits N x C out, normalisation inside).
`check_model_output` runs the first forward pass on the probe's images; `Declared` / `parse_declared`
hold what a flag, spec or weights declare (classes, positive class, mean/std, input size);
`resolve_device` turns ``--device`` into a torch device and `use_threads` sets ``--threads``.

Inside: ``_load`` (the forms), ``_assemble`` (wrapping with the declared facts), ``_loaded`` (the
`LoadedModel` leaf), ``_files`` (reading and hashing files), ``_arch`` (architectures for state_dicts),
``_spec`` (model spec YAML), ``_declared``, ``_wrapper``, ``_check`` and ``_devices``.
"""
from __future__ import annotations

from auditor.models._assemble import module_sha256
from auditor.models._check import check_model_output
from auditor.models._declared import IMAGENET_MEAN, IMAGENET_STD, Declared, parse_declared
from auditor.models._devices import resolve_device, use_threads
from auditor.models._load import load_model
from auditor.models._loaded import LoadedModel
from auditor.models._wrapper import AuditModel

__all__ = [
    "AuditModel",
    "Declared",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LoadedModel",
    "check_model_output",
    "load_model",
    "module_sha256",
    "parse_declared",
    "resolve_device",
    "use_threads",
]
