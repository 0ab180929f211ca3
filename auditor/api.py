"""The one orchestrator: load model -> load probe -> validate the pair -> predict -> checks ->
results.json -> policy -> reports -> exit code. The CLI calls `run_audit`; so will the service.

No global state: every input is in `AuditConfig`; progress goes through a callback; cancellation is
polled between batches; outputs are written atomically.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from auditor.checks import CheckContext, CheckResult, Predictions, check_names, get_check
from auditor.checks.base import ProgressFn
from auditor.cost import CostPlan, PassCounter, plan_for_audit
from auditor.errors import (
    EXIT_FAIL, EXIT_PASS, AuditCancelled, ModelLoadError, ProbeError, UsageError,
)
from auditor.models import Declared, LoadedModel, check_model_output, load_model, resolve_device
from auditor.result import AuditResult
from auditor.preflight import verify_classes, verify_preprocessing
from auditor.outdir import StagedFolder, write_outputs
from auditor.policy import evaluate_policy, load_baseline, load_policy, required_left_out
from auditor.results import SCHEMA_VERSION, auditor_version, environment, utc_now
from auditor.threads import use_threads
from probes import Probe, ResizeTally, make_loader, open_probe, probe_image_size
from probes.base import DEFAULT_AGE_BUCKETS

__all__ = ["audit", "AuditResult", "AuditConfig", "AuditOutcome", "run_audit", "split_list", "declared_from", "resolve_classes", "BUDGETS", "FORMATS"]

log = logging.getLogger(__name__)

BUDGETS = ("quick", "standard", "thorough")
FORMATS = ("json", "html", "pdf", "md", "junit")


def split_list(value: str | Sequence[Any] | None, name: str) -> list[str] | None:
    """A list option given as a list/tuple or a comma string (``"gender,race"``); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    raise UsageError(f"The {name!r} parameter must be a list or a comma-separated string. Got {value!r} instead.")


def _floats(value: str | Sequence[Any] | None, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    items = split_list(value, name) if isinstance(value, str) else list(value)
    try:
        return tuple(float(v) for v in items or ())
    except (TypeError, ValueError):
        raise UsageError(f"The {name!r} parameter must be numbers, e.g. 0.485,0.456,0.406. Got {value!r} instead.") from None


@dataclass
class AuditConfig:
    """Everything one audit needs; mirrors `auditor audit`'s options. Paths may be `str` or `Path`, lists
    may be comma strings, ``model`` may be an in-memory ``nn.Module``."""

    model: str | Path | torch.nn.Module
    probe: str | Path = "synth:faces"
    arch: str | None = None
    weights: str | None = None
    num_classes: int | None = None
    classes: Sequence[str] | None = None
    positive_class: str | int | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    input_size: int | Sequence[int] | None = None
    trust_pickle: bool = False
    target: str | None = None
    sensitive: Sequence[str] | None = None
    age_buckets: str = DEFAULT_AGE_BUCKETS
    policy: str | None = None
    baseline: str | None = None
    checks: Sequence[str] | None = None
    check_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: str = "standard"
    device: str = "auto"
    seed: int = 0
    out_dir: str | Path | None = "audit-report"
    formats: Sequence[str] = ("json", "html")
    strict: bool = False
    allow_inconclusive: bool = False
    batch_size: int = 64
    num_workers: int = 0
    command: str = ""
    max_minutes: float | None = None
    force: bool = False
    """Replace an existing audit folder at ``out_dir`` (whole, never merged); without it an existing one is refused."""
    threads: int | None = None
    """CPU threads for torch (None: torch's default)."""

    def __post_init__(self) -> None:
        if not isinstance(self.model, torch.nn.Module):
            self.model = str(self.model)
        self.probe = str(self.probe)
        for name in ("arch", "weights", "policy", "baseline"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, str(value))
        self.classes = split_list(self.classes, "classes")
        self.sensitive = split_list(self.sensitive, "sensitive")
        self.checks = split_list(self.checks, "checks")
        self.formats = split_list(self.formats, "formats") or []
        self.mean = _floats(self.mean, "mean")
        self.std = _floats(self.std, "std")
        if isinstance(self.input_size, str):
            sizes = _floats(self.input_size, "input_size") or ()
            self.input_size = int(sizes[0]) if len(sizes) == 1 else tuple(int(v) for v in sizes)


@dataclass
class AuditOutcome:
    results: dict[str, Any]
    paths: dict[str, Path]
    verdict: str
    exit_code: int


def _validate_config(cfg: AuditConfig) -> list[str]:
    if cfg.budget not in BUDGETS:
        raise UsageError(f"--budget must be one of {', '.join(BUDGETS)}; got {cfg.budget!r}")
    bad = [f for f in cfg.formats if f not in FORMATS]
    if bad:
        raise UsageError(f"--format {bad[0]!r} is not available; choose from {', '.join(FORMATS)}")
    if cfg.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; got {cfg.batch_size}")
    if "pdf" in cfg.formats and cfg.out_dir is not None:
        from auditor.report import check_pdf_available

        check_pdf_available()  # a machine without weasyprint/Pango fails now, not after the audit
    if cfg.out_dir is not None:
        _check_writable(Path(cfg.out_dir))
    names = list(cfg.checks) if cfg.checks else check_names()
    for n in names:
        get_check(n)  # raises with a suggestion
    for n in cfg.check_params:
        if n not in names:
            raise UsageError(f"parameters given for check {n!r}, which is not selected; add it to --checks")
    if cfg.checks:  # a partial run: said now; its verdict is inconclusive (policy.missing_required)
        left_out = required_left_out(load_policy(cfg.policy), names)
        if left_out:
            log.warning("policy %s requires %s, which --checks leaves out: the verdict will be inconclusive (add it, "
                        "or pass a policy that does not require it)", load_policy(cfg.policy).name, ", ".join(left_out))
    return names


def _check_writable(out: Path) -> None:
    """Fail before any work when the output folder cannot be created or written."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a folder (it is created if missing)")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {parent} is not writable; pass a folder you can write to")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_classes(model: LoadedModel, probe: Probe, width: int) -> list[str]:
    """Class names for the model's ``width`` outputs, reconciled with the probe's labels.

    A model that names no classes and has another number of outputs than the probe has classes is refused
    (`ModelLoadError`, exit 2): which outputs the probe's classes are would be a guess, for index labels too
    (a 10-output model on labels 0/1 may be anything but a model of those two classes)."""
    if model.class_names is not None and len(model.class_names) != width:
        raise ModelLoadError(
            f"{model.source}: the spec names {len(model.class_names)} classes but the model outputs {width}; fix 'classes' in the spec"
        )
    max_label = int(probe.table["label"].max())
    if max_label >= width:
        raise ModelLoadError(
            f"{model.source} outputs {width} classes but probe {probe.source} has labels up to index {max_label} "
            f"({len(probe.classes)} classes: {', '.join(probe.classes[:6])}); audit it with a matching probe or --target"
        )
    if model.class_names is not None:
        return list(model.class_names)
    if len(probe.classes) == width:
        return list(probe.classes)
    indices = probe.meta.get("class_order") == "indices"
    raise ModelLoadError(
        f"{model.source} outputs {width} classes but probe {probe.source} has {len(probe.classes)} "
        f"({', '.join(probe.classes[:6])}{', ...' if len(probe.classes) > 6 else ''}); pass --classes with {width} "
        + ("names in output order (the probe's index labels point into them)" if indices else
           "names in output order (the probe's classes among them)") + ", or audit it on a matching probe"
    )


def declared_from(cfg: Any) -> Declared:
    """The model facts a config (audit or mitigation) declares as flags."""
    return Declared(classes=tuple(cfg.classes) if cfg.classes is not None else None, positive_class=cfg.positive_class,
                    mean=tuple(cfg.mean) if cfg.mean is not None else None,
                    std=tuple(cfg.std) if cfg.std is not None else None,
                    input_size=cfg.input_size if isinstance(cfg.input_size, int) or cfg.input_size is None
                    else tuple(cfg.input_size)).validated()


def _positive_index(model: LoadedModel, classes: list[str], width: int) -> int:
    """The positive class as an output index: declared (name or index), else output 1 of two, else 0."""
    pos = model.positive_class
    if pos is None:
        return 1 if width == 2 else 0
    if isinstance(pos, str):
        if pos not in classes:
            raise UsageError(f"the positive class {pos!r} is not among the model's classes {','.join(classes)}; "
                             "fix --positive-class (or declare the classes with --classes)")
        return classes.index(pos)
    if pos >= width:
        raise UsageError(f"the positive class index {pos} is out of range for the model's {width} outputs; fix --positive-class")
    return pos


def _predict(
    model: LoadedModel, probe: Probe, input_size: tuple[int, int], device: torch.device, cfg: AuditConfig,
    report: Callable[[str, int, int], None],
) -> tuple[Predictions, list[dict[str, Any]], dict[str, Any]]:
    """Stream the probe through the model once; unreadable images are skipped and listed, the images of another size
    than ``input_size`` counted (`ResizeTally.to_dict`: ``results.json``'s ``probe.resized``)."""
    tally = ResizeTally(tuple(input_size))  # type: ignore[arg-type]
    idx: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    skipped: list[dict[str, Any]] = []
    total = len(probe)
    done = 0
    loader = make_loader(probe, input_size, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    with torch.no_grad():
        for batch in loader:
            report("predict", done, total)
            for i, err in batch.failed:
                if cfg.strict:
                    raise ProbeError(f"unreadable image in probe {probe.source}: {err}; fix or remove it, or drop --strict to skip it")
                path = str(probe.table.at[i, "path"]) if "path" in probe.table else ""
                log.warning("skipping unreadable image %s", err)
                skipped.append({"index": int(i), "path": path, "error": err})
            tally.add(batch)
            if len(batch.indices):
                out = model.module(batch.images.to(device))
                logits.append(out.detach().double().cpu().numpy())
                idx.append(batch.indices.numpy())
            done += len(batch.indices) + len(batch.failed)
    report("predict", total, total)
    if not idx:
        raise ProbeError(f"no image of probe {probe.source} could be read ({len(skipped)} skipped); check the image files")
    index = np.concatenate(idx)
    z = np.concatenate(logits)
    if not np.isfinite(z).all():
        bad = int(index[~np.isfinite(z).all(axis=1)][0])
        raise ModelLoadError(f"{model.source} gave non-finite outputs on probe image {bad}; the model is broken for this input")
    y_true = probe.table["label"].to_numpy()[index].astype(np.int64)
    resized = tally.to_dict()
    if resized["n"]:
        log.warning("%d of %d probe images are not %dx%d (WxH) and were resized keeping their aspect ratio (centre crop): %s",
                    resized["n"], len(index), input_size[1], input_size[0],
                    ", ".join(f"{k} ({v})" for k, v in list(resized["from"].items())[:5]))
    return Predictions(index=index, logits=z, y_true=y_true, y_pred=z.argmax(axis=1)), skipped, resized


def _run_check(name: str, params: dict[str, Any], ctx: CheckContext) -> CheckResult:
    check = get_check(name)(**params)
    start = time.perf_counter()
    try:
        result = check.run(ctx)
    except AuditCancelled:
        raise
    except Exception as exc:  # a failing check is recorded, the other checks still run
        log.exception("check %s failed", name)
        result = CheckResult(status="error", params=check.config, error=f"{exc.__class__.__name__}: {exc}")
    result.seconds = time.perf_counter() - start
    return result


def run_audit(cfg: AuditConfig, *, progress: ProgressFn | None = None, cancel: Callable[[], bool] | None = None,
              on_plan: Callable[[CostPlan], None] | None = None) -> AuditOutcome:
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


def _run_audit(cfg: AuditConfig, stage: Path | None, *, progress: ProgressFn | None,
               cancel: Callable[[], bool] | None, on_plan: Callable[[CostPlan], None] | None) -> AuditOutcome:
    """`run_audit`'s work; the outputs go to the staging folder ``stage`` (None: nowhere)."""
    t0 = time.perf_counter()
    names = _validate_config(cfg)
    threads = use_threads(cfg.threads)  # before any work; results.json records the count
    policy = load_policy(cfg.policy)
    baseline = load_baseline(cfg.baseline) if cfg.baseline else None
    params = {n: dict(cfg.check_params.get(n, {})) for n in names}
    if "group_metrics" in params:  # the policy's defaults; an explicit --param still wins
        declared = get_check("group_metrics").params
        for key, value in policy.check_params.items():
            if key in declared:
                params["group_metrics"].setdefault(key, value)
            else:
                log.warning("policy %s sets defaults.%s, which group_metrics does not take; ignored", policy.name, key)
    for n in names:  # bad parameters fail before any work
        get_check(n)(**params[n])
    device = resolve_device(cfg.device)
    _seed_everything(cfg.seed)

    def report(stage: str, done: int, total: int) -> None:
        if cancel is not None and cancel():
            raise AuditCancelled(f"audit cancelled during {stage}")
        if progress is not None:
            progress(stage, done, total)

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    model = load_model(cfg.model, arch=cfg.arch, weights=cfg.weights, num_classes=cfg.num_classes,
                       trust_pickle=cfg.trust_pickle, device=device, declared=declared_from(cfg))
    seconds["load_model"] = time.perf_counter() - t
    t = time.perf_counter()
    probe = open_probe(cfg.probe, target=cfg.target, sensitive=cfg.sensitive, age_buckets=cfg.age_buckets,
                       class_names=model.class_names)
    seconds["load_probe"] = time.perf_counter() - t
    input_size = tuple(model.input_size) if model.input_size else probe_image_size(probe)

    first = next((b for b in make_loader(probe, input_size, batch_size=min(4, len(probe))) if len(b.indices)), None)
    if first is None:
        raise ProbeError(f"no image of probe {probe.source} can be read; check the image files")
    width = check_model_output(model, first.images.to(device))
    t = time.perf_counter()
    cost_plan = plan_for_audit({n: get_check(n)(**params[n]) for n in names}, model=model, images=first.images,
                               n_rows=len(probe), n_classes=width, input_size=input_size, budget=cfg.budget,
                               batch_size=cfg.batch_size, device=device, max_minutes=cfg.max_minutes)
    seconds["plan"] = time.perf_counter() - t
    classes = resolve_classes(model, probe, width)
    positive = _positive_index(model, classes, width)
    t = time.perf_counter()
    assumptions = verify_preprocessing(model, probe, input_size, width, device, seed=cfg.seed, batch_size=cfg.batch_size)
    seconds["preflight"] = time.perf_counter() - t

    t = time.perf_counter()
    predictions, skipped, resized = _predict(model, probe, input_size, device, cfg, report)
    seconds["predict"] = time.perf_counter() - t
    assumptions = {"classes": verify_classes(model, probe, predictions.y_true, predictions.y_pred, classes, width),
                   **assumptions}
    if on_plan is not None:  # once nothing about the inputs can stop the audit any more: the checks come next
        on_plan(cost_plan)

    ctx = CheckContext(model=model, probe=probe, predictions=predictions, classes=classes, positive_class=positive,
                       input_size=input_size, device=device, seed=cfg.seed, budget=cfg.budget,
                       attributes=list(probe.attributes), batch_size=cfg.batch_size, progress=progress, cancel=cancel)
    checks: dict[str, Any] = {}
    forward = len(predictions) + len(first.indices)
    backward = 0
    actual: dict[str, dict[str, Any]] = {}
    for n in names:
        planned = cost_plan.checks[n]
        with PassCounter(model.module, n, planned.forward + planned.backward, progress) as counted:
            result = _run_check(n, params[n], dataclasses.replace(ctx, budget=planned.budget or cfg.budget))
        actual[n] = {"forward": counted.forward, "backward": counted.backward, "seconds": round(result.seconds, 4)}
        checks[n] = result.to_dict()
        seconds[n] = result.seconds
        forward += result.forward_passes
        backward += result.backward_passes

    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "auditor_version": auditor_version(),
        "created": utc_now(),
        "command": cfg.command,
        "seed": cfg.seed,
        "budget": cfg.budget,
        "device": str(device),
        "model": {"source": model.source, "name": model.details.get("name") or Path(model.source).stem, "form": model.form,
                  "sha256": model.sha256, "classes": classes, "positive_class": classes[positive] if width == 2 else None,
                  "input_size": list(input_size), "assumptions": assumptions, "details": model.details},
        "probe": {"source": cfg.probe, "format": probe.format, "sha256": probe.sha256(), "n": len(probe),
                  "n_skipped": len(skipped), "skipped": skipped, "resized": resized,
                  "n_unparsed": int(probe.meta.get("n_unparsed", 0)), "unparsed": list(probe.meta.get("unparsed", []))[:50], "target": probe.target, "classes": probe.classes,
                  "attributes": probe.group_counts()},
        "checks": checks,
        "policy": None,
        "cost": {"forward_passes": forward, "backward_passes": backward,
                 "seconds": {k: round(v, 4) for k, v in seconds.items()},
                 "throughput": cost_plan.throughput.to_dict(), "planned": cost_plan.to_dict(),
                 "planned_seconds": round(cost_plan.seconds, 2), "max_minutes": cfg.max_minutes, "shrunk": cost_plan.shrunk,
                 "actual": {"predict": {"forward": len(predictions), "backward": 0, "seconds": round(seconds["predict"], 4)},
                            **actual}},
        "environment": {**environment(), "threads": threads},
    }
    results["policy"] = evaluate_policy(policy, results, baseline)
    results["policy"]["allow_inconclusive"] = cfg.allow_inconclusive
    results["cost"]["seconds_total"] = round(time.perf_counter() - t0, 4)
    verdict = results["policy"]["verdict"]
    code = EXIT_PASS if verdict == "pass" or (verdict == "inconclusive" and cfg.allow_inconclusive) else EXIT_FAIL
    paths = write_outputs(results, stage, cfg.formats) if stage is not None else {}
    return AuditOutcome(results=results, paths=paths, verdict=verdict, exit_code=code)


def _params(params: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Check parameters as ``{"group_metrics": {"n_boot": 200}}`` or ``{"group_metrics.n_boot": 200}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in (params or {}).items():
        if isinstance(value, dict):
            out.setdefault(str(key), {}).update(value)
        elif "." in str(key):
            check, name = str(key).split(".", 1)
            out.setdefault(check, {})[name] = value
        else:
            raise UsageError(f"The 'params' parameter takes {{'CHECK.PARAM': value}} or {{'CHECK': {{'PARAM': value}}}}. "
                             f"Got key {key!r} instead.")
    return out


def audit(
    model: str | Path | torch.nn.Module,
    probe: str | Path = "synth:faces",
    *,
    classes: str | Sequence[str] | None = None,
    positive_class: str | int | None = None,
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
    input_size: int | str | Sequence[int] | None = None,
    checks: str | Sequence[str] | None = None,
    policy: str | Path | None = None,
    out: str | Path | None = None,
    formats: str | Sequence[str] = ("json", "html"),
    force: bool = False,
    params: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
    on_plan: Callable[[CostPlan], None] | None = None,
    **options: Any,
) -> AuditResult:
    """Audit ``model`` on ``probe`` against ``policy`` and return an `AuditResult`; the CLI's `audit` calls this.

    ``model``: a file path, ``torchvision:NAME``, a model spec, or an in-memory ``nn.Module`` (audited as a
    copy, in eval mode; give ``classes`` in output order, and ``mean``/``std``/``input_size`` when it does
    not normalise its input itself — what is not given is assumed and verified, as on the command line).
    ``probe``: a folder, CSV or ``synth:faces[:n=N,...]``. Lists may be lists or comma strings. ``out``:
    write results.json and the reports in ``formats`` there (None: write nothing; call ``.report()``).
    Further ``options`` are `AuditConfig` fields (``budget``, ``device``, ``seed``, ``sensitive``, ``target``,
    ``baseline``, ``max_minutes``, ``threads``, ``batch_size`` ...). Raises `auditor.errors.AuditorError`
    subclasses with a one-line message on bad input.
    """
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(AuditConfig)} | ({"out_dir", "check_params"} & set(options)))
    if unknown:
        fields = sorted({f.name for f in dataclasses.fields(AuditConfig)} - {"out_dir", "check_params", "model", "probe"})
        close = difflib.get_close_matches(unknown[0], fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"audit() got an unknown option {unknown[0]!r}{hint}; options: {', '.join(fields)}")
    cfg = AuditConfig(model=model, probe=probe, classes=classes, positive_class=positive_class, mean=mean, std=std,
                      input_size=input_size, checks=checks, policy=policy, out_dir=out, formats=formats, force=force,
                      check_params=_params(params), **options)
    outcome = run_audit(cfg, progress=progress, cancel=cancel, on_plan=on_plan)
    return AuditResult(results=outcome.results, exit_code=outcome.exit_code, paths=outcome.paths)
