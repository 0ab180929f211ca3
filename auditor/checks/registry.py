"""The single registry of checks: `@register_check` adds a class, `get_check` finds one by name."""
from __future__ import annotations

import difflib
import fnmatch
from typing import TYPE_CHECKING, TypeVar

from auditor.errors import InternalError, UsageError

if TYPE_CHECKING:
    from auditor.checks.base import Check

__all__ = ["register_check", "get_check", "list_checks", "check_names"]

_REGISTRY: dict[str, type["Check"]] = {}
C = TypeVar("C", bound="type[Check]")


def register_check(cls: C) -> C:
    """Class decorator: register a `Check` subclass under its ``name``; a duplicate name is an error."""
    name = getattr(cls, "name", None)
    if not name or not isinstance(name, str):
        raise InternalError(f"check class {cls.__name__} needs a string class attribute 'name'")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise InternalError(f"a check named {name!r} is already registered ({_REGISTRY[name].__module__}); pick another name")
    _REGISTRY[name] = cls
    return cls


def get_check(name: str) -> type["Check"]:
    """The check class registered as ``name``; an unknown name suggests the closest one."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown check {name!r}{hint} (registered: {', '.join(sorted(_REGISTRY))}; see `auditor checks`)") from None


def list_checks(pattern: str = "*") -> list[type["Check"]]:
    """Registered check classes whose name matches the fnmatch ``pattern``, sorted by name."""
    return [_REGISTRY[n] for n in sorted(_REGISTRY) if fnmatch.fnmatch(n, pattern)]


def check_names() -> list[str]:
    """Names of all registered checks, in the order they run."""
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].order, n))

