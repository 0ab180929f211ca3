"""`run_audit`: one audit end to end, as a short sequence of named steps.

Refuse bad input before any work -> load the model and open the probe -> plan the cost -> verify the
preprocessing -> predict -> run the checks -> results.json -> policy verdict -> outputs.
"""
from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from auditor.api._checks import CheckRuns, check_params, run_checks, select_checks
from auditor.api._config import AuditConfig, AuditOutcome
from auditor.api._predict import first_batch, positive_index, predict, resolve_classes
from auditor.checks import CheckContext, Predictions, get_check
from auditor.checks.base import ProgressFn
from auditor.cost import CostPlan, plan_for_audit
from auditor.errors import EXIT_FAIL, EXIT_PASS, AuditCancelled
from auditor.models import LoadedModel, check_model_output, resolve_device, use_threads
from auditor.outdir import StagedFolder, write_outputs
from auditor.policy import Policy, evaluate_policy, load_baseline, load_policy
from auditor.preflight import verify_classes, verify_preprocessing
from auditor.results import SCHEMA_VERSION, auditor_version, environment, utc_now
from auditor.validation import ParameterError
from probes import Probe, open_probe, probe_image_size
from probes.loader import Batch

__all__ = ["run_audit"]

PlanFn = Callable[[CostPlan], None]


def run_audit(cfg: AuditConfig, *, progress: ProgressFn | None = None, cancel: Callable[[], bool] | None = None,
              on_plan: PlanFn | None = None) -> AuditOutcome:
    """Run one audit end to end and write its outputs to ``cfg.out_dir`` (None: write nothing).

    ``on_plan(plan)`` gets the cost plan (`auditor.cost`), made before the preflight and the predictions,
    once they have passed and before any check runs; with ``cfg.max_minutes`` the budgets are lowered to
    fit, or `UsageError` is raised with nothing written.

    ``cfg.out_dir`` is written as one whole (`auditor.outdir`): an earlier audit there is refused unless
    ``cfg.force`` (then replaced whole), a non-empty folder that holds no audit always; the folder is locked
    from the start, the outputs go to a hidden staging folder beside it, swapped in once all are written."""
    if cfg.out_dir is None:
        return _run_audit(cfg, None, progress=progress, cancel=cancel, on_plan=on_plan)
    _check_writable(Path(cfg.out_dir))
    with StagedFolder(cfg.out_dir, force=cfg.force) as staged:
        outcome = _run_audit(cfg, staged.path, progress=progress, cancel=cancel, on_plan=on_plan)
        staged.commit()
    outcome.paths = staged.final(outcome.paths)
    return outcome


@dataclass
class _Subject:
    """The model and the probe, met: the input size, the first readable batch, the outputs' width, and (once
    resolved) the outputs' class names and the positive class's index."""

    model: LoadedModel
    probe: Probe
    input_size: tuple[int, int]
    first: Batch
    width: int
    classes: list[str] = field(default_factory=list)
    positive: int = 0


def _run_audit(cfg: AuditConfig, stage: Path | None, *, progress: ProgressFn | None,
               cancel: Callable[[], bool] | None, on_plan: PlanFn | None) -> AuditOutcome:
    """`run_audit`'s work; the outputs go to the staging folder ``stage`` (None: nowhere)."""
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    names = _refuse_bad_input(cfg)
    threads = use_threads(cfg.threads)  # before any work; results.json records the count
    policy = load_policy(cfg.policy)
    baseline = load_baseline(cfg.baseline) if cfg.baseline else None
    params = check_params(names, cfg.check_params, policy)
    device = resolve_device(cfg.device)
    _seed_everything(cfg.seed)
    subject = _meet(cfg, device, seconds)
    plan = _plan(cfg, subject, names, params, device, seconds)
    subject.classes = resolve_classes(subject.model, subject.probe, subject.width)
    subject.positive = positive_index(subject.model, subject.classes, subject.width)
    with _timed(seconds, "preflight"):
        assumptions = verify_preprocessing(subject.model, subject.probe, subject.input_size, subject.width, device,
                                           seed=cfg.seed, batch_size=cfg.batch_size)
    predictions, skipped, resized = _predict(cfg, subject, device, seconds, _reporter(progress, cancel))
    assumptions = {"classes": verify_classes(subject.model, subject.probe, predictions.y_true, predictions.y_pred,
                                             subject.classes, subject.width), **assumptions}
    if on_plan is not None:  # once nothing about the inputs can stop the audit any more: the checks come next
        on_plan(plan)
    ctx = _context(cfg, subject, predictions, device, progress, cancel)
    runs = run_checks(names, params, ctx, plan, progress)
    results = _results(cfg, subject, device, assumptions, predictions, skipped, resized, runs, plan,
                       {**seconds, **runs.seconds}, threads)
    return _gate(cfg, results, policy, baseline, stage, t0)


def _refuse_bad_input(cfg: AuditConfig) -> list[str]:
    """What can be refused before any work (the checks and their parameters, the output folder, pdf support);
    returns the checks to run."""
    names = select_checks(cfg)
    if "pdf" in cfg.formats and cfg.out_dir is not None:
        from auditor.report import check_pdf_available

        check_pdf_available()  # a machine without weasyprint/Pango fails now, not after the audit
    if cfg.out_dir is not None:
        _check_writable(Path(cfg.out_dir))
    return names


def _check_writable(out: Path) -> None:
    """Fail before any work when the output folder cannot be created or written."""
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out} is a file; pass a folder (it is created if missing)")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ParameterError(f"--out {out}: {parent} is not writable; pass a folder you can write to")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    """Record the seconds the block takes as ``seconds[step]`` (results.json's ``cost.seconds``)."""
    start = time.perf_counter()
    yield
    seconds[step] = time.perf_counter() - start


def _reporter(progress: ProgressFn | None, cancel: Callable[[], bool] | None) -> Callable[[str, int, int], None]:
    """The prediction pass's progress callback: polls ``cancel`` between batches, then reports."""
    def report(stage: str, done: int, total: int) -> None:
        if cancel is not None and cancel():
            raise AuditCancelled(f"audit cancelled during {stage}")
        if progress is not None:
            progress(stage, done, total)

    return report


def _meet(cfg: AuditConfig, device: torch.device, seconds: dict[str, float]) -> _Subject:
    """Load the model, open the probe, and run the model on the first readable images (its output width)."""
    with _timed(seconds, "load_model"):
        model = cfg.load_model(cfg.model, device)  # type: ignore[arg-type]
    with _timed(seconds, "load_probe"):
        probe = open_probe(cfg.probe, target=cfg.target, sensitive=cfg.sensitive, age_buckets=cfg.age_buckets,  # type: ignore[arg-type]
                           class_names=model.class_names)
    input_size = tuple(model.input_size) if model.input_size else probe_image_size(probe)
    first = first_batch(probe, input_size)  # type: ignore[arg-type]
    width = check_model_output(model, first.images.to(device))
    return _Subject(model=model, probe=probe, input_size=input_size, first=first, width=width)  # type: ignore[arg-type]


def _plan(cfg: AuditConfig, subject: _Subject, names: list[str], params: dict[str, dict[str, Any]],
          device: torch.device, seconds: dict[str, float]) -> CostPlan:
    """The cost plan of the checks ``names`` (`auditor.cost.plan_for_audit`), fitted to ``cfg.max_minutes``."""
    with _timed(seconds, "plan"):
        return plan_for_audit({n: get_check(n)(**params[n]) for n in names}, model=subject.model,
                              images=subject.first.images, n_rows=len(subject.probe), n_classes=subject.width,
                              input_size=subject.input_size, budget=cfg.budget, batch_size=cfg.batch_size,
                              device=device, max_minutes=cfg.max_minutes)


def _predict(cfg: AuditConfig, subject: _Subject, device: torch.device, seconds: dict[str, float],
             report: Callable[[str, int, int], None]) -> tuple[Predictions, list[dict[str, Any]], dict[str, Any]]:
    """The one prediction pass over the probe (`predict`): predictions, skipped images, resized images."""
    with _timed(seconds, "predict"):
        return predict(subject.model, subject.probe, subject.input_size, device, batch_size=cfg.batch_size,
                       num_workers=cfg.num_workers, strict=cfg.strict, report=report)


def _context(cfg: AuditConfig, subject: _Subject, predictions: Predictions, device: torch.device,
             progress: ProgressFn | None, cancel: Callable[[], bool] | None) -> CheckContext:
    """What every check is given."""
    return CheckContext(model=subject.model, probe=subject.probe, predictions=predictions, classes=subject.classes,
                        positive_class=subject.positive, input_size=subject.input_size, device=device, seed=cfg.seed,
                        budget=cfg.budget, attributes=list(subject.probe.attributes), batch_size=cfg.batch_size,
                        progress=progress, cancel=cancel)


def _results(cfg: AuditConfig, subject: _Subject, device: torch.device, assumptions: dict[str, Any],
             predictions: Predictions, skipped: list[dict[str, Any]], resized: dict[str, Any], runs: CheckRuns,
             plan: CostPlan, seconds: dict[str, float], threads: int) -> dict[str, Any]:
    """results.json's document, but for the policy block (`_gate` adds it)."""
    model, probe, classes = subject.model, subject.probe, subject.classes
    return {
        "schema_version": SCHEMA_VERSION,
        "auditor_version": auditor_version(),
        "created": utc_now(),
        "command": cfg.command,
        "seed": cfg.seed,
        "budget": cfg.budget,
        "device": str(device),
        "model": {"source": model.source, "name": model.details.get("name") or Path(model.source).stem, "form": model.form,
                  "sha256": model.sha256, "classes": classes,
                  "positive_class": classes[subject.positive] if subject.width == 2 else None,
                  "input_size": list(subject.input_size), "assumptions": assumptions, "details": model.details},
        "probe": {"source": cfg.probe, "format": probe.format, "sha256": probe.sha256(), "n": len(probe),
                  "n_skipped": len(skipped), "skipped": skipped, "resized": resized,
                  "n_unparsed": int(probe.meta.get("n_unparsed", 0)), "unparsed": list(probe.meta.get("unparsed", []))[:50],
                  "target": probe.target, "classes": probe.classes, "attributes": probe.group_counts()},
        "checks": runs.results,
        "policy": None,
        "cost": {"forward_passes": len(predictions) + len(subject.first.indices) + runs.forward,
                 "backward_passes": runs.backward,
                 "seconds": {k: round(v, 4) for k, v in seconds.items()},
                 "throughput": plan.throughput.to_dict(), "planned": plan.to_dict(),
                 "planned_seconds": round(plan.seconds, 2), "max_minutes": cfg.max_minutes, "shrunk": plan.shrunk,
                 "actual": {"predict": {"forward": len(predictions), "backward": 0, "seconds": round(seconds["predict"], 4)},
                            **runs.actual}},
        "environment": {**environment(), "threads": threads},
        "context": cfg.context,
    }


def _gate(cfg: AuditConfig, results: dict[str, Any], policy: Policy, baseline: Any, stage: Path | None,
          t0: float) -> AuditOutcome:
    """Judge ``results`` against the policy, give the exit code, and write the outputs to ``stage``."""
    results["policy"] = evaluate_policy(policy, results, baseline)
    results["policy"]["allow_inconclusive"] = cfg.allow_inconclusive
    results["cost"]["seconds_total"] = round(time.perf_counter() - t0, 4)
    verdict = results["policy"]["verdict"]
    code = EXIT_PASS if verdict == "pass" or (verdict == "inconclusive" and cfg.allow_inconclusive) else EXIT_FAIL
    paths = write_outputs(results, stage, cfg.formats) if stage is not None else {}
    return AuditOutcome(results=results, paths=paths, verdict=verdict, exit_code=code)
