"""Batched meaningful-perturbation masks (auditor.spurious): behaviour on hand-made models."""
from __future__ import annotations

import pytest
import torch

from auditor.spurious import deletion_score, insertion_score, learn_masks, perturbed, saliency_curve
from auditor.validation import ParameterError

SIZE = 32
PATCH = (slice(20, 26), slice(4, 10))  # rows, cols of the 6x6 region the model reads
AROUND = (slice(18, 28), slice(2, 12))  # the patch grown by 2 px (the mask is smooth)
FAST = dict(steps=100, mask_size=(16, 16), seed=0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


class PatchModel(torch.nn.Module):
    """Class-1 logit = 10 * (mean of the 6x6 patch - 0.6); class-0 logit 0. Nothing else matters."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))
        self.offset = torch.nn.Parameter(torch.tensor(0.6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.scale * (x[:, :, PATCH[0], PATCH[1]].mean((1, 2, 3)) - self.offset)
        return torch.stack([torch.zeros_like(z), z], 1)


class TinyCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
            torch.nn.Dropout(0.5), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def patch_images(n: int = 4, value: float = 0.9) -> torch.Tensor:
    x = torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    x[:, :, PATCH[0], PATCH[1]] = value
    return x


def share(masks: torch.Tensor, region: tuple[slice, slice]) -> torch.Tensor:
    inside = masks[..., region[0], region[1]].flatten(-2).sum(-1)
    return inside / masks.flatten(-2).sum(-1)


def ones(n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.long)


@pytest.mark.parametrize("game", ["deletion", "preservation"])
def test_mask_concentrates_on_the_patch_the_model_reads(game):
    result = learn_masks(PatchModel(), patch_images(), ones(4), game=game, operator="fill", **FAST)
    assert result.masks.shape == (4, 1, SIZE, SIZE)
    assert bool(result.converged.all())
    assert float(share(result.masks, AROUND).min()) > 0.75  # patch + 2 px is 10% of the image
    assert float(result.area.max()) < 0.15


@pytest.mark.parametrize("game", ["deletion", "preservation"])
def test_extremal_masks_have_the_requested_areas(game):
    areas = (0.05, 0.1, 0.2)
    result = learn_masks(PatchModel(), patch_images(2), ones(2), game=game, areas=areas, operator="fill", **FAST)
    assert result.masks.shape == (2, 3, SIZE, SIZE)
    assert torch.allclose(result.area, torch.tensor(areas).expand(2, 3), atol=0.01)
    assert float(share(result.masks[:, 0], AROUND).min()) > 0.75  # the smallest area sits on the patch


def test_fill_removes_a_flat_patch_that_blur_keeps():
    model, x = PatchModel(), patch_images(2)
    delete_all = torch.zeros(2, SIZE, SIZE)
    p_blur = torch.softmax(model(perturbed(x, delete_all, "blur")), 1)[:, 1]
    p_fill = torch.softmax(model(perturbed(x, delete_all, "fill")), 1)[:, 1]
    assert bool((p_blur > 0.5).all()) and bool((p_fill < 0.5).all())  # blurring the whole image keeps the class
    blurred = learn_masks(model, x, ones(2), operator="blur", **FAST)
    filled = learn_masks(model, x, ones(2), operator="fill", **FAST)
    assert not bool(blurred.converged.any()) and bool(filled.converged.all())


def test_same_seed_gives_identical_masks():
    torch.manual_seed(0)
    model, x = TinyCNN(), patch_images(3)
    kw = dict(FAST, jitter=2, steps=30, areas=(0.1, 0.3))  # fixed areas: the masks cannot collapse to 0
    a = learn_masks(model, x, [0, 1, 2], **kw)
    b = learn_masks(model, x, [0, 1, 2], **kw)
    c = learn_masks(model, x, [0, 1, 2], **dict(kw, seed=1))
    assert torch.equal(a.masks, b.masks) and torch.equal(a.prob_masked, b.prob_masked)
    assert not torch.equal(a.masks, c.masks)  # the seed drives the jitter


def test_model_is_left_as_found():
    model = TinyCNN().train()
    model.body[0].weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    learn_masks(model, patch_images(2), [0, 1], steps=3)
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    deletion_score(model, patch_images(2), [0, 1], torch.rand(2, SIZE, SIZE), steps=4)
    assert not model.training and [p.requires_grad for p in model.parameters()] == flags


def test_batched_and_one_at_a_time_agree():
    torch.manual_seed(0)
    model, x = TinyCNN(), patch_images(4)
    kw = dict(FAST, jitter=2, steps=40, areas=(0.1, 0.3))
    batched = learn_masks(model, x, [0, 1, 2, 0], batch_size=4, **kw)
    single = learn_masks(model, x, [0, 1, 2, 0], batch_size=1, **kw)
    assert float(batched.area.min()) > 0.05
    assert torch.allclose(batched.masks, single.masks, atol=1e-3)
    assert batched.forward_passes == single.forward_passes == 1 + 4 + 4 * 2 * (40 + 1)
    assert batched.backward_passes == 4 * 2 * 40


def test_progress_is_told_after_every_step_in_image_steps_and_cancel_is_asked():
    seen = []
    learn_masks(PatchModel(), patch_images(3), ones(3), steps=2, batch_size=2, progress=lambda *a: seen.append(a))
    assert seen == [("masks", 2, 6), ("masks", 4, 6), ("masks", 5, 6), ("masks", 6, 6)]  # chunks of 2 and 1 images
    from auditor.errors import AuditCancelled
    with pytest.raises(AuditCancelled):
        learn_masks(PatchModel(), patch_images(3), ones(3), steps=2, cancel=lambda: True)


@pytest.mark.parametrize("images, targets, kw, param", [
    (torch.zeros(0, 3, SIZE, SIZE), torch.zeros(0, dtype=torch.long), {}, "images"),
    (torch.zeros(2, SIZE, SIZE), [0, 1], {}, "images"),
    (torch.zeros(2, 1, SIZE, SIZE), [0, 1], {}, "images"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, 2], {}, "targets"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, -1], {}, "targets"),
    (torch.zeros(2, 3, SIZE, SIZE), [0], {}, "targets"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, 1], {"game": "insertion"}, "game"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, 1], {"areas": (0.1, 1.5)}, "areas"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, 1], {"operator": "noise"}, "operator"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, 1], {"mask_size": (64, 8)}, "mask_size"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, 1], {"steps": 0}, "steps"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, 1], {"lr": 0.0}, "lr"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, 1], {"tv_weight": -1.0}, "tv_weight"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, 1], {"area_weight": -1.0}, "area_weight"),
    (torch.zeros(2, 3, SIZE, SIZE), [0, 1], {"jitter": -1}, "jitter"),
])
def test_bad_input_names_the_parameter(images, targets, kw, param):
    with pytest.raises(ParameterError, match=f"'{param}' parameter of learn_masks"):
        learn_masks(PatchModel(), images, targets, **kw)


def test_deletion_score_is_lower_for_the_true_patch_than_for_random_saliency():
    model, x = PatchModel(), patch_images(4)
    truth = torch.zeros(4, SIZE, SIZE)
    truth[:, PATCH[0], PATCH[1]] = 1.0
    noise = torch.rand(4, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    good = deletion_score(model, x, ones(4), truth, steps=16)
    bad = deletion_score(model, x, ones(4), noise, steps=16)
    assert good.shape == (4,) and bool((good < bad - 0.3).all())
    with pytest.raises(ValueError, match="'saliency' parameter of deletion_score"):
        deletion_score(model, x, ones(4), torch.rand(4, 8, 8))


def test_insertion_score_is_higher_for_the_true_patch_than_for_random_saliency():
    model, x = PatchModel(), patch_images(4)
    truth = torch.zeros(4, SIZE, SIZE)
    truth[:, PATCH[0], PATCH[1]] = 1.0
    noise = torch.rand(4, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    good = insertion_score(model, x, ones(4), truth, steps=16)
    bad = insertion_score(model, x, ones(4), noise, steps=16)
    assert good.shape == (4,) and bool((good > bad + 0.2).all())  # truth 0.93, noise 0.65-0.72
    with pytest.raises(ValueError, match="'saliency' parameter of insertion_score"):
        insertion_score(model, x, ones(4), torch.full((4, SIZE, SIZE), float("nan")))


def test_deletion_and_insertion_curves_run_between_the_image_and_its_perturbation():
    model, x = PatchModel(), patch_images(3)
    sal = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    deletion = saliency_curve(model, x, ones(3), sal, 8, game="deletion")
    insertion = saliency_curve(model, x, ones(3), sal, 8, game="insertion")
    assert deletion.shape == insertion.shape == (3, 9)
    # deletion starts at the image and ends fully perturbed; insertion goes the other way
    torch.testing.assert_close(deletion[:, 0], insertion[:, -1])
    torch.testing.assert_close(deletion[:, -1], insertion[:, 0])
    assert float(deletion[:, 0].min()) > 0.9 and float(deletion[:, -1].max()) < 0.3  # grey patch: logit -1
    with pytest.raises(ValueError, match="'game' parameter of saliency_curve"):
        saliency_curve(model, x, ones(3), sal, 8, game="preservation")


def test_learned_deletion_mask_scores_like_the_true_patch():
    model, x = PatchModel(), patch_images(2)
    masks = learn_masks(model, x, ones(2), operator="fill", **FAST).masks
    learned = deletion_score(model, x, ones(2), masks, steps=16)
    noise = deletion_score(model, x, ones(2), torch.rand(2, SIZE, SIZE, generator=torch.Generator().manual_seed(1)), steps=16)
    assert bool((learned < noise - 0.3).all())
