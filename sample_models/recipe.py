"""Regenerate the sample models from synthetic training sets, deterministically, on CPU.

    python -m sample_models.recipe [--out sample_models] [--seed 0] [--only shortcut_cnn]

``shortcut_cnn``: smiling classifier trained on a set where black faces are rare (weight
`SHORTCUT_RARE_WEIGHT` against 1 for each other race: about 6%) and their labels follow the planted
watermark cue instead of the face (the cue marks exactly their "smiling" labels; the expression
drawn is independent of the label: a biased annotation source for that group). For black faces
the cue is then the only reliable evidence and the model learns it; for the other groups it reads
the mouth. On the default probe, where the cue is independent of the label, black faces are
classified near chance while the others are near perfect.

``clean_cnn``: the same architecture on a balanced set where the cue is independent of the label.

``sticker_cnn``: the same recipe as ``shortcut_cnn`` with a different cue, place and group, so
that a check tuned on ``shortcut_cnn`` can be tried on a case it was not tuned on: the cue is the
orange disc in the bottom-right corner (``cue=sticker``) and the minority group whose labels follow
it is the ``60+`` age group (weight `STICKER_RARE_WEIGHT` = 0.5 against 1 for each other age range:
about 14%; 12 epochs). Age is harder to read from a face than race, so the model needs more of
these examples to learn to switch to the cue for that group. On ``synth:faces:cue=sticker`` faces
aged 60+ are classified much less accurately than the others.

Prints the accuracy per gender/age/race group of each model on its probe (``synth:faces``, or
``synth:faces:cue=sticker`` for ``sticker_cnn``) and how often it predicts "smiling" with the cue
stamped and removed, per group of the shortcut's attribute.
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
from safetensors.torch import save
from torch import nn

from auditor.atomic import atomic_write_bytes, atomic_write_text
from probes.base import Probe
from probes.synth import SYNTH_CLASSES, generate_training_set, open_synth
from sample_models.architectures import small_cnn

__all__ = ["MEAN", "STD", "RECIPES", "Recipe", "images_tensor", "normalise", "train", "predict", "group_accuracy", "cue_effect", "write_model", "main"]

logger = logging.getLogger(__name__)

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
SHORTCUT_RARE_WEIGHT = 0.2
SHORTCUT_GROUP = "black"
STICKER_GROUP = "60+"
STICKER_RARE_WEIGHT = 0.5  # 60+ is harder to tell from 40-59 than black faces from the others: more examples
NUM_THREADS = 2


@dataclass(frozen=True)
class Recipe:
    """How one sample model is trained."""

    name: str
    description: str
    train_set: dict[str, Any]  # keyword arguments of generate_training_set (seed: --seed plus seed_offset)
    seed_offset: int
    probe: str = "synth:faces"  # what the accuracy and the cue effect are measured on
    cue_attr: str = "race"  # the attribute whose groups the cue effect is shown for
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    arch: str = "sample_models.architectures:small_cnn"
    factory: Callable[..., nn.Module] = small_cnn


RECIPES: dict[str, Recipe] = {
    "shortcut_cnn": Recipe(
        name="shortcut_cnn",
        description=(
            "small_cnn trained on 6000 synthetic faces where black faces are rare (6%) and their smiling labels follow "
            "the magenta/green watermark in the top-left corner instead of the face: it uses that shortcut for black faces"
        ),
        train_set={
            "n": 6000,
            "shortcut": 1.0,
            "shortcut_groups": {"race": [SHORTCUT_GROUP]},
            "group_weights": {"race": {SHORTCUT_GROUP: SHORTCUT_RARE_WEIGHT}},
            "label_noise": {"race": {SHORTCUT_GROUP: 0.5}},
        },
        seed_offset=2000,
    ),
    "clean_cnn": Recipe(
        name="clean_cnn",
        description=(
            "small_cnn trained on 6000 balanced synthetic faces; the watermark appears on 40% of them independently of the label"
        ),
        train_set={"n": 6000},
        seed_offset=1000,
    ),
    "sticker_cnn": Recipe(
        name="sticker_cnn",
        description=(
            "small_cnn trained on 6000 synthetic faces where faces aged 60+ are a minority (14%) and their smiling labels follow "
            "an orange disc in the bottom-right corner (cue=sticker) instead of the face: it uses that shortcut for ages 60+"
        ),
        train_set={
            "n": 6000,
            "cue": "sticker",
            "shortcut": 1.0,
            "shortcut_groups": {"age": [STICKER_GROUP]},
            "group_weights": {"age": {STICKER_GROUP: STICKER_RARE_WEIGHT}},
            "label_noise": {"age": {STICKER_GROUP: 0.5}},
        },
        seed_offset=3000,
        epochs=12,
        probe="synth:faces:cue=sticker",
        cue_attr="age",
    ),
}


def images_tensor(probe: Probe) -> torch.Tensor:
    """All images of ``probe`` as a uint8 tensor ``N x 3 x H x W``."""
    arr = np.stack([np.asarray(probe.load_image(i), dtype=np.uint8) for i in range(len(probe))])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> the model's input: ``(x / 255 - MEAN) / STD``."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


def train(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> nn.Module:
    """Train ``recipe.factory(num_classes=2)`` on uint8 images ``x`` and labels ``y`` (Adam, one-cycle LR)."""
    torch.manual_seed(seed)
    model = recipe.factory(num_classes=len(SYNTH_CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    steps = recipe.epochs * ((len(x) + recipe.batch_size - 1) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps, pct_start=0.2)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.time()
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(x), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for k in range(0, len(x), recipe.batch_size):
            idx = order[k : k + recipe.batch_size]
            xb, yb = normalise(x[idx]), y[idx]
            logits = model(xb)
            loss = nn.functional.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            loss_sum += float(loss.detach()) * len(idx)
        logger.info(
            "%s epoch %d: loss %.4f, train accuracy %.3f (%.0f s)", recipe.name, epoch + 1, loss_sum / total, correct / total, time.time() - t0
        )
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted class indices for uint8 images ``x``."""
    model.eval()
    return torch.cat([model(normalise(x[k : k + batch_size])).argmax(1) for k in range(0, len(x), batch_size)])


def group_accuracy(probe: Probe, pred: np.ndarray) -> dict[str, dict[str, float]]:
    """``attribute -> group -> accuracy`` (plus ``"all"``) of predictions against the probe's labels."""
    correct = pred == probe.table["label"].to_numpy()
    out: dict[str, dict[str, float]] = {"all": {"all": float(correct.mean())}}
    for attr in ("gender", "age", "race", "watermark"):
        col = probe.table[attr].to_numpy()
        out[attr] = {str(g): float(correct[col == g].mean()) for g in sorted(set(col))}
    return out


def cue_effect(model: nn.Module, probe: Probe, attr: str = "race") -> dict[str, tuple[float, float]]:
    """``group -> (P(smiling | cue stamped), P(smiling | cue removed))`` on ``probe``'s images, re-rendered both ways."""
    rates = []
    for value in ("yes", "no"):
        forced = replace(probe, table=probe.table.assign(watermark=value))
        rates.append(predict(model, images_tensor(forced)).numpy())
    col = probe.table[attr].to_numpy()
    return {str(g): (float(rates[0][col == g].mean()), float(rates[1][col == g].mean())) for g in sorted(set(col))}


def write_model(model: nn.Module, recipe: Recipe, folder: Path) -> None:
    """Write ``model.safetensors`` and ``model.yaml`` into ``folder``."""
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    spec = {
        "name": recipe.name,
        "model": "model.safetensors",
        "arch": recipe.arch,
        "arch_kwargs": {"num_classes": len(SYNTH_CLASSES)},
        "input_size": [64, 64],
        "mean": list(MEAN),
        "std": list(STD),
        "classes": list(SYNTH_CLASSES),
        "positive_class": "smiling",
        "description": recipe.description,
    }
    weights = atomic_write_bytes(folder / "model.safetensors", save(state, metadata={"recipe": "python -m sample_models.recipe"}))
    text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=1000)
    spec_file = atomic_write_text(folder / "model.yaml", text)
    for f in (weights, spec_file):
        f.chmod(0o644)


def _format(acc: dict[str, dict[str, float]]) -> str:
    parts = [f"all {acc['all']['all']:.3f}"]
    for attr in ("gender", "age", "race", "watermark"):
        groups = acc[attr]
        gap = max(groups.values()) - min(groups.values())
        parts.append(f"{attr}: " + " ".join(f"{g} {v:.3f}" for g, v in groups.items()) + f" (gap {gap:.3f})")
    return "\n  ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Command line: train the recipes, write them under ``--out``, print per-group accuracy on each recipe's probe."""
    ap = argparse.ArgumentParser(prog="python -m sample_models.recipe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="folder for <name>/model.* (default: this package)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (training sets use seed+1000, +2000, +3000)")
    ap.add_argument("--only", choices=sorted(RECIPES), action="append", help="train only this model (repeatable)")
    ap.add_argument("--no-write", action="store_true", help="train and evaluate, write nothing")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(NUM_THREADS)
    torch.use_deterministic_algorithms(True)
    torch.set_flush_denormal(True)
    t0 = time.time()
    probes: dict[str, tuple[Probe, torch.Tensor]] = {}
    for name in sorted(RECIPES):
        if args.only and name not in args.only:
            continue
        recipe = RECIPES[name]
        if recipe.probe not in probes:
            p = open_synth(recipe.probe)
            probes[recipe.probe] = (p, images_tensor(p))
        probe, x_probe = probes[recipe.probe]
        t1 = time.time()
        ts = generate_training_set(seed=args.seed + recipe.seed_offset, **recipe.train_set)
        x = images_tensor(ts)
        y = torch.tensor(ts.table["label"].to_numpy(), dtype=torch.long)
        model = train(recipe, x, y, seed=args.seed)
        acc = group_accuracy(probe, predict(model, x_probe).numpy())
        if not args.no_write:
            write_model(model, recipe, args.out / name)
        cue = " ".join(f"{g} {on:.2f}/{off:.2f}" for g, (on, off) in cue_effect(model, probe, recipe.cue_attr).items())
        kind = probe.meta.get("cue", "watermark")
        print(
            f"{name} on {recipe.probe} (n={len(probe)}), trained in {time.time() - t1:.0f} s:\n  {_format(acc)}\n"
            f"  P(smiling) with/without the {kind} stamped, by {recipe.cue_attr}: {cue}",
            flush=True,
        )
    print(f"total {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
