"""Open a probe from a path or ``synth:NAME``: detect its format, read it, and finish it into a `Probe`.

Each format reader (``probes/manifest.py``, ``utkface.py``, ``fairface.py``, ``celeba.py``) only turns
its files into a raw table of text columns plus ``path``; `build_probe` does what is common:
choosing the target and encoding it as the label, bucketing ages, choosing the sensitive
attributes, and checking that every image path stays inside the probe folder.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, NamedTuple, NoReturn, Sequence

import pandas as pd

from auditor.errors import ProbeError
from probes import celeba, fairface, manifest, utkface
from probes.base import (
    DEFAULT_AGE_BUCKETS,
    RESERVED_COLUMNS,
    SENSITIVE_DEFAULT,
    Probe,
    bucket_age,
    class_order,
    encode_labels,
    parse_age_buckets,
    safe_join,
)

__all__ = ["open_probe", "build_probe", "ACCEPTED_FORMATS"]

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = (
    "a folder with manifest.csv, a UTKFace folder ({age}_{gender}_{race}_{stamp}.jpg), "
    "a FairFace CSV (file,age,gender,race), a CelebA folder with list_attr_celeba.txt, or synth:faces"
)
RESERVED_ATTRIBUTE = "overall"  # the report's name for the whole-probe row
# absolute (POSIX or Windows drive) or holding a ".." component: checked the slow, exact way
_NEEDS_FULL_CHECK = re.compile(r"^(?:[A-Za-z]:)?[\\/]|(?:^|[\\/])\.\.(?:[\\/]|$)")


class _Format(NamedTuple):
    name: str
    detect: Callable[[Path], bool]
    read: Callable[[Path], "tuple[Path, pd.DataFrame, dict[str, Any]]"]
    default_target: str


def _is_fairface(path: Path) -> bool:
    return fairface.is_fairface_csv(path) or (path.is_dir() and fairface.find_fairface_csv(path) is not None)


# Tried in this order; the first whose ``detect`` is true reads the probe.
_FORMATS = (
    _Format(manifest.FORMAT, manifest.is_manifest, manifest.read_manifest, manifest.DEFAULT_TARGET),
    _Format(celeba.FORMAT, celeba.is_celeba, celeba.read_celeba, celeba.DEFAULT_TARGET),
    _Format(fairface.FORMAT, _is_fairface, fairface.read_fairface, fairface.DEFAULT_TARGET),
    _Format(utkface.FORMAT, utkface.is_utkface, utkface.read_utkface, utkface.DEFAULT_TARGET),
)


def open_probe(
    source: str,
    *,
    target: str | None = None,
    sensitive: Sequence[str] | str | None = None,
    age_buckets: str = DEFAULT_AGE_BUCKETS,
    class_names: Sequence[str] | None = None,
) -> Probe:
    """Open the probe at ``source`` (a folder, a FairFace CSV, or ``synth:NAME``).

    ``target`` names the label column (default: ``label`` for a manifest, ``gender`` for UTKFace
    and FairFace, ``smiling`` for CelebA); ``sensitive`` the attributes to audit across (default:
    those of gender, age, race present, less the target; a list or ``"gender,race"``); ``class_names`` (the model's classes)
    maps label names to indices (together: `ProbeOptions`). Raises `ProbeError` when the probe cannot be used.
    """
    if source.startswith("synth:"):
        from probes.synth import open_synth  # lazy: generating is the synth module's business

        return open_synth(source, target=target, sensitive=sensitive, age_buckets=age_buckets, class_names=class_names)
    parse_age_buckets(age_buckets)  # a bad spec fails before a large probe is read
    path = Path(source).expanduser()
    if not path.exists():
        raise ProbeError(f"probe {source} does not exist; pass {ACCEPTED_FORMATS}")
    fmt = next((f for f in _FORMATS if f.detect(path)), None)
    if fmt is None:
        raise ProbeError(f"probe {source} matches no probe format; pass {ACCEPTED_FORMATS}")
    root, table, meta = fmt.read(path)
    probe = build_probe(
        table, source=source, format=fmt.name, root=root, default_target=fmt.default_target,
        target=target, sensitive=sensitive, age_buckets=age_buckets, class_names=class_names, meta=meta,
    )
    log.info("opened %s probe %s: %d images, target %s, attributes %s",
             fmt.name, source, len(probe), probe.target, ", ".join(probe.attributes))
    return probe


def build_probe(
    table: pd.DataFrame,
    *,
    source: str,
    format: str,
    root: Path | None,
    default_target: str,
    target: str | None = None,
    sensitive: Sequence[str] | str | None = None,
    age_buckets: str = DEFAULT_AGE_BUCKETS,
    class_names: Sequence[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Probe:
    """Finish a raw table (``path`` plus text annotation columns, ``None`` for missing) into a `Probe`."""
    meta = dict(meta or {})
    meta.setdefault("n_unparsed", 0)
    meta.setdefault("unparsed", [])
    meta["age_buckets"] = age_buckets
    where = str(meta.get("listing", source))
    aliases: dict[str, str] = meta.get("aliases", {})
    if len(table) == 0:
        raise ProbeError(f"probe {source} has no images; add at least one")
    table = table.reset_index(drop=True).copy()
    for col in ("subject_box", "subject_mask"):
        if col not in table.columns:
            table[col] = pd.Series([None] * len(table), dtype=object)

    candidates = [c for c in table.columns if c not in {"path", "age_raw", "subject_box", "subject_mask"}]
    target_col = _resolve(target or default_target, candidates, aliases)
    if target_col is None:
        raise ProbeError(f"probe {source} has no column {target or default_target!r} to use as the label; "
                         f"choose one of {candidates} with --target")
    if "age" in table.columns:
        _bucket_ages(table, age_buckets, where)
    names, order = class_order(table[target_col], class_names, meta.get("label_orders", {}).get(target_col))
    meta["class_order"] = order
    try:
        labels, classes = encode_labels(table[target_col], names)
    except ProbeError as exc:
        raise ProbeError(f"{where}: {exc}") from None
    table["label"] = pd.Series(labels, dtype="int64")
    attributes = _choose_sensitive(table, sensitive, target_col, aliases, source)

    if root is not None:
        _check_paths(root, table["path"].tolist(), where)
        masks = table["subject_mask"].tolist()
        if any(m is not None for m in masks):
            _check_paths(root, masks, where, optional=True)
    first = ["path", "label", *attributes]
    last = [c for c in ("age_raw", "subject_box", "subject_mask") if c in table.columns]
    table = table[first + [c for c in table.columns if c not in first and c not in last] + last]
    return Probe(source=source, format=format, root=root, table=table, classes=classes,
                 target=target_col, attributes=attributes, meta=meta)


def _resolve(name: str, columns: Sequence[str], aliases: dict[str, str]) -> str | None:
    """Find ``name`` among ``columns``: exactly, through an alias (CelebA's Male -> gender), or ignoring case."""
    name = name.strip()
    if name in columns:
        return name
    low = name.lower()
    if aliases.get(low) in columns:
        return aliases[low]
    matches = [c for c in columns if c.lower() == low]
    return matches[0] if len(matches) == 1 else None


def _bucket_ages(table: pd.DataFrame, age_buckets: str, where: str) -> None:
    buckets = parse_age_buckets(age_buckets)
    raw = table["age"].tolist()
    bucketed = [bucket_age(v, buckets) for v in raw]
    n_lost = sum(1 for r, b in zip(raw, bucketed) if r is not None and b is None)
    if n_lost:
        example = next(r for r, b in zip(raw, bucketed) if r is not None and b is None)
        log.warning("%s: %d age value(s) fall in no bucket of %s (e.g. %r); counted as missing",
                    where, n_lost, age_buckets, example)
    table["age_raw"] = pd.Series(raw, dtype=object)
    table["age"] = pd.Series(bucketed, dtype=object)


def _choose_sensitive(table: pd.DataFrame, sensitive: Sequence[str] | str | None, target: str,
                      aliases: dict[str, str], source: str) -> list[str]:
    if isinstance(sensitive, str):
        sensitive = sensitive.split(",")
    available = [c for c in table.columns if c not in RESERVED_COLUMNS and c != RESERVED_ATTRIBUTE]
    if not sensitive:
        return [a for a in SENSITIVE_DEFAULT
                if a in available and a != target and table[a].notna().any()] or _no_annotation(source, available)
    chosen: list[str] = []
    for name in (s.strip() for s in sensitive if s.strip()):
        if name.lower() == RESERVED_ATTRIBUTE or name.lower() in RESERVED_COLUMNS:
            raise ProbeError(f"{name!r} cannot be a sensitive attribute (the name is reserved); "
                             f"choose among {available} with --sensitive")
        col = _resolve(name, available, aliases)
        if col is None:
            raise ProbeError(f"probe {source} has no column {name!r}; choose among {available} with --sensitive")
        if col not in chosen:
            chosen.append(col)
    return chosen or _no_annotation(source, available)


def _no_annotation(source: str, available: Sequence[str]) -> NoReturn:
    raise ProbeError(
        f"probe {source} has no annotation column (gender, age or race) to audit across; "
        f"add gender/age/race columns or name one with --sensitive (available: {list(available)})"
    )


def _check_paths(root: Path, paths: Sequence[str | None], where: str, *, optional: bool = False) -> None:
    """Refuse absolute paths and paths escaping ``root`` (via ``..`` or symlinks); missing files are fine.

    Equivalent to `safe_join` on every path, but resolves each folder once and lists the symlinks of
    each folder once, so a 200k-row probe is checked in about a second.
    """
    folders: dict[str, tuple[str, set[str]]] = {}  # relative folder -> (resolved folder, its symlinks)
    for i, rel in enumerate(paths):
        if rel is None:
            if optional:
                continue
            raise ProbeError(f"{where} row {i + 1} has no image path; give every row a path relative to {root}")
        if _NEEDS_FULL_CHECK.search(rel):
            _safe_join(root, rel, where, i)
            continue
        parent, name = os.path.split(rel)
        if parent not in folders:
            resolved = str(root.resolve() if parent in ("", ".") else _safe_join(root, parent, where, i))
            folders[parent] = (resolved, _symlinks_in(resolved))
        if name in folders[parent][1] or name in ("", ".", ".."):
            _safe_join(root, rel, where, i)


def _symlinks_in(folder: str) -> set[str]:
    try:
        with os.scandir(folder) as it:
            return {e.name for e in it if e.is_symlink()}
    except OSError:  # a missing folder: its images are missing, which the loader skips and counts
        return set()


def _safe_join(root: Path, rel: str, where: str, row: int) -> Path:
    try:
        return safe_join(root, rel)
    except ProbeError as exc:
        raise ProbeError(f"{where} row {row + 1}: {exc}") from None
