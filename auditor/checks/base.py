"""What every check shares: declared parameters, the context it reads, and the result it writes."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import numpy as np

from auditor.errors import AuditCancelled, UsageError

if TYPE_CHECKING:
    import torch

    from auditor.models import LoadedModel
    from probes.base import Probe

__all__ = ["Param", "Check", "CheckContext", "CheckResult", "PassPlan", "PlanContext", "Predictions", "ProgressFn"]

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called between batches; the CLI draws a bar per stage."""


@dataclass(frozen=True)
class Param:
    """A declared check parameter: its type, default, allowed range or choices and a one-line help."""

    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None

    def constraint(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        text = f"a {self.kind.__name__}"
        if self.low is not None and self.high is not None:
            text += f" in [{self.low}, {self.high}]"
        elif self.low is not None:
            text += f" >= {self.low}"
        elif self.high is not None:
            text += f" <= {self.high}"
        return text

    def validate(self, name: str, caller: str, value: Any) -> Any:
        ok = True
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or isinstance(value, bool) and self.kind is not bool:
            ok = False
        elif self.choices is not None and value not in self.choices:
            ok = False
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                ok = False
            if self.low is not None and value < self.low or self.high is not None and value > self.high:
                ok = False
        if not ok:
            raise UsageError(f"The {name!r} parameter of {caller} must be {self.constraint()}. Got {value!r} instead.")
        return value


@dataclass
class Predictions:
    """The model's answers on the readable probe images, computed once and shared by the checks.

    ``index`` are probe row indices; ``logits``/``probs`` are N x C; ``y_true``/``y_pred`` class indices.
    """

    index: np.ndarray
    logits: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray

    @property
    def probs(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class CheckContext:
    """Everything a check may read. Checks must leave the model as they found it."""

    model: "LoadedModel"
    probe: "Probe"
    predictions: Predictions
    classes: list[str]
    positive_class: int
    input_size: tuple[int, int]
    device: torch.device
    seed: int
    budget: str
    attributes: list[str]
    batch_size: int = 64
    progress: ProgressFn | None = None
    cancel: Callable[[], bool] | None = None

    @property
    def n_rows(self) -> int:
        """Rows the check may draw its samples from (the readable probe images)."""
        return len(self.predictions)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def report(self, stage: str, done: int, total: int) -> None:
        """Report progress and honour cancellation (call between batches)."""
        if self.cancel is not None and self.cancel():
            raise AuditCancelled(f"audit cancelled during {stage}")
        if self.progress is not None:
            self.progress(stage, done, total)


@dataclass(frozen=True)
class PlanContext:
    """What a check's `Check.plan` reads, known before the predictions exist (the plan comes first).

    `CheckContext` has the same attributes, so a plan can also be made from the context ``run`` gets.
    """

    model: "LoadedModel | None"
    n_rows: int
    n_classes: int
    input_size: tuple[int, int]
    budget: str
    batch_size: int = 64


@dataclass(frozen=True)
class PassPlan:
    """Images a check will send through the model: ``forward`` passes, of which ``backward`` also
    go backward to the input (an attack step is 1 forward and 1 backward). ``note`` says where the
    actual count can differ (early stopping, data-dependent choices)."""

    forward: int = 0
    backward: int = 0
    note: str = ""

    def __add__(self, other: "PassPlan") -> "PassPlan":
        note = "; ".join(n for n in (self.note, other.note) if n)
        return PassPlan(self.forward + other.forward, self.backward + other.backward, note)


@dataclass
class CheckResult:
    """One check's entry in ``results.json["checks"]``."""

    status: str = "ok"  # ok | error
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    by_group: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    forward_passes: int = 0
    backward_passes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "params": self.params,
            "metrics": self.metrics,
            "by_group": self.by_group,
            "figures": self.figures,
            "seconds": round(self.seconds, 4),
            "error": self.error,
        }


class Check:
    """Base class. Subclasses set ``name``, ``description``, ``params`` and implement ``run``.

    The constructor only validates and stores keyword parameters (scikit-learn style); ``run`` reads
    the context and returns a `CheckResult`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    order: ClassVar[int] = 100
    params: ClassVar[Mapping[str, Param]] = {}
    metric_names: ClassVar[tuple[str, ...]] = ()
    """Leaf names a policy clause may reference under ``checks.<name>.metrics.<scope>.``."""
    overall_metric_names: ClassVar[tuple[str, ...] | None] = None
    """Leaf names under ``checks.<name>.metrics.overall.`` (None: the same as ``metric_names``)."""
    scoped: ClassVar[bool] = True
    """Whether the metrics have a scope per attribute (False: only ``overall``, so ``*`` names nothing)."""

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise UsageError(
                f"{self.name} has no parameter {unknown[0]!r}; its parameters are: {', '.join(self.params) or 'none'}"
            )
        self.config: dict[str, Any] = {}
        for key, spec in self.params.items():
            value = params.get(key, spec.default)
            self.config[key] = spec.validate(key, self.name, value)

    def run(self, ctx: CheckContext) -> CheckResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def plan(self, ctx: "PlanContext | CheckContext") -> PassPlan:
        """The passes ``run`` will make at ``ctx.budget`` with these parameters (a check that sends no
        image through the model keeps this default)."""
        return PassPlan(note="no model passes")
