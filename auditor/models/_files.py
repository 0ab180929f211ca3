"""Reading model files: telling the forms apart by content, hashing, and loading without running pickles.

A full pickle can run arbitrary code when it is unpickled, so a ``torch.save`` file is first read with
``torch.load(weights_only=True)``, which refuses unknown globals without calling them; when that fails,
the file is inspected with `pickletools` (which only parses opcodes) to tell a full pickle from a
damaged file. Only with ``trust_pickle=True`` is ``torch.load(weights_only=False)`` ever called.
"""
from __future__ import annotations

import hashlib
import io
import logging
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from pathlib import Path
from typing import IO, Any

import torch

from auditor.errors import ModelLoadError

__all__ = [
    "ACCEPTED_FORMS",
    "sniff_form",
    "sha256_files",
    "read_torch_save",
    "read_safetensors",
    "read_safetensors_metadata",
    "load_torchscript",
    "load_export",
    "error_line",
]

log = logging.getLogger(__name__)

ACCEPTED_FORMS = (
    "accepted: a TorchScript file, a torch.export .pt2, a state_dict (.safetensors or .pt/.pth) with --arch, "
    "torchvision:NAME with --weights FILE, or a model spec .yaml"
)
_TORCH_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)  # how legacy torch.save files begin
_SAFE_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.", "_codecs.encode", "numpy.")


def _unreadable(path: Path, why: str) -> ModelLoadError:
    return ModelLoadError(f"model file {path} cannot be read: {why}; {ACCEPTED_FORMS}")


def error_line(e: BaseException) -> str:
    """One line for an exception: its type and first line (a TorchScript error's last line, which says why)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    line = lines[-1] if lines[0].startswith("The following operation failed in the TorchScript") else lines[0]
    return line[:200] if re.match(r"\w+(Error|Exception): ", line) else f"{type(e).__name__}: {line[:200]}"


def sniff_form(path: Path) -> str:
    """Which kind of file ``path`` is, by content: torchscript, export, safetensors or torch_save.

    Raises `ModelLoadError` for a missing file or one that is none of these.
    """
    if not path.exists():
        raise ModelLoadError(f"model file {path} does not exist; check the path ({ACCEPTED_FORMS})")
    if not path.is_file():
        raise ModelLoadError(f"model {path} is not a file; {ACCEPTED_FORMS}")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise _unreadable(path, f"a damaged zip archive ({error_line(e)})") from None
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("/archive_format") or n.endswith(".json") and "/models/" in n for n in names):
            return "export"
        if any(n.endswith("data.pkl") for n in names):
            return "torch_save"
        raise _unreadable(path, "a zip archive that is not a TorchScript, torch.export or torch.save file")
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9:
        (n,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 0 < n <= path.stat().st_size - 8:
            return "safetensors"
    if head[:1] == b"\x80":  # pickle PROTO opcode: legacy torch.save or a plain pickle
        return "torch_save"
    raise _unreadable(path, "not a TorchScript, torch.export, safetensors or torch.save file")


def sha256_files(paths: list[Path]) -> tuple[str, dict[str, str]]:
    """sha256 of the files' bytes concatenated in order (one file: its own sha256), and each file's."""
    total = hashlib.sha256()
    each: dict[str, str] = {}
    for p in paths:
        one = hashlib.sha256()
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                one.update(block)
                total.update(block)
        each[str(p)] = one.hexdigest()
    return total.hexdigest(), each


def _scan_pickles(f: IO[bytes], max_pickles: int) -> list[str]:
    """Globals referenced by up to ``max_pickles`` consecutive pickles in ``f`` (parsed, never executed)."""
    found: list[str] = []
    for i in range(max_pickles):
        if i > 0:
            pos = f.tell()
            if not f.read(1):
                break
            f.seek(pos)
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(f):
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    return found


def pickle_globals(path: Path) -> list[str] | None:
    """The globals a torch.save file or plain pickle references, or None if it does not parse as pickle."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = min((n for n in z.namelist() if n.endswith("data.pkl")), key=lambda n: n.count("/"))
                return _scan_pickles(io.BytesIO(z.read(name)), max_pickles=1)
        with path.open("rb") as f:
            return _scan_pickles(f, max_pickles=4)  # legacy torch.save: magic, protocol, sys info, object
    except Exception:  # noqa: BLE001 - any parse failure means "not a pickle"
        return None


def read_torch_save(path: Path, *, trust_pickle: bool) -> tuple[Any, bool]:
    """Load a ``torch.save`` file on the CPU, and whether it was a full pickle (refused unless ``trust_pickle``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True), False
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():
            raise _unreadable(path, error_line(e)) from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise _unreadable(path, error_line(e)) from None
    names = pickle_globals(path)
    if names is None:
        raise _unreadable(path, "a damaged or truncated pickle")
    if not trust_pickle:
        risky = [n for n in dict.fromkeys(names) if not n.startswith(_SAFE_GLOBAL_PREFIXES)][:3]
        refs = f" (it references {', '.join(risky)})" if risky else ""
        raise ModelLoadError(
            f"model file {path} is a full pickle{refs}, which can run arbitrary code when loaded; pass "
            "--trust-pickle only if you trust its source, or save a state_dict/TorchScript instead"
        )
    log.warning("loading full pickle %s with --trust-pickle: this runs the code it contains", path)
    try:
        with path.open("rb") as f:
            legacy = f.read(len(_TORCH_LEGACY_MAGIC)) == _TORCH_LEGACY_MAGIC
            if not legacy and not zipfile.is_zipfile(path):
                f.seek(0)
                return pickle.load(f), True  # noqa: S301 - a plain pickle.dump file, and the user passed --trust-pickle
        return torch.load(path, map_location="cpu", weights_only=False), True
    except Exception as e:  # noqa: BLE001 - unpickling can raise anything, including missing classes
        raise ModelLoadError(
            f"model file {path} could not be unpickled ({error_line(e)}); make the classes it needs importable "
            "(PYTHONPATH) or save a state_dict/TorchScript instead"
        ) from None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file, on the CPU."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise _unreadable(path, f"a damaged safetensors file ({error_line(e)})") from None


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file's header (``{}`` when it has none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise _unreadable(path, f"a damaged safetensors file ({error_line(e)})") from None


def load_torchscript(path: Path, device: torch.device) -> torch.nn.Module:
    """``torch.jit.load`` onto ``device``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location=device)
    except Exception as e:  # noqa: BLE001 - TorchScript raises RuntimeError and friends
        raise _unreadable(path, f"a damaged TorchScript archive ({error_line(e)})") from None


def load_export(path: Path, device: torch.device) -> tuple[torch.nn.Module, list[int | None] | None]:
    """``torch.export.load(path).module()`` on ``device``, and its first input's shape (None where dynamic)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(str(path))
            module = program.module().to(device)
    except Exception as e:  # noqa: BLE001
        raise _unreadable(path, f"a damaged torch.export program ({error_line(e)})") from None
    shape: list[int | None] | None = None
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor):
                shape = [d if isinstance(d, int) else None for d in val.shape]
            break
    if shape is not None:
        log.debug("export %s takes input shape %s", path, shape)
    return module, shape
