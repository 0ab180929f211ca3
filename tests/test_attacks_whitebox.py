"""White-box attacks (auditor.attacks.whitebox): known answers on a linear model, the eps ball and the
[0, 1] box, determinism, the model left as found, bad arguments, and agreement with ART's PGD."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from auditor.attacks.whitebox import (
    AttackResult,
    fgsm,
    input_gradients,
    minimal_eps,
    pgd,
    robust_accuracy_curve,
)
from auditor.errors import AuditCancelled, UsageError
from auditor.validation import ParameterError

SHAPE = (3, 2, 2)  # a tiny image: 12 pixels
OFFSETS = [0.0, 0.02, 0.05, 0.08, 0.1]  # per-image shift away from the boundary: different margins


class TwoClassLinear(nn.Module):
    """logits = [0, w . x + b]: class 1 exactly when w . x + b > 0."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


@pytest.fixture
def linear():
    """The model, images near 0.5 (the box never binds), labels (all predicted right) and the hand answers:
    minimal linf eps |z| / ||w||_1 and minimal l2 eps |z| / ||w||_2, with z = w . x + b."""
    g = torch.Generator().manual_seed(3)
    signs = torch.where(torch.rand(12, generator=g) < 0.5, -1.0, 1.0)
    w = 0.1 * signs * (0.2 + 1.8 * torch.rand(12, generator=g))  # uneven: the l2 step is not the sign step
    b = -0.5 * float(w.sum()) - 0.03  # z = -0.03 at x = 0.5
    model = TwoClassLinear(w, b)
    x = torch.stack([(0.5 - t * w.sign()).view(SHAPE) for t in OFFSETS])  # moving against sign(w) lowers z
    z = x.flatten(1) @ w + b
    y = torch.zeros(len(OFFSETS), dtype=torch.long)
    linf = (z.abs() / w.abs().sum()).numpy()
    l2 = (z.abs() / w.norm()).numpy()
    assert (z < 0).all() and linf.max() < 0.2 and l2.max() < 0.7
    return model, x, y, {"linf": linf, "l2": l2}


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2),
        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 3),
    )


@pytest.fixture(scope="module")
def cnn_weights():
    """A small CNN fitted for a few steps to random labels on random 8x8 images: margins PGD can cross."""
    model = small_cnn()
    x = torch.rand(20, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(2))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(15):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), labels).backward()
        optimiser.step()
    return model.state_dict(), x


@pytest.fixture
def cnn_batch(cnn_weights):
    """A fresh copy of the CNN in training mode, the images and the model's own predictions as labels."""
    state, x = cnn_weights
    model = small_cnn()
    model.load_state_dict(state)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    model.train()
    return model, x, y


# --- known answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("attack", [fgsm, pgd])
def test_an_attack_flips_just_above_the_minimal_eps_and_not_below(linear, attack, norm):
    model, x, y, answers = linear
    eps = torch.tensor(answers[norm], dtype=torch.float32)
    above = attack(model, x, y, eps * 1.05, norm=norm)
    below = attack(model, x, y, eps * 0.95, norm=norm)
    assert above.success.all()
    assert not below.success.any()
    with torch.no_grad():
        assert (model(above.x_adv).argmax(1) == 1).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_a_scalar_eps_flips_exactly_the_images_with_a_smaller_minimal_eps(linear, norm):
    model, x, y, answers = linear
    ordered = np.sort(answers[norm])
    eps = float(ordered[1] + ordered[2]) / 2  # between two images' minimal eps
    expected = answers[norm] < eps
    assert 0 < expected.sum() < len(expected)
    assert (pgd(model, x, y, eps, norm=norm).success.numpy() == expected).all()
    assert (fgsm(model, x, y, eps, norm=norm).success.numpy() == expected).all()


def test_pgd_keeps_the_first_adversarial_iterate_or_the_strongest_one(linear):
    model, x, y, _ = linear
    eps = 0.3  # above every minimal linf eps, and the corner x + eps * sign(w) stays inside [0, 1]
    corner = x + eps * model.w.detach().sign().view(SHAPE)  # the lowest-margin point of the linf ball
    first = pgd(model, x, y, eps)
    strongest = pgd(model, x, y, eps, keep="strongest")
    assert first.success.all() and strongest.success.all()
    assert torch.allclose(strongest.x_adv, corner, atol=1e-6)  # 10 steps of 0.25 eps reach the corner
    with torch.no_grad():
        z_first, z_strongest = model(first.x_adv)[:, 1], model(strongest.x_adv)[:, 1]
    assert (z_first <= z_strongest + 1e-6).all() and (z_first < z_strongest - 1e-3).any()
    assert strongest.settings["keep"] == "strongest" and "keep" not in first.settings


@pytest.mark.parametrize("random_start", [True, False])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_minimal_eps_is_within_tol_above_the_hand_values(linear, norm, random_start):
    model, x, y, answers = linear
    result = minimal_eps(model, x, y, norm=norm, eps_max=1.0, random_start=random_start)
    tol = 1 / 255 if norm == "linf" else 0.01
    # From a random start, 10 l2 steps leave part of the random direction in the perturbation (its
    # component along w reaches ~98% of eps), so the eps found is up to ~2% high; linf sign steps reach the corner.
    slack = 0.03 * answers[norm] if (norm == "l2" and random_start) else 0.0
    assert np.all(result.eps >= answers[norm] - 1e-5)
    assert np.all(result.eps <= answers[norm] + tol + slack)
    with torch.no_grad():
        assert (model(result.x_adv).argmax(1) == 1).all()
    distance = (result.x_adv - x).flatten(1)
    distance = distance.abs().amax(1) if norm == "linf" else distance.norm(dim=1)
    assert np.all(distance.numpy() <= result.eps + 1e-5)


def test_minimal_eps_is_zero_when_already_wrong_and_inf_when_eps_max_does_not_flip(linear):
    model, x, y, answers = linear
    y = y.clone()
    y[0] = 1  # predicted 0: already misclassified
    result = minimal_eps(model, x, y, eps_max=float(answers["linf"][2]) * 0.9)
    assert result.eps[0] == 0.0
    assert np.isinf(result.eps[2:]).all()  # minimal eps above eps_max
    assert abs(result.eps[1] - answers["linf"][1]) <= 1 / 255
    assert torch.equal(result.x_adv[0], x[0]) and torch.equal(result.x_adv[2:], x[2:])


def test_the_curve_is_correct_exactly_below_each_images_minimal_eps(linear):
    model, x, y, answers = linear
    grid = [0.0, 0.17, 0.05, 0.11, 0.2]  # unsorted on purpose; none near a hand value
    assert np.abs(np.subtract.outer(grid, answers["linf"])).min() > 0.005
    curve = robust_accuracy_curve(model, x, y, grid)
    assert curve.correct.shape == (len(grid), len(OFFSETS)) and curve.correct.dtype == bool
    assert (curve.correct == (np.array(grid)[:, None] < answers["linf"][None, :])).all()
    assert curve.eps == grid
    np.testing.assert_allclose(curve.robust_accuracy, curve.correct.mean(1))


def test_the_curve_counts_images_wrong_at_eps_zero_as_wrong_at_every_eps(cnn_batch):
    model, x, y = cnn_batch
    y = y.clone()
    y[:5] = (y[:5] + 1) % 3
    grid = [0.0, 0.01, 0.03, 0.1]
    curve = robust_accuracy_curve(model, x, y, grid, attack="pgd", steps=3, random_start=False)
    assert not curve.correct[:, :5].any()
    assert curve.correct[0, 5:].all()
    for row, eps in zip(curve.correct[1:], grid[1:]):  # each eps is the plain attack at that eps
        alone = pgd(model, x[5:], y[5:], eps, steps=3, random_start=False)
        assert (row[5:] == ~alone.success.numpy()).all()
    assert 0 < curve.correct[-1].sum() < curve.correct[0].sum()  # eps 0.1 breaks some images, not all
    fgsm_curve = robust_accuracy_curve(model, x, y, [0.0, 0.03], attack="fgsm")
    assert not fgsm_curve.correct[:, :5].any() and fgsm_curve.settings["attack"] == "fgsm"
    assert (fgsm_curve.correct[1, 5:] == ~fgsm(model, x[5:], y[5:], 0.03).success.numpy()).all()


def test_input_gradients_are_the_cross_entropy_gradient(linear):
    model, x, y, _ = linear
    with torch.no_grad():  # the gradient is taken anyway
        grad = input_gradients(model, x, y)
    z = x.flatten(1) @ model.w.detach() + model.b.detach()
    expected = torch.sigmoid(z)[:, None] * model.w.detach()[None, :]  # d CE(y=0) / dx = p1 * w
    torch.testing.assert_close(grad.flatten(1), expected)
    assert grad.shape == x.shape


def test_eps_zero_returns_x_and_success_is_the_clean_errors(linear):
    model, x, y, _ = linear
    y = y.clone()
    y[1] = 1
    for result in (pgd(model, x, y, 0.0), fgsm(model, x, y, 0.0)):
        assert torch.equal(result.x_adv, x)
        assert result.success.tolist() == [False, True, False, False, False]
        assert result.backward_passes == 0


def test_an_already_misclassified_image_counts_and_keeps_an_adversarial_image(linear):
    model, x, y, _ = linear
    y = y.clone()
    y[1] = 1
    for result in (pgd(model, x, y, 0.01), fgsm(model, x, y, 0.01)):
        assert bool(result.success[1])
        with torch.no_grad():
            assert int(model(result.x_adv[1:2]).argmax(1)) != 1


# --- the ball, the box, determinism, cost ---------------------------------------------------


@pytest.mark.parametrize("norm,eps", [("linf", 0.03), ("l2", 0.3)])
def test_pgd_stays_in_the_eps_ball_and_the_box(cnn_batch, norm, eps):
    model, x, y = cnn_batch
    x = x.clone()
    x[:4] = x[:4].round()  # pixels at 0 and 1: the box binds
    per_image = torch.linspace(0.0, eps, x.shape[0])
    for e, bound in ((eps, torch.full((x.shape[0],), eps)), (per_image, per_image)):
        result = pgd(model, x, y, e, norm=norm, steps=5, restarts=2, batch_size=8)
        delta = (result.x_adv - x).flatten(1)
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert (size <= bound + 1e-6 * (1 if norm == "linf" else 10)).all()
        assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
        assert result.success.dtype == torch.bool and result.success.device.type == "cpu"
    step = fgsm(model, x, y, eps, norm=norm)
    delta = (step.x_adv - x).flatten(1)
    assert (delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)).max() <= eps + 1e-5


def test_the_same_seed_gives_the_same_result_and_another_seed_another(cnn_batch):
    model, x, y = cnn_batch
    a = pgd(model, x, y, 0.03, steps=3, seed=7)
    b = pgd(model, x, y, 0.03, steps=3, seed=7)
    c = pgd(model, x, y, 0.03, steps=3, seed=8)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)
    assert not torch.equal(a.x_adv, c.x_adv)


def test_more_restarts_never_lower_success(cnn_batch):
    model, x, y = cnn_batch
    one = pgd(model, x, y, 0.1, steps=3, restarts=1, batch_size=7)
    three = pgd(model, x, y, 0.1, steps=3, restarts=3, batch_size=7)
    assert 0 < one.success.sum() < len(y)
    assert not (one.success & ~three.success).any()  # restart 0 is the same run: its finds are kept
    assert three.success.sum() >= one.success.sum()


def test_pgd_keeps_an_image_that_was_adversarial_at_any_step():
    class BandOnFirstPixel(nn.Module):
        """The loss pushes the first pixel up from 0.5; class 1 wins only while it is in (0.52, 0.53)."""

        def forward(self, x):
            p = x[:, 0, 0, 0]
            band = torch.where((p > 0.52) & (p < 0.53), 1.0, -1.0)
            return torch.stack([-0.1 * (p - 0.5), band], 1)

    x = torch.full((1, 3, 2, 2), 0.5)
    # eps 0.1, step 0.025: the first pixel goes 0.5 -> 0.525 (adversarial) -> 0.55 -> ... -> 0.6 (not)
    result = pgd(BandOnFirstPixel(), x, torch.zeros(1, dtype=torch.long), 0.1, random_start=False)
    assert bool(result.success[0])
    assert float(result.x_adv[0, 0, 0, 0]) == pytest.approx(0.525)


def test_pgd_counts_its_passes(cnn_batch):
    model, x, y = cnn_batch
    n = x.shape[0]
    result = pgd(model, x, y, 0.03, steps=4, restarts=2)
    assert result.forward_passes == 1 + n + 2 * n * (4 + 1)  # the check, x itself, each restart's steps + last
    assert result.backward_passes == 2 * n * 4
    plain = pgd(model, x, y, 0.03, steps=4, random_start=False)
    assert (plain.forward_passes, plain.backward_passes) == (1 + n * 5, n * 4)
    assert plain.settings["library"] == "auditor (torch)" and plain.settings["torch"] == torch.__version__
    assert {"attack", "norm", "eps", "steps", "step_size", "restarts", "random_start"} <= set(plain.settings)


def test_progress_is_reported_and_cancel_stops_between_chunks(cnn_batch):
    model, x, y = cnn_batch
    seen = []
    pgd(model, x, y, 0.03, steps=1, batch_size=8, progress=lambda *a: seen.append(a))
    assert seen == [("pgd", 8, 20), ("pgd", 16, 20), ("pgd", 20, 20)]
    with pytest.raises(AuditCancelled):
        pgd(model, x, y, 0.03, steps=1, batch_size=8, cancel=lambda: True)


# --- the model is left as found, bad arguments -----------------------------------------------


def test_every_function_leaves_the_model_as_found(cnn_batch):
    model, x, y = cnn_batch
    model[3].eval()  # a mixed state: training overall, dropout in eval
    model[0].weight.requires_grad_(False)
    before = ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    calls = [
        lambda: fgsm(model, x, y, 0.03),
        lambda: pgd(model, x, y, 0.03, steps=2),
        lambda: robust_accuracy_curve(model, x, y, [0.0, 0.03], steps=2),
        lambda: minimal_eps(model, x, y, steps=2, eps_max=0.05, tol=0.02),
        lambda: input_gradients(model, x, y),
    ]
    for call in calls:
        call()
        assert ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]) == before
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # BN running stats untouched
        assert all(p.grad is None for p in model.parameters())
    with pytest.raises(UsageError):
        pgd(model, x, y, -1.0)
    assert ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]) == before


@pytest.mark.parametrize("call,param", [
    (lambda m, x, y: pgd(m, x, y, -0.1), "eps"),
    (lambda m, x, y: pgd(m, x, y, 1.5), "eps"),
    (lambda m, x, y: fgsm(m, x, y, float("nan")), "eps"),
    (lambda m, x, y: pgd(m, x, y, torch.full((3,), 0.1)), "eps"),
    (lambda m, x, y: pgd(m, x, y, 0.1, norm="l1"), "norm"),
    (lambda m, x, y: pgd(m, x, y, 0.1, steps=0), "steps"),
    (lambda m, x, y: pgd(m, x, y, 0.1, restarts=2, random_start=False), "restarts"),
    (lambda m, x, y: pgd(m, x * 255, y, 0.1), "x"),
    (lambda m, x, y: pgd(m, x[0], y, 0.1), "x"),
    (lambda m, x, y: pgd(m, x, y[:-1], 0.1), "y"),
    (lambda m, x, y: pgd(m, x, y + 5, 0.1), "y"),
    (lambda m, x, y: fgsm(m, x, y, 0.1, batch_size=0), "batch_size"),
    (lambda m, x, y: robust_accuracy_curve(m, x, y, []), "eps_grid"),
    (lambda m, x, y: robust_accuracy_curve(m, x, y, [0.1], attack="cw"), "attack"),
    (lambda m, x, y: minimal_eps(m, x, y, tol=0.0), "tol"),
    (lambda m, x, y: minimal_eps(m, x, y, eps_max=2.0), "eps_max"),
    (lambda m, x, y: input_gradients(m, x, y.float()), "y"),
    (lambda m, x, y: pgd(m, x, y, 0.1, keep="best"), "keep"),
    (lambda m, x, y: pgd(m, x, y, 0.1, progress="yes"), "progress"),
])
def test_bad_arguments_raise_a_one_line_usage_error_naming_the_parameter(cnn_batch, call, param):
    model, x, y = cnn_batch
    with pytest.raises(ParameterError) as info:
        call(model, x, y)
    message = str(info.value)
    assert isinstance(info.value, UsageError) and isinstance(info.value, ValueError)
    assert message.startswith(f"The '{param}' parameter of ") and "Got" in message and "\n" not in message


def test_an_empty_batch_gives_empty_results(linear):
    model, x, y, _ = linear
    empty_x, empty_y = x[:0], y[:0]
    assert pgd(model, empty_x, empty_y, 0.1).x_adv.shape == empty_x.shape
    assert pgd(model, empty_x, empty_y, torch.zeros(0)).success.shape == (0,)
    assert fgsm(model, empty_x, empty_y, 0.1).success.shape == (0,)
    assert robust_accuracy_curve(model, empty_x, empty_y, [0.0, 0.1]).correct.shape == (2, 0)
    assert minimal_eps(model, empty_x, empty_y).eps.shape == (0,)
    assert input_gradients(model, empty_x, empty_y).shape == empty_x.shape


def test_l2_eps_above_one_is_allowed(linear):
    model, x, y, _ = linear
    assert isinstance(pgd(model, x, y, 1.5, norm="l2", steps=2), AttackResult)


# --- agreement with ART -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_cnn_faces():
    import probes
    from auditor.models import load_model
    from probes.loader import make_loader

    model = load_model("sample_models/clean_cnn/model.yaml", device="cpu").module
    probe = probes.open_probe("synth:faces:n=64")
    batch = next(iter(make_loader(probe, (64, 64), batch_size=64)))
    y = torch.as_tensor(probe.table["label"].to_numpy()[batch.indices.numpy()], dtype=torch.long)
    return model, batch.images, y


def _art_classifier(model: nn.Module, x: torch.Tensor):
    """ART's wrapper of ``model`` for its reference attacks (skips the test without ART)."""
    art_classifier = pytest.importorskip("art.estimators.classification")
    return art_classifier.PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=2, clip_values=(0.0, 1.0),
        device_type="cpu",
    )


@pytest.mark.parametrize("norm,eps_values", [("linf", (1 / 255, 2 / 255)), ("l2", (0.25, 0.5))])
def test_robust_accuracy_agrees_with_arts_pgd(clean_cnn_faces, norm, eps_values):
    from art.attacks.evasion import ProjectedGradientDescentPyTorch

    model, x, y = clean_cnn_faces
    classifier = _art_classifier(model, x)
    accuracies = []
    for eps in eps_values:
        ours = pgd(model, x, y, eps, norm=norm, steps=10, random_start=False)
        attack = ProjectedGradientDescentPyTorch(
            classifier, norm=np.inf if norm == "linf" else 2, eps=eps, eps_step=2.5 * eps / 10, max_iter=10,
            num_random_init=0, batch_size=64, verbose=False,
        )
        x_art = torch.from_numpy(attack.generate(x.numpy(), y=y.numpy()))
        with torch.no_grad():
            art_accuracy = float((model(x_art).argmax(1) == y).float().mean())
        our_accuracy = 1.0 - float(ours.success.float().mean())
        assert abs(our_accuracy - art_accuracy) <= 0.05, (eps, our_accuracy, art_accuracy)
        accuracies.append(our_accuracy)
    assert accuracies[0] - accuracies[1] >= 0.2  # eps values where the attack matters
    assert not math.isclose(accuracies[0], 1.0)


@pytest.mark.parametrize("norm,eps", [("linf", 2 / 255), ("l2", 0.25)])
def test_fgsm_agrees_with_arts_fast_gradient_method(clean_cnn_faces, norm, eps):
    from art.attacks.evasion import FastGradientMethod

    model, x, y = clean_cnn_faces
    classifier = _art_classifier(model, x)
    ours = fgsm(model, x, y, eps, norm=norm)
    x_art = torch.from_numpy(FastGradientMethod(classifier, norm=np.inf if norm == "linf" else 2, eps=eps,
                                                batch_size=64).generate(x.numpy(), y=y.numpy()))
    with torch.no_grad():
        art_accuracy = float((model(x_art).argmax(1) == y).float().mean())
    our_accuracy = 1.0 - float(ours.success.float().mean())
    assert abs(our_accuracy - art_accuracy) <= 0.05, (our_accuracy, art_accuracy)
    assert our_accuracy < float((model(x).argmax(1) == y).float().mean())  # the attack does something here
