"""What every check shares: declared parameters, the context it reads, and the result it writes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import numpy as np

from auditor.errors import AuditCancelled
from auditor.validation import (Closed, Constraint, Instance, Interval, Options, check, describe, invalid,
                                reject_unknown)

if TYPE_CHECKING:
    import torch

    from auditor.models import LoadedModel
    from probes.base import Probe

__all__ = ["BUDGETS", "Param", "budget_index", "Check", "CheckContext", "CheckResult", "PassPlan", "PlanContext", "Predictions", "ProgressFn"]

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called between batches; the CLI draws a bar per stage."""


BUDGETS = ("quick", "standard", "thorough")
"""The ``--budget`` levels, cheapest first; a parameter declared with ``budget=`` has one value for each."""


@dataclass(frozen=True)
class Param:
    """A declared check parameter: its type, default, allowed values and a one-line help.

    ``low``/``high`` bound a number (``closed`` says which bounds belong, as in `auditor.validation.Interval`),
    ``choices`` lists the allowed values, ``none_ok`` also allows None, and ``parse`` turns a string
    into the value (an eps grid ``"1/255,2/255"`` into floats; raise ValueError on bad text), which
    ``satisfies`` then checks. ``budget=(quick, standard, thorough)``: the default 0 means "by --budget",
    these values; the help says so (`Param.describe`)."""

    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    closed: Closed = "both"
    none_ok: bool = False
    parse: Callable[[str], Any] | None = None
    satisfies: Constraint | None = None
    budget: tuple[Any, Any, Any] | None = None

    def __post_init__(self) -> None:
        if self.budget is not None and len(self.budget) != len(BUDGETS):
            raise TypeError(f"budget must give one value per budget {BUDGETS}, not {self.budget!r}")

    def constraints(self) -> tuple[Constraint | None, ...]:
        """The constraints a value must meet (`auditor.validation`)."""
        if self.satisfies is not None:
            first: Constraint = self.satisfies
        elif self.choices is not None:
            first = Options(*self.choices)
        elif self.kind in (int, float):
            first = Interval(self.kind, self.low, self.high, self.closed)
        else:
            first = Instance(self.kind)
        return (first, None) if self.none_ok else (first,)

    def constraint(self) -> str:
        """The allowed values in words (what follows "must be")."""
        return describe(self.constraints())

    def describe(self) -> str:
        """The help, with the budget's values when the parameter has them."""
        if self.budget is None:
            return self.help
        by = ", ".join(f"{b} {v}" for b, v in zip(BUDGETS, self.budget))
        return f"{self.help} ({self.default!r}: by --budget: {by})"

    def at(self, budget: str) -> Any:
        """The budget's value (the parameter's when it has no budget values)."""
        return self.default if self.budget is None else self.budget[budget_index(budget)]

    def validate(self, name: str, caller: str, value: Any) -> Any:
        """``value`` in its canonical form, or `ParameterError` with the one message."""
        return check(value, *self.constraints(), param=name, caller=caller, parse=self.parse)


def budget_index(budget: str) -> int:
    """The position of ``budget`` in `BUDGETS`; an unknown budget is a `ParameterError`, not a fallback."""
    if budget not in BUDGETS:
        raise invalid("budget", "the audit", describe((Options(*BUDGETS),)), budget)
    return BUDGETS.index(budget)


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

    def count(self, *sources: Any, forward: int = 0, backward: int = 0) -> "CheckResult":
        """Add to this result's pass counts what each source reports (a method's result dict, or an object with
        ``forward_passes``/``backward_passes``; a missing count is 0), plus ``forward``/``backward``."""
        for src in sources:
            get = src.get if isinstance(src, Mapping) else (lambda k, d, _s=src: getattr(_s, k, d))
            forward += int(get("forward_passes", 0) or 0)
            backward += int(get("backward_passes", 0) or 0)
        self.forward_passes += forward
        self.backward_passes += backward
        return self

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
    internal_sizes: ClassVar[Mapping[str, tuple[Any, Any, Any]]] = {}
    """Sizes by ``--budget`` (quick, standard, thorough) that are not parameters (`at_budget` adds them)."""

    def __init__(self, **params: Any) -> None:
        reject_unknown(params, self.params, self.name)
        self.config: dict[str, Any] = {key: spec.validate(key, self.name, params.get(key, spec.default))
                                       for key, spec in self.params.items()}

    def at_budget(self, budget: str) -> dict[str, Any]:
        """The sizes the check runs at ``budget``: each budgeted parameter's value when set (not 0), else the
        budget's, then the `internal_sizes` (budget-only sizes that are not parameters)."""
        i = budget_index(budget)
        sizes = {k: self.config[k] or spec.budget[i] for k, spec in self.params.items() if spec.budget is not None}
        return {**sizes, **{k: v[i] for k, v in self.internal_sizes.items()}}

    def run(self, ctx: CheckContext) -> CheckResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def plan(self, ctx: "PlanContext | CheckContext") -> PassPlan:
        """The passes ``run`` will make at ``ctx.budget`` with these parameters (a check that sends no
        image through the model keeps this default)."""
        return PassPlan(note="no model passes")
