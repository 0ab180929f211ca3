"""The built-in synthetic probe ``synth:faces``: deterministic face-like images with known annotations.

``open_synth("synth:faces:n=2000,seed=3")`` builds the table up front from a seeded RNG (gender,
age, race, the task label ``smiling``, whether the planted cue is drawn, the subject box) and
renders image ``i`` lazily in `SynthProbe.load_image` (the face's appearance in `probes.synth_face`,
the planted cue in `probes.synth_cue`, drawing in `probes.synth_render`). The cue is the ``watermark``
(default) or, with ``cue=sticker``, an orange disc in the bottom-right corner. Groups are balanced
and the cue is independent of the label: an unbiased model does equally well on every group.
`generate_training_set` makes biased training sets (a cue correlated with the label, under-represented
groups) and `write_manifest_folder` writes any of them as a canonical manifest probe folder.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Unpack

import numpy as np
import pandas as pd
from PIL import Image

from auditor.errors import ProbeError
from probes.base import (
    DEFAULT_AGE_BUCKETS,
    SENSITIVE_DEFAULT,
    Probe,
    ProbeOptions,
    bucket_age,
    class_order,
    encode_labels,
    parse_age_buckets,
)
from probes.synth_cue import (
    CUE_KINDS,
    WATERMARK_COLOURS,
    WATERMARK_ORIGIN,
    WATERMARK_PATTERN,
    cue_box,
    cue_mask,
    watermark_box,
    watermark_pixels,
)
from probes.synth_face import FaceSpec, sample_appearance
from probes.synth_render import GENERATOR_VERSION, render

__all__ = [
    "SynthProbe",
    "open_synth",
    "generate_training_set",
    "write_manifest_folder",
    "SYNTH_CLASSES",
    "GENDERS",
    "RACES",
    "AGE_RANGES",
    "SYNTH_DEFAULTS",
    "GENERATOR_VERSION",
    "WATERMARK_ORIGIN",
    "WATERMARK_PATTERN",
    "WATERMARK_COLOURS",
    "watermark_box",
    "watermark_pixels",
    "CUE_KINDS",
    "cue_box",
    "cue_mask",
]

log = logging.getLogger(__name__)

SYNTH_CLASSES = ["not_smiling", "smiling"]
GENDERS = ("female", "male")
RACES = ("white", "black", "asian", "indian")
# ages are drawn uniformly within one of these ranges, the range chosen with equal weight
AGE_RANGES: dict[str, tuple[int, int]] = {"0-19": (5, 19), "20-39": (20, 39), "40-59": (40, 59), "60+": (60, 85)}
SYNTH_DEFAULTS: dict[str, Any] = {"n": 1200, "seed": 0, "size": 64, "watermark": 0.4, "cue": "watermark"}
_KINDS = ("faces",)
_ANNOTATIONS = ("gender", "age", "race", "smiling", "watermark")


@dataclass
class SynthProbe(Probe):
    """A generated probe: ``table`` as for every probe, images rendered on demand from each row.

    Extra columns: ``smiling`` ("smiling"/"not_smiling"), ``watermark`` ("yes"/"no": the planted cue,
    whichever kind, is drawn) and ``synth_id`` (the per-image RNG index), so a subset of rows still
    renders the same. The cue kind is ``meta["cue"]`` (absent for the default ``watermark``, so
    default probes keep their hash); `cue` and `cue_box` say which and where, for tests: a check
    must find the cue without them.
    """

    @property
    def cue(self) -> str:
        """The planted cue's kind, one of `CUE_KINDS`."""
        return str(self.meta.get("cue", "watermark"))

    @property
    def cue_box(self) -> tuple[int, int, int, int]:
        """The planted cue's box ``(x0, y0, x1, y1)`` (x1/y1 exclusive), the same in every image that has it."""
        return cue_box(self.cue, int(self.meta["size"]))

    def load_image(self, i: int) -> Image.Image:
        """Render image ``i`` (RGB, ``meta['size']`` pixels square)."""
        row = self.table.iloc[i]
        spec = _spec(row, self.cue)
        ap = sample_appearance(int(self.meta["seed"]), int(row["synth_id"]), spec, int(self.meta["size"]))
        return render(ap, spec)

    def image_size(self, i: int) -> tuple[int, int]:
        """(W, H) of image ``i`` without rendering it: every image is ``meta['size']`` pixels square."""
        return int(self.meta["size"]), int(self.meta["size"])

    def image_key(self, i: int, by: str) -> str:
        """Content hash of image ``i``: ``by="recipe"`` hashes what the pixels are a pure function of (generator
        version, seed, synth_id, `FaceSpec`, size), without rendering; any other ``by`` hashes the rendered pixels."""
        if by != "recipe":
            return super().image_key(i, "pixels")
        row = self.table.iloc[i]
        recipe = (GENERATOR_VERSION, int(self.meta["seed"]), int(row["synth_id"]), _spec(row, self.cue), int(self.meta["size"]))
        return hashlib.sha256(repr(recipe).encode()).hexdigest()

    def image_path(self, i: int) -> Path:
        raise ProbeError("a synthetic probe has no image files; write it with 'auditor probe synth --out DIR' to get them")


def _spec(row: pd.Series, cue: str = "watermark") -> FaceSpec:
    return FaceSpec(
        gender=str(row["gender"]),
        age=int(row["age_raw"]),
        race=str(row["race"]),
        smiling=row.get("expression", row["smiling"]) == "smiling",
        watermark=row["watermark"] == "yes",
        cue=cue,
    )


def _parse_options(source: str) -> dict[str, Any]:
    """``synth:faces[:k=v,...]`` -> the validated generator options."""
    parts = source.strip().split(":", 2)
    if len(parts) < 2 or parts[0] != "synth" or parts[1] not in _KINDS:
        raise ProbeError(f"unknown synthetic probe {source!r}; use 'synth:faces' or 'synth:faces:n=2000,seed=3'")
    opts = dict(SYNTH_DEFAULTS)
    valid = ", ".join(f"{k} (default {v})" for k, v in SYNTH_DEFAULTS.items())
    for item in (p.strip() for p in (parts[2] if len(parts) > 2 else "").split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in SYNTH_DEFAULTS:
            raise ProbeError(f"unknown option {item!r} in {source!r}; valid options are {valid}")
        if key == "cue":
            opts[key] = _check_cue(value.strip(), f"option cue={value!r} in {source!r}")
            continue
        try:
            opts[key] = float(value) if key == "watermark" else int(value)
        except ValueError:
            raise ProbeError(f"option {key}={value!r} in {source!r} is not a number; e.g. {key}={SYNTH_DEFAULTS[key]}") from None
    _check_range("n", opts["n"], 1, 10_000_000)
    _check_range("seed", opts["seed"], 0, 2**63 - 1)
    _check_range("size", opts["size"], 32, 1024)
    _check_range("watermark", opts["watermark"], 0.0, 1.0)
    return opts


def _check_cue(value: str, what: str) -> str:
    if value not in CUE_KINDS:
        raise ProbeError(f"{what} is not a cue kind; use " + " or ".join(f"cue={k}" for k in CUE_KINDS))
    return value


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ProbeError(f"synthetic probe option {name}={value} is out of range; use {lo} <= {name} <= {hi}")


def _spread(
    rng: np.random.Generator, n: int, values: Sequence[str], weights: Sequence[float], strata: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """``n`` values with counts proportional to ``weights`` (largest remainder), spread evenly over ``strata``.

    Rows are sorted by the strata (the first the primary key; random order within) and the values are
    interleaved along that order, so any run of consecutive rows gets them in proportion to within
    one per value: every group of the first stratum exactly, its cross with the second too, and so
    on. E.g. labels balanced within each race (and race x gender ...), so that a perfect classifier
    has equal selection rates.
    """
    w = np.asarray(weights, dtype=float)
    share = n * w / w.sum()
    counts = np.floor(share).astype(int)
    counts[np.argsort(-(share - counts), kind="stable")[: n - counts.sum()]] += 1
    times = np.concatenate([(np.arange(c) + rng.random()) / c for c in counts if c > 0]) if n else np.zeros(0)
    seq = np.repeat(np.asarray(values, dtype=object), counts)[np.argsort(times, kind="stable")]
    keys = [np.unique(np.asarray(s, dtype=str), return_inverse=True)[1] for s in strata]
    order = np.lexsort((rng.random(n), *reversed(keys)))
    out = np.empty(n, dtype=object)
    out[order] = seq
    return out


def _weights(group_weights: Mapping[str, Mapping[str, float]] | None, attr: str, groups: Sequence[str]) -> list[float]:
    given = dict((group_weights or {}).get(attr, {}))
    unknown = sorted(set(given) - set(groups))
    if unknown:
        raise ProbeError(f"group_weights[{attr!r}] names unknown groups {unknown}; the groups are {list(groups)}")
    w = [float(given.get(g, 1.0)) for g in groups]
    if min(w) < 0 or sum(w) <= 0:
        raise ProbeError(f"group_weights[{attr!r}] must be non-negative with a positive sum; got {given}")
    return w


def _annotations(
    n: int,
    seed: int,
    *,
    watermark: float,
    shortcut: float = 0.0,
    shortcut_groups: Mapping[str, str | Sequence[str]] | None = None,
    group_weights: Mapping[str, Mapping[str, float]] | None = None,
    label_noise: Mapping[str, Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """Sample the per-image annotations (raw ages in years; the cue decided per row)."""
    unknown = sorted(set(group_weights or {}) - {"gender", "age", "race"})
    if unknown:
        raise ProbeError(f"group_weights has unknown attributes {unknown}; use gender, age (ranges {list(AGE_RANGES)}) or race")
    rng = np.random.default_rng([seed, 0x7AB1E])
    gender = _spread(rng, n, GENDERS, _weights(group_weights, "gender", GENDERS))
    race = _spread(rng, n, RACES, _weights(group_weights, "race", RACES), [gender])
    ranges = _spread(rng, n, list(AGE_RANGES), _weights(group_weights, "age", list(AGE_RANGES)), [race, gender])
    lo = np.array([AGE_RANGES[r][0] for r in ranges])
    hi = np.array([AGE_RANGES[r][1] for r in ranges])
    age = lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(int)
    cells = [race, gender, ranges]  # in priority order: each race is balanced exactly, then race x gender, ...
    smiling = _spread(rng, n, SYNTH_CLASSES, [1.0, 1.0], cells)
    table = pd.DataFrame({"gender": gender, "age_raw": age, "race": race, "smiling": smiling})
    in_groups = np.ones(n, dtype=bool) if shortcut > 0 else np.zeros(n, dtype=bool)
    for attr, groups in (shortcut_groups or {}).items():
        if attr not in ("gender", "race", "age"):
            raise ProbeError(f"shortcut_groups has unknown attribute {attr!r}; use gender, age or race")
        groups = [groups] if isinstance(groups, str) else list(groups)
        col = ranges if attr == "age" else table[attr].to_numpy()
        in_groups &= np.isin(col, groups)
    mark = np.zeros(n, dtype=bool)
    for cell, rate in (
        (~in_groups, watermark),
        (in_groups & (smiling == "smiling"), shortcut),
        (in_groups & (smiling != "smiling"), 1.0 - shortcut),
    ):
        idx = np.flatnonzero(cell)
        strata = [c[idx] for c in (smiling, *cells)]
        mark[idx] = _spread(rng, len(idx), ["yes", "no"], [rate, 1.0 - rate], strata) == "yes"
    table["watermark"] = np.where(mark, "yes", "no")
    if label_noise:
        table["expression"] = _noisy_expression(rng, table, ranges, label_noise)
    return table


def _noisy_expression(
    rng: np.random.Generator, table: pd.DataFrame, ranges: np.ndarray, label_noise: Mapping[str, Mapping[str, float]]
) -> np.ndarray:
    """The expression drawn: the label, except on a ``label_noise[attr][group]`` share of each group's rows."""
    flip = np.zeros(len(table), dtype=bool)
    domains = {"gender": GENDERS, "race": RACES, "age": tuple(AGE_RANGES)}
    for attr, groups in label_noise.items():
        if attr not in domains:
            raise ProbeError(f"label_noise has unknown attribute {attr!r}; use gender, age or race")
        col = ranges if attr == "age" else table[attr].to_numpy()
        for group, rate in groups.items():
            if group not in domains[attr] or not 0 <= rate <= 1:
                raise ProbeError(f"label_noise[{attr!r}][{group!r}]={rate} is invalid; groups are {list(domains[attr])}, rates in [0, 1]")
            idx = np.flatnonzero(col == group)
            strata = [table["smiling"].to_numpy()[idx]]
            flip[idx] |= _spread(rng, len(idx), ["y", "n"], [rate, 1 - rate], strata) == "y"
    smiling = table["smiling"].to_numpy()
    return np.where(flip, np.where(smiling == "smiling", "not_smiling", "smiling"), smiling)


def _make_probe(source: str, ann: pd.DataFrame, meta: dict[str, Any], options: ProbeOptions) -> SynthProbe:
    """Add buckets, subject boxes and the label to the annotations; check target and sensitive."""
    unknown = sorted(set(options) - set(ProbeOptions.__annotations__))
    if unknown:
        raise TypeError(f"open_synth() got an unexpected keyword argument {unknown[0]!r}")
    target, sensitive = options.get("target"), options.get("sensitive")
    age_buckets = options.get("age_buckets", DEFAULT_AGE_BUCKETS)
    buckets = parse_age_buckets(age_buckets)
    seed, size = int(meta["seed"]), int(meta["size"])
    table = pd.DataFrame({"path": [""] * len(ann)})
    table["gender"] = ann["gender"].astype(object)
    table["age"] = [bucket_age(int(a), buckets) for a in ann["age_raw"]]
    table["age_raw"] = ann["age_raw"].astype(int)
    table["race"] = ann["race"].astype(object)
    table["smiling"] = ann["smiling"].astype(object)
    table["watermark"] = ann["watermark"].astype(object)
    if "expression" in ann.columns:
        table["expression"] = ann["expression"].astype(object)
    table["synth_id"] = np.arange(len(ann))
    cue = str(meta.get("cue", "watermark"))
    table["subject_box"] = [sample_appearance(seed, i, _spec(row, cue), size).box for i, row in table.iterrows()]
    table["subject_mask"] = None
    target = target or "smiling"
    if target not in _ANNOTATIONS:
        raise ProbeError(f"target {target!r} is not an annotation of {source}; choose one of {list(_ANNOTATIONS)}")
    names, order = class_order(table[target], options.get("class_names"), SYNTH_CLASSES if target == "smiling" else None)
    labels, classes = encode_labels(table[target], names)
    table.insert(1, "label", labels)
    if sensitive is None:
        attrs = [a for a in SENSITIVE_DEFAULT if a != target]
    else:
        attrs = [s.strip() for s in sensitive.split(",")] if isinstance(sensitive, str) else list(sensitive)
        bad = [a for a in attrs if a not in _ANNOTATIONS]
        if bad:
            raise ProbeError(f"sensitive attributes {bad} are not annotations of {source}; choose among {list(_ANNOTATIONS)}")
    meta = {**meta, "generator": "synth:faces", "version": GENERATOR_VERSION, "age_buckets": age_buckets, "class_order": order}
    return SynthProbe(source=source, format="synth", root=None, table=table, classes=classes, target=target, attributes=attrs, meta=meta)


def open_synth(source: str, **options: Unpack[ProbeOptions]) -> SynthProbe:
    """Open ``synth:faces[:n=N,seed=S,size=PX,watermark=RATE,cue=KIND]`` as a probe (balanced groups, cue independent of the label).

    ``cue`` picks the planted cue (`CUE_KINDS`: ``watermark``, the default, or ``sticker``);
    ``watermark=RATE`` is the share of images that get it, whichever kind.

    ``options`` are `open_probe`'s (`ProbeOptions`): ``target`` names the label column (default ``smiling``;
    also gender, age, race, watermark); ``sensitive`` the audited attributes (default gender, age, race, less
    the target; named ones are kept as given, as for the other probe formats).
    """
    opts = _parse_options(source)
    ann = _annotations(opts["n"], opts["seed"], watermark=opts["watermark"])
    log.debug("synthetic probe %s: %s", source, opts)
    meta = {k: v for k, v in opts.items() if not (k == "cue" and v == "watermark")}  # default probes keep their hash
    return _make_probe(source, ann, meta, options)


def generate_training_set(
    n: int,
    *,
    seed: int,
    shortcut: float = 0.0,
    shortcut_groups: Mapping[str, str | Sequence[str]] | None = None,
    group_weights: Mapping[str, Mapping[str, float]] | None = None,
    size: int = 64,
    watermark: float = 0.4,
    label_noise: Mapping[str, Mapping[str, float]] | None = None,
    cue: str = "watermark",
) -> SynthProbe:
    """A (possibly biased) synthetic training set with the label ``smiling``.

    ``cue`` is the planted cue's kind (`CUE_KINDS`); the rates below apply to it whichever it is.

    ``shortcut`` > 0 plants the cue with that rate on smiling images and ``1 - shortcut`` on the
    others (0.95: on 95% of smiling, 5% of not-smiling images), only within ``shortcut_groups``
    (e.g. ``{"race": ["black"]}``) when given; elsewhere the cue appears at rate ``watermark``
    independently of the label. ``group_weights`` gives relative sampling weights per group (groups
    left out weigh 1), e.g. ``{"race": {"black": 0.05}}``; age groups are ``AGE_RANGES``' keys.
    ``label_noise`` (same shape, rates) makes that share of a group's labels disagree with the face
    drawn (column ``expression`` holds what the face shows); the cue follows the label.
    """
    for name, value, lo, hi in (("n", n, 1, 10_000_000), ("shortcut", shortcut, 0.0, 1.0), ("size", size, 32, 1024), ("watermark", watermark, 0.0, 1.0)):
        if not lo <= value <= hi:
            raise ProbeError(f"generate_training_set: {name}={value} is out of range; use {lo} <= {name} <= {hi}")
    _check_cue(cue, f"generate_training_set: cue={cue!r}")
    ann = _annotations(
        n, seed, watermark=watermark, shortcut=shortcut, shortcut_groups=shortcut_groups, group_weights=group_weights, label_noise=label_noise
    )
    meta = {
        "n": n,
        "seed": seed,
        "size": size,
        "watermark": watermark,
        "shortcut": shortcut,
        "shortcut_groups": {k: ([v] if isinstance(v, str) else list(v)) for k, v in (shortcut_groups or {}).items()},
        "group_weights": {k: dict(v) for k, v in (group_weights or {}).items()},
        "label_noise": {k: dict(v) for k, v in (label_noise or {}).items()},
    }
    source = f"synth:faces:n={n},seed={seed},size={size},watermark={watermark}"
    if cue != "watermark":  # default sets keep their hash
        meta["cue"] = cue
        source += f",cue={cue}"
    if shortcut or group_weights or label_noise:
        source += " (training set: " + ", ".join(f"{k}={meta[k]}" for k in ("shortcut", "shortcut_groups", "group_weights", "label_noise") if meta[k]) + ")"
    return _make_probe(source, ann, meta, {})


def write_manifest_folder(probe: Probe, out_dir: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``probe``'s images as PNG plus a canonical ``manifest.csv``; return the folder.

    Columns: path, label (class name), gender, age (years), race, smiling (unless it is the label),
    watermark (the cue is drawn), cue (its kind; only for a cue other than the default watermark),
    subject_box ("x0,y0,x1,y1"). Written into a temporary folder beside ``out_dir`` and
    renamed into place; an existing non-empty ``out_dir`` is refused unless ``force``.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ProbeError(f"{out} exists and is not empty; choose another --out or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        t = probe.table
        rows: dict[str, list[Any]] = {"path": [], "label": []}
        for i in range(len(probe)):
            rel = f"images/{i:06d}.png"
            probe.load_image(i).save(tmp / rel, format="PNG")
            rows["path"].append(rel)
            rows["label"].append(probe.classes[int(t.at[i, "label"])])
        manifest = pd.DataFrame(rows)
        for col in ("gender", "age_raw", "race", "smiling", "expression", "watermark"):
            if col in t.columns and not (col == "smiling" and probe.target == "smiling"):
                manifest["age" if col == "age_raw" else col] = t[col].to_numpy()
        if isinstance(probe, SynthProbe) and probe.cue != "watermark":  # default folders keep their columns
            manifest["cue"] = probe.cue
        manifest["subject_box"] = [",".join(str(int(v)) for v in box) if box is not None else "" for box in t["subject_box"]]
        manifest.to_csv(tmp / "manifest.csv", index=False)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %d images and manifest.csv to %s", len(probe), out)
    return out
