"""Evidence aggregation and counterfactual confirmation of the spurious-correlation check, on
hand-made evidence maps and a hand-made model whose answer depends only on a known patch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from auditor.spurious.counterfactual import confirm, control_box, remove_region, transplant_region
from auditor.spurious.evidence import (
    candidates, class_maps, consistency, off_subject_cells, off_subject_share, subjects_from_boxes, to_grid,
)

SIZE = 64
PATCH = (52, 52, 60, 60)  # x0, y0, x1, y1: bottom-right corner


def _maps(n: int, where=PATCH, seed=0, jitter=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = rng.random((n, SIZE, SIZE)) * 0.01
    for i in range(n):
        dx, dy = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
        x0, y0, x1, y1 = where
        ev[i, max(0, y0 + dy):y1 + dy, max(0, x0 + dx):x1 + dx] += 1.0
    return ev


def test_grids_sum_to_one_per_image_and_per_class_map():
    grids = to_grid(_maps(6), 8)
    assert grids.shape == (6, 8, 8)
    assert np.allclose(grids.sum(axis=(1, 2)), 1.0)
    maps = class_maps(grids, np.array([0, 0, 0, 1, 1, 1]), ["a", "b", "c"])
    assert maps["c"] is None  # no image predicted as c
    assert sum(map(sum, maps["a"])) == pytest.approx(1.0, abs=1e-5)
    assert len(maps["a"]) == 8 and len(maps["a"][0]) == 8


def test_a_cue_at_the_same_place_in_every_image_is_a_consistent_candidate():
    grids = to_grid(_maps(20), 8)
    mean = grids.mean(axis=0)
    found = candidates(mean, consistency(grids), (SIZE, SIZE))
    assert found, "the patch should be a candidate"
    x0, y0, x1, y1 = found[0].box
    assert x0 <= PATCH[0] and y0 <= PATCH[1] and x1 >= PATCH[2] and y1 >= PATCH[3]
    assert (x1 - x0) * (y1 - y0) <= 4 * 8 * 8 * 4  # a few cells, not the image
    assert found[0].share > 0.7 and found[0].consistency == 1.0  # the rest is the faint background


def test_evidence_that_moves_from_image_to_image_gives_no_candidate():
    rng = np.random.default_rng(1)
    ev = np.concatenate([_maps(1, (x, y, x + 8, y + 8), seed=i) for i, (x, y) in enumerate(rng.integers(0, 56, (30, 2)))])
    grids = to_grid(ev, 8)
    assert candidates(grids.mean(axis=0), consistency(grids), (SIZE, SIZE)) == []


def test_off_subject_share_uses_the_subject_boxes():
    ev = _maps(4)
    boxes = np.array([[10, 10, 40, 40]] * 3 + [[np.nan] * 4])
    subjects = subjects_from_boxes(boxes, (SIZE, SIZE))
    share = off_subject_share(ev, subjects)
    assert share[:3] == pytest.approx([share[0]] * 3, abs=0.01) and share[0] > 0.9
    assert np.isnan(share[3])
    cells = off_subject_cells(to_grid(ev, 8), subjects)
    assert cells[7, 7] == pytest.approx(1.0)  # the patch's cell lies wholly off the subject


def test_a_subject_mask_counts_only_its_own_pixels():
    ev = np.zeros((1, SIZE, SIZE))
    ev[0, :, :SIZE // 2] = 1.0  # evidence on the left half
    subject = np.zeros((1, SIZE, SIZE))
    subject[0, :, :SIZE // 4] = 1.0  # the subject is the left quarter
    assert off_subject_share(ev, subject)[0] == pytest.approx(0.5)
    cells = off_subject_cells(to_grid(ev, 4), subject)
    assert cells[0, 0] == pytest.approx(0.0) and cells[0, 1] == pytest.approx(1.0) and np.isnan(cells[0, 3])


def _patch_model(x: torch.Tensor) -> torch.Tensor:
    """Class 1 when the bottom-right patch is red, whatever the rest of the image shows."""
    x0, y0, x1, y1 = PATCH
    red = x[:, 0, y0:y1, x0:x1].mean(dim=(1, 2)) - x[:, 1:, y0:y1, x0:x1].mean(dim=(1, 2, 3))
    z = 20 * (red - 0.3)
    return torch.stack([-z, z], dim=1)


def _images(n: int, seed=0) -> tuple[torch.Tensor, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, SIZE, SIZE, generator=g) * 0.5 + 0.25
    has = np.arange(n) % 2 == 0
    x0, y0, x1, y1 = PATCH
    x[torch.as_tensor(has), :, y0:y1, x0:x1] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    return x, has


def test_region_removal_fills_with_the_surrounding_colour_and_transplant_copies():
    x, has = _images(4)
    out = remove_region(x, PATCH)
    assert out[0, 0, 55, 55] < 0.9  # the red is gone
    assert torch.equal(out[..., :40, :40], x[..., :40, :40])  # nothing else changed
    moved = transplant_region(x[1:2], x[0:1], PATCH)
    assert torch.equal(moved[..., 52:60, 52:60], x[0:1, :, 52:60, 52:60])


def test_control_box_avoids_the_cue_and_the_evidence():
    grids = to_grid(_maps(10), 8)
    ctrl = control_box(grids.mean(axis=0), PATCH, (SIZE, SIZE))
    assert ctrl[2] - ctrl[0] == 8 and ctrl[3] - ctrl[1] == 8
    assert ctrl[2] <= PATCH[0] or ctrl[3] <= PATCH[1]


def test_the_true_cue_is_confirmed_by_removal_and_transplant_and_a_decoy_is_not():
    x, has = _images(40)
    predicted = _patch_model(x).argmax(dim=1).numpy()
    assert (predicted == has.astype(int)).all()
    mean = to_grid(_maps(10), 8).mean(axis=0)
    groups = {"gender": np.where(np.arange(40) % 4 < 2, "female", "male")}
    real = confirm(_patch_model, x, predicted, has, PATCH, 1, mean, groups=groups)
    assert real.confirmed and real.removal_flip_rate == 1.0 and real.transplant_flip_rate == 1.0
    assert real.control_removal_flip_rate == 0.0 and real.control_transplant_flip_rate == 0.0
    assert real.by_group["gender"]["female"]["removal_flip_rate"] == 1.0
    decoy = (10, 10, 18, 18)
    fake = confirm(_patch_model, x, predicted, has, decoy, 1, mean)
    assert not fake.confirmed and fake.removal_flip_rate == 0.0


def test_the_control_box_reaches_the_far_edges_and_never_is_the_cue_itself():
    flat = np.full((8, 8), 1 / 64)
    big = (16, 24, 40, 56)  # wider and taller than half the image in y: every position overlaps it
    ctrl = control_box(flat, big, (64, 64))
    assert ctrl != big and (ctrl[2] - ctrl[0], ctrl[3] - ctrl[1]) == (24, 32)
    assert ctrl[0] in (0, 40)  # pushed to an edge, the least overlap
    grid = np.full((8, 8), 1.0)
    grid[6:, 6:] = 0.0  # the only evidence-free place is the bottom-right corner
    assert control_box(grid / grid.sum(), (0, 0, 16, 16), (64, 64)) == (48, 48, 64, 64)
