"""What the user declares about a model beyond its file: classes, positive class, mean/std, input size.

The same facts come from a model spec YAML (`auditor.models._spec`) or from flags (``--classes``,
``--positive-class``, ``--mean``, ``--std``, ``--input-size``); a flag beats the spec with a warning.
`Declared` is the validated flag side: `parse_declared` turns the CLI's strings into it and
`Declared.validated` checks values handed to the Python API, with the one error template
(`auditor.validation.message`): "The '--classes' parameter of the model options must be ...".
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any, Sequence

from auditor.validation import ParameterError, invalid

__all__ = ["Declared", "parse_declared", "IMAGENET_MEAN", "IMAGENET_STD", "DECLARED_FLAGS"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DECLARED_FLAGS = {"classes": "--classes", "positive_class": "--positive-class", "mean": "--mean", "std": "--std",
                  "input_size": "--input-size"}


_CALLER = "the model options"  # as `auditor.api.ModelOptions` names itself


def _invalid(key: str, constraint: str, value: Any) -> ParameterError:
    """The error for the flag of ``key`` (a `UsageError`: exit 2), in the one message template."""
    return invalid(DECLARED_FLAGS[key], _CALLER, constraint, value)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Declared:
    """Model facts given as flags or API arguments (None: not given)."""

    classes: tuple[str, ...] | None = None
    positive_class: str | int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    input_size: tuple[int, int] | None = None

    def validated(self) -> Declared:
        """This declaration with values normalised; raises `ParameterError` (a `UsageError`) naming the flag and the fix."""
        classes = self.classes
        if classes is not None:
            names = [str(c).strip() for c in classes] if isinstance(classes, (list, tuple)) else None
            if not names or len(names) < 2 or not all(names) or len(set(names)) != len(names):
                raise _invalid("classes", "at least 2 distinct class names in output order, e.g. male,female", classes)
            classes = tuple(names)
        pos = self.positive_class
        if pos is not None:
            if isinstance(pos, str) and re.fullmatch(r"\d+", pos.strip()) and not (classes and pos.strip() in classes):
                pos = int(pos)
            if isinstance(pos, bool) or not isinstance(pos, (str, int)) or isinstance(pos, int) and pos < 0:
                raise _invalid("positive_class", "a class name or an output index >= 0", pos)
            if isinstance(pos, str):
                pos = pos.strip()
                if classes is not None and pos not in classes:
                    raise _invalid("positive_class", f"one of --classes ({','.join(classes)}) or an output index", pos)
            elif classes is not None and pos >= len(classes):
                raise _invalid("positive_class", f"an output index below {len(classes)} (the number of --classes)", pos)
        mean = _triple("mean", self.mean, positive=False)
        std = _triple("std", self.std, positive=True)
        size = self.input_size
        if size is not None:
            vals = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
            if (not isinstance(vals, (list, tuple)) or len(vals) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 8192 for v in vals)):
                raise _invalid("input_size", "a side in pixels (224) or H,W (224,224)", size)
            size = (int(vals[0]), int(vals[1]))
        return Declared(classes=classes, positive_class=pos, mean=mean, std=std, input_size=size)

    def given(self) -> dict[str, Any]:
        """The declared facts that were given, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def _triple(key: str, value: Any, *, positive: bool) -> tuple[float, float, float] | None:
    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(_finite(v) for v in value)
    if ok and positive:
        ok = all(v > 0 for v in value)
    if not ok:
        what = "3 positive numbers" if positive else "3 numbers"
        raise _invalid(key, f"{what} (R,G,B) separated by commas, e.g. {','.join(map(str, IMAGENET_STD if positive else IMAGENET_MEAN))}", value)
    return (float(value[0]), float(value[1]), float(value[2]))


def _numbers(key: str, text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise _invalid(key, "numbers separated by commas", text) from None


def parse_declared(
    *, classes: str | None = None, positive_class: str | None = None, mean: str | None = None,
    std: str | None = None, input_size: str | None = None,
) -> Declared:
    """`Declared` from the CLI's strings: ``"male,female"``, ``"female"``, ``"0.485,0.456,0.406"``, ``"224"``/``"224,224"``."""
    size: Any = None
    if input_size is not None:
        parts = [p for p in re.split(r"[,x ]", input_size.strip().lower()) if p]
        if not parts or len(parts) > 2 or not all(p.isdigit() for p in parts):
            raise _invalid("input_size", "a side in pixels (224) or H,W (224,224)", input_size)
        size = int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    names = None if classes is None else tuple(c.strip() for c in classes.split(","))
    return Declared(classes=names, positive_class=positive_class, mean=_tuple(_numbers("mean", mean)),
                    std=_tuple(_numbers("std", std)), input_size=size).validated()


def _tuple(values: Sequence[float] | None) -> Any:
    return None if values is None else tuple(values)
