"""The appearance of one synthetic face: what `render` draws, decided up front from ``(seed, synth_id, FaceSpec, size)``.

A per-image RNG seeded with ``[seed, synth_id]`` draws every nuisance (layout, background, appearance,
lighting, noise) in `sample_appearance`; the face is laid out off the chosen cue's box. The annotations
shape the face: skin tone and hair colour follow ``race``; hair length, jaw and face width follow
``gender``; face roundness, eye size, wrinkle lines and grey hair follow ``age``; the mouth curves up
(``smiling``) or is flat / curves down. Lips are the skin tone darkened and reddened, so the mouth's
contrast scales with the skin's luminance, as in photographs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from probes.synth_cue import sticker_box, watermark_box

__all__ = ["FaceSpec", "Appearance", "BACKGROUNDS", "sample_appearance"]

SKIN: dict[str, list[tuple[int, int, int]]] = {
    "white": [(240, 214, 196), (236, 204, 184), (225, 185, 160), (214, 172, 146)],
    "asian": [(240, 210, 176), (232, 200, 160), (226, 190, 150), (214, 176, 136)],
    "indian": [(198, 146, 108), (188, 138, 100), (176, 126, 90), (160, 112, 78)],
    "black": [(134, 92, 66), (120, 80, 56), (102, 68, 47), (86, 56, 40)],
}
HAIR = [(28, 24, 22), (60, 40, 28), (102, 72, 46), (196, 164, 106), (150, 72, 38)]
HAIR_P: dict[str, list[float]] = {
    "white": [0.2, 0.3, 0.25, 0.17, 0.08],
    "asian": [0.8, 0.18, 0.02, 0.0, 0.0],
    "indian": [0.75, 0.22, 0.03, 0.0, 0.0],
    "black": [0.85, 0.14, 0.01, 0.0, 0.0],
}
IRIS = [(70, 45, 30), (40, 30, 24), (70, 110, 160), (80, 120, 70)]
IRIS_P: dict[str, list[float]] = {
    "white": [0.45, 0.15, 0.3, 0.1],
    "asian": [0.5, 0.5, 0.0, 0.0],
    "indian": [0.5, 0.5, 0.0, 0.0],
    "black": [0.4, 0.6, 0.0, 0.0],
}
LIP_FACTOR = (0.66, 0.44, 0.44)  # lips are the skin darkened and reddened: contrast scales with skin luminance
N_DRAWS = 64  # uniforms drawn per image by `sample_appearance` (it uses fewer)
BACKGROUNDS = ("solid", "linear", "radial", "stripes", "checker", "blobs", "clouds")


@dataclass(frozen=True)
class FaceSpec:
    """The annotations an image is drawn from."""

    gender: str  # "male" | "female"
    age: int  # years
    race: str  # "white" | "black" | "asian" | "indian"
    smiling: bool
    watermark: bool  # the planted cue is drawn
    cue: str = "watermark"  # which cue: one of CUE_KINDS


@dataclass
class Appearance:
    """Every number needed to draw one image, in final-image pixels."""

    seed: int
    synth_id: int
    size: int
    cx: float
    cy: float
    a: float  # head half-width
    b: float  # head half-height
    box: tuple[int, int, int, int]  # subject box (x0, y0, x1, y1), x1/y1 exclusive
    params: dict[str, float]
    colours: dict[str, tuple[float, float, float]]


class _Draws:
    """Sequential uniforms from one pre-drawn vector (fast, and the order is the contract)."""

    def __init__(self, u: np.ndarray) -> None:
        self.u = u
        self.k = 0

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> float:
        v = float(self.u[self.k])
        self.k += 1
        return lo + (hi - lo) * v

    def choice(self, p: Sequence[float]) -> int:
        return int(np.searchsorted(np.cumsum(p) / sum(p), self.uniform(), side="right").clip(0, len(p) - 1))


def _mix(c1: Sequence[float], c2: Sequence[float], t: float) -> tuple[float, float, float]:
    return tuple(float(x + (y - x) * t) for x, y in zip(c1, c2))  # type: ignore[return-value]


def sample_appearance(seed: int, synth_id: int, spec: FaceSpec, size: int) -> Appearance:
    """Draw layout, shape and colours for image ``synth_id`` (cheap: used to build the table too)."""
    d = _Draws(np.random.default_rng([seed, synth_id]).random(N_DRAWS))
    child = spec.age < 13
    male = spec.gender == "male"
    # layout: head size and place
    fh = size * d.uniform(0.42, 0.62) * (0.92 if child else 1.0)
    wr = d.uniform(0.70, 0.80) + (0.04 if male else 0.0) + (0.06 if child else 0.0)
    b = fh / 2
    a = b * wr
    cx = size * (0.5 + d.uniform(-0.12, 0.12))
    cy = size * (0.53 + d.uniform(-0.08, 0.09))
    p: dict[str, float] = {}
    p["long_hair"] = float(d.uniform() < (0.85 if not male else 0.12))
    p["bald"] = float(male and spec.age > 55 and d.uniform() < 0.35)
    p["hair_vol"] = d.uniform(0.06, 0.16)  # hair thickness around the head, fraction of b
    p["hair_len"] = d.uniform(0.9, 1.5)  # long hair: how far below the head centre, in b
    # shape
    p["jaw_p"] = d.uniform(2.4, 3.2) if (male and not child) else d.uniform(1.9, 2.4)
    p["taper"] = d.uniform(0.02, 0.10) if (male and not child) else d.uniform(0.10, 0.22)
    # features
    p["eye_dx"] = d.uniform(0.34, 0.42)
    p["eye_y"] = d.uniform(-0.12, 0.0)
    p["eye_rx"] = d.uniform(0.13, 0.17) * (1.2 if child else 1.0)
    p["eye_ry"] = d.uniform(0.07, 0.10) * (0.65 if spec.race == "asian" else 1.0) * (1.2 if child else 1.0)
    p["brow_dy"] = d.uniform(0.15, 0.22)
    p["brow_tilt"] = d.uniform(-0.04, 0.04)
    p["nose_len"] = d.uniform(0.22, 0.32)
    p["mouth_y"] = d.uniform(0.50, 0.60)
    if spec.smiling:
        p["mouth_w"] = d.uniform(0.34, 0.48)
        p["mouth_d"] = d.uniform(0.16, 0.32)
    else:
        p["mouth_w"] = d.uniform(0.26, 0.40)
        p["mouth_d"] = d.uniform(-0.18, 0.02)
    p["mouth_t"] = d.uniform(0.06, 0.09)
    p["mouth_tilt"] = d.uniform(-0.03, 0.03)
    p["glasses"] = float(d.uniform() < 0.15)
    p["wrinkles"] = float(np.clip((spec.age - 38) / 12, 0, 4)) if not child else 0.0
    p["crows"] = float(spec.age >= 52)
    # colours
    tones = SKIN[spec.race]
    t = d.uniform(0, len(tones) - 1)
    lo = int(t)
    skin = _mix(tones[lo], tones[min(lo + 1, len(tones) - 1)], t - lo)
    skin = tuple(float(np.clip(c + d.uniform(-8, 8), 0, 255)) for c in skin)  # type: ignore[assignment]
    hair = HAIR[d.choice(HAIR_P[spec.race])]
    grey = float(np.clip((spec.age - 40) / 30, 0, 1)) * d.uniform(0.6, 1.0)
    hair = _mix(hair, (192, 192, 188), grey)
    iris = IRIS[d.choice(IRIS_P[spec.race])]
    lips = (skin[0] * LIP_FACTOR[0], skin[1] * LIP_FACTOR[1], skin[2] * LIP_FACTOR[2])
    # background and lighting
    p["bg_kind"] = float(d.choice([1.0] * len(BACKGROUNDS)))
    bg1 = _hsv(d.uniform(), d.uniform(0.0, 0.6), d.uniform(0.15, 0.95))
    bg2 = _hsv(d.uniform(), d.uniform(0.0, 0.6), d.uniform(0.15, 0.95))
    for k in ("bg_a", "bg_b", "bg_c", "bg_d"):
        p[k] = d.uniform()
    p["bright"] = d.uniform(0.75, 1.2)
    p["contrast"] = d.uniform(0.75, 1.15)
    p["light_angle"] = d.uniform(0, 2 * math.pi)
    p["light_strength"] = d.uniform(0.0, 0.35)
    p["noise"] = d.uniform(1.0, 6.0)
    cast = (d.uniform(0.92, 1.08), d.uniform(0.92, 1.08), d.uniform(0.92, 1.08))
    box = _subject_box(cx, cy, a, b, p, size)
    margin = max(1, round(size / 32))
    if spec.cue == "sticker":
        # keep the subject off the sticker: shift the head left as little as needed (the neck and
        # long hair reach the bottom edge, so shifting up would not do)
        sx0, sy0, _, _ = sticker_box(size)
        for _ in range(2):  # a second pass where the box was clipped at the right edge
            if box[2] > sx0 - margin and box[3] > sy0 - margin:
                cx -= box[2] - (sx0 - margin)
                box = _subject_box(cx, cy, a, b, p, size)
    else:
        # keep the subject off the watermark corner: shift the head right/down as little as needed
        wx0, wy0, wx1, wy1 = watermark_box(size)
        if box[0] < wx1 + margin and box[1] < wy1 + margin:
            dx, dy = wx1 + margin - box[0], wy1 + margin - box[1]
            if dx <= dy:
                cx += dx
            else:
                cy += dy
            box = _subject_box(cx, cy, a, b, p, size)
    colours = {"skin": skin, "hair": hair, "iris": iris, "lips": lips, "bg1": bg1, "bg2": bg2, "cast": cast}
    return Appearance(seed, synth_id, size, cx, cy, a, b, box, p, colours)  # type: ignore[arg-type]


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    pp, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, pp), (q, v, pp), (pp, v, t), (pp, q, v), (t, pp, v), (v, pp, q)][i]
    return (r * 255, g * 255, b * 255)


def _subject_box(cx: float, cy: float, a: float, b: float, p: dict[str, float], size: int) -> tuple[int, int, int, int]:
    """Bounding box of everything drawn for the person (hair, ears, head, neck), clipped to the image."""
    hv = p["hair_vol"] * b
    x0, x1 = cx - a * 1.15 - hv, cx + a * 1.15 + hv  # ears stick out to 1.13a
    y0 = cy - b - (0 if p["bald"] else 1.5 * hv) - 1
    y1 = max(cy + b * 1.45, cy + b * p["hair_len"] if p["long_hair"] else 0.0)  # the neck reaches 1.45b
    return (
        max(0, math.floor(x0) - 1),
        max(0, math.floor(y0) - 1),
        min(size, math.ceil(x1) + 1),
        min(size, math.ceil(y1) + 1),
    )
