"""CelebA: a folder with ``list_attr_celeba.txt`` and the images in ``img_align_celeba/`` or beside it.

The attribute file (Liu et al., ICCV 2015): first line the image count, second line the 40
attribute names, then ``filename v1 ... v40`` with values ``1`` / ``-1``. Each attribute becomes a
lower-case text column with ``"yes"`` / ``"no"``, except ``Male``, which becomes ``gender``
(``male`` / ``female``). The default target is ``smiling``; any attribute can be the target.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditor.errors import ProbeError

__all__ = ["FORMAT", "DEFAULT_TARGET", "ATTR_FILE", "IMAGE_DIR", "is_celeba", "read_celeba"]

log = logging.getLogger(__name__)

FORMAT = "celeba"
DEFAULT_TARGET = "smiling"
ATTR_FILE = "list_attr_celeba.txt"
IMAGE_DIR = "img_align_celeba"


def is_celeba(path: Path) -> bool:
    """True for a folder holding ``list_attr_celeba.txt`` or for that file itself."""
    if path.is_dir():
        return (path / ATTR_FILE).is_file()
    return path.name == ATTR_FILE and path.is_file()


def read_celeba(path: Path) -> tuple[Path, pd.DataFrame, dict[str, Any]]:
    """Read CelebA's attribute file; return ``(root, table, meta)``."""
    attr_file = path / ATTR_FILE if path.is_dir() else path
    root = attr_file.parent
    with open(attr_file, encoding="utf-8", errors="replace") as f:
        first, second = f.readline().strip(), f.readline().split()
    if not first.isdigit() or not second:
        raise ProbeError(
            f"{attr_file} does not start with the image count and a line of attribute names; "
            "use CelebA's original list_attr_celeba.txt"
        )
    dtypes: dict[str, Any] = {"path": str, **{name: "int8" for name in second}}
    try:
        df = pd.read_csv(attr_file, sep=r"\s+", skiprows=2, header=None, names=["path", *second], dtype=dtypes)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as exc:
        raise ProbeError(
            f"{attr_file} has a malformed row ({exc}); every row needs a file name and {len(second)} values of 1 or -1"
        ) from None
    if len(df) == 0:
        raise ProbeError(f"{attr_file} lists no images; add one row per image")
    if int(first) != len(df):
        log.warning("%s declares %s images but lists %d; using the %d listed", attr_file, first, len(df), len(df))
    values = df[second].to_numpy()
    bad = (values != 1) & (values != -1)
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        raise ProbeError(f"{attr_file} line {row + 3}: {second[col]} is {int(values[row, col])}, not 1 or -1; fix the row")
    prefix = f"{IMAGE_DIR}/" if (root / IMAGE_DIR).is_dir() else ""
    columns = {"path": pd.Series([prefix + p for p in df["path"]], dtype=object)}
    aliases: dict[str, str] = {}
    yes_no, gender = np.array(["no", "yes"], dtype=object), np.array(["female", "male"], dtype=object)
    for j, name in enumerate(second):
        positive = (values[:, j] == 1).astype(np.intp)
        if name.lower() == "male":
            columns["gender"] = pd.Series(gender[positive], dtype=object)
            aliases["male"] = "gender"
        else:
            columns[name.lower()] = pd.Series(yes_no[positive], dtype=object)
    table = pd.DataFrame(columns)
    log.debug("read %d rows from %s (images in %s)", len(table), attr_file, root / prefix)
    # the files' -1/1 as codes 0/1: class 0 is the attribute's absence (for Male: female)
    orders = {col: (["female", "male"] if col == "gender" else ["no", "yes"]) for col in columns if col != "path"}
    return root, table, {"listing": str(attr_file), "n_unparsed": 0, "unparsed": [], "aliases": aliases,
                         "label_orders": orders}
