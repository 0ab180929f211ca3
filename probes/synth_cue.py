"""The planted cue of ``synth:faces``: the ``watermark`` (a square magenta/green logo, top-left) and the
``sticker`` (a solid orange disc, bottom-right), chosen by ``FaceSpec.cue`` (`CUE_KINDS`).

Each is drawn from a pattern at the 64-pixel `REFERENCE_SIZE` and scaled with the image: `cue_box` is
where it lies, `cue_mask` which pixels of that box it paints, `stamp_cue` paints it into an image.
"""
from __future__ import annotations

import numpy as np

__all__ = [
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
]

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
