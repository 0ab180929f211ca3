"""results.json: the schema's top-level keys, the environment block, and JSON reading and writing."""
from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from auditor.atomic import atomic_write_text
from auditor.errors import BadInputError

__all__ = ["SCHEMA_VERSION", "auditor_version", "TOP_LEVEL_KEYS", "environment", "utc_now", "to_json", "write_results", "read_results"]

SCHEMA_VERSION = 1
TOP_LEVEL_KEYS = (
    "schema_version", "auditor_version", "created", "command", "seed", "budget", "device",
    "model", "probe", "checks", "policy", "cost", "environment",
)
_PACKAGES = ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "scipy", "jinja2", "pillow", "weasyprint")


def auditor_version() -> str:
    """This auditor's version, from the installed package's metadata (pyproject.toml is the one place it is set)."""
    try:
        return metadata.version("auditor")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


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

