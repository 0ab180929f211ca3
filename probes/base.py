"""The probe contract every format reader produces: a table of samples plus a way to read each image.

A `Probe` holds one row per sample in `table` (a pandas DataFrame indexed 0..n-1) with the columns:

- ``path``: image path relative to ``root`` (empty for generated probes);
- ``label``: the target as an int index into ``classes``;
- one string column per annotation (``gender``, ``age``, ``race``, any extra); ``age`` holds the
  age *bucket* (e.g. ``"20-39"``), the raw value stays in ``age_raw``; missing values are ``None``;
- ``subject_box``: ``(x0, y0, x1, y1)`` in the original image's pixels, or ``None``;
- ``subject_mask``: path of a mask PNG relative to ``root``, or ``None``.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence, TypedDict

import pandas as pd
from PIL import Image

from auditor.errors import ProbeError

__all__ = [
    "Probe",
    "ImageUnreadable",
    "ProbeOptions",
    "DEFAULT_AGE_BUCKETS",
    "SENSITIVE_DEFAULT",
    "parse_age_buckets",
    "bucket_age",
    "encode_labels",
    "class_order",
    "safe_join",
]

SENSITIVE_DEFAULT: tuple[str, ...] = ("gender", "age", "race")
DEFAULT_AGE_BUCKETS = "0-19,20-39,40-59,60+"
RESERVED_COLUMNS = {"path", "label", "age_raw", "subject_box", "subject_mask"}


class ProbeOptions(TypedDict, total=False):
    """How a probe's table is finished, whatever its format (`probes.open_probe`'s keyword arguments):
    ``target`` the label column, ``sensitive`` the attributes audited across (a list or ``"gender,race"``),
    ``age_buckets`` the age groups, ``class_names`` the model's classes (label names to indices)."""

    target: str | None
    sensitive: Sequence[str] | str | None
    age_buckets: str
    class_names: Sequence[str] | None


class ImageUnreadable(Exception):
    """An image of the probe could not be read; the loader skips it and counts it."""


@dataclass(frozen=True)
class AgeBucket:
    name: str
    low: float
    high: float  # exclusive; math.inf for an open bucket

    def contains(self, years: float) -> bool:
        return self.low <= years < self.high


def parse_age_buckets(spec: str = DEFAULT_AGE_BUCKETS) -> list[AgeBucket]:
    """Parse ``"0-19,20-39,40-59,60+"`` into buckets (ends inclusive in years, ``N+`` open)."""
    buckets: list[AgeBucket] = []
    for part in (p.strip() for p in spec.split(",")):
        m_open = re.fullmatch(r"(\d+)\+", part)
        m_range = re.fullmatch(r"(\d+)-(\d+)", part)
        if m_open:
            buckets.append(AgeBucket(part, float(m_open.group(1)), math.inf))
        elif m_range and int(m_range.group(1)) <= int(m_range.group(2)):
            buckets.append(AgeBucket(part, float(m_range.group(1)), float(m_range.group(2)) + 1))
        else:
            raise ProbeError(
                f"age bucket {part!r} in {spec!r} is not of the form 'LOW-HIGH' or 'LOW+'; "
                "pass e.g. --age-buckets 0-19,20-39,40-59,60+"
            )
    for a, b in zip(buckets, buckets[1:]):
        if b.low < a.high:
            raise ProbeError(f"age buckets {a.name!r} and {b.name!r} overlap; list them in increasing order")
    return buckets


def bucket_age(value: Any, buckets: Sequence[AgeBucket]) -> str | None:
    """Map an age in years (``34``) or a range (``"30-39"``, ``"more than 70"``) to its bucket name.

    A range is placed by its midpoint. Unparseable or missing values give ``None``.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    if text in {"", "nan", "none", "unknown"}:
        return None
    nums = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]
    if not nums:
        return None
    if len(nums) >= 2:
        years = (nums[0] + nums[1]) / 2
    else:
        years = nums[0]
    for b in buckets:
        if b.contains(years):
            return b.name
    return None


def encode_labels(values: pd.Series, class_names: Sequence[str] | None = None) -> tuple[list[int], list[str]]:
    """Turn a label column (indices or names) into int indices and the class-name list.

    Integer-like labels are taken as indices (class names ``"0".."K-1"`` unless given); string labels
    are mapped to ``class_names`` when given, else to their sorted unique values.
    """
    raw = [None if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v).strip() for v in values]
    if any(v is None or v == "" for v in raw):
        bad = next(i for i, v in enumerate(raw) if v is None or v == "")
        raise ProbeError(f"row {bad} has no label; every sample needs one (or choose another --target)")
    if all(re.fullmatch(r"-?\d+(\.0+)?", v) for v in raw):  # type: ignore[arg-type]
        idx = [int(float(v)) for v in raw]  # type: ignore[arg-type]
        if min(idx) < 0:
            raise ProbeError("negative class index in the label column; class indices start at 0")
        k = max(idx) + 1
        names = list(class_names) if class_names and len(class_names) >= k else [str(i) for i in range(k)]
        return idx, names
    names = list(class_names) if class_names else sorted(set(raw))  # type: ignore[arg-type]
    lookup = {n: i for i, n in enumerate(names)}
    unknown = sorted({v for v in raw if v not in lookup})  # type: ignore[misc]
    if unknown:
        raise ProbeError(f"labels {unknown[:5]} are not among the model's classes {names}; fix the labels or the spec's class names")
    return [lookup[v] for v in raw], names  # type: ignore[index]


CLASS_ORDER_SOURCES = {
    "model": "the model's declared classes",
    "codes": "the probe format's codes",
    "indices": "the probe's class indices",
    "sorted": "the probe's label names in alphabetical order",
}
"""Where a probe's class order came from (``probe.meta["class_order"]``), in words for messages."""


def class_order(
    values: pd.Series, class_names: Sequence[str] | None, code_order: Sequence[str] | None = None
) -> tuple[list[str] | None, str]:
    """The class names to encode the label column ``values`` with, and where that order comes from.

    The model's declared ``class_names`` win (``"model"``); a coded format's ``code_order`` is kept
    when every label is one of its names (``"codes"``: UTKFace gender 0 male, 1 female); integer
    labels are output indices (``"indices"``); plain names have no canonical order (``"sorted"``).
    """
    if class_names:
        return list(class_names), "model"
    present = {str(v).strip() for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))}
    if code_order and present <= set(code_order):
        return list(code_order), "codes"
    if present and all(re.fullmatch(r"-?\d+(\.0+)?", v) for v in present):
        return None, "indices"
    return None, "sorted"


def safe_join(root: Path, rel: str) -> Path:
    """Join ``rel`` under ``root``, refusing absolute paths and any path that escapes ``root``."""
    if not rel or Path(rel).is_absolute() or re.match(r"^[A-Za-z]:[\\/]", rel):
        raise ProbeError(f"image path {rel!r} in {root} must be relative to the probe folder")
    root_res = root.resolve()
    full = (root_res / rel).resolve()
    if full != root_res and root_res not in full.parents:
        raise ProbeError(f"image path {rel!r} escapes the probe folder {root}; keep every path inside it")
    return full


@dataclass
class Probe:
    """A probe dataset: annotated samples and how to read their images (RGB)."""

    source: str
    format: str
    root: Path | None
    table: pd.DataFrame
    classes: list[str]
    target: str
    attributes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    image_sizes_cache: dict[tuple[int, int], int] | None = field(default=None, init=False, repr=False, compare=False)
    """``probes.loader.image_sizes``' census, once taken."""

    def __len__(self) -> int:
        return len(self.table)

    def image_path(self, i: int) -> Path:
        assert self.root is not None
        return safe_join(self.root, str(self.table.at[i, "path"]))

    def load_image(self, i: int) -> Image.Image:
        """Read image ``i`` as RGB; raise `ImageUnreadable` (naming the file) if it cannot be decoded."""
        path = self.image_path(i)
        try:
            with Image.open(path) as im:
                im.load()
                return im.convert("RGB")
        except Exception as exc:  # PIL raises many types for corrupt files
            raise ImageUnreadable(f"{path}: {exc.__class__.__name__}: {exc}") from exc

    def image_size(self, i: int) -> tuple[int, int]:
        """(W, H) of image ``i`` from its header alone; raise `ImageUnreadable` if it cannot be opened."""
        path = self.image_path(i)
        try:
            with Image.open(path) as im:
                return int(im.width), int(im.height)
        except Exception as exc:  # PIL raises many types for corrupt files
            raise ImageUnreadable(f"{path}: {exc.__class__.__name__}: {exc}") from exc

    def image_key(self, i: int, by: str) -> str:
        """Content hash of image ``i``: sha256 of the file's bytes (``by="bytes"``) or of the decoded RGB pixels and
        their shape (``by="pixels"``); raise `ImageUnreadable` if it cannot be read."""
        h = hashlib.sha256()
        if by == "pixels":
            img = self.load_image(i)
            h.update(f"{img.width}x{img.height}:".encode())
            h.update(img.tobytes())
            return h.hexdigest()
        try:
            with open(self.image_path(i), "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except OSError as exc:
            raise ImageUnreadable(f"{self.image_path(i)}: {exc.__class__.__name__}: {exc}") from exc
        return h.hexdigest()

    def subject_box(self, i: int) -> tuple[float, float, float, float] | None:
        if "subject_box" not in self.table.columns:
            return None
        box = self.table.at[i, "subject_box"]
        return None if box is None or (isinstance(box, float) and math.isnan(box)) else tuple(box)  # type: ignore[return-value]

    def group_counts(self, attributes: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
        """``attribute -> group -> count`` over the rows (missing values counted as ``"(missing)"``)."""
        out: dict[str, dict[str, int]] = {}
        for attr in attributes or self.attributes:
            col = self.table[attr].fillna("(missing)").astype(str)
            out[attr] = {str(k): int(v) for k, v in sorted(col.value_counts().items())}
        return out

    def sha256(self) -> str:
        """Content hash: the canonical table plus every image file's bytes (generated probes: their recipe)."""
        h = hashlib.sha256()
        h.update(self.table.drop(columns=[c for c in ("subject_box",) if c in self.table]).to_csv(index=False).encode())
        h.update(repr(list(self.table.get("subject_box", []))).encode())
        h.update(repr(self.classes).encode())
        if self.root is not None:
            for rel in self.table["path"]:
                try:
                    with open(safe_join(self.root, str(rel)), "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                except OSError:
                    h.update(b"<unreadable>")
        else:
            h.update(repr(sorted((k, v) for k, v in self.meta.items() if k != "class_order")).encode())  # derived, not content
        return h.hexdigest()
