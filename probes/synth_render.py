"""Drawing of the synthetic faces behind ``synth:faces`` (numpy + PIL ImageDraw, no model, no download).

One image is a pure function of ``(seed, synth_id, FaceSpec, size)``: `sample_appearance`
(``probes.synth_face``) draws every nuisance up front, then `render` paints it at twice the size and
box-downsamples, applies the lighting, and finally stamps the planted cue (after capture, so it is not
lit; ``probes.synth_cue``). `GENERATOR_VERSION` names this drawing: a change to any of the three
modules that changes a pixel changes it.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from probes.synth_cue import stamp_cue
from probes.synth_face import BACKGROUNDS, Appearance, FaceSpec

__all__ = ["GENERATOR_VERSION", "render"]

GENERATOR_VERSION = "synth-faces-1"


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
