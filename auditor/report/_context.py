"""The audit's context: what the model is for, who owns it and who signs the audit off, read from a YAML file
(``auditor audit --context FILE``) and recorded in results.json under ``context``; page 1 shows it, with empty
signature lines when there is none.

    intended_use: Smile detection in the photo booth app; not for decisions about people.
    owner: Vision team (vision@example.com)
    sign_off:
      - {role: Model owner, name: A. Person}
      - {role: Compliance reviewer}
    notes: anything else, as text

Keys other than these are kept when their value is text or a number, and shown under their own name.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from auditor.report._format import as_dict, as_list, short
from auditor.validation import ParameterError

__all__ = ["DEFAULT_SIGN_OFF", "check_context", "context_view", "load_context"]

DEFAULT_SIGN_OFF = ("Model owner", "Reviewer", "Approver")
"""The signature lines page 1 prints when the context names none."""

_EXAMPLE = "intended_use: TEXT, owner: TEXT, sign_off: [{role: TEXT, name: TEXT}]"
_TEXT_KEYS = ("intended_use", "owner")
_SIGN_KEYS = ("role", "name", "date")


def _bad(where: str, what: str) -> ParameterError:
    return ParameterError(f"{where}: {what}; write a YAML mapping like {{{_EXAMPLE}}}")


def _text(x: Any) -> bool:
    """Text, a number, or a date (YAML reads 2026-01-05 as one): kept as its text."""
    return isinstance(x, (str, datetime.date)) or (isinstance(x, (int, float)) and not isinstance(x, bool))


def load_context(path: str | Path) -> dict[str, Any]:
    """The context in YAML file ``path``, checked: a mapping with text ``intended_use`` and ``owner``, a list
    ``sign_off`` of ``{role, name, date}`` mappings, other keys text. A missing, unreadable or malformed file
    raises `auditor.validation.ParameterError` (exit 2) naming the file and what to write."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError(f"--context {path}: no such file; give a YAML file with {_EXAMPLE}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"--context {path}: cannot be read ({exc.__class__.__name__}); give a readable "
                             f"UTF-8 YAML file with {_EXAMPLE}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _bad(f"--context {path}", f"is not valid YAML{where}") from None
    return check_context(data, where=f"--context {path}")


def check_context(data: Any, *, where: str = "context") -> dict[str, Any]:
    """``data`` (a parsed context) checked and normalised: text values as str, ``sign_off`` as a list of
    ``{role, name, date}``; ``where`` names it in the `ParameterError` a bad one raises."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _bad(where, f"holds a {type(data).__name__}, not a mapping")
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key == "sign_off":
            out[key] = _sign_off(where, value)
        elif value is None:
            continue
        elif not _text(value):
            raise _bad(where, f"{key} must be text, not a {type(value).__name__}")
        else:
            out[key] = value.isoformat() if isinstance(value, datetime.date) else str(value)
    return out


def _sign_off(where: str, value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(where, f"sign_off must be a list of {{role, name}} entries, not a {type(value).__name__}")
    rows = []
    for i, entry in enumerate(value, 1):
        if not isinstance(entry, dict) or not _text(entry.get("role")):
            raise _bad(where, f"sign_off entry {i} must be a mapping with a role (and a name)")
        extra = sorted(set(map(str, entry)) - set(_SIGN_KEYS))
        if extra:
            raise _bad(where, f"sign_off entry {i} has unknown key {extra[0]} (keys: {', '.join(_SIGN_KEYS)})")
        for k in ("name", "date"):
            if entry.get(k) is not None and not _text(entry.get(k)):
                raise _bad(where, f"sign_off entry {i}: {k} must be text")
        rows.append({k: entry[k].isoformat() if isinstance(entry[k], datetime.date) else str(entry[k])
                     for k in _SIGN_KEYS if entry.get(k) is not None})
    return rows


def context_view(results: dict[str, Any]) -> dict[str, Any]:
    """Page 1's context block from results.json's ``context`` (any shape): intended use, owner, other facts, and
    the sign-off lines (the context's, else `DEFAULT_SIGN_OFF` with empty names)."""
    ctx = as_dict(as_dict(results).get("context"))
    facts = [(short(k.replace("_", " ").capitalize(), 60), short(v, 600)) for k, v in ctx.items()
             if k not in (*_TEXT_KEYS, "sign_off") and _text(v)]
    signs = [{k: short(as_dict(s).get(k), 120) if _text(as_dict(s).get(k)) else "" for k in _SIGN_KEYS}
             for s in as_list(ctx.get("sign_off"))[:12] if isinstance(s, dict)]
    return {
        "given": bool(ctx),
        "intended_use": short(ctx["intended_use"], 600) if _text(ctx.get("intended_use")) else None,
        "owner": short(ctx["owner"], 200) if _text(ctx.get("owner")) else None,
        "facts": facts[:12],
        "sign_off": signs or [{"role": r, "name": "", "date": ""} for r in DEFAULT_SIGN_OFF],
    }
