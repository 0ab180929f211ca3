"""FairFace: a label CSV ``file,age,gender,race[,service_test]`` (e.g. ``fairface_label_val.csv``).

Ages are ranges (``0-2``, ``3-9``, ..., ``60-69``, ``more than 70``); image paths are relative to
the CSV's folder. Gender and race are lower-cased (``Male`` -> ``male``, ``East Asian`` ->
``east asian``) so groups read the same across formats. The probe may be named by the CSV or by a
folder holding exactly one FairFace-style CSV.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from auditor.errors import ProbeError
from probes.manifest import read_text_csv

__all__ = ["FORMAT", "DEFAULT_TARGET", "REQUIRED", "is_fairface_csv", "find_fairface_csv", "read_fairface"]

log = logging.getLogger(__name__)

FORMAT = "fairface"
DEFAULT_TARGET = "gender"
REQUIRED = ("file", "age", "gender", "race")


def is_fairface_csv(path: Path) -> bool:
    """True for a ``.csv`` file whose header names ``file``, ``age``, ``gender`` and ``race``."""
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            header = f.readline()
    except OSError:
        return False
    names = {h.strip().strip('"').lower() for h in header.split(",")}
    return all(r in names for r in REQUIRED)


def find_fairface_csv(folder: Path) -> Path | None:
    """The one FairFace-style CSV directly in ``folder``; ``None`` if there is none.

    Several (FairFace ships ``fairface_label_train.csv`` and ``fairface_label_val.csv`` side by side)
    is ambiguous: the user must name one.
    """
    found = sorted(p for p in folder.glob("*.csv") if is_fairface_csv(p))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ProbeError(f"{folder} holds several FairFace CSVs ({names}); pass the one to audit, e.g. --probe {found[-1]}")
    return found[0] if found else None


def read_fairface(path: Path) -> tuple[Path, pd.DataFrame, dict[str, Any]]:
    """Read a FairFace CSV (or the folder holding one); return ``(root, table, meta)``."""
    csv = find_fairface_csv(path) if path.is_dir() else path
    if csv is None:
        raise ProbeError(f"{path} holds no CSV with the columns file,age,gender,race; pass the FairFace label CSV")
    df = read_text_csv(csv)
    df = df.rename(columns={c: c.lower() for c in df.columns})
    if len(df) == 0:
        raise ProbeError(f"{csv} lists no images; add one row per image")
    df = df.rename(columns={"file": "path"})
    for col in ("gender", "race"):
        df[col] = pd.Series([v.lower() if v is not None else None for v in df[col]], dtype=object)
    log.debug("read %d rows from %s", len(df), csv)
    return csv.parent, df, {"listing": str(csv), "n_unparsed": 0, "unparsed": []}
