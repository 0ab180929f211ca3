"""The built-in synthetic probe ``synth:faces`` and its training-set generator."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from auditor.errors import ProbeError
from probes.base import Probe
from probes.synth import (
    CUE_KINDS,
    SYNTH_CLASSES,
    SynthProbe,
    generate_training_set,
    open_synth,
    watermark_box,
    watermark_pixels,
    write_manifest_folder,
)
from probes.synth_cue import cue_mask
from probes.synth_face import sample_appearance
from probes.synth_render import render
from probes.synth import _spec


@pytest.fixture(scope="module")
def probe() -> SynthProbe:
    return open_synth("synth:faces:n=200")


def _pixels(p: Probe, i: int) -> np.ndarray:
    return np.asarray(p.load_image(i))


def test_default_probe_has_the_contract_columns_and_options() -> None:
    p = open_synth("synth:faces")
    assert isinstance(p, Probe) and len(p) == 1200
    assert p.format == "synth" and p.root is None and p.target == "smiling"
    assert p.classes == SYNTH_CLASSES == ["not_smiling", "smiling"]
    assert p.attributes == ["gender", "age", "race"]
    for col in ("path", "label", "gender", "age", "age_raw", "race", "subject_box", "watermark"):
        assert col in p.table.columns
    assert p.meta["seed"] == 0 and p.meta["size"] == 64 and p.meta["version"]
    im = p.load_image(0)
    assert im.mode == "RGB" and im.size == (64, 64)


def test_same_seed_gives_the_same_table_and_pixels() -> None:
    a, b = open_synth("synth:faces:n=50,seed=3"), open_synth("synth:faces:n=50,seed=3")
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.sha256() == b.sha256()
    for i in (0, 17, 49):
        assert np.array_equal(_pixels(a, i), _pixels(b, i))


def test_different_seeds_differ() -> None:
    a, b = open_synth("synth:faces:n=50,seed=1"), open_synth("synth:faces:n=50,seed=2")
    assert not a.table[["gender", "race", "age_raw"]].equals(b.table[["gender", "race", "age_raw"]])
    assert not np.array_equal(_pixels(a, 0), _pixels(b, 0))
    assert a.sha256() != b.sha256()


def test_rendering_a_subset_of_rows_gives_the_same_images(probe: SynthProbe) -> None:
    sub = SynthProbe(**{**probe.__dict__, "table": probe.table.iloc[[5, 9]].reset_index(drop=True)})
    assert np.array_equal(_pixels(sub, 1), _pixels(probe, 9))


def test_groups_and_labels_are_balanced() -> None:
    p = open_synth("synth:faces")
    counts = p.group_counts(["gender", "age", "race"])
    assert counts["gender"] == {"female": 600, "male": 600}
    assert counts["race"] == {"asian": 300, "black": 300, "indian": 300, "white": 300}
    assert counts["age"] == {"0-19": 300, "20-39": 300, "40-59": 300, "60+": 300}
    assert p.table["label"].sum() == 600
    assert p.table["age_raw"].between(5, 85).all()


def test_watermark_rate_is_independent_of_the_label() -> None:
    t = open_synth("synth:faces").table
    rate = (t["watermark"] == "yes").groupby(t["smiling"]).mean()
    assert (t["watermark"] == "yes").sum() == 480  # 0.4 x 1200
    assert abs(rate["smiling"] - rate["not_smiling"]) < 0.06


def test_subject_boxes_lie_inside_the_image_and_off_the_watermark(probe: SynthProbe) -> None:
    wx0, wy0, wx1, wy1 = watermark_box(64)
    for x0, y0, x1, y1 in probe.table["subject_box"]:
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        assert x0 >= wx1 or y0 >= wy1  # no overlap with the cue


def test_subject_box_contains_everything_drawn_for_the_person(probe: SynthProbe) -> None:
    for i in range(60):  # long and short hair, bald heads, glasses, children, all placements
        row = probe.table.iloc[i]
        ap = sample_appearance(0, int(row["synth_id"]), _spec(row), 64)
        with_person = np.asarray(render(ap, _spec(row))).astype(int)
        without = np.asarray(render(ap, _spec(row), draw_person=False)).astype(int)
        changed = np.abs(with_person - without).sum(axis=2) > 0
        x0, y0, x1, y1 = row["subject_box"]
        inside = np.zeros_like(changed)
        inside[y0:y1, x0:x1] = True
        assert not changed[~inside].any(), i
        assert changed[inside].mean() > 0.3, i  # the person fills a good part of the box


def test_watermark_is_drawn_exactly_when_the_column_says_yes(probe: SynthProbe) -> None:
    x0, y0, x1, y1 = watermark_box(64)
    stamp = watermark_pixels(64)
    assert stamp.shape == (7, 7, 3)
    for i in range(40):
        patch = _pixels(probe, i)[y0:y1, x0:x1]
        assert np.array_equal(patch, stamp) == (probe.table.at[i, "watermark"] == "yes")


def test_watermark_scales_with_the_image_size() -> None:
    p = open_synth("synth:faces:n=20,size=128,watermark=1")
    x0, y0, x1, y1 = watermark_box(128)
    assert (x1 - x0, y1 - y0) == (14, 14)
    assert p.load_image(0).size == (128, 128)
    assert np.array_equal(_pixels(p, 0)[y0:y1, x0:x1], watermark_pixels(128))


def test_target_makes_an_annotation_the_label_and_leaves_the_default_attributes() -> None:
    p = open_synth("synth:faces:n=40", target="gender")
    assert p.target == "gender" and p.classes == ["female", "male"]
    assert p.attributes == ["age", "race"]
    assert [p.classes[k] for k in p.table["label"]] == list(p.table["gender"])


def test_explicitly_named_attributes_are_kept_even_when_one_is_the_target() -> None:
    p = open_synth("synth:faces:n=40", target="gender", sensitive="race,gender")
    assert p.attributes == ["race", "gender"]


def test_age_buckets_are_configurable() -> None:
    p = open_synth("synth:faces:n=100", age_buckets="0-39,40+")
    assert set(p.table["age"]) == {"0-39", "40+"}
    assert (p.table["age"] == "40+").equals(p.table["age_raw"] >= 40)


@pytest.mark.parametrize(
    "source, match",
    [
        ("synth:faces:colour=3", "valid options are n .*seed .*size .*watermark .*cue"),
        ("synth:faces:n=abc", "not a number"),
        ("synth:faces:watermark=2", "out of range"),
        ("synth:cars", "unknown synthetic probe"),
        ("synth:faces:cue=dot", "not a cue kind; use cue=watermark or cue=sticker"),
        ("synth:faces:cue=", "not a cue kind"),
    ],
)
def test_bad_options_are_refused_with_the_valid_ones(source: str, match: str) -> None:
    with pytest.raises(ProbeError, match=match):
        open_synth(source)


def test_unknown_target_or_sensitive_attribute_is_refused() -> None:
    with pytest.raises(ProbeError, match="choose one of"):
        open_synth("synth:faces:n=10", target="hat")
    with pytest.raises(ProbeError, match="choose among"):
        open_synth("synth:faces:n=10", sensitive=["hat"])


def test_training_set_shortcut_correlates_the_cue_with_the_label() -> None:
    t = generate_training_set(2000, seed=5, shortcut=0.95).table
    rate = (t["watermark"] == "yes").groupby(t["smiling"]).mean()
    assert rate["smiling"] == pytest.approx(0.95, abs=0.002)
    assert rate["not_smiling"] == pytest.approx(0.05, abs=0.002)


def test_training_set_shortcut_within_groups_only() -> None:
    t = generate_training_set(
        3000, seed=5, shortcut=1.0, shortcut_groups={"race": ["black"]}, group_weights={"race": {"black": 0.5}}
    ).table
    black = t[t["race"] == "black"]
    assert len(black) == round(3000 * 0.5 / 3.5)
    assert ((black["watermark"] == "yes") == (black["smiling"] == "smiling")).all()
    rest = t[t["race"] != "black"]
    rate = (rest["watermark"] == "yes").groupby(rest["smiling"]).mean()
    assert rate["smiling"] == pytest.approx(0.4, abs=0.04) and rate["not_smiling"] == pytest.approx(0.4, abs=0.04)


def test_training_set_label_noise_decouples_the_label_from_the_face() -> None:
    t = generate_training_set(2000, seed=5, label_noise={"race": {"black": 0.5}}).table
    disagree = t["expression"] != t["smiling"]
    assert disagree[t["race"] == "black"].mean() == pytest.approx(0.5, abs=0.01)
    assert not disagree[t["race"] != "black"].any()


def test_training_set_refuses_unknown_groups() -> None:
    with pytest.raises(ProbeError, match="unknown groups"):
        generate_training_set(10, seed=0, group_weights={"race": {"martian": 0.1}})


def test_write_manifest_folder_round_trips(probe: SynthProbe, tmp_path) -> None:
    small = SynthProbe(**{**probe.__dict__, "table": probe.table.iloc[:12].reset_index(drop=True)})
    out = write_manifest_folder(small, tmp_path / "probe")
    m = pd.read_csv(out / "manifest.csv")
    assert list(m.columns) == ["path", "label", "gender", "age", "race", "watermark", "subject_box"]
    assert list(m["label"]) == [small.classes[k] for k in small.table["label"]]
    assert list(m["age"]) == list(small.table["age_raw"])
    assert list(m["watermark"]) == list(small.table["watermark"])
    assert m.at[3, "subject_box"] == ",".join(map(str, small.table.at[3, "subject_box"]))
    for i in (0, 11):
        with Image.open(out / m.at[i, "path"]) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), _pixels(small, i))
    assert [p.name for p in tmp_path.iterdir()] == ["probe"]  # no temporary folder left behind


def test_write_manifest_folder_refuses_a_non_empty_folder_unless_forced(probe: SynthProbe, tmp_path) -> None:
    small = SynthProbe(**{**probe.__dict__, "table": probe.table.iloc[:2].reset_index(drop=True)})
    out = tmp_path / "probe"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ProbeError, match="--force"):
        write_manifest_folder(small, out)
    write_manifest_folder(small, out, force=True)
    assert not (out / "keep.txt").exists() and (out / "manifest.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe"]


def test_rendering_is_fast() -> None:
    import time

    p = open_synth("synth:faces:n=200")
    t0 = time.perf_counter()
    for i in range(200):
        p.load_image(i)
    assert time.perf_counter() - t0 < 2.0  # 1,000 images in well under 10 s


# The second cue kind, ``cue=sticker``: an orange disc in the bottom-right corner.

def test_default_cue_images_and_hash_are_unchanged_by_the_cue_option() -> None:
    # computed before the cue option existed: the default probe stays bit-identical
    p = open_synth("synth:faces:n=12,watermark=0.5")
    h = hashlib.sha256()
    for i in range(12):
        h.update(_pixels(p, i).tobytes())
    assert h.hexdigest() == "e00f114b7e6997f59f8704217855b0a5913b03827c193e49a803ede453c163c4"
    assert p.sha256() == "01416e9fe307ef5bf86f5a56481f73620dd047753bcb5be173ab6bfde50a9e16"
    assert open_synth("synth:faces:n=12,watermark=0.5,cue=watermark").sha256() == p.sha256()
    assert p.cue == "watermark" and p.cue_box == watermark_box(64) and "cue" not in p.meta


@pytest.fixture(scope="module")
def sticker_probe() -> SynthProbe:
    return open_synth("synth:faces:n=200,cue=sticker")


def test_sticker_option_parses_and_is_recorded(sticker_probe: SynthProbe) -> None:
    assert CUE_KINDS == ("watermark", "sticker")
    assert sticker_probe.cue == "sticker" and sticker_probe.meta["cue"] == "sticker"
    assert sticker_probe.cue_box == (52, 52, 61, 61)  # 9x9, 3 px in from the bottom-right corner
    assert (sticker_probe.table["watermark"] == "yes").sum() == 80  # the rate option applies to either cue
    assert sticker_probe.sha256() != open_synth("synth:faces:n=200").sha256()


def test_sticker_is_drawn_where_its_box_says_exactly_when_the_column_says_yes(sticker_probe: SynthProbe) -> None:
    x0, y0, x1, y1 = sticker_probe.cue_box
    mask = cue_mask("sticker", 64)
    assert mask.shape == (9, 9) and mask.sum() == 69 and not mask[0, 0] and mask[4].all()  # a disc, not a square
    orange = np.array([255, 140, 0])
    for i in range(40):
        img = _pixels(sticker_probe, i)
        is_orange = (img == orange).all(axis=2)
        drawn = sticker_probe.table.at[i, "watermark"] == "yes"
        assert is_orange[y0:y1, x0:x1][mask].all() == drawn, i
        outside = is_orange.copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any(), i  # that exact colour appears nowhere else
        assert not np.array_equal(img[3:10, 3:10], watermark_pixels(64))  # and no watermark


def test_sticker_stays_off_the_subject(sticker_probe: SynthProbe) -> None:
    sx0, sy0, _, _ = sticker_probe.cue_box
    for x0, y0, x1, y1 in sticker_probe.table["subject_box"]:
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        assert x1 <= sx0 or y1 <= sy0  # no overlap with the cue


def test_sticker_subject_box_contains_everything_drawn_for_the_person(sticker_probe: SynthProbe) -> None:
    for i in range(30):
        row = sticker_probe.table.iloc[i]
        spec = _spec(row, "sticker")
        ap = sample_appearance(0, int(row["synth_id"]), spec, 64)
        changed = np.abs(np.asarray(render(ap, spec)).astype(int) - np.asarray(render(ap, spec, draw_person=False)).astype(int)).sum(axis=2) > 0
        x0, y0, x1, y1 = row["subject_box"]
        assert (x0, y0, x1, y1) == ap.box
        inside = np.zeros_like(changed)
        inside[y0:y1, x0:x1] = True
        assert not changed[~inside].any(), i


@pytest.mark.parametrize("size, box", [(32, (21, 21, 30, 30)), (128, (104, 104, 122, 122))])
def test_sticker_scales_with_the_image_size(size: int, box: tuple[int, int, int, int]) -> None:
    p = open_synth(f"synth:faces:n=10,size={size},cue=sticker,watermark=1")
    assert p.cue_box == box
    x0, y0, x1, y1 = box
    for i in range(10):
        patch = _pixels(p, i)[y0:y1, x0:x1]
        assert (patch[cue_mask("sticker", size)] == [255, 140, 0]).all()
        bx0, by0, bx1, by1 = p.table.at[i, "subject_box"]
        assert bx1 <= x0 or by1 <= y0


def test_training_set_takes_the_cue_kind() -> None:
    t = generate_training_set(400, seed=5, cue="sticker", shortcut=1.0, shortcut_groups={"age": ["60+"]})
    assert t.cue == "sticker" and "cue=sticker" in t.source
    old = t.table[t.table["age_raw"] >= 60]
    assert ((old["watermark"] == "yes") == (old["smiling"] == "smiling")).all()
    i = int(np.flatnonzero(t.table["watermark"] == "yes")[0])
    x0, y0, x1, y1 = t.cue_box
    assert (_pixels(t, i)[y0:y1, x0:x1][cue_mask("sticker", 64)] == [255, 140, 0]).all()
    with pytest.raises(ProbeError, match="not a cue kind"):
        generate_training_set(10, seed=0, cue="logo")


def test_write_manifest_folder_records_a_non_default_cue(sticker_probe: SynthProbe, tmp_path) -> None:
    small = SynthProbe(**{**sticker_probe.__dict__, "table": sticker_probe.table.iloc[:3].reset_index(drop=True)})
    m = pd.read_csv(write_manifest_folder(small, tmp_path / "probe") / "manifest.csv")
    assert list(m.columns) == ["path", "label", "gender", "age", "race", "watermark", "cue", "subject_box"]
    assert set(m["cue"]) == {"sticker"}
