"""results.json: the schema's top-level keys, its metric entries, the environment block, and JSON reading and writing."""
from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from importlib import metadata
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Mapping

from auditor.atomic import atomic_write_text
from auditor.errors import BadInputError

__all__ = ["SCHEMA_VERSION", "MetricEntry", "metric", "no_metric", "auditor_version", "TOP_LEVEL_KEYS", "environment", "utc_now", "to_json", "write_results", "read_results"]

SCHEMA_VERSION = 1
TOP_LEVEL_KEYS = (
    "schema_version", "auditor_version", "created", "command", "seed", "budget", "device",
    "model", "probe", "checks", "policy", "cost", "environment", "context",
)
_PACKAGES = ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "scipy", "captum", "adversarial-robustness-toolbox",
             "safetensors", "matplotlib", "jinja2", "pillow", "weasyprint", "click", "fairlearn")
"""The distributions whose versions results.json records (``environment``): those the numbers, the model loading,
the figures and the reports depend on, and fairlearn (the reference the tests compare group metrics with)."""


def auditor_version() -> str:
    """This auditor's version, from the installed package's metadata (pyproject.toml is the one place it is set)."""
    try:
        return metadata.version("auditor")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


_ENTRY_FIELDS = ("value", "ci", "reason", "p_value", "p_adjusted", "significant", "n")


def _finite(x: Any) -> float | int | None:
    """A finite number (not a bool), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return x if math.isfinite(x) else None


def metric(value: Any, ci: Any = None, **fields: Any) -> dict[str, Any]:
    """A metric entry as results.json holds it: ``{"value": v, "ci": [lo, hi] | None, **fields}``
    (``fields`` in the order given: reason, p_value, p_adjusted, significant, n, and a check's own keys)."""
    return {"value": value, "ci": None if ci is None else [ci[0], ci[1]], **fields}


def no_metric(reason: str, **fields: Any) -> dict[str, Any]:
    """The entry of a metric that could not be measured, and why: value and interval None."""
    return {"value": None, "ci": None, "reason": reason, **fields}


@dataclass(frozen=True)
class MetricEntry:
    """One metric entry read back from results.json, whatever wrote it: every field typed, odd input read
    as None (a value that is not a finite number, an interval that is not two finite numbers, lo <= hi)."""

    value: float | int | None
    ci: tuple[float, float] | None = None
    reason: str | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    significant: bool | None = None
    n: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, x: Any) -> "MetricEntry | None":
        """The entry in ``x``: a metric dict or a bare number; None when ``x`` holds no metric."""
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            return cls(_finite(x))
        if not isinstance(x, dict) or "value" not in x:
            return None
        value = _finite(x.get("value"))
        raw = x.get("ci")
        ci = None
        if value is not None and isinstance(raw, (list, tuple)) and len(raw) == 2:
            lo, hi = _finite(raw[0]), _finite(raw[1])
            if lo is not None and hi is not None:
                ci = (float(min(lo, hi)), float(max(lo, hi)))
        reason = x.get("reason")
        p, q, n = _finite(x.get("p_value")), _finite(x.get("p_adjusted")), x.get("n")
        sig = x.get("significant")
        return cls(value, ci, reason if isinstance(reason, str) and reason else None,
                   None if p is None else float(p), None if q is None else float(q),
                   sig if isinstance(sig, bool) else None,
                   n if isinstance(n, int) and not isinstance(n, bool) else None,
                   {k: v for k, v in x.items() if k not in _ENTRY_FIELDS})

    @property
    def measured(self) -> bool:
        """Whether the entry holds a number."""
        return self.value is not None


def environment() -> dict[str, str]:
    """Versions of Python, the platform and the packages the numbers depend on."""
    env = {"python": platform.python_version(), "platform": f"{platform.system()}-{platform.machine()}"}
    for name in _PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "not installed"
    return env


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(obj: Any) -> Any:
    """Make ``obj`` strict JSON: non-finite floats become None, tuples lists, numpy scalars Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def to_json(results: dict[str, Any]) -> str:
    """Deterministic strict-JSON text of a results dict."""
    return json.dumps(_clean(results), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write_results(results: dict[str, Any], out_dir: Path) -> Path:
    """Atomically write ``out_dir/results.json``."""
    return atomic_write_text(Path(out_dir) / "results.json", to_json(results))


def read_results(path: str | Path) -> dict[str, Any]:
    """Read a results.json written by this or an earlier schema-compatible version."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{p} does not exist; pass the results.json an audit wrote") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{p} is not valid JSON ({exc}); re-run the audit to write it again") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        found = data.get("schema_version") if isinstance(data, dict) else None
        raise BadInputError(f"{p} has schema_version {found!r}; this auditor reads schema_version {SCHEMA_VERSION}")
    return data

