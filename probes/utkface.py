"""UTKFace: a folder of images named ``{age}_{gender}_{race}_{stamp}.jpg`` (or ``.jpg.chip.jpg``).

Codes (Zhang, Song & Qi, CVPR 2017): gender 0 male, 1 female; race 0 white, 1 black, 2 asian,
3 indian, 4 others. Image files whose names do not parse (UTKFace ships a few) are skipped and
counted in ``meta["n_unparsed"]`` with their names in ``meta["unparsed"]``.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from auditor.errors import ProbeError

__all__ = ["FORMAT", "DEFAULT_TARGET", "GENDERS", "RACES", "LABEL_ORDERS", "is_utkface", "read_utkface", "parse_name"]

log = logging.getLogger(__name__)

FORMAT = "utkface"
DEFAULT_TARGET = "gender"
GENDERS = {"0": "male", "1": "female"}
RACES = {"0": "white", "1": "black", "2": "asian", "3": "indian", "4": "others"}
LABEL_ORDERS = {"gender": list(GENDERS.values()), "race": list(RACES.values())}
"""The codes' order of each coded column: as a label, gender 0 male = class 0 (a model trained on the codes)."""
_NAME = re.compile(r"(\d{1,3})_([01])_([0-4])_(\d+)\.jpg(?:\.chip\.jpg)?", re.IGNORECASE)
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def parse_name(name: str) -> dict[str, str] | None:
    """``"34_1_2_2017.jpg.chip.jpg"`` -> ``{"age": "34", "gender": "female", "race": "asian"}``; else ``None``."""
    m = _NAME.fullmatch(name)
    if not m:
        return None
    return {"age": m.group(1), "gender": GENDERS[m.group(2)], "race": RACES[m.group(3)]}


def _image_names(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_file() and Path(e.name).suffix.lower() in _IMAGE_SUFFIXES)


def is_utkface(path: Path) -> bool:
    """True for a folder holding at least one image named the UTKFace way."""
    return path.is_dir() and any(_NAME.fullmatch(n) for n in _image_names(path))


def read_utkface(path: Path) -> tuple[Path, pd.DataFrame, dict[str, Any]]:
    """Read a UTKFace folder (annotations from the file names); return ``(root, table, meta)``."""
    rows: list[dict[str, str]] = []
    unparsed: list[str] = []
    for name in _image_names(path):
        parsed = parse_name(name)
        if parsed is None:
            unparsed.append(name)
        else:
            rows.append({"path": name, **parsed})
    if unparsed:
        log.warning(
            "skipped %d image(s) in %s whose names are not {age}_{gender}_{race}_{stamp}.jpg, e.g. %s",
            len(unparsed), path, ", ".join(unparsed[:3]),
        )
    if not rows:
        raise ProbeError(f"{path} has no image named {{age}}_{{gender}}_{{race}}_{{stamp}}.jpg; rename them or write a manifest.csv")
    cols = ("path", "age", "gender", "race")
    table = pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object) for c in cols})
    return path, table, {"n_unparsed": len(unparsed), "unparsed": unparsed, "label_orders": LABEL_ORDERS}
