"""Where torch runs: the device (``--device auto|cpu|cuda[:N]``) and the CPU threads (``--threads``)."""
from __future__ import annotations

import logging
import re

import torch

from auditor.errors import UsageError
from auditor.validation import Interval, check

__all__ = ["resolve_device", "use_threads"]

log = logging.getLogger(__name__)

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a device that exists on this machine.

    ``auto`` picks CUDA when available, else the CPU. Raises `UsageError` for an unknown string or
    a CUDA device this machine does not have.
    """
    text = str(spec).strip().lower()
    if text == "auto":
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        log.info("device auto -> %s", device)
        return device
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(text)
    if match is None:
        raise UsageError(f"The 'device' parameter must be one of auto, cpu, cuda, cuda:N. Got {spec!r} instead.")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {spec}: CUDA is not available on this machine; pass --device cpu (or auto)")
    count = torch.cuda.device_count()
    index = int(match.group(1)) if match.group(1) is not None else None
    if index is not None and index >= count:
        raise UsageError(
            f"--device {spec}: this machine has {count} CUDA device(s); pass --device cuda:0 to cuda:{count - 1}, or auto"
        )
    return torch.device("cuda", index) if index is not None else torch.device("cuda")


def use_threads(n: int | None) -> int:
    """Use ``n`` CPU threads for torch's operators, and for its inter-op pool while that can still be set
    (once per process, before any parallel work); None keeps torch's default. Returns the count in use,
    which results.json records. A count below 1 raises `auditor.validation.ParameterError`."""
    n = check(n, Interval(int, 1), None, param="threads", caller="use_threads")
    if n is not None:
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # already set, or parallel work has started: keep it
            log.debug("inter-op threads stay at %d", torch.get_num_interop_threads())
    return torch.get_num_threads()
