"""The spurious check's figures: small deterministic PNG data URIs, robust to odd input."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image

from auditor import plotting as figures

PREFIX = "data:image/png;base64,"
HOSTILE = ["<script>alert(1)</script>", "$x$", "$\\frac{$", "x" * 500, "a\x00b\nc", ""]


def png(uri: str) -> tuple[Image.Image, int]:
    """Decode a data URI: the PNG and its size in bytes (fails unless it is a PNG data URI)."""
    assert uri.startswith(PREFIX)
    raw = base64.b64decode(uri[len(PREFIX):], validate=True)
    image = Image.open(io.BytesIO(raw))
    assert image.format == "PNG"
    image.load()
    return image, len(raw)


def smooth_images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Synthetic photo-like images: colour gradients with a bright blob each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3))
    for i in range(n):
        cx, cy = rng.random(2)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)
        out[i] = np.stack([xx, yy, 1 - xx], -1) * rng.uniform(0.3, 0.8, 3) + 0.3 * blob[..., None]
    return out.clip(0, 1)


def blobs(n: int, size: int = 64, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    return np.stack([np.exp(-((xx - a) ** 2 + (yy - b) ** 2) / 0.03) for a, b in rng.random((n, 2))])


def grids(n: int, g: int = 7, seed: int = 2) -> list[list[list[float]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = rng.random((g, g))
        out.append((m / m.sum()).tolist())
    return out


def overview(n: int = 6, **kw) -> str:
    """The overview of ``n`` classes, fewer images the later the class; ``kw`` replaces arguments."""
    args = {"classes": [f"class_{i}" for i in range(n)], "mean_images": list(smooth_images(n)), "maps": grids(n),
            "counts": list(range(n, 0, -1))}
    return figures.evidence_overview(**{**args, **kw})


def pairs(n: int = 6, size: int = 64, **kw) -> str:
    before = smooth_images(n, size)
    args = {"before": before, "after": before * 0.5, "labels_before": ["smiling 0.91"] * n,
            "labels_after": ["not_smiling 0.38"] * n, "box": (size // 4, size // 4, size // 2, size // 2),
            "title": "Finding 1: removal"}
    return figures.counterfactual_pairs(**{**args, **kw})


# -- every figure: a small PNG data URI, the same bytes for the same input --------------------------------


@pytest.mark.parametrize("draw", [
    lambda: overview(),
    lambda: figures.example_overlays(smooth_images(6), blobs(6), [f"img {i}" for i in range(6)],
                                     [(8, 8, 24, 24)] + [None] * 5),
    lambda: pairs(),
], ids=["evidence_overview", "example_overlays", "counterfactual_pairs"])
def test_png_data_uri_small_and_deterministic(draw):
    uri = draw()
    image, size = png(uri)
    assert 200 <= image.width <= 1200 and 150 <= image.height <= 900
    assert size < 150_000
    assert draw() == uri


def test_different_evidence_gives_different_bytes():
    images = smooth_images(3)
    a = figures.example_overlays(images, blobs(3, seed=1), ["a", "b", "c"])
    b = figures.example_overlays(images, blobs(3, seed=7), ["a", "b", "c"])
    assert a != b
    assert overview(2, maps=grids(2, seed=2)) != overview(2, maps=grids(2, seed=3))


def test_nan_is_drawn_as_zero():
    maps, evidence = np.array(grids(2)), blobs(2)
    maps[:, 0, :3] = evidence[:, :9, :9] = 0.0
    with_nan, ev_nan = maps.copy(), evidence.copy()
    with_nan[:, 0, :3] = ev_nan[:, :9, :9] = np.nan
    assert overview(2, maps=list(with_nan)) == overview(2, maps=list(maps))
    images = smooth_images(2)
    assert figures.example_overlays(images, ev_nan, ["a", "b"]) == figures.example_overlays(images, evidence, ["a", "b"])


# -- evidence_overview -------------------------------------------------------------------------------------


def test_overview_class_without_map_or_image():
    maps = grids(4)
    maps[1] = None  # no audited image predicted as this class
    maps[2] = np.full((7, 7), np.nan)
    images = list(smooth_images(4))
    images[3] = None  # a map but no mean image: drawn on a plain background
    drawn = png(overview(4, maps=maps, mean_images=images, counts=[3, 0, 2, 1]))[0]
    assert drawn.size == png(overview(4))[0].size  # every class keeps its panel


def test_overview_caps_panels_at_eight():
    many, few = png(overview(20))[0], png(overview(8))[0]
    assert many.size == few.size  # 8 panels either way (4 x 2)


def test_overview_odd_input():
    assert png(overview(len(HOSTILE), classes=HOSTILE))[0].width > 0  # mathtext off: "$\\frac{$" is a name
    assert png(figures.evidence_overview([], [], [], []))[0].width > 0
    # lists shorter than the classes, a 1x1 grid, a ragged grid, an all-zero grid, a count that is not a number
    odd = png(figures.evidence_overview(["a", "b", "c", "d"], [None], [[[1.0]], [[0.5, 0.5], [0.1]], np.zeros((7, 7))],
                                        [1, None, float("nan")]))[0]
    assert odd.size == png(overview(4))[0].size


# -- example_overlays --------------------------------------------------------------------------------------


def test_overlays_cap_columns_and_odd_input():
    nan = blobs(10)
    nan[:, :5] = np.nan
    boxes = [(0, 0, 64, 64), (50, 50, 10, 10), None, (-5, -5, 200, 200), ("a", 1, 2, 3), (np.nan, 0, 1, 1), 7]
    many = png(figures.example_overlays(smooth_images(10), nan, HOSTILE, boxes))[0]  # bad boxes are skipped
    eight = png(figures.example_overlays(smooth_images(8), blobs(8), ["t"] * 8))[0]
    assert many.size == eight.size


def test_overlays_empty_and_single():
    empty = png(figures.example_overlays(np.zeros((0, 64, 64, 3)), np.zeros((0, 64, 64)), []))[0]
    single = png(figures.example_overlays(smooth_images(1)[0], blobs(1)[0], ["one"]))[0]  # no batch axis
    assert empty.size == single.size  # one column either way: "no images", or the image


# -- counterfactual_pairs ----------------------------------------------------------------------------------


def test_pairs_cap_columns_and_hostile_labels():
    twelve = png(pairs(12, labels_before=HOSTILE * 3, labels_after=HOSTILE * 3, title="$x$ <b>" * 50,
                       row_titles=("removed <i>", "x" * 500)))[0]
    eight = png(pairs(8))[0]
    assert twelve.width == eight.width


def test_pairs_nan_and_short_label_lists():
    before = smooth_images(3)
    after = before.copy()
    after[:, :10] = np.nan
    drawn = png(pairs(3, before=before, after=after, labels_before=["a"], labels_after=[]))[0]
    assert drawn.size == png(pairs(3))[0].size


def test_large_input_is_downscaled_and_stays_small():
    size = 224
    rng = np.random.default_rng(3)
    noisy = (smooth_images(6, size) + rng.normal(0, 0.05, (6, size, size, 3))).clip(0, 1)
    for uri in (pairs(6, size, before=noisy, after=noisy[::-1]),
                figures.example_overlays(noisy, blobs(6, size), ["t"] * 6, [(20, 20, 120, 120)] * 6)):
        assert png(uri)[1] < 300_000
