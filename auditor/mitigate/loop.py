"""One seeded training loop for every mitigation: an `Objective` says what loss a batch gives, `fit` does the rest.

`fit` trains ``model`` in place with Adam on shuffled batches, seeded: the same seed gives the same
weights. The loop runs inside `torch.random.fork_rng`, so the caller's global RNG is left as it was,
and seeds it with ``seed``; an objective that needs randomness (a random attack start, dropout)
draws from that RNG. Each epoch's shuffle comes from ``(seed, epoch)`` alone.

With ``val``: the validation accuracy after each epoch, the weights of the best epoch restored at
the end, and an early stop after ``patience`` epochs without a better one. ``keep="last"`` keeps the
last epoch's weights instead (no early stop): the choice when the validation data carry the bias
being trained away, so that their accuracy rewards the bias. With ``checkpoint_dir``:
after each epoch, ``last.pt`` (the model, the objective's modules, Adam, the epoch, the RNG state,
the history and the best weights so far) written atomically; ``resume=True`` continues from it and
ends with the same weights as an uninterrupted run.

A last batch of a single image is skipped for that epoch (batch norm cannot train on one image);
the next epoch's shuffle gives it another place. A bad argument raises `auditor.validation.ParameterError`.
"""
from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from auditor.atomic import atomic_write_bytes
from auditor.errors import AuditCancelled
from auditor.frozen import frozen
from auditor.mitigate._checks import POSITIVE, at_least
from auditor.mitigate.data import TrainingData
from auditor.validation import Hinted, Instance, Interval, Options, ParameterError, check_params, invalid

__all__ = ["CHECKPOINT_NAME", "Batch", "CrossEntropy", "FitResult", "Objective", "accuracy", "evaluate_accuracy", "fit"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
_FORMAT = 1  # the checkpoint layout's version
_EVAL_BATCH = 256

Progress = Callable[[str, int, int], None] | None
Cancel = Callable[[], bool] | None


@dataclass
class Batch:
    """One training batch on the training device: images (B, 3, H, W) in [0, 1], labels (B,), bias (B,) or None."""

    x: Tensor
    y: Tensor
    bias: Tensor | None


@runtime_checkable
class Objective(Protocol):
    """What a batch costs. ``modules``: extra trainable modules (e.g. an adversary head), optimised with the
    model and checkpointed with it. ``loss`` gets ``progress`` in [0, 1], the share of training done (for
    schedules), and returns the loss and numbers to log (averaged over the epoch's batches)."""

    modules: list[nn.Module]

    def loss(self, model: nn.Module, batch: Batch, progress: float) -> tuple[Tensor, dict[str, float]]: ...


class CrossEntropy:
    """The plain objective: the mean cross-entropy of the labels. Logs the batch accuracy."""

    def __init__(self) -> None:
        self.modules: list[nn.Module] = []

    def loss(self, model: nn.Module, batch: Batch, progress: float) -> tuple[Tensor, dict[str, float]]:
        logits = model(batch.x)
        return F.cross_entropy(logits, batch.y), {"accuracy": accuracy(logits, batch.y)}


@dataclass
class FitResult:
    """How training went. ``history``: one dict per epoch run (``epoch``, ``train_loss``, the objective's
    logs, and with validation ``val_loss``, ``val_accuracy`` and, when val has a bias,
    ``val_worst_group_accuracy``). ``best_epoch``: the epoch (1-based) whose weights the model holds."""

    epochs_run: int
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


@dataclass(frozen=True)
class _Config:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    patience: int | None
    keep: str = "best"


@dataclass
class _State:
    """What a checkpoint holds besides the weights and Adam."""

    epoch: int = 0  # epochs completed
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf
    best_weights: dict[str, Any] | None = None
    stopped_early: bool = False


def accuracy(logits: Tensor, y: Tensor) -> float:
    """Share of rows whose top logit is the label."""
    return float((logits.detach().argmax(1) == y).float().mean()) if y.numel() else 0.0


# ---------------------------------------------------------------------------------------------
# Argument checks


_FIT = "fit"
_FIT_PARAMS = {
    "epochs": (at_least(1, "passes over the training data"),),
    "batch_size": (at_least(1, "images per step"),),
    "lr": (Hinted(POSITIVE, "Adam's learning rate, e.g. 1e-3"),),
    "weight_decay": (Hinted(Interval(float, 0, None), "Adam's L2 penalty, e.g. 0 or 1e-4"),),
    "seed": (at_least(0, "the training seed"),),
    "patience": (at_least(1, "epochs without a better val accuracy before stopping"), None),
    "keep": (Hinted(Options("best", "last"), "the best val epoch's weights, or the last epoch's"),),
    "resume": (Instance(bool),),
}


def _check_data(model: Any, objective: Any, train: Any, val: Any) -> None:
    """The model, the objective and the data: checks written as code (the value shown is a type or a size)."""
    if not isinstance(model, nn.Module):
        raise invalid("model", _FIT, "a torch.nn.Module (load_model(spec).module)", type(model).__name__)
    if not isinstance(objective, Objective):
        raise invalid("objective", _FIT, "an object with .modules and .loss(model, batch, progress), e.g. CrossEntropy()",
                      type(objective).__name__)
    if not isinstance(train, TrainingData) or len(train) < 2:
        raise invalid("train", _FIT, "TrainingData with at least 2 images (mitigate.data.from_probe)",
                      f"{len(train)} image(s)" if isinstance(train, TrainingData) else type(train).__name__)
    if val is not None and (not isinstance(val, TrainingData) or len(val) == 0):
        raise invalid("val", _FIT, "non-empty TrainingData or None (TrainingData.split gives one)",
                      "no images" if isinstance(val, TrainingData) else type(val).__name__)
    if val is not None and tuple(val.images.shape[1:]) != tuple(train.images.shape[1:]):
        raise invalid("val", _FIT, f"TrainingData with the train images' shape {tuple(train.images.shape[1:])}",
                      tuple(val.images.shape[1:]))


def _check_args(model: Any, objective: Any, train: Any, val: Any, epochs: Any, batch_size: Any, lr: Any,
                weight_decay: Any, seed: Any, checkpoint_dir: Any, resume: Any, patience: Any, keep: Any) -> _Config:
    _check_data(model, objective, train, val)
    p = check_params({"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed,
                      "patience": patience, "keep": keep, "resume": resume}, _FIT_PARAMS, _FIT)
    if patience is not None and keep == "last":
        raise invalid("patience", _FIT, "None with keep='last' (patience stops on val accuracy, which keep='last' ignores)",
                      patience)
    if patience is not None and val is None:
        raise invalid("patience", _FIT, "None without val (patience needs val data to watch: pass val=)", patience)
    if resume and checkpoint_dir is None:
        raise invalid("resume", _FIT, "False without checkpoint_dir (resume reads last.pt from checkpoint_dir)", resume)
    return _Config(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], weight_decay=p["weight_decay"],
                   seed=p["seed"], patience=p["patience"], keep=p["keep"])


# ---------------------------------------------------------------------------------------------
# Pieces of the loop


def _params(model: nn.Module, modules: list[nn.Module]) -> list[nn.Parameter]:
    """Trainable parameters of the model and the objective's modules, each once, in a fixed order."""
    seen: set[int] = set()
    out: list[nn.Parameter] = []
    for m in [model, *modules]:
        for p in m.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    if not out:
        raise invalid("model", _FIT, "a model with a trainable parameter (requires_grad; unfreeze the layers to train)",
                      type(model).__name__)
    return out


def _weights(model: nn.Module, modules: list[nn.Module]) -> dict[str, Any]:
    """CPU copies of the model's and the modules' state dicts."""
    def copy(m: nn.Module) -> dict[str, Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()}

    return {"model": copy(model), "modules": [copy(m) for m in modules]}


def _load_weights(model: nn.Module, modules: list[nn.Module], weights: dict[str, Any]) -> None:
    model.load_state_dict(weights["model"])
    for m, sd in zip(modules, weights["modules"], strict=True):
        m.load_state_dict(sd)


def _check_model_fits(model: nn.Module, train: TrainingData, device: torch.device) -> None:
    """One image through the model (frozen, no RNG drawn): logits (1, C) with C above every label."""
    with frozen(model), torch.no_grad():
        out = model(train.images[:1].to(device))
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != 1 or out.shape[1] < 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise invalid("model", _FIT, "a model mapping images (N, 3, H, W) to logits (N, C) with C >= 2", shape)
    if int(train.labels.max()) >= out.shape[1]:
        raise ParameterError(f"train labels go up to {int(train.labels.max())} but the model has {out.shape[1]} classes; "
                             f"pass a model with a class per label or relabel the data")


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[Tensor]:
    """The epoch's shuffled row batches, from (seed, epoch) alone; a last batch of one row is dropped."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=gen)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and chunks[-1].numel() == 1:
        chunks.pop()
    return chunks


def _batch(data: TrainingData, rows: Tensor, device: torch.device) -> Batch:
    bias = None if data.bias is None else data.bias[rows].to(device)
    return Batch(data.images[rows].to(device), data.labels[rows].to(device), bias)


def _check_cancel(cancel: Cancel, where: str) -> None:
    if cancel is not None and cancel():
        raise AuditCancelled(f"training cancelled during {where}; pass resume=True with the same checkpoint_dir to go on")


def evaluate_accuracy(model: nn.Module, data: TrainingData, *, device: torch.device | str = "cpu",
                      batch_size: int = _EVAL_BATCH, by_group: bool = False, progress: Progress = None,
                      cancel: Cancel = None) -> dict[str, float]:
    """``loss`` (mean cross-entropy) and ``accuracy`` of ``model`` in eval mode on ``data``, plus
    ``worst_group_accuracy`` over the bias codes when ``data`` has a bias (and with ``by_group``,
    ``accuracy[NAME]`` for each bias group present). Leaves the model in eval mode."""
    device = torch.device(device)
    model.eval()
    preds, total_loss = [], 0.0
    n = len(data)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            _check_cancel(cancel, "validation")
            rows = torch.arange(start, min(n, start + batch_size))
            b = _batch(data, rows, device)
            logits = model(b.x).float()
            total_loss += float(F.cross_entropy(logits, b.y, reduction="sum"))
            preds.append(logits.argmax(1).cpu())
            if progress is not None:
                progress("validate", int(rows[-1]) + 1, n)
    correct = torch.cat(preds) == data.labels
    out = {"loss": total_loss / n, "accuracy": float(correct.float().mean())}
    if data.bias is not None:
        groups = {g: float(correct[data.bias == g].float().mean()) for g in torch.unique(data.bias).tolist()}
        out["worst_group_accuracy"] = min(groups.values())
        if by_group:
            out.update({f"accuracy[{data.bias_names[g]}]": acc for g, acc in groups.items()})
    return out


def _train_epoch(model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, train: TrainingData,
                 cfg: _Config, epoch: int, device: torch.device, progress: Progress, cancel: Cancel) -> dict[str, float]:
    """One pass over ``train`` (epoch is 0-based); returns the size-weighted means of the loss and the logs."""
    model.train()
    for m in objective.modules:
        m.train()
    chunks = _batches(len(train), cfg.batch_size, cfg.seed, epoch)
    sums: dict[str, float] = {}
    seen = 0
    for k, rows in enumerate(chunks):
        _check_cancel(cancel, f"epoch {epoch + 1}")
        batch = _batch(train, rows, device)
        share = (epoch + k / len(chunks)) / cfg.epochs
        loss, logs = objective.loss(model, batch, share)
        if not torch.isfinite(loss):
            raise ParameterError(f"lr={cfg.lr} gave a non-finite loss at epoch {epoch + 1}, batch {k + 1}; lower lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        b = rows.numel()
        seen += b
        for name, value in {"train_loss": float(loss.detach()), **logs}.items():
            sums[name] = sums.get(name, 0.0) + float(value) * b
        if progress is not None:
            progress("train", epoch * len(chunks) + k + 1, cfg.epochs * len(chunks))
    return {name: total / seen for name, total in sums.items()}


# ---------------------------------------------------------------------------------------------
# Checkpoints


def _rng_state(device: torch.device) -> dict[str, Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _save(path: Path, model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, cfg: _Config,
          state: _State, device: torch.device, signature: dict[str, Any]) -> None:
    """Write the checkpoint atomically: readers see the previous file or the whole new one."""
    payload = {
        "format": _FORMAT,
        "signature": signature,
        "weights": _weights(model, objective.modules),
        "optimizer": optimizer.state_dict(),
        "rng": _rng_state(device),
        "epoch": state.epoch,
        "history": state.history,
        "best_epoch": state.best_epoch,
        "best_score": state.best_score,
        "best_weights": state.best_weights,
        "stopped_early": state.stopped_early,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _signature(cfg: _Config, train: TrainingData, val: TrainingData | None, objective: Objective) -> dict[str, Any]:
    """What a resumed run must share with the one that wrote the checkpoint."""
    return {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "weight_decay": cfg.weight_decay,
            "seed": cfg.seed, "patience": -1 if cfg.patience is None else cfg.patience, "keep": cfg.keep, "train": len(train),
            "val": 0 if val is None else len(val), "objective": type(objective).__name__}


def _load(path: Path, model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer,
          device: torch.device, signature: dict[str, Any]) -> _State:
    """Restore a checkpoint written by `_save` for the same run; returns the loop's state."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged or foreign file
        raise ParameterError(f"checkpoint {path} cannot be read ({exc.__class__.__name__}); delete it or pass resume=False") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ParameterError(f"checkpoint {path} is not a mitigate checkpoint; delete it or pass resume=False")
    for name, value in signature.items():
        if payload["signature"].get(name) != value:
            raise ParameterError(f"{name}={value!r} differs from the checkpoint's {payload['signature'].get(name)!r}; "
                                 f"pass the run's arguments again or resume=False")
    try:
        _load_weights(model, objective.modules, payload["weights"])
        optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ParameterError(f"checkpoint {path} does not fit this model or objective ({str(exc).splitlines()[0]}); "
                             f"pass the same model or resume=False") from None
    _set_rng_state(payload["rng"], device)
    return _State(epoch=int(payload["epoch"]), history=list(payload["history"]), best_epoch=int(payload["best_epoch"]),
                  best_score=float(payload["best_score"]), best_weights=payload["best_weights"],
                  stopped_early=bool(payload["stopped_early"]))


# ---------------------------------------------------------------------------------------------
# The loop


def fit(model: nn.Module, objective: Objective, train: TrainingData, val: TrainingData | None = None, *,
        epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.0, seed: int = 0,
        device: torch.device | str = "cpu", checkpoint_dir: Path | None = None, resume: bool = False,
        patience: int | None = None, keep: str = "best", progress: Progress = None, cancel: Cancel = None) -> FitResult:
    """Train ``model`` in place with ``objective``; see the module docstring. Leaves the model in eval mode.

    ``progress("train", done, total)`` after each training batch (over all epochs) and
    ``progress("validate", done, n)`` after each validation batch; ``cancel()`` is asked before
    each batch and raises `AuditCancelled` (the last checkpoint stays, for ``resume=True``).
    """
    cfg = _check_args(model, objective, train, val, epochs, batch_size, lr, weight_decay, seed, checkpoint_dir,
                      resume, patience, keep)
    device = torch.device(device)
    path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    model.to(device)
    for m in objective.modules:
        m.to(device)
    _check_model_fits(model, train, device)
    optimizer = torch.optim.Adam(_params(model, objective.modules), lr=cfg.lr, weight_decay=cfg.weight_decay)
    signature = _signature(cfg, train, val, objective)
    forked = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=forked):
            torch.manual_seed(cfg.seed)
            state = _State()
            if resume and path is not None and path.exists():
                state = _load(path, model, objective, optimizer, device, signature)
                log.info("resuming from %s after epoch %d", path, state.epoch)
            elif resume:
                log.info("no checkpoint at %s; training from the start", path)
            _run(model, objective, optimizer, train, val, cfg, state, device, path, signature, progress, cancel)
        if cfg.keep == "best" and state.best_weights is not None:
            _load_weights(model, objective.modules, state.best_weights)
        best = state.best_epoch if cfg.keep == "best" and state.best_weights is not None else state.epoch
        return FitResult(epochs_run=state.epoch, best_epoch=best, history=state.history,
                         stopped_early=state.stopped_early)
    finally:
        model.eval()
        for m in objective.modules:
            m.eval()


def _run(model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, train: TrainingData,
         val: TrainingData | None, cfg: _Config, state: _State, device: torch.device, path: Path | None,
         signature: dict[str, Any], progress: Progress, cancel: Cancel) -> None:
    """Epochs from ``state.epoch`` on, updating ``state`` and the checkpoint after each."""
    while state.epoch < cfg.epochs and not state.stopped_early:
        row = {"epoch": float(state.epoch + 1),
               **_train_epoch(model, objective, optimizer, train, cfg, state.epoch, device, progress, cancel)}
        if val is not None:
            scores = evaluate_accuracy(model, val, device=device, progress=progress, cancel=cancel)
            row.update({f"val_{k}": v for k, v in scores.items()})
            if scores["accuracy"] > state.best_score:
                state.best_score, state.best_epoch = scores["accuracy"], state.epoch + 1
                state.best_weights = _weights(model, objective.modules)
        state.epoch += 1
        state.history.append(row)
        if cfg.patience is not None and state.epoch - state.best_epoch >= cfg.patience and state.epoch < cfg.epochs:
            state.stopped_early = True
            log.info("early stop after epoch %d: no better val accuracy since epoch %d", state.epoch, state.best_epoch)
        log.info("epoch %d/%d: %s", state.epoch, cfg.epochs, ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
        if path is not None:
            _save(path, model, objective, optimizer, cfg, state, device, signature)
