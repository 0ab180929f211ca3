"""Drawing of the synthetic faces behind ``synth:faces`` (numpy + PIL ImageDraw, no model, no download).

One image is a pure function of ``(seed, synth_id, FaceSpec, size)``: a per-image RNG seeded with
``[seed, synth_id]`` draws every nuisance (layout, background, appearance, lighting, noise) up front
(`sample_appearance`), then `render` paints it at twice the size and box-downsamples, applies the
lighting, and finally stamps the planted cue (after capture, so it is not lit): the ``watermark``
(a square magenta/green logo, top-left) or the ``sticker`` (a solid orange disc, bottom-right),
chosen by ``FaceSpec.cue`` (`CUE_KINDS`); the face is laid out off the chosen cue's box.

The annotations shape the face: skin tone and hair colour follow ``race``; hair length, jaw and
face width follow ``gender``; face roundness, eye size, wrinkle lines and grey hair follow ``age``;
the mouth curves up (``smiling``) or is flat / curves down. Lips are the skin tone darkened and
reddened, so the mouth's contrast scales with the skin's luminance, as in photographs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "FaceSpec",
    "Appearance",
    "GENERATOR_VERSION",
    "WATERMARK_ORIGIN",
    "WATERMARK_PATTERN",
    "WATERMARK_COLOURS",
    "STICKER_MARGIN",
    "STICKER_PATTERN",
    "STICKER_COLOUR",
    "CUE_KINDS",
    "REFERENCE_SIZE",
    "watermark_box",
    "watermark_pixels",
    "sticker_box",
    "sticker_pixels",
    "cue_box",
    "cue_mask",
    "stamp_cue",
    "sample_appearance",
    "render",
]

GENERATOR_VERSION = "synth-faces-1"
REFERENCE_SIZE = 64

# The planted shortcut cue: a 7x7 "logo" of concentric magenta/green squares with a white dot,
# stamped at a fixed place in the top-left corner (pixels at the 64-px reference size; scaled with
# the image size). Faces are laid out so that the subject box never overlaps it.
WATERMARK_ORIGIN: tuple[int, int] = (3, 3)  # (x, y) of its top-left pixel at REFERENCE_SIZE
WATERMARK_COLOURS: tuple[tuple[int, int, int], ...] = ((255, 0, 255), (0, 255, 0), (255, 255, 255))
WATERMARK_PATTERN: tuple[str, ...] = (
    "MMMMMMM",
    "MGGGGGM",
    "MGMMMGM",
    "MGMWMGM",
    "MGMMMGM",
    "MGGGGGM",
    "MMMMMMM",
)
_WM_INDEX = {"M": 0, "G": 1, "W": 2}

# The second cue kind, for a model and cue a check was not tuned on: a solid disc of saturated
# orange, 9 px across at the reference size ("O" in the pattern; "." pixels are left as they are),
# STICKER_MARGIN pixels in from the bottom-right corner. No other part of an image is drawn at full
# saturation in this hue (backgrounds stop at saturation 0.6; skin and hair are duller).
STICKER_MARGIN = 3  # gap between the disc's box and the right/bottom edges at REFERENCE_SIZE
STICKER_COLOUR: tuple[int, int, int] = (255, 140, 0)
STICKER_PATTERN: tuple[str, ...] = (
    "..OOOOO..",
    ".OOOOOOO.",
    "OOOOOOOOO",
    "OOOOOOOOO",
    "OOOOOOOOO",
    "OOOOOOOOO",
    "OOOOOOOOO",
    ".OOOOOOO.",
    "..OOOOO..",
)
CUE_KINDS = ("watermark", "sticker")

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


def watermark_box(size: int) -> tuple[int, int, int, int]:
    """The cue's box ``(x0, y0, x1, y1)`` (x1/y1 exclusive) in an image of ``size`` pixels."""
    cell = max(1, round(size / REFERENCE_SIZE))
    x0 = round(WATERMARK_ORIGIN[0] * size / REFERENCE_SIZE)
    y0 = round(WATERMARK_ORIGIN[1] * size / REFERENCE_SIZE)
    n = len(WATERMARK_PATTERN)
    return x0, y0, x0 + n * cell, y0 + n * cell


def watermark_pixels(size: int) -> np.ndarray:
    """The cue as an ``(h, w, 3)`` uint8 array, exactly as stamped into an image of ``size`` pixels."""
    cell = max(1, round(size / REFERENCE_SIZE))
    idx = np.array([[_WM_INDEX[c] for c in row] for row in WATERMARK_PATTERN])
    pix = np.array(WATERMARK_COLOURS, dtype=np.uint8)[idx]
    return np.kron(pix, np.ones((cell, cell, 1), dtype=np.uint8)).astype(np.uint8)


def sticker_box(size: int) -> tuple[int, int, int, int]:
    """The sticker's box ``(x0, y0, x1, y1)`` (x1/y1 exclusive) in an image of ``size`` pixels."""
    cell = max(1, round(size / REFERENCE_SIZE))
    x1 = y1 = size - round(STICKER_MARGIN * size / REFERENCE_SIZE)
    n = len(STICKER_PATTERN)
    return x1 - n * cell, y1 - n * cell, x1, y1


def sticker_pixels(size: int) -> np.ndarray:
    """The sticker as an ``(h, w, 3)`` uint8 array over its box (0 where `cue_mask` is False)."""
    return np.where(cue_mask("sticker", size)[:, :, None], np.array(STICKER_COLOUR, dtype=np.uint8), np.uint8(0)).astype(np.uint8)


def cue_box(kind: str, size: int) -> tuple[int, int, int, int]:
    """The box of cue ``kind`` (one of `CUE_KINDS`) in an image of ``size`` pixels."""
    if kind not in CUE_KINDS:
        raise ValueError(f"unknown cue kind {kind!r}; use one of {list(CUE_KINDS)}")
    return watermark_box(size) if kind == "watermark" else sticker_box(size)


def cue_mask(kind: str, size: int) -> np.ndarray:
    """Which pixels of `cue_box` the cue ``kind`` paints, as an ``(h, w)`` bool array."""
    if kind not in CUE_KINDS:
        raise ValueError(f"unknown cue kind {kind!r}; use one of {list(CUE_KINDS)}")
    pattern = WATERMARK_PATTERN if kind == "watermark" else STICKER_PATTERN
    cell = max(1, round(size / REFERENCE_SIZE))
    mask = np.array([[c != "." for c in row] for row in pattern])
    return np.kron(mask, np.ones((cell, cell), dtype=bool)).astype(bool)


def stamp_cue(arr: np.ndarray, kind: str) -> None:
    """Paint cue ``kind`` into the square ``(size, size, 3)`` uint8 image ``arr`` in place."""
    x0, y0, x1, y1 = cue_box(kind, arr.shape[0])
    if kind == "watermark":
        arr[y0:y1, x0:x1] = watermark_pixels(arr.shape[0])
    else:
        patch = arr[y0:y1, x0:x1]
        patch[cue_mask(kind, arr.shape[0])] = np.array(STICKER_COLOUR, dtype=np.uint8)


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


def _background(ap: Appearance, s: int, rng: np.random.Generator) -> Image.Image:
    """The backdrop at ``s`` pixels: one of `BACKGROUNDS`, coloured from ``bg1``/``bg2``."""
    p, c1, c2 = ap.params, np.array(ap.colours["bg1"]), np.array(ap.colours["bg2"])
    kind = BACKGROUNDS[int(p["bg_kind"])]
    if kind == "blobs":
        im = Image.new("RGB", (s, s), tuple(int(v) for v in c1))
        draw = ImageDraw.Draw(im)
        for _ in range(3 + int(p["bg_a"] * 5)):
            x, y, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.08, 0.3) * s
            col = tuple(int(v) for v in c1 + (c2 - c1) * rng.uniform(0.3, 1.0))
            draw.ellipse((x - r, y - r * 0.8, x + r, y + r * 0.8), fill=col)
        return im
    if kind == "clouds":
        grid = rng.uniform(0, 1, (4, 4)).astype(np.float32)
        t = np.asarray(Image.fromarray(grid, mode="F").resize((s, s), Image.Resampling.BILINEAR))
    else:
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
        ang = p["bg_a"] * 2 * math.pi
        proj = xx * math.cos(ang) + yy * math.sin(ang)
        if kind == "solid":
            t = np.zeros((s, s), np.float32)
        elif kind == "linear":
            t = (proj - proj.min()) / (np.ptp(proj) + 1e-6)
        elif kind == "radial":
            r = np.hypot(xx - p["bg_b"], yy - p["bg_c"])
            t = r / (r.max() + 1e-6)
        elif kind == "stripes":
            t = (np.sin(2 * math.pi * proj * (3 + 6 * p["bg_b"])) > 0).astype(np.float32)
        else:  # checker
            k = 3 + int(5 * p["bg_b"])
            t = ((np.floor(xx * k) + np.floor(yy * k)) % 2).astype(np.float32)
    arr = c1[None, None, :] + (c2 - c1)[None, None, :] * t[:, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="RGB")


def _col(c: Sequence[float], k: float = 1.0) -> tuple[int, int, int]:
    return tuple(int(np.clip(v * k, 0, 255)) for v in c)  # type: ignore[return-value]


def _head_outline(cx: float, cy: float, a: float, b: float, p: dict[str, float], n: int = 40) -> list[tuple[float, float]]:
    """Head contour: an ellipse above the eyes, a superellipse jaw (squareness, chin taper) below."""
    pts = []
    for k in range(n):
        th = 2 * math.pi * k / n
        c, s_ = math.cos(th), math.sin(th)
        if s_ > 0:  # lower half (image y grows downwards)
            e = 2 / p["jaw_p"]
            x = a * math.copysign(abs(c) ** e, c) * (1 - p["taper"] * s_ * s_)
            y = b * abs(s_) ** e
        else:
            x, y = a * c, b * s_
        pts.append((cx + x, cy + y))
    return pts


def _draw_person(draw: ImageDraw.ImageDraw, ap: Appearance, sc: float) -> None:
    """Paint hair, neck, ears, head and facial features at scale ``sc`` (pixels per final pixel)."""
    p, col = ap.params, ap.colours
    cx, cy, a, b = ap.cx * sc, ap.cy * sc, ap.a * sc, ap.b * sc
    skin, hair = col["skin"], col["hair"]
    hv = p["hair_vol"] * b
    lw = max(1, round(sc))
    if p["long_hair"]:
        draw.rounded_rectangle(
            (cx - a * 1.1 - hv, cy - b * 0.6, cx + a * 1.1 + hv, cy + b * p["hair_len"]), radius=a * 0.5, fill=_col(hair)
        )
    draw.rectangle((cx - a * 0.42, cy + b * 0.5, cx + a * 0.42, cy + b * 1.45), fill=_col(skin, 0.88))
    for side in (-1, 1):
        ex = cx + side * a * 1.0
        draw.ellipse((ex - a * 0.13, cy - b * 0.18, ex + a * 0.13, cy + b * 0.22), fill=_col(skin, 0.93))
    if not p["bald"]:
        draw.ellipse((cx - a - hv, cy - b - 1.5 * hv, cx + a + hv, cy + b * 0.2), fill=_col(hair))
    else:
        for side in (-1, 1):
            draw.ellipse((cx + side * a * 0.9 - hv - a * 0.15, cy - b * 0.5, cx + side * a * 0.9 + hv + a * 0.15, cy + b * 0.1), fill=_col(hair))
    draw.polygon(_head_outline(cx, cy, a, b, p), fill=_col(skin))
    wrinkle = _col(skin, 0.8)
    for k in range(int(p["wrinkles"])):
        y = cy - b * (0.4 + 0.07 * k)
        draw.arc((cx - a * 0.45, y - b * 0.05, cx + a * 0.45, y + b * 0.05), 200, 340, fill=wrinkle, width=lw)
    if not p["bald"]:
        off = 30 + 12 * p["hair_vol"] / 0.16 - (8 if p["wrinkles"] >= 2 else 0)
        draw.chord((cx - a, cy - b, cx + a, cy + b), 180 + off, 360 - off, fill=_col(hair))
    # eyes, brows, crow's feet, glasses
    ey = cy + p["eye_y"] * b
    rx, ry = p["eye_rx"] * a, p["eye_ry"] * b
    for side in (-1, 1):
        ex = cx + side * p["eye_dx"] * a * 1.0
        draw.ellipse((ex - rx, ey - ry, ex + rx, ey + ry), fill=(238, 236, 230))
        ir = min(rx, ry) * 0.95
        draw.ellipse((ex - ir, ey - ir, ex + ir, ey + ir), fill=_col(col["iris"]))
        by = ey - p["brow_dy"] * b
        draw.line((ex - rx * 1.3, by + side * p["brow_tilt"] * b, ex + rx * 1.3, by - side * p["brow_tilt"] * b), fill=_col(hair, 0.9), width=max(lw, round(0.05 * b)))
        if p["crows"]:
            fx = ex + side * rx * 1.5
            draw.line((fx, ey - ry, fx + side * rx * 0.6, ey - ry * 2), fill=wrinkle, width=lw)
            draw.line((fx, ey + ry, fx + side * rx * 0.6, ey + ry * 2), fill=wrinkle, width=lw)
        if p["glasses"]:
            draw.ellipse((ex - rx * 1.9, ey - ry * 2.6, ex + rx * 1.9, ey + ry * 2.6), outline=(30, 30, 34), width=lw)
    if p["glasses"]:
        draw.line((cx - p["eye_dx"] * a + rx * 1.9, ey, cx + p["eye_dx"] * a - rx * 1.9, ey), fill=(30, 30, 34), width=lw)
    # nose
    nose = _col(skin, 0.78)
    ny = cy + p["nose_len"] * b
    draw.line((cx, cy - 0.02 * b, cx + 0.05 * a, ny, cx - 0.06 * a, ny + 0.03 * b), fill=nose, width=lw, joint="curve")
    # mouth: a parabola whose corners rise (smiling) or stay level / drop
    my, mw, dd = cy + p["mouth_y"] * b, p["mouth_w"] * a, p["mouth_d"] * b
    pts = []
    for k in range(11):
        u = -1 + 2 * k / 10
        pts.append((cx + u * mw, my + dd * (1 - u * u) - dd * 0.5 + p["mouth_tilt"] * b * u))
    draw.line(pts, fill=_col(col["lips"]), width=max(lw, round(p["mouth_t"] * b)), joint="curve")
    if p["wrinkles"] >= 1:
        for side in (-1, 1):
            x = cx + side * (mw + 0.08 * a)
            draw.line((cx + side * 0.18 * a, ny, x, my - dd * 0.5), fill=wrinkle, width=lw)


def _light(img: np.ndarray, ap: Appearance, rng: np.random.Generator) -> np.ndarray:
    """Colour cast, contrast about mid-grey, brightness, a directional light ramp and sensor noise."""
    p, n = ap.params, ap.size
    x = img.astype(np.float32) * np.asarray(ap.colours["cast"], np.float32)
    coords = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    ramp = 1 + p["light_strength"] * (math.cos(p["light_angle"]) * coords[None, :] + math.sin(p["light_angle"]) * coords[:, None])
    x = ((x - 128.0) * p["contrast"] + 128.0) * p["bright"] * ramp[:, :, None]
    x += rng.standard_normal(x.shape, dtype=np.float32) * p["noise"]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def render(ap: Appearance, spec: FaceSpec, *, draw_person: bool = True) -> Image.Image:
    """Render one RGB image of ``ap.size`` pixels (``draw_person=False``: the same scene without the person)."""
    rng = np.random.default_rng([ap.seed, ap.synth_id, 1])
    sc = 2
    im = _background(ap, ap.size * sc, rng)
    if draw_person:
        _draw_person(ImageDraw.Draw(im), ap, float(sc))
    arr = _light(np.asarray(im.reduce(sc)), ap, rng)
    if spec.watermark:
        stamp_cue(arr, spec.cue)
    return Image.fromarray(arr, mode="RGB")
