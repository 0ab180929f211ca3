"""`use_threads(n)`: the CPU threads torch uses for a run (``--threads``), set before any work."""
from __future__ import annotations

import logging

import torch

from auditor.errors import UsageError

__all__ = ["use_threads"]

log = logging.getLogger(__name__)


def use_threads(n: int | None) -> int:
    """Use ``n`` CPU threads for torch's operators, and for its inter-op pool while that can still be set
    (once per process, before any parallel work); None keeps torch's default. Returns the count in use,
    which results.json records. A count below 1 raises `UsageError`."""
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UsageError(f"--threads must be a whole number of at least 1, e.g. --threads 4; got {n!r}")
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # already set, or parallel work has started: keep it
            log.debug("inter-op threads stay at %d", torch.get_num_interop_threads())
    return torch.get_num_threads()
