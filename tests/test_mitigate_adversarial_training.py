"""Adversarial training (auditor.mitigate.adversarial_training): on a small task where a plainly trained
model is fragile, PGD training and TRADES raise PGD robust accuracy on held-out images at the training
eps; the attack runs in eval mode and the update in train mode; bad settings give one-line errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from auditor.attacks.whitebox import pgd
from auditor.mitigate.adversarial_training import AdversarialTraining, trades_examples
from auditor.mitigate.data import TrainingData
from auditor.mitigate.loop import Batch, CrossEntropy, fit


pytestmark = pytest.mark.usefixtures("one_thread_module")  # module fixtures too: see conftest

EPS = 0.1  # linf, pixel units
PATTERN = torch.where(torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(99)) < 0.5, -1.0, 1.0)


def two_class_task(n: int, seed: int) -> TrainingData:
    """A robust feature (the red top-left block 0.2 brighter or darker) and a fragile one (every pixel
    shifted 0.05 along a fixed sign pattern): both predictive, only the first survives eps = 0.1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    sign = (2 * y - 1).float().view(-1, 1, 1, 1)
    x = 0.5 + 0.1 * torch.randn(n, 3, 8, 8, generator=g) + 0.05 * sign * PATTERN
    x[:, 0, :4, :4] += 0.2 * sign.view(-1, 1, 1)
    return TrainingData(x.clamp(0, 1), y)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 2))


def robust_accuracy(model: nn.Module, data: TrainingData) -> float:
    return 1.0 - pgd(model, data.images, data.labels, EPS, steps=10, seed=1).success_rate


def clean_accuracy(model: nn.Module, data: TrainingData) -> float:
    with torch.no_grad():
        return float((model(data.images).argmax(1) == data.labels).float().mean())


@pytest.fixture(scope="module")
def task() -> tuple[TrainingData, TrainingData]:
    return two_class_task(320, 1), two_class_task(200, 2)


@pytest.fixture(scope="module")
def plain(task) -> nn.Module:
    model = small_cnn()
    fit(model, CrossEntropy(), task[0], epochs=8, batch_size=32, lr=3e-3, seed=0)
    return model


@pytest.mark.parametrize("objective", [AdversarialTraining(EPS, steps=5),
                                       AdversarialTraining(EPS, steps=5, trades_beta=3.0)], ids=["pgd-at", "trades"])
def test_adversarial_training_raises_pgd_robust_accuracy_over_plain_training(task, plain, objective):
    train, test = task
    model = small_cnn()
    result = fit(model, objective, train, epochs=8, batch_size=32, lr=3e-3, seed=0)
    assert clean_accuracy(plain, test) > 0.95 and robust_accuracy(plain, test) < 0.2  # the plain model is fragile
    assert clean_accuracy(model, test) > 0.95
    assert robust_accuracy(model, test) > robust_accuracy(plain, test) + 0.6
    last = result.history[-1]
    assert last["eps"] == pytest.approx(EPS) and 0.0 <= last["adv_accuracy"] <= last["clean_accuracy"] <= 1.0


class Spy(nn.Module):
    """Records the training flag of each forward."""

    def __init__(self) -> None:
        super().__init__()
        self.net = small_cnn()
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.net(x)


@pytest.mark.parametrize("trades_beta", [None, 1.0])
def test_the_attack_runs_in_eval_mode_and_the_update_in_train_mode(task, trades_beta):
    train, _ = task
    model = Spy().train()
    batch = Batch(train.images[:16], train.labels[:16], None)
    loss, logs = AdversarialTraining(EPS, steps=3, trades_beta=trades_beta).loss(model, batch, 0.5)
    assert model.training and all(p.requires_grad for p in model.parameters())
    updates = 1 if trades_beta is None else 2  # the adversarial forward, plus the clean one for TRADES
    assert not any(model.modes[:-updates]) and all(model.modes[-updates:])
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert set(logs) >= {"clean_accuracy", "adv_accuracy", "eps"}


def test_trades_examples_stay_in_the_ball_and_raise_the_kl(task):
    train, _ = task
    model = small_cnn()
    x = train.images[:32]
    x_adv, clean, adv = trades_examples(model, x, EPS, steps=5, seed=0)
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6 and 0.0 <= float(x_adv.min()) and float(x_adv.max()) <= 1.0
    near = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
    with torch.no_grad():
        def kl(z: torch.Tensor) -> float:
            return float(torch.nn.functional.kl_div(z.log_softmax(1), clean.softmax(1), reduction="batchmean"))
        assert kl(adv) > 10 * kl(model(near))


def test_eps_warms_up_linearly():
    objective = AdversarialTraining(0.2, eps_warmup=0.5)
    assert [objective.eps_at(p) for p in (0.0, 0.25, 0.5, 0.9)] == pytest.approx([0.0, 0.1, 0.2, 0.2])


@pytest.mark.parametrize("kwargs, name", [
    ({"eps": 1.5}, "eps"),
    ({"eps": -0.1, "norm": "l2"}, "eps"),
    ({"norm": "l1"}, "norm"),
    ({"steps": 0}, "steps"),
    ({"trades_beta": 0.0}, "trades_beta"),
    ({"eps_warmup": 1.0}, "eps_warmup"),
])
def test_bad_settings_give_one_line_errors_naming_them(kwargs, name):
    args = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError) as info:
        AdversarialTraining(args.pop("eps"), **args)
    assert str(info.value).startswith(f"The {name!r} parameter of AdversarialTraining must be ") and "\n" not in str(info.value)
