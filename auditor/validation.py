"""One way to validate an argument, scikit-learn style: declared constraints, one error class, one message.

A parameter is declared as a sequence of constraints and is valid when any of them accepts it::

    check(eps, Interval(float, 0, 1, closed="right"), param="eps", caller="pgd")
    check(norm, Options("linf", "l2"), param="norm", caller="pgd")
    check(seed, Interval(int, 0, None), None, param="seed", caller="pgd")   # None allowed

``None`` in the sequence allows None. A value that no constraint accepts raises `ParameterError`
with the one message template::

    The 'eps' parameter of pgd must be a float in (0, 1]. Got -1 instead.

Checks that need code (a tensor's shape) build the same error with `invalid`. `ParameterError` is a
`UsageError` (the CLI exits 2) and a `ValueError` (what Python callers expect from a bad argument).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

from auditor.errors import UsageError

__all__ = [
    "Closed", "ParameterError", "Constraint", "Interval", "Options", "Instance", "Satisfies", "Hinted",
    "check", "check_params", "reject_unknown", "describe", "invalid", "message",
]

Closed = Literal["both", "left", "right", "neither"]


class ParameterError(UsageError, ValueError):
    """A bad argument: a ValueError for Python callers, and a UsageError for the CLI's exit 2."""


def message(param: str, caller: str, constraint: str, value: Any) -> str:
    """The one message template: what ``param`` of ``caller`` must be, and what it got."""
    shown = repr(value)
    if len(shown) > 200:
        shown = shown[:197] + "..."
    return f"The {param!r} parameter of {caller} must be {constraint}. Got {shown} instead."


def invalid(param: str, caller: str, constraint: str, value: Any) -> ParameterError:
    """The error for ``param`` of ``caller`` that is not ``constraint`` (for checks written as code)."""
    return ParameterError(message(param, caller, constraint, value))


class Constraint:
    """One allowed form of a value: `accepts` says whether ``value`` has it, `describe` says it in words
    (after "must be"), and `coerce` turns an accepted value into its canonical form (an int into a float)."""

    def accepts(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def coerce(self, value: Any) -> Any:
        return value


def _is_number(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, numbers.Integral)
    return isinstance(value, numbers.Real)


def _num(x: float) -> str:
    return str(x)  # as declared: Interval(float, 0.0, 1.0) reads "[0.0, 1.0]"


@dataclass(frozen=True)
class Interval(Constraint):
    """A finite ``kind`` (int or float) between ``low`` and ``high`` (None: unbounded on that side);
    ``closed`` says which bounds belong to the interval. A float interval accepts ints (as floats)."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: Closed = "both"

    def __post_init__(self) -> None:
        if self.kind not in (int, float):
            raise TypeError(f"Interval kind must be int or float, not {self.kind!r}")
        if self.closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', not {self.closed!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"Interval low {self.low} is above high {self.high}")

    def accepts(self, value: Any) -> bool:
        if not _is_number(value, self.kind) or not math.isfinite(float(value)):
            return False
        left_closed = self.closed in ("both", "left")
        right_closed = self.closed in ("both", "right")
        if self.low is not None and (value < self.low if left_closed else value <= self.low):
            return False
        if self.high is not None and (value > self.high if right_closed else value >= self.high):
            return False
        return True

    def coerce(self, value: Any) -> Any:
        return float(value) if self.kind is float else int(value)

    def describe(self) -> str:
        text = "an int" if self.kind is int else "a float"
        low, high = self.low, self.high
        left_closed = self.closed in ("both", "left")
        right_closed = self.closed in ("both", "right")
        if low is not None and high is not None:
            return f"{text} in {'[' if left_closed else '('}{_num(low)}, {_num(high)}{']' if right_closed else ')'}"
        if low is not None:
            return f"{text} {'>=' if left_closed else '>'} {_num(low)}"
        if high is not None:
            return f"{text} {'<=' if right_closed else '<'} {_num(high)}"
        return text


@dataclass(frozen=True, init=False)
class Options(Constraint):
    """One of the given values (compared with ``==``, and of the same type: True is not 1)."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        if not values:
            raise ValueError("Options needs at least one value")
        object.__setattr__(self, "values", tuple(values))

    def accepts(self, value: Any) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def describe(self) -> str:
        if len(self.values) == 1:
            return repr(self.values[0])
        return "one of " + ", ".join(repr(v) for v in self.values)


_ARTICLE = {"int": "an int", "bool": "a bool", "str": "a str", "float": "a float"}


@dataclass(frozen=True)
class Instance(Constraint):
    """An instance of ``kind`` (bool is not an int here); ``text`` overrides the description."""

    kind: type | tuple[type, ...]
    text: str = ""

    def accepts(self, value: Any) -> bool:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if isinstance(value, bool) and bool not in kinds:
            return False
        return isinstance(value, kinds)

    def describe(self) -> str:
        if self.text:
            return self.text
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        return " or ".join(_ARTICLE.get(k.__name__, f"a {k.__name__}") for k in kinds)


@dataclass(frozen=True)
class Satisfies(Constraint):
    """A value for which ``test`` is true, described by ``text`` (a test that raises counts as false)."""

    test: Callable[[Any], bool]
    text: str

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except Exception:  # noqa: BLE001 - a test that cannot read the value rejects it
            return False

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class Hinted(Constraint):
    """``constraint`` with a hint after its description: "an int >= 1 (passes over the training data)"."""

    constraint: Constraint
    hint: str

    def accepts(self, value: Any) -> bool:
        return self.constraint.accepts(value)

    def coerce(self, value: Any) -> Any:
        return self.constraint.coerce(value)

    def describe(self) -> str:
        return f"{self.constraint.describe()} ({self.hint})"


def describe(constraints: Sequence[Constraint | None]) -> str:
    """The constraints in words, joined with "or" (None reads "None")."""
    return " or ".join("None" if c is None else c.describe() for c in constraints)


def check(value: Any, *constraints: Constraint | None, param: str, caller: str,
          parse: Callable[[str], Any] | None = None) -> Any:
    """``value`` in its canonical form when one of ``constraints`` accepts it, else `ParameterError`.

    ``parse`` turns a string into the value first (an eps grid "1/255,2/255" into floats); a parse
    that raises ValueError becomes the same error, naming what the string must be.
    """
    if not constraints:
        raise TypeError("check needs at least one constraint")
    if parse is not None and isinstance(value, str):
        try:
            value = parse(value)
        except (ValueError, ZeroDivisionError) as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise ParameterError(message(param, caller, describe(constraints), value)[:-1] + detail + ".") from None
    for c in constraints:
        if c is None:
            if value is None:
                return None
        elif c.accepts(value):
            return c.coerce(value)
    raise invalid(param, caller, describe(constraints), value)


def reject_unknown(values: Mapping[str, Any], known: Mapping[str, Any] | Sequence[str], caller: str) -> None:
    """`ParameterError` naming the first name in ``values`` that ``known`` lacks, and the names it has."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ParameterError(f"{caller} has no parameter {unknown[0]!r}; its parameters are: {', '.join(known) or 'none'}")


def check_params(values: Mapping[str, Any], spec: Mapping[str, Sequence[Constraint | None]], caller: str) -> dict[str, Any]:
    """Every entry of ``values`` checked against its constraints in ``spec``; an unknown name is an error."""
    reject_unknown(values, spec, caller)
    return {k: check(v, *spec[k], param=k, caller=caller) for k, v in values.items()}
