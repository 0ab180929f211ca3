"""`auditor mitigate`: train a mitigated copy of a model, write it back, audit both with the same probe,
seed and policy, and compare them (the one orchestrator the CLI and a later service call).

Output folder: ``model/`` (the mitigated model: ``model.safetensors`` and ``model.yaml``), ``checkpoints/``
(``--resume`` continues from them), ``before/`` and ``after/`` (each audit's results and report), and
``compare.{json,html,md,pdf}``. Nothing there is overwritten without ``force``. Training images that are also
audit images are a warning and ``compare.json``'s ``overlap`` (`auditor.mitigate.overlap`).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from auditor.api import BUDGETS, FORMATS, ModelOptions, split_list
from auditor.errors import UsageError
from auditor.mitigate._checks import POSITIVE
from auditor.mitigate.overlap import image_overlap, overlap_warning
from auditor.models import use_threads
from auditor.validation import Instance, Interval, Options, check
from auditor.validation import check_params as check_declared  # check_params is also a field here

__all__ = ["METHODS", "MitigateConfig", "MitigateOutcome", "run_mitigation"]

log = logging.getLogger(__name__)

METHODS = ("adversarial-debiasing", "adversarial-training", "distillation")
SCHEDULES = ("constant", "linear", "dann")

_TEXT = Instance(str)
_PATH = Instance((str, Path), "a str or a Path")
_FLAG = Instance(bool)
_SHARE = Interval(float, 0, 1, closed="neither")
_PARAMS = {  # the fields MitigateConfig adds to ModelOptions' model flags, declared
    "method": (Options(*METHODS),), "model": (_PATH,), "train": (_PATH,), "bias": (_TEXT,), "val_share": (_SHARE,),
    "epochs": (Interval(int, 1),), "batch_size": (Interval(int, 1),), "lr": (POSITIVE,),
    "patience": (Interval(int, 1), None), "keep": (Options("best", "last"), None), "seed": (Interval(int, 0),),
    "device": (_TEXT,), "strength": (Interval(float, 0, None),), "debias_mode": (Options("reversal", "confusion"),),
    "schedule": (Options(*SCHEDULES),), "layer": (_TEXT, None), "steps": (Interval(int, 1),),
    "norm": (Options("linf", "l2"),), "trades_beta": (POSITIVE, None), "temperature": (POSITIVE,),
    "alpha": (Interval(float, 0, 1),), "probe": (_PATH,),
    "check_params": (Instance(dict, "a dict of {'CHECK': {'PARAM': value}}"),), "budget": (Options(*BUDGETS),),
    "policy": (_PATH, None), "out_dir": (_PATH,), "force": (_FLAG,), "resume": (_FLAG,), "command": (_TEXT,),
    "threads": (Interval(int, 1), None),
}


@dataclass
class MitigateConfig(ModelOptions):
    """Everything one mitigation needs; mirrors `auditor mitigate`'s options. The model flags (``arch`` ...
    ``target``) are `ModelOptions`'; lists may be comma strings. A bad value raises
    `auditor.validation.ParameterError` (a `UsageError`: exit 2) when the config is built."""

    CALLER: ClassVar[str] = "mitigate"

    method: str
    model: str
    train: str = "synth:faces:n=2000,seed=1"
    bias: str = "race"
    val_share: float = 0.2
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    patience: int | None = 3
    keep: str | None = None  # best | last; None: last for adversarial-debiasing, best otherwise
    seed: int = 0
    device: str = "auto"
    strength: float = 1.0
    debias_mode: str = "reversal"
    schedule: str = "dann"
    layer: str | None = None
    eps: float = 8 / 255
    steps: int = 7
    norm: str = "linf"
    trades_beta: float | None = None
    temperature: float = 20.0
    alpha: float = 0.0
    probe: str = "synth:faces"
    checks: Sequence[str] | None = None
    check_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: str = "standard"
    policy: str | None = None
    formats: Sequence[str] = ("json", "html", "md")
    out_dir: str | Path = "mitigated"
    force: bool = False
    resume: bool = False
    command: str = ""
    threads: int | None = None
    """CPU threads for torch, training and both audits (None: torch's default)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        caller = self.CALLER
        for name, value in check_declared({name: getattr(self, name) for name in _PARAMS}, _PARAMS, caller).items():
            setattr(self, name, value)
        budget = Interval(float, 0, 1, closed="right") if self.norm == "linf" else POSITIVE  # linf: pixel units of [0, 1]
        self.eps = check(self.eps, budget, param="eps", caller=caller)
        for name in ("model", "train", "probe", "policy"):
            if getattr(self, name) is not None:
                setattr(self, name, str(getattr(self, name)))
        self.checks = split_list(self.checks, "checks", caller=caller)
        self.formats = [check(f, Options(*FORMATS), param="formats", caller=caller)
                        for f in split_list(self.formats, "formats", caller=caller) or []]


@dataclass
class MitigateOutcome:
    spec: Path
    comparison: dict[str, Any]
    paths: dict[str, Path]
    history: list[dict[str, float]]
    exit_code: int


def _settings(cfg: MitigateConfig) -> dict[str, Any]:
    """The options that shaped the mitigated model, for its spec and the comparison."""
    common = {k: getattr(cfg, k) for k in ("train", "target", "val_share", "epochs", "batch_size", "lr", "seed")}
    common["keep"] = _keep(cfg)
    common["patience"] = cfg.patience if common["keep"] == "best" else None
    per = {"adversarial-debiasing": ("bias", "strength", "debias_mode", "schedule", "layer"),
           "adversarial-training": ("eps", "steps", "norm", "trades_beta"),
           "distillation": ("temperature", "alpha")}[cfg.method]
    return {**common, **{k: getattr(cfg, k) for k in per}}


def _keep(cfg: MitigateConfig) -> str:
    """Which epoch's weights the mitigated model gets: debiasing keeps the last (its validation split carries the
    bias it removes, so the best validation accuracy would pick the most biased epoch); the others the best."""
    return cfg.keep or ("last" if cfg.method == "adversarial-debiasing" else "best")


def _objective(cfg: MitigateConfig, module: Any, train: Any, val: Any, device: Any, fit_kw: dict[str, Any],
               checkpoints: Path) -> Any:
    """The training objective of ``cfg.method`` (distillation first trains its teacher at the temperature)."""
    if cfg.method == "adversarial-debiasing":
        from auditor.mitigate.debiasing import AdversarialDebiasing

        if train.bias is None:
            raise UsageError(f"adversarial debiasing needs the bias attribute {cfg.bias!r} in the training data; "
                             "name one the training probe has with --bias")
        import torch

        counts = torch.bincount(train.bias, minlength=len(train.bias_names))
        if int((counts > 0).sum()) < 2:
            raise UsageError(f"the training data hold one {cfg.bias} group only ({', '.join(train.bias_names)}); "
                             "adversarial debiasing needs at least two: pass training data with more groups or another --bias")
        return AdversarialDebiasing(module, len(train.bias_names), layer=cfg.layer, strength=cfg.strength,
                                    schedule=cfg.schedule, example_batch=train.images[:2].to(device),
                                    bias_counts=counts, mode=cfg.debias_mode, seed=cfg.seed)
    if cfg.method == "adversarial-training":
        from auditor.mitigate.adversarial_training import AdversarialTraining

        return AdversarialTraining(eps=cfg.eps, norm=cfg.norm, steps=cfg.steps, trades_beta=cfg.trades_beta)
    from auditor.mitigate.distillation import Distillation, train_teacher_at_temperature
    from auditor.mitigate.loop import fit

    teacher = copy.deepcopy(module)
    fit(teacher, train_teacher_at_temperature(teacher, cfg.temperature), train, val, checkpoint_dir=checkpoints / "teacher",
        **fit_kw)
    return Distillation(teacher, temperature=cfg.temperature, alpha=cfg.alpha)


def _model_and_data(cfg: MitigateConfig, device: Any) -> tuple[Any, Any]:
    """The model to train and its training data, with the class order, preprocessing and input size verified
    as the audit verifies them: the training labels are coded in the model's declared class order, and a model
    whose undeclared order or preprocessing the training data contradict is refused (exit 2) naming the flag.
    The model leaves with its classes set, so the written spec says what its outputs mean."""
    import numpy as np
    import torch

    from auditor.api import resolve_classes
    from auditor.mitigate.data import from_probe
    from auditor.mitigate.export import require_trainable
    from auditor.models import check_model_output
    from auditor.preflight import verify_classes, verify_preprocessing
    from probes import make_loader, open_probe
    from probes.loader import probe_image_size

    loaded = cfg.load_model(cfg.model, device)
    require_trainable(loaded)
    bias = cfg.bias if cfg.method == "adversarial-debiasing" else None
    probe = open_probe(cfg.train, target=cfg.target, sensitive=bias, class_names=loaded.class_names)
    if loaded.input_size is None:  # as the audit does: the probe's image size; the written spec records it
        loaded.input_size = probe_image_size(open_probe(cfg.probe, target=cfg.target))
        log.info("%s does not say its input size; training at the probe's %dx%d", cfg.model, *loaded.input_size)
    size = tuple(loaded.input_size)
    first = next((b for b in make_loader(probe, size, batch_size=min(4, len(probe))) if len(b)), None)
    if first is None:
        raise UsageError(f"no image of the training probe {cfg.train} can be read; check its image files")
    width = check_model_output(loaded, first.images.to(device))
    classes = resolve_classes(loaded, probe, width)
    verify_preprocessing(loaded, probe, size, width, device, seed=cfg.seed, batch_size=cfg.batch_size)
    data = from_probe(probe, size, bias=bias)
    with torch.no_grad():
        pred = np.concatenate([loaded.module(data.images[i:i + cfg.batch_size].to(device)).argmax(dim=1).cpu().numpy()
                               for i in range(0, len(data), cfg.batch_size)])
    verify_classes(loaded, probe, data.labels.numpy(), pred, classes, width)
    loaded.class_names = classes
    if isinstance(loaded.positive_class, str):
        if loaded.positive_class not in classes:
            raise UsageError(f"the positive class {loaded.positive_class!r} is not among the classes {','.join(classes)}; "
                             "fix --positive-class")
        loaded.positive_class = classes.index(loaded.positive_class)
    return loaded, data


def _overlap(cfg: MitigateConfig) -> dict[str, Any]:
    """How many audit images the training data hold too (`auditor.mitigate.overlap`), logged as a warning when any."""
    from probes import open_probe

    overlap = image_overlap(open_probe(cfg.train, target=cfg.target), open_probe(cfg.probe, target=cfg.target))
    warning = overlap_warning(overlap)
    if warning:
        log.warning("%s", warning)
    return overlap


def run_mitigation(cfg: MitigateConfig, progress: Callable[[str, int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> MitigateOutcome:
    """Train, write, audit before and after, compare; the exit code is the mitigated model's audit's."""
    from auditor.api import AuditConfig, run_audit
    from auditor.compare import compare_results, write_comparison
    from auditor.mitigate.export import save_mitigated
    from auditor.mitigate.loop import fit
    from auditor.models import resolve_device

    use_threads(cfg.threads)  # before any work
    out = Path(cfg.out_dir)
    if (out / "model" / "model.yaml").exists() and not (cfg.force or cfg.resume):
        raise UsageError(f"{out / 'model' / 'model.yaml'} exists; pass --force to overwrite it, --resume to continue, "
                         "or choose another --out")
    device = resolve_device(cfg.device)
    loaded, data = _model_and_data(cfg, device)
    overlap = _overlap(cfg)
    train, val = data.split(cfg.val_share, cfg.seed)
    checkpoints = out / "checkpoints"
    fit_kw: dict[str, Any] = dict(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, device=device,
                                  patience=cfg.patience if _keep(cfg) == "best" else None, keep=_keep(cfg),
                                  progress=progress, cancel=cancel, resume=cfg.resume)
    objective = _objective(cfg, loaded.module, train, val, device, fit_kw, checkpoints)
    result = fit(loaded.module, objective, train, val, checkpoint_dir=checkpoints / "model", **fit_kw)
    if hasattr(objective, "close"):
        objective.close()
    settings = _settings(cfg)
    if cfg.method == "adversarial-debiasing" and cfg.layer is None:  # name the layer the default picked
        settings["layer"] = f"input of {objective.layer_name}"
    name = f"{loaded.details.get('name') or Path(cfg.model).stem}-{cfg.method}"
    spec = save_mitigated(loaded, out / "model", name=name, force=cfg.force or cfg.resume,
                          description=f"{cfg.method} of {cfg.model} ({', '.join(f'{k}={v}' for k, v in settings.items())})")
    audits = {}
    flags = {k: getattr(cfg, k) for k in ("classes", "positive_class", "mean", "std", "input_size")}
    for side, model in (("before", cfg.model), ("after", str(spec))):
        audit = AuditConfig(model=model, probe=cfg.probe, arch=cfg.arch if side == "before" else None,
                            **(flags if side == "before" else {}),
                            weights=cfg.weights if side == "before" else None,
                            num_classes=cfg.num_classes if side == "before" else None, trust_pickle=cfg.trust_pickle,
                            target=cfg.target, policy=cfg.policy, checks=cfg.checks, check_params=cfg.check_params,
                            budget=cfg.budget, device=str(device), seed=cfg.seed, out_dir=out / side, formats=cfg.formats,
                            force=cfg.force or cfg.resume,
                            command=f"{cfg.command} [{side}]", threads=cfg.threads)
        audits[side] = run_audit(audit, progress=progress, cancel=cancel)
    comparison = compare_results(audits["before"].results, audits["after"].results, method=cfg.method,
                                 settings={**settings, "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                                           "stopped_early": result.stopped_early})
    comparison["overlap"] = overlap
    warning = overlap_warning(overlap)
    if warning:  # shown on the comparison's first screen, not only in the log
        comparison.setdefault("flags", []).append({"id": "train-audit-overlap", "title": "Training and audit images overlap",
                                                   "message": warning, "severity": "warning"})
    formats = tuple(f for f in cfg.formats if f in ("json", "html", "md", "pdf")) or ("json",)
    paths = write_comparison(comparison, out, formats=tuple(sorted(set(formats) | {"json"})))
    return MitigateOutcome(spec=spec, comparison=comparison, paths=dict(paths), history=result.history,
                           exit_code=audits["after"].exit_code)
