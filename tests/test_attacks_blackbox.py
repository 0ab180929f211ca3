"""Black-box attacks (auditor.attacks.blackbox, auditor.attacks.transfer): the model is only an oracle."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auditor.attacks.blackbox import CountingOracle, hopskipjump, square_attack
from auditor.attacks.transfer import transfer_attack
from auditor.attacks.whitebox import pgd
from auditor.errors import AuditCancelled, UsageError
from auditor.validation import ParameterError

SIZE = 16
PATCH = (slice(5, 11), slice(5, 11))  # the centred 6x6 patch whose colour is the class (flip-invariant)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


class ChannelModel(torch.nn.Module):
    """Linear: logit c = scale * (mean of channel c - 0.5). The brightest channel wins."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(20.0))
        self.seen: list[tuple[int, bool]] = []  # (batch size, training flag) of every call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((x.shape[0], self.training))
        return self.scale * (x.mean((2, 3)) - 0.5)


class QuantisedModel(torch.nn.Module):
    """The channel model behind 4-level quantisation, run under no_grad: no gradient exists."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = ChannelModel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.inner(torch.round(x * 4) / 4)


class CueCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def channel_images(n: int = 8, margin: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise in [0, 0.6] with channel y raised by ``margin``: the channel model gets every one right."""
    x = torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 0.6
    y = torch.arange(n) % 3
    x[torch.arange(n), y] += margin
    return x, y


def cue_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise, and a centred patch that is bright in the class's channel only."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, SIZE, SIZE, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    x[:, :, PATCH[0], PATCH[1]] = 0.2
    x[torch.arange(n), y, PATCH[0], PATCH[1]] = 0.8
    return x, y


@pytest.fixture(scope="module")
def cue_model() -> CueCNN:
    """A small CNN trained on the patch-colour cue (perfect on held-out images)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module scope: set up before the per-test one_thread fixture
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CueCNN()
    x, y = cue_images(256, seed=1)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(25):
        for start in range(0, len(x), 64):
            loss = F.cross_entropy(model(x[start:start + 64]), y[start:start + 64])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    torch.set_num_threads(threads)
    x_test, y_test = cue_images(48, seed=2)
    with torch.no_grad():
        assert (model(x_test).argmax(1) == y_test).float().mean() > 0.95
    return model


def test_oracle_answers_probabilities_counts_images_and_leaves_the_model_as_found():
    model = ChannelModel().train()
    x, y = channel_images(10)
    oracle = CountingOracle(model, batch_size=4)
    probs = oracle.probs(x.numpy())
    assert probs.shape == (10, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-6)
    assert (oracle.labels(x) == y.numpy()).all()
    assert np.allclose(np.exp(oracle.log_probs(x)), probs, atol=1e-6)
    assert oracle.queries == 30 and oracle.n_classes == 3
    assert [size for size, _ in model.seen] == [4, 4, 2] * 3  # chunks of batch_size
    assert not any(training for _, training in model.seen)  # eval mode during calls
    assert model.training and model.scale.requires_grad  # ... and restored after


def test_square_finds_adversarials_at_a_generous_eps_and_none_at_eps_zero():
    model = ChannelModel()
    x, y = channel_images()
    oracle = CountingOracle(model)
    found = square_attack(oracle, x, y, 0.3, max_queries=200)
    assert found.success.all()
    assert (oracle.labels(found.x_adv) != y.numpy()).all()
    assert float((found.x_adv - x).abs().max()) <= 0.3 + 1e-6 and found.x_adv.min() >= 0 and found.x_adv.max() <= 1
    assert (found.norms <= 0.3).all()
    assert found.settings["library"] == "adversarial-robustness-toolbox" and found.settings["version"] == "1.20.1"

    before = oracle.queries
    none = square_attack(oracle, x, y, 0.0, max_queries=200)
    assert not none.success.any() and torch.equal(none.x_adv, x)
    assert none.queries == oracle.queries - before == len(x)  # the clean labels only


def test_square_counts_its_queries_and_keeps_to_the_budget():
    x, y = channel_images()
    oracle = CountingOracle(ChannelModel())
    result = square_attack(oracle, x, y, 0.05, max_queries=100)  # too small an eps: the whole budget is spent
    assert not result.success.any()
    assert result.queries == oracle.queries
    assert len(x) * 100 // 2 < result.queries <= len(x) * 100
    assert result.settings["art_params"]["max_iter"] == 97


def test_square_l2_stays_in_the_ball_and_never_sends_art_s_nan_proposals():
    x, y = channel_images(4)
    result = square_attack(ChannelModel(), x, y, 0.2, norm="l2", max_queries=150)  # ART proposes NaN images here;
    assert torch.isfinite(result.x_adv).all()  # sent, their NaN logits would make CountingOracle raise
    assert (result.norms <= 0.2).all()
    assert result.queries <= 4 * 150


def test_hopskipjump_finds_small_perturbations_that_change_the_label():
    x, y = channel_images()
    oracle = CountingOracle(ChannelModel())
    result = hopskipjump(oracle, x, y, norm="l2", max_queries=300)
    labels = oracle.labels(result.x_adv)
    assert result.success.all() and (labels != y.numpy()).all()
    assert (result.norms > 0).all() and torch.isfinite(result.norms).all()
    assert (result.queries_per_image <= 300).all() and int(result.queries_per_image.sum()) == result.queries
    assert result.queries == oracle.queries - len(x)  # the check above costs one query per image

    median = float(result.norms.median())
    bounded = hopskipjump(oracle, x, y, norm="l2", max_queries=300, eps=median)
    assert 0 < int(bounded.success.sum()) < len(x)
    assert (bounded.norms[bounded.success] <= median).all()

    linf = hopskipjump(oracle, x, y, norm="linf", max_queries=300)
    assert linf.success.all() and (linf.norms > 0).all() and (linf.norms < 1).all()


def test_hopskipjump_leaves_images_already_misclassified_at_distance_zero():
    x, y = channel_images(3)
    wrong = (y + 1) % 3
    result = hopskipjump(ChannelModel(), x, wrong, max_queries=100)
    assert result.success.all() and (result.norms == 0).all() and result.queries == 3
    assert torch.equal(result.x_adv, x)


def test_same_seed_same_result_and_the_global_random_state_is_untouched():
    x, y = channel_images(4)
    np.random.seed(123)
    random.seed(123)
    np_before, py_before, torch_before = np.random.get_state(), random.getstate(), torch.get_rng_state()
    runs = [square_attack(ChannelModel(), x, y, 0.15, max_queries=80, seed=7) for _ in range(2)]
    hsj = [hopskipjump(ChannelModel(), x, y, max_queries=150, seed=7) for _ in range(2)]
    for a, b in (runs, hsj):
        assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success) and a.queries == b.queries
    other = hopskipjump(ChannelModel(), x, y, max_queries=150, seed=8)
    assert not torch.equal(other.x_adv, hsj[0].x_adv)
    np_after = np.random.get_state()
    assert np_before[0] == np_after[0] and np.array_equal(np_before[1], np_after[1]) and np_before[2:] == np_after[2:]
    assert random.getstate() == py_before and torch.equal(torch.get_rng_state(), torch_before)


def test_transfer_attack_through_a_substitute_trained_on_the_oracle_labels(cue_model):
    pool, _ = cue_images(128, seed=3)
    x, y = cue_images(48, seed=2)
    torch_before = torch.get_rng_state()
    oracle = CountingOracle(cue_model)
    attacked = transfer_attack(oracle, pool, x, y, 0.25, seed=0)
    baseline = transfer_attack(CountingOracle(cue_model), pool, x, y, 0.0, seed=0)
    assert attacked.substitute_agreement > 0.8
    assert float(attacked.success.float().mean()) > float(baseline.success.float().mean()) + 0.5
    n_right = len(x) - attacked.n_already_wrong
    assert attacked.queries == oracle.queries == len(pool) + len(x) + n_right
    assert baseline.queries == len(pool) + len(x)
    assert float((attacked.x_adv - x).abs().max()) <= 0.25 + 1e-6
    assert (oracle.labels(attacked.x_adv)[attacked.success.numpy()] != y.numpy()[attacked.success.numpy()]).all()
    assert torch.equal(torch.get_rng_state(), torch_before)


def test_transfer_crafts_its_images_with_whitebox_pgd_on_the_substitute():
    x, y = channel_images(4)
    pool = torch.rand(32, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    result = transfer_attack(ChannelModel(), pool, x, y, 0.2, epochs=1, steps=3, seed=4)
    assert result.n_already_wrong == 0  # the oracle gets every image right: all are attacked
    crafted = pgd(result.substitute, x, y, 0.2, steps=3, seed=4, keep="strongest")
    assert torch.equal(result.x_adv, crafted.x_adv)
    assert result.settings["pgd"] == {"steps": 3, "step_size": 2.5 * 0.2 / 3, "random_start": True, "keep": "strongest",
                                      "loss": "cross-entropy"}


def test_a_model_without_gradients_can_still_be_attacked():
    model = QuantisedModel()
    x, y = channel_images(4)
    assert model(x.requires_grad_(False)).grad_fn is None  # nothing to differentiate
    assert square_attack(model, x, y, 0.4, max_queries=100).success.all()
    assert hopskipjump(model, x, y, max_queries=100).success.any()
    pool = torch.rand(64, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    result = transfer_attack(model, pool, x, y, 0.4, epochs=2)
    assert result.success.shape == (4,) and result.queries == 64 + 4 + 4


def test_progress_and_cancel_are_checked():
    x, y = channel_images(4)
    seen: list[tuple[str, int, int]] = []
    square_attack(ChannelModel(), x, y, 0.3, max_queries=20, batch_size=2, progress=lambda *a: seen.append(a))
    assert seen == [("square", 2, 4), ("square", 4, 4)]
    with pytest.raises(AuditCancelled):
        hopskipjump(ChannelModel(), x, y, max_queries=20, cancel=lambda: True)


@pytest.mark.parametrize("call, message", [
    (lambda x, y: square_attack(ChannelModel(), x, y, 0.1, norm="l1"), "'norm'"),
    (lambda x, y: square_attack(ChannelModel(), x, y, -0.1), "'eps'"),
    (lambda x, y: square_attack(ChannelModel(), x * 2, y, 0.1), "'x'"),
    (lambda x, y: square_attack(ChannelModel(), x[:, :, :, :12], y, 0.1), "square images"),
    (lambda x, y: square_attack(ChannelModel(), x, y[:2], 0.1), "'y'"),
    (lambda x, y: square_attack(ChannelModel(), x, y + 5, 0.1), "class indices"),
    (lambda x, y: square_attack(ChannelModel(), x, y, 0.1, max_queries=0), "'max_queries'"),
    (lambda x, y: hopskipjump(ChannelModel(), x, (y + 1) % 3 + 3, max_queries=50), "class indices"),
    (lambda x, y: hopskipjump(ChannelModel(), x, y, init_eval=50, max_eval=10), "'max_eval'"),
    (lambda x, y: transfer_attack(ChannelModel(), x[:, :, :8, :8], x, y, 0.1), "'x_eval'"),
])
def test_bad_arguments_say_what_to_do(call, message):
    x, y = channel_images(4)
    with pytest.raises(ParameterError, match=message) as err:
        call(x, y)
    assert isinstance(err.value, UsageError)
