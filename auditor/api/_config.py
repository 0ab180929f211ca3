"""`AuditConfig`: everything one audit needs, normalised and validated when it is built.

Its fields are checked with `auditor.validation` (declared constraints, one message, `ParameterError`);
the facts a model declares (classes, positive class, mean/std, input size) are normalised here and checked
by `auditor.models.Declared` when the model is loaded, naming the flag. `ModelOptions` holds the model
flags `auditor audit` and `auditor mitigate` share (``--arch`` ... ``--target``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch

from auditor.checks.base import BUDGETS
from auditor.models import Declared, LoadedModel, load_model
from auditor.validation import Constraint, Instance, Interval, Options, check, invalid
from probes.base import DEFAULT_AGE_BUCKETS

__all__ = ["AuditConfig", "AuditOutcome", "BUDGETS", "FORMATS", "ModelOptions", "declared_from", "split_list"]

FORMATS = ("json", "html", "pdf", "md", "junit")

_TEXT = Instance(str)
_PATH = Instance((str, Path), "a str or a Path")
_FLAG = Instance(bool)


def split_list(value: str | Sequence[Any] | None, name: str, *, caller: str = "audit") -> list[str] | None:
    """A list option given as a list/tuple or a comma string (``"gender,race"``); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    raise invalid(name, caller, "a list or a comma-separated string", value)


def _floats(value: str | Sequence[Any] | None, name: str, caller: str) -> tuple[float, ...] | None:
    """Numbers given as a sequence or a comma string (``"0.485,0.456,0.406"``); None stays None."""
    if value is None:
        return None
    items = split_list(value, name, caller=caller) if isinstance(value, str) else value
    try:
        return tuple(float(v) for v in items or ())
    except (TypeError, ValueError):
        raise invalid(name, caller, "numbers, e.g. 0.485,0.456,0.406", value) from None


def _checked(obj: Any, spec: Mapping[str, Sequence[Constraint | None]], caller: str) -> None:
    """Check each field named in ``spec`` against its constraints, and store its canonical form."""
    for name, constraints in spec.items():
        setattr(obj, name, check(getattr(obj, name), *constraints, param=name, caller=caller))


@dataclass(kw_only=True)
class ModelOptions:
    """The model flags an audit and a mitigation share (``--arch``, ``--weights``, ``--num-classes``,
    ``--classes``, ``--positive-class``, ``--mean``, ``--std``, ``--input-size``, ``--trust-pickle``,
    ``--target``). Lists may be comma strings; `declared_from` gives the declared facts, checked."""

    CALLER: ClassVar[str] = "the model options"  # who the error messages name

    arch: str | None = None
    weights: str | Path | None = None
    num_classes: int | None = None
    classes: Sequence[str] | None = None
    positive_class: str | int | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    input_size: int | Sequence[int] | None = None
    trust_pickle: bool = False
    target: str | None = None

    def __post_init__(self) -> None:
        caller = self.CALLER
        _checked(self, {"arch": (_TEXT, None), "weights": (_PATH, None), "num_classes": (Interval(int, 1), None),
                        "trust_pickle": (_FLAG,), "target": (_TEXT, None)}, caller)
        if self.weights is not None:
            self.weights = str(self.weights)
        self.classes = split_list(self.classes, "classes", caller=caller)
        self.mean = _floats(self.mean, "mean", caller)
        self.std = _floats(self.std, "std", caller)
        if isinstance(self.input_size, str):
            sizes = _floats(self.input_size, "input_size", caller) or ()
            self.input_size = int(sizes[0]) if len(sizes) == 1 else tuple(int(v) for v in sizes)

    def load_model(self, model: str | torch.nn.Module, device: torch.device) -> LoadedModel:
        """`auditor.models.load_model` of ``model`` with these flags (the declared facts checked first)."""
        return load_model(model, arch=self.arch, weights=self.weights, num_classes=self.num_classes,  # type: ignore[arg-type]
                          trust_pickle=self.trust_pickle, device=device, declared=declared_from(self))


def declared_from(cfg: Any) -> Declared:
    """The model facts a config (audit or mitigation) declares as flags, checked (`Declared.validated`)."""
    return Declared(classes=tuple(cfg.classes) if cfg.classes is not None else None, positive_class=cfg.positive_class,
                    mean=tuple(cfg.mean) if cfg.mean is not None else None,
                    std=tuple(cfg.std) if cfg.std is not None else None,
                    input_size=cfg.input_size if isinstance(cfg.input_size, int) or cfg.input_size is None
                    else tuple(cfg.input_size)).validated()


@dataclass
class AuditConfig(ModelOptions):
    """Everything one audit needs; mirrors `auditor audit`'s options. Paths may be `str` or `Path`, lists
    may be comma strings, ``model`` may be an in-memory ``nn.Module``. A bad value raises
    `auditor.validation.ParameterError` (a `UsageError`: exit 2) when the config is built."""

    CALLER: ClassVar[str] = "audit"

    model: str | Path | torch.nn.Module
    probe: str | Path = "synth:faces"
    sensitive: Sequence[str] | None = None
    age_buckets: str = DEFAULT_AGE_BUCKETS
    policy: str | Path | None = None
    baseline: str | Path | None = None
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
    context: str | Path | Mapping[str, Any] | None = None
    """What the model is for, its owner and the sign-off lines (``--context FILE``): a YAML file's path or its
    mapping, checked by `auditor.report.load_context`; recorded in results.json under ``context``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        caller = self.CALLER
        _checked(self, {
            "model": (Instance((str, Path, torch.nn.Module), "a path, a model name or an nn.Module"),),
            "probe": (_PATH,), "age_buckets": (_TEXT,), "policy": (_PATH, None), "baseline": (_PATH, None),
            "check_params": (Instance(dict, "a dict of {'CHECK': {'PARAM': value}}"),),
            "budget": (Options(*BUDGETS),), "device": (_TEXT,), "seed": (Interval(int),), "out_dir": (_PATH, None),
            "strict": (_FLAG,), "allow_inconclusive": (_FLAG,), "force": (_FLAG,),
            "batch_size": (Interval(int, 1),), "num_workers": (Interval(int, 0),), "command": (_TEXT,),
            "max_minutes": (Interval(float, 0, None, closed="neither"), None), "threads": (Interval(int, 1), None),
        }, caller)
        if not isinstance(self.model, torch.nn.Module):
            self.model = str(self.model)
        self.probe = str(self.probe)
        for name in ("policy", "baseline"):
            if getattr(self, name) is not None:
                setattr(self, name, str(getattr(self, name)))
        self.sensitive = split_list(self.sensitive, "sensitive", caller=caller)
        self.checks = split_list(self.checks, "checks", caller=caller)
        self.formats = [check(f, Options(*FORMATS), param="formats", caller=caller)
                        for f in split_list(self.formats, "formats", caller=caller) or []]
        self.context = _context(self.context, caller)


def _context(value: Any, caller: str) -> dict[str, Any] | None:
    """``--context``: a YAML file read and checked, or a mapping checked the same way; None stays None."""
    from auditor.report import check_context, load_context

    if value is None:
        return None
    if isinstance(value, (str, Path)):
        return load_context(value)
    if isinstance(value, Mapping):
        return check_context(dict(value))
    raise invalid("context", caller, "a YAML file's path or a mapping {intended_use, owner, sign_off}", value)


@dataclass
class AuditOutcome:
    """What `run_audit` gives back: results.json's document, the paths written, the verdict and the exit code."""

    results: dict[str, Any]
    paths: dict[str, Path]
    verdict: str
    exit_code: int
