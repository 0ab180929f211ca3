"""The cost plan made before the work: how fast the model runs here, how many images each check will
send through it at its budget, what that costs in minutes, and which budgets to lower to fit a limit.

The unit is the image pass: one image through the model forward (no gradient), or forward and back
to the input (an attack step, a mask step, an attribution). `measure_throughput` times one batch of
each on the audit's device; a check's seconds are its planned passes at those rates. Work that is no
model pass (statistics, figures, the transfer attack's substitute) is not in the estimate.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from auditor.checks.base import BUDGETS, Check, PassPlan, PlanContext, ProgressFn
from auditor.errors import UsageError
from auditor.frozen import frozen

__all__ = ["Throughput", "CheckCost", "CostPlan", "PassCounter", "measure_throughput", "plan_audit", "plan_for_audit",
           "fit_to_minutes", "format_plan", "plan_line", "BUDGET_ORDER"]

log = logging.getLogger(__name__)

BUDGET_ORDER = BUDGETS  # cheapest first
WARMUP_IMAGES = 4
REPEATS = 3  # timed repeats of a batch, the fastest kept
REPEAT_SECONDS = 1.0  # stop repeating once this much is spent


@dataclass(frozen=True)
class Throughput:
    """Images per second on one device: ``forward`` without gradient, ``backward`` forward and back to
    the input; measured on one batch of ``batch_size`` after a warm-up."""

    forward: float
    backward: float
    batch_size: int
    device: str
    differentiable: bool = True

    def seconds(self, passes: PassPlan | tuple[int, int]) -> float:
        """Seconds for ``forward`` passes of which ``backward`` also go backward."""
        f, b = (passes.forward, passes.backward) if isinstance(passes, PassPlan) else passes
        return b / self.backward + max(0, f - b) / self.forward

    def to_dict(self) -> dict[str, Any]:
        return {"forward_images_per_s": round(self.forward, 2), "backward_images_per_s": round(self.backward, 2),
                "batch_size": self.batch_size, "device": self.device, "differentiable": self.differentiable}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward_backward(module: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = module(xg)
        torch.autograd.grad(out.float().logsumexp(dim=1).sum(), xg)


def _best_time(fn: Callable[[], None], device: torch.device, budget_s: float = REPEAT_SECONDS) -> float:
    """The fastest of up to `REPEATS` timed calls of ``fn``, stopping once ``budget_s`` is spent (a
    slow model is timed once: its timing noise is small against its cost)."""
    best, spent = float("inf"), 0.0
    for _ in range(REPEATS):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        took = time.perf_counter() - t0
        best, spent = min(best, took), spent + took
        if spent >= budget_s:
            break
    return max(best, 1e-6)


def measure_throughput(module: torch.nn.Module, images: torch.Tensor, device: torch.device | str,
                       batch_size: int | None = None) -> Throughput:
    """Time one batch forward (no gradient) and one forward + backward to the input, each after a
    warm-up batch (the first batch at a shape pays for allocation and kernel choice) and as the fastest
    of a few repeats while they are cheap. ``images`` (N, 3, H, W) in [0, 1] are repeated to
    ``batch_size`` (default N). A model without input gradient gets a backward rate of a third of its
    forward rate (not used by the checks, which then skip the white-box work). The model is left as found."""
    device = torch.device(device)
    bs = int(batch_size or images.shape[0])
    x = images[torch.arange(bs) % images.shape[0]].to(device)

    def forward() -> None:
        with torch.no_grad():
            module(x)

    with frozen(module):
        forward()
        t_forward = _best_time(forward, device)
        differentiable = True
        try:
            _forward_backward(module, x[:WARMUP_IMAGES])
        except RuntimeError as exc:  # no graph to the input: the checks run without gradients
            log.info("throughput: no input gradient (%s)", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            differentiable = False
        t_backward = 3 * t_forward
        if differentiable:
            _forward_backward(module, x)
            t_backward = _best_time(lambda: _forward_backward(module, x), device)
    return Throughput(bs / t_forward, bs / t_backward, bs, str(device), differentiable)


@dataclass
class CheckCost:
    """One line of the plan: a check (or the predictions) at its budget."""

    name: str
    budget: str | None
    forward: int
    backward: int
    seconds: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "forward": self.forward, "backward": self.backward,
                "seconds": round(self.seconds, 2), "note": self.note}


@dataclass
class CostPlan:
    """The whole audit's plan: the predictions, then each check in run order."""

    throughput: Throughput
    predict: CheckCost
    checks: dict[str, CheckCost]
    max_minutes: float | None = None
    shrunk: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.predict.seconds + sum(c.seconds for c in self.checks.values())

    def budgets(self) -> dict[str, str]:
        return {n: c.budget or "" for n, c in self.checks.items()}

    def to_dict(self) -> dict[str, Any]:
        """``{"predict": {...}, CHECK: {budget, forward, backward, seconds, note}, ...}``."""
        return {"predict": self.predict.to_dict(), **{n: c.to_dict() for n, c in self.checks.items()}}


def plan_audit(checks: Mapping[str, Check], ctx: PlanContext, throughput: Throughput,
               budgets: Mapping[str, str] | None = None) -> CostPlan:
    """Each check's planned passes and seconds at its budget (``budgets``, default ``ctx.budget``), plus
    the one forward pass over the probe that makes the predictions."""
    predict = PassPlan(ctx.n_rows, 0)
    out = {}
    for name, check in checks.items():
        budget = (budgets or {}).get(name, ctx.budget)
        p = check.plan(dataclasses.replace(ctx, budget=budget))
        out[name] = CheckCost(name, budget, p.forward, p.backward, throughput.seconds(p), p.note)
    return CostPlan(throughput, CheckCost("predict", None, predict.forward, 0, throughput.seconds(predict)), out)


def fit_to_minutes(checks: Mapping[str, Check], ctx: PlanContext, throughput: Throughput,
                   max_minutes: float) -> CostPlan:
    """The plan at ``ctx.budget``, with budgets lowered one step at a time (thorough -> standard -> quick),
    the costliest check first, until it fits ``max_minutes``; ``plan.shrunk`` says what was lowered.
    Raises `UsageError` (exit 2) with the plan in one line when even the lowest budgets do not fit."""
    if not max_minutes > 0:
        raise UsageError(f"--max-minutes must be a number of minutes > 0; got {max_minutes!r}")
    start = {n: ctx.budget for n in checks}
    budgets = dict(start)
    plan = plan_audit(checks, ctx, throughput, budgets)
    stuck: set[str] = set()  # checks whose passes a lower budget does not reduce (set by parameters)
    while plan.seconds > 60 * max_minutes:
        lowerable = [c for n, c in plan.checks.items() if n not in stuck and BUDGET_ORDER.index(budgets[n]) > 0]
        if not lowerable:
            raise UsageError(f"--max-minutes {max_minutes:g} is too short: even at the lowest budgets the audit needs "
                             f"about {plan.seconds / 60:.1f} min ({plan_line(plan)}); raise --max-minutes, leave out "
                             "checks with --checks, or lower their sizes with --param")
        worst = max(lowerable, key=lambda c: c.seconds)
        lower = BUDGET_ORDER[BUDGET_ORDER.index(budgets[worst.name]) - 1]
        trial = plan_audit(checks, ctx, throughput, {**budgets, worst.name: lower})
        if trial.checks[worst.name].seconds >= worst.seconds:
            stuck.add(worst.name)
            continue
        budgets[worst.name] = lower
        plan = trial
    plan.max_minutes = max_minutes
    plan.shrunk = [f"{n}: {start[n]} -> {budgets[n]}" for n in checks if budgets[n] != start[n]]
    return plan


def plan_for_audit(checks: Mapping[str, Check], *, model: Any, images: torch.Tensor, n_rows: int, n_classes: int,
                   input_size: tuple[int, int], budget: str, batch_size: int, device: torch.device,
                   max_minutes: float | None = None) -> CostPlan:
    """What `auditor.api.run_audit` plans before the work: the throughput measured on ``images`` (the
    first probe images, repeated to ``batch_size``), then the plan at ``budget``, fitted to ``max_minutes``."""
    throughput = measure_throughput(model.module, images, device, batch_size=batch_size)
    ctx = PlanContext(model=model, n_rows=n_rows, n_classes=n_classes, input_size=(int(input_size[0]), int(input_size[1])),
                      budget=budget, batch_size=batch_size)
    if max_minutes is None:
        return plan_audit(checks, ctx, throughput)
    return fit_to_minutes(checks, ctx, throughput, max_minutes)


class PassCounter:
    """Counts the images that go through ``module`` while active (a forward pre-hook on the wrapper):
    ``forward`` all of them, ``backward`` those sent with a graph to the input (a backward follows).
    With ``progress``, reports ``progress(stage, done, total)`` in passes (forward + backward) against
    the planned ``total``, held below it until the block ends, so a bar shows the check's ETA."""

    def __init__(self, module: torch.nn.Module, stage: str = "", total: int = 0, progress: ProgressFn | None = None) -> None:
        self.module, self.stage, self.total, self.progress = module, stage, int(total), progress
        self.forward = self.backward = 0
        self._handle: Any = None

    def _hook(self, _module: Any, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.ndim == 0:
            return
        self.forward += int(x.shape[0])
        if torch.is_grad_enabled() and x.requires_grad:
            self.backward += int(x.shape[0])
        if self.progress is not None and self.total > 0:
            self.progress(self.stage, min(self.forward + self.backward, self.total - 1), self.total)

    def __enter__(self) -> PassCounter:
        try:
            self._handle = self.module.register_forward_pre_hook(self._hook)
        except (AttributeError, RuntimeError) as exc:  # e.g. a bare TorchScript module: no live count
            log.info("pass counting unavailable: %s", exc)
        if self.progress is not None and self.total > 0:
            self.progress(self.stage, 0, self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
        if self.progress is not None and self.total > 0 and exc[0] is None:
            self.progress(self.stage, self.total, self.total)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 6 else f"{seconds:.1f} s"


def plan_line(plan: CostPlan) -> str:
    """The plan in one line: each check's budget and estimated time, and the total."""
    parts = [f"predict {_minutes(plan.predict.seconds)}"]
    parts += [f"{n} ({c.budget}) {_minutes(c.seconds)}" for n, c in plan.checks.items()]
    return ", ".join(parts) + f"; total {_minutes(plan.seconds)}"


def format_plan(plan: CostPlan) -> str:
    """The plan as a small table for the terminal: passes and estimated minutes per check."""
    t = plan.throughput
    head = (f"cost plan on {t.device}: {t.forward:,.0f} images/s forward, {t.backward:,.0f} images/s forward+backward "
            f"(batch {t.batch_size})")
    rows = [("", "budget", "forward", "backward", "estimate")]
    for c in (plan.predict, *plan.checks.values()):
        rows.append((c.name, c.budget or "", f"{c.forward:,}", f"{c.backward:,}", _minutes(c.seconds)))
    rows.append(("total", "", f"{sum(c.forward for c in (plan.predict, *plan.checks.values())):,}",
                 f"{sum(c.backward for c in plan.checks.values()):,}", _minutes(plan.seconds)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [head] + ["  " + "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
                      for r in rows]
    if plan.max_minutes is not None:
        lines.append(f"  --max-minutes {plan.max_minutes:g}: " + ("lowered " + ", ".join(plan.shrunk) if plan.shrunk
                                                                  else "fits at the chosen budgets"))
    lines.append("  (model passes only; statistics, figures and reports come on top)")
    return "\n".join(lines)
