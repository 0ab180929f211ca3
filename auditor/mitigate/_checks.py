"""The trainer's argument checks, written with `auditor.validation`: declared constraints, one message.

A bad argument raises `ParameterError` (a ValueError, and a UsageError for the CLI's exit 2) in the one
template, with a hint where a number needs one::

    The 'temperature' parameter of Distillation must be a float > 0 (Papernot et al. use 20-100). Got 0 instead.
"""
from __future__ import annotations

from auditor.validation import Hinted, Interval

__all__ = ["POSITIVE", "at_least"]

POSITIVE = Interval(float, 0, None, closed="neither")
"""A finite float > 0 (a learning rate, a temperature)."""


def at_least(minimum: int, hint: str) -> Hinted:
    """An int >= ``minimum`` (not a bool), described with ``hint``."""
    return Hinted(Interval(int, minimum, None), hint)
