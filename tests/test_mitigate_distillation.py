"""Defensive distillation (auditor.mitigate.distillation): a teacher trained at temperature T, a student
distilled from its soft labels at T that matches them, and the student served at T = 1 sharper than at T."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auditor.mitigate.data import TrainingData
from auditor.mitigate.distillation import (
    Distillation,
    soft_labels,
    train_teacher_at_temperature,
)
from auditor.mitigate.loop import Batch, fit
from auditor.validation import ParameterError


pytestmark = pytest.mark.usefixtures("one_thread_module")  # module fixtures too: see conftest

T = 5.0


def three_class_task(n: int, seed: int) -> TrainingData:
    """Class c: the centre block of channel c is brighter, under pixel noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = 0.5 + 0.15 * torch.randn(n, 3, 8, 8, generator=g)
    for c in range(3):
        x[y == c, c, 2:6, 2:6] += 0.3
    return TrainingData(x.clamp(0, 1), y)


def small_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 3))


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, nn.Module, TrainingData, dict[str, torch.Tensor]]:
    """(teacher, student, held-out data, the teacher's weights before distillation)."""
    train, test = three_class_task(300, 1), three_class_task(200, 2)
    teacher = small_cnn(0)
    fit(teacher, train_teacher_at_temperature(teacher, T), train, epochs=10, batch_size=32, lr=1e-2, seed=0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = small_cnn(1)
    fit(student, Distillation(teacher, T), train, epochs=15, batch_size=32, lr=1e-2, seed=0)
    return teacher, student, test, before


def test_the_student_matches_the_teachers_soft_labels_at_t(trained):
    teacher, student, test, _ = trained
    with torch.no_grad():
        t_logits, s_logits = teacher(test.images), student(test.images)
    assert float((t_logits.argmax(1) == test.labels).float().mean()) > 0.9  # the teacher learnt the task at T
    kl = F.kl_div(soft_labels(s_logits, T).log(), soft_labels(t_logits, T), reduction="batchmean")
    assert float(kl) < 0.02
    assert float((s_logits.argmax(1) == t_logits.argmax(1)).float().mean()) >= 0.95


def test_the_student_served_at_t_1_is_sharper_than_at_t(trained):
    _, student, test, _ = trained
    with torch.no_grad():
        logits = student(test.images)
    at_t, at_1 = soft_labels(logits, T).amax(1).mean(), F.softmax(logits, 1).amax(1).mean()
    assert float(at_t) < 0.97 and float(at_1) > 0.99 and float(at_1) > float(at_t)


def test_the_teacher_is_left_untrained_and_as_found(trained):
    teacher, _, test, before = trained
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert all(p.requires_grad for p in teacher.parameters())
    teacher.train()
    objective = Distillation(teacher, T, alpha=0.5)
    loss, logs = objective.loss(small_cnn(2).train(), Batch(test.images[:8], test.labels[:8], None), 0.0)
    assert teacher.training and loss.requires_grad and set(logs) == {"kl", "agreement", "accuracy"}
    assert objective.modules == []


def test_the_teacher_objective_is_the_cross_entropy_at_t_of_its_own_model():
    model = small_cnn(0)
    batch = Batch(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]), None)
    loss, _ = train_teacher_at_temperature(model, T).loss(model, batch, 0.0)
    assert loss.item() == pytest.approx(F.cross_entropy(model(batch.x) / T, batch.y).item())
    with pytest.raises(ValueError, match="^The 'model' parameter of TemperatureCrossEntropy.loss"):
        train_teacher_at_temperature(model, T).loss(small_cnn(1), batch, 0.0)


@pytest.mark.parametrize("make, name", [
    (lambda: Distillation(small_cnn(0), 0.0), "'temperature' parameter of Distillation"),
    (lambda: Distillation(small_cnn(0), T, alpha=1.5), "'alpha' parameter of Distillation"),
    (lambda: Distillation("teacher.pt", T), "'teacher' parameter of Distillation"),
    (lambda: train_teacher_at_temperature(small_cnn(0), float("inf")), "'temperature' parameter of TemperatureCrossEntropy"),
])
def test_bad_settings_give_one_line_errors_naming_them(make, name):
    with pytest.raises(ParameterError) as info:
        make()
    assert str(info.value).startswith(f"The {name} must be ") and "\n" not in str(info.value)
