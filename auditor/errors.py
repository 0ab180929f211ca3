"""Exceptions that carry the process exit code the CLI maps them to (README: "CI gate")."""
from __future__ import annotations

__all__ = [
    "AuditorError",
    "BadInputError",
    "UsageError",
    "ModelLoadError",
    "ProbeError",
    "PolicyError",
    "InternalError",
    "AuditCancelled",
    "EXIT_PASS",
    "EXIT_FAIL",
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
]

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class AuditorError(Exception):
    """Base class: every error the auditor raises on purpose. The message is one line that says what to do."""

    exit_code: int = EXIT_INTERNAL


class BadInputError(AuditorError):
    """The user's input (model, probe, policy, arguments) cannot be used: exit 2."""

    exit_code = EXIT_BAD_INPUT


class UsageError(BadInputError):
    """Bad command-line usage or parameter value."""


class ModelLoadError(BadInputError):
    """The model cannot be loaded, or does not fit the probe."""


class ProbeError(BadInputError):
    """The probe folder or file cannot be read as a probe."""


class PolicyError(BadInputError):
    """The policy file is invalid."""


class InternalError(AuditorError):
    """A bug in the auditor: exit 3."""


class AuditCancelled(AuditorError):
    """The audit was cancelled between batches by its caller."""

    exit_code = EXIT_INTERNAL
