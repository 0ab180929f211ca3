"""The companion trainer's data and loop (auditor.mitigate.data, auditor.mitigate.loop): seeded runs,
resumable atomic checkpoints, early stopping to the best epoch, eval mode at the end, one-line errors,
progress and cancel, and training data read from a probe with a coded bias."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auditor.errors import AuditCancelled
from auditor.mitigate.data import TrainingData, from_probe
from auditor.mitigate.loop import CHECKPOINT_NAME, Batch, CrossEntropy, FitResult, evaluate_accuracy, fit


pytestmark = pytest.mark.usefixtures("one_thread_module")  # module fixtures too: see conftest


def toy_data(n: int, seed: int) -> TrainingData:
    """Two classes told apart by a brighter top-left block in the red channel; a two-valued bias."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.5 + 0.15 * torch.randn(n, 3, 8, 8, generator=g)
    x[:, 0, :4, :4] += 0.12 * (2 * y - 1).float().view(-1, 1, 1)
    bias = torch.randint(0, 2, (n,), generator=g)
    return TrainingData(x.clamp(0, 1), y, bias, ["a", "b"])


def toy_net(seed: int = 0) -> nn.Module:
    """Batch norm and dropout: buffers and the RNG matter to resuming."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 2))


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def data() -> tuple[TrainingData, TrainingData]:
    return toy_data(96, 1), toy_data(40, 2)


def test_same_seed_gives_same_weights_and_another_seed_others(data):
    train, val = data
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        runs[name] = toy_net()
        fit(runs[name], CrossEntropy(), train, val, epochs=2, batch_size=16, seed=seed)
    assert same_weights(runs["a"], runs["b"])
    assert not same_weights(runs["a"], runs["c"])


def test_fit_leaves_the_callers_rng_alone(data):
    train, _ = data
    model = toy_net()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(model, CrossEntropy(), train, epochs=1, batch_size=32, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_resume_after_epoch_k_gives_the_weights_of_an_uninterrupted_run(data, tmp_path):
    train, val = data
    whole = toy_net()
    expected = fit(whole, CrossEntropy(), train, val, epochs=4, batch_size=16, seed=5, checkpoint_dir=tmp_path / "whole")

    stop = {"now": False}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "validate" and done == total and len(seen_epochs) == 1:
            stop["now"] = True  # validation of epoch 2 is done: cancel before epoch 3's first batch
        if stage == "validate" and done == total:
            seen_epochs.append(done)

    seen_epochs: list[int] = []
    with pytest.raises(AuditCancelled, match="resume=True"):
        fit(toy_net(), CrossEntropy(), train, val, epochs=4, batch_size=16, seed=5, checkpoint_dir=tmp_path / "cut",
            progress=progress, cancel=lambda: stop["now"])
    saved = torch.load(tmp_path / "cut" / CHECKPOINT_NAME, weights_only=True)
    assert saved["epoch"] == 2

    resumed = toy_net(seed=9)  # other initial weights: the checkpoint's must replace them
    result = fit(resumed, CrossEntropy(), train, val, epochs=4, batch_size=16, seed=5, checkpoint_dir=tmp_path / "cut",
                 resume=True)
    assert same_weights(resumed, whole)
    assert result.history == expected.history
    assert (result.epochs_run, result.best_epoch) == (expected.epochs_run, expected.best_epoch)


def test_resume_refuses_a_checkpoint_of_another_run(data, tmp_path):
    train, _ = data
    fit(toy_net(), CrossEntropy(), train, epochs=1, batch_size=16, seed=0, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="lr=0.01 differs from the checkpoint's 0.001") as info:
        fit(toy_net(), CrossEntropy(), train, epochs=1, batch_size=16, lr=0.01, seed=0, checkpoint_dir=tmp_path,
            resume=True)
    assert "\n" not in str(info.value)


class TurnCoat:
    """Learns the labels for the first fifth of training, then the flipped labels: val accuracy peaks early."""

    def __init__(self) -> None:
        self.modules: list[nn.Module] = []

    def loss(self, model: nn.Module, batch: Batch, progress: float) -> tuple[torch.Tensor, dict[str, float]]:
        target = batch.y if progress < 0.2 else 1 - batch.y
        return F.cross_entropy(model(batch.x), target), {}


def test_early_stopping_stops_and_restores_the_best_epochs_weights(data):
    train, val = data
    snapshots: list[dict[str, torch.Tensor]] = []
    model = toy_net()

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "validate" and done == total:  # the weights validated at the end of each epoch
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})

    result = fit(model, TurnCoat(), train, val, epochs=10, batch_size=16, lr=1e-2, seed=0, patience=2, progress=progress)
    assert isinstance(result, FitResult) and result.stopped_early
    assert result.epochs_run == result.best_epoch + 2 < 10
    accuracies = [row["val_accuracy"] for row in result.history]
    assert result.best_epoch == 1 + int(np.argmax(accuracies))
    assert max(accuracies) > accuracies[-1]
    best = snapshots[result.best_epoch - 1]
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())


def test_keep_last_keeps_the_last_epochs_weights_and_still_logs_validation(data):
    train, val = data
    snapshots: list[dict[str, torch.Tensor]] = []
    model = toy_net()

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "validate" and done == total:
            snapshots.append({k: v.clone() for k, v in model.state_dict().items()})

    result = fit(model, TurnCoat(), train, val, epochs=5, batch_size=16, lr=1e-2, seed=0, keep="last", progress=progress)
    accuracies = [row["val_accuracy"] for row in result.history]
    assert (result.epochs_run, result.best_epoch, result.stopped_early) == (5, 5, False)
    assert max(accuracies) > accuracies[-1]  # a better epoch existed, and was not restored
    assert all(torch.equal(v, snapshots[-1][k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("failing", ["torch.save", "os.fsync"])
def test_a_failing_checkpoint_write_leaves_the_previous_checkpoint_whole(data, tmp_path, monkeypatch, failing):
    train, _ = data
    fit(toy_net(), CrossEntropy(), train, epochs=1, batch_size=16, seed=0, checkpoint_dir=tmp_path)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    if failing == "torch.save":
        monkeypatch.setattr(torch, "save", boom)
    else:  # the bytes are half written to the temporary file when fsync fails
        monkeypatch.setattr(os, "fsync", boom)
    model = toy_net(seed=1)
    with pytest.raises(OSError, match="disk full"):
        fit(model, CrossEntropy(), train, epochs=2, batch_size=16, seed=1, checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]
    assert not model.training


class WithHead:
    """An objective with a trainable module of its own."""

    def __init__(self) -> None:
        self.head = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
        self.modules: list[nn.Module] = [self.head]

    def loss(self, model: nn.Module, batch: Batch, progress: float) -> tuple[torch.Tensor, dict[str, float]]:
        assert model.training and self.head.training
        return F.cross_entropy(self.head(model(batch.x)), batch.y), {"seen": 1.0}


def test_model_and_objective_modules_are_left_in_eval_mode(data):
    train, val = data
    model, objective = toy_net(), WithHead()
    head_before = [p.clone() for p in objective.head.parameters()]
    result = fit(model, objective, train, val, epochs=1, batch_size=16, seed=0)
    assert not any(m.training for m in model.modules())
    assert not any(m.training for m in objective.head.modules())
    assert any(not torch.equal(a, b) for a, b in zip(head_before, objective.head.parameters()))  # trained with the model
    assert {"epoch", "train_loss", "seen", "val_loss", "val_accuracy", "val_worst_group_accuracy"} <= set(result.history[0])


def test_progress_is_told_each_batch_and_cancel_stops_between_batches(data):
    train, _ = data
    calls: list[tuple[str, int, int]] = []
    fit(toy_net(), CrossEntropy(), train, epochs=2, batch_size=32, seed=0, progress=lambda *a: calls.append(a))
    assert calls == [("train", k, 6) for k in range(1, 7)]
    asked: list[int] = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) == 2

    with pytest.raises(AuditCancelled, match="epoch 1"):
        fit(toy_net(), CrossEntropy(), train, epochs=2, batch_size=32, seed=0, cancel=cancel)
    assert len(asked) == 2


@pytest.mark.parametrize("kwargs, name", [
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"seed": -1}, "seed"),
    ({"patience": 2}, "patience"),
    ({"patience": 0, "val": "val"}, "patience"),
    ({"resume": True}, "resume"),
    ({"keep": "first"}, "keep"),
    ({"keep": "last", "patience": 2, "val": "val"}, "patience"),
    ({"model": "model.pt"}, "model"),
    ({"objective": "ce"}, "objective"),
    ({"train": "train"}, "train"),
    ({"model": nn.Sequential(nn.Flatten(), nn.Linear(192, 1))}, "model"),
])
def test_bad_arguments_give_one_line_errors_naming_them(data, kwargs, name):
    train, val = data
    args = {"model": toy_net(), "objective": CrossEntropy(), "train": train, "val": None}
    args.update({k: val if v == "val" else v for k, v in kwargs.items()})
    with pytest.raises(ValueError) as info:
        fit(**args)
    message = str(info.value)
    assert message.startswith(f"The {name!r} parameter of fit must be ") and "\n" not in message


def test_labels_beyond_the_models_classes_and_pixels_outside_0_1_are_refused_in_one_line(data):
    train, _ = data
    three = TrainingData(train.images, train.labels + 1)
    with pytest.raises(ValueError, match="^train labels go up to 2 but the model has 2 classes"):
        fit(toy_net(), CrossEntropy(), three)
    with pytest.raises(ValueError, match=r"^The 'images' parameter of TrainingData must be pixel values in \[0, 1\]"):
        TrainingData(train.images * 255, train.labels)


def test_from_probe_reads_images_labels_and_a_coded_bias():
    from probes import open_probe

    data = from_probe("synth:faces:n=40", (16, 16), bias="race")
    assert data.images.shape == (40, 3, 16, 16) and data.images.dtype == torch.float32
    assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0 and float(data.images.std()) > 0.05
    probe = open_probe("synth:faces:n=40")
    assert torch.equal(data.labels, torch.tensor(probe.table["label"].tolist()))
    assert data.bias_names == ["asian", "black", "indian", "white"]
    assert [data.bias_names[int(b)] for b in data.bias] == probe.table["race"].tolist()
    first = from_probe("synth:faces:n=40", (16, 16), target="gender", limit=10)
    assert len(first) == 10 and first.bias is None and first.bias_names == []
    assert torch.equal(first.images, data.images[:10])
    assert first.labels.tolist() == [int(g == "male") for g in probe.table["gender"][:10]]


def test_from_probe_refuses_bad_arguments_in_one_line():
    for kwargs, name in (({"limit": 0}, "limit"), ({"bias": "smiling"}, "bias")):
        with pytest.raises(ValueError) as info:
            from_probe("synth:faces:n=40", (16, 16), **kwargs)
        assert str(info.value).startswith(f"The {name!r} parameter of from_probe must be ") and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="^The 'input_size' parameter of from_probe"):
        from_probe("synth:faces:n=40", (16,))


def test_split_is_stratified_by_label_and_seeded():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    data = TrainingData(torch.rand(100, 3, 4, 4), labels, labels % 2, ["even", "odd"])
    train, val = data.split(0.2, seed=0)
    assert len(train) + len(val) == 100
    assert torch.bincount(val.labels).tolist() == [12, 6, 2]
    rows = {tuple(img.flatten()[:4].tolist()) for img in torch.cat([train.images, val.images])}
    assert len(rows) == 100  # every row once, on one side
    assert val.bias_names == ["even", "odd"] and torch.equal(val.bias, val.labels % 2)
    again, other = data.split(0.2, seed=0)[1], data.split(0.2, seed=1)[1]
    assert torch.equal(again.images, val.images)
    assert not torch.equal(other.images, val.images)
    with pytest.raises(ValueError, match="^The 'val_share' parameter of TrainingData.split"):
        data.split(1.0, seed=0)


def test_evaluate_accuracy_by_group_names_each_groups_accuracy_and_the_worst_is_their_minimum(data):
    train, _ = data
    model = toy_net()
    scores = evaluate_accuracy(model, train, by_group=True)
    with torch.no_grad():
        correct = (model(train.images).argmax(1) == train.labels).float()
    for code, name in enumerate(train.bias_names):
        assert scores[f"accuracy[{name}]"] == pytest.approx(float(correct[train.bias == code].mean()))
    assert scores["worst_group_accuracy"] == min(scores["accuracy[a]"], scores["accuracy[b]"])
    assert "accuracy[a]" not in evaluate_accuracy(model, train)
