"""The canonical probe format: a folder with ``manifest.csv``.

Columns: ``path`` (relative to the folder), ``label`` (class index or name), the annotations
``gender``, ``age`` (years or a range like ``20-29``), ``race``, any further annotation column, and
optionally ``subject_box`` (``"x0,y0,x1,y1"`` in image pixels) or ``subject_mask`` (a PNG path
relative to the folder). Values are read as text exactly as written; empty cells are missing.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

from auditor.errors import ProbeError

__all__ = ["FORMAT", "DEFAULT_TARGET", "MANIFEST_NAME", "is_manifest", "read_manifest", "read_text_csv"]

log = logging.getLogger(__name__)

FORMAT = "manifest"
DEFAULT_TARGET = "label"
MANIFEST_NAME = "manifest.csv"
_KNOWN = ("path", "label", "gender", "age", "race", "subject_box", "subject_mask")
_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
_BOX = re.compile(",".join([_NUMBER] * 4))


def is_manifest(path: Path) -> bool:
    """True for a folder holding ``manifest.csv`` or for that file itself."""
    if path.is_dir():
        return (path / MANIFEST_NAME).is_file()
    return path.name == MANIFEST_NAME and path.is_file()


def read_text_csv(csv: Path) -> pd.DataFrame:
    """Read a CSV keeping every value as written (text); empty cells become ``None``."""
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise ProbeError(f"{csv} cannot be read as a CSV ({exc.__class__.__name__}: {exc}); fix or re-export it") from None
    df.columns = [str(c).strip() for c in df.columns]
    out = pd.DataFrame(index=range(len(df)))
    for col in df.columns:
        values = [v.strip() for v in df[col].astype(object).tolist()]
        out[col] = pd.Series([v if v else None for v in values], dtype=object)
    return out


def read_manifest(path: Path) -> tuple[Path, pd.DataFrame, dict[str, Any]]:
    """Read ``manifest.csv`` (from its folder or the file); return ``(root, table, meta)``."""
    csv = path / MANIFEST_NAME if path.is_dir() else path
    root = csv.parent
    df = read_text_csv(csv)
    df = df.rename(columns={c: c.lower() for c in df.columns if c.lower() in _KNOWN})
    if "path" not in df.columns:
        raise ProbeError(f"{csv} has no 'path' column; add one with each image's path relative to {root}")
    if len(df) == 0:
        raise ProbeError(f"{csv} lists no images; add one row per image")
    if "subject_box" in df.columns:
        df["subject_box"] = pd.Series([_parse_box(v, csv, i) for i, v in enumerate(df["subject_box"])], dtype=object)
    log.debug("read %d rows from %s", len(df), csv)
    return root, df, {"listing": str(csv), "n_unparsed": 0, "unparsed": []}


def _parse_box(value: str | None, csv: Path, row: int) -> tuple[float, float, float, float] | None:
    """Parse ``"x0,y0,x1,y1"``; ``row`` is the 0-based data row (reported as a file line number)."""
    if value is None:
        return None
    m = _BOX.fullmatch(value)
    if m:
        x0, y0, x1, y1 = (float(g) for g in m.groups())
        if 0 <= x0 < x1 and 0 <= y0 < y1:
            return (x0, y0, x1, y1)
    raise ProbeError(
        f"{csv} line {row + 2}: subject_box {value!r} is not 'x0,y0,x1,y1' with 0 <= x0 < x1 and 0 <= y0 < y1; "
        "fix it or leave the cell empty"
    )
