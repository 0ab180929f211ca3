"""Debiasing the shortcut sample model: does the adversary, not the fine-tuning, narrow the race gap?

`shortcut_cnn` learned to read a watermark for black faces (their training labels follow it). Here it is
fine-tuned on a fresh draw of that same biased training set (``auditor probe synth --like shortcut_cnn``)
three ways, same seeds and settings: plainly (cross-entropy: the control), with `AdversarialDebiasing`
in ``reversal`` mode and in ``confusion`` mode (adversary on race, balanced weights, DANN ramp, the
default feature layer). Reported over seeds on the default probe (``synth:faces``, cue independent of
the label): black-face accuracy, the largest race accuracy gap, overall accuracy, and how well a fresh
probe reads race from the frozen features (balanced accuracy, chance 0.25).

    .venv/bin/python bench/debias_shortcut.py [--n 3000] [--epochs 4] [--seeds 3] [--strength 1.0] [--threads 2]
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _table import mean_sd  # bench/ is on the path when a bench script runs

from auditor.mitigate.data import TrainingData, from_probe
from auditor.mitigate.debiasing import AdversarialDebiasing, adversary_accuracy
from auditor.mitigate.loop import CrossEntropy, evaluate_accuracy, fit
from auditor.models import load_model
from probes.synth import generate_training_set, write_manifest_folder
from sample_models.recipe import RECIPES

SPEC = Path(__file__).resolve().parents[1] / "sample_models" / "shortcut_cnn" / "model.yaml"


def group_accuracy(module: torch.nn.Module, probe: TrainingData) -> dict[str, float]:
    """Accuracy per race group of ``probe`` (keyed by name) and ``overall``."""
    scores = evaluate_accuracy(module, probe, by_group=True)
    out = {name: scores[f"accuracy[{name}]"] for name in probe.bias_names}
    out["overall"] = scores["accuracy"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="training images (a fresh draw of the shortcut recipe)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", choices=["best", "last"], default="last",
                    help="last (the CLI default for debiasing): the last epoch; best: the best validation accuracy (early stopping)")
    ap.add_argument("--modes", default="fine-tune (control),reversal,confusion")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"command: {shlex.join(['.venv/bin/python', *sys.argv])}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_set = generate_training_set(**{**RECIPES["shortcut_cnn"].train_set, "n": args.n, "seed": 77})
        write_manifest_folder(train_set, Path(tmp) / "train")
        data = from_probe(str(Path(tmp) / "train"), (64, 64), bias="race")
    probe = from_probe("synth:faces", (64, 64), bias="race")
    before = group_accuracy(load_model(str(SPEC)).module, probe)
    t_all = time.perf_counter()
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in args.modes.split(",")}
    for seed in range(args.seeds):
        train, val = data.split(0.2, seed)
        for name in rows:
            model = load_model(str(SPEC)).module
            objective = (CrossEntropy() if name.startswith("fine-tune") else
                         AdversarialDebiasing(model, len(data.bias_names), strength=args.strength, schedule="dann",
                                              mode=name, example_batch=train.images[:2],
                                              bias_counts=torch.bincount(train.bias, minlength=len(data.bias_names)),
                                              seed=seed))
            t0 = time.perf_counter()
            fit(model, objective, train, val if args.keep == "best" else None, epochs=args.epochs, batch_size=64, lr=1e-3,
                seed=seed, patience=3 if args.keep == "best" else None)
            acc = group_accuracy(model, probe)
            read = adversary_accuracy(model, objective if isinstance(objective, AdversarialDebiasing) else None,
                                      probe.images, probe.bias, seed=seed)
            if isinstance(objective, AdversarialDebiasing):
                objective.close()
            groups = [acc[g] for g in probe.bias_names]
            r = {"black": acc["black"], "gap": max(groups) - min(groups), "overall": acc["overall"], "probe": read}
            rows[name].append(r)
            print(f"  seed {seed} {name:20s} black {r['black']:.3f} gap {r['gap']:.3f} overall {r['overall']:.3f} "
                  f"race probe {r['probe']:.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    groups = [before[g] for g in probe.bias_names]
    print()
    print(f"shortcut_cnn fine-tuned on {args.n} images of its biased recipe, {args.epochs} epochs, seeds 0..{args.seeds - 1}, "
          f"strength {args.strength}, weights kept: {args.keep} epoch; probe synth:faces ({len(probe)} images)")
    print()
    print("| model | black-face accuracy | race accuracy gap | overall accuracy | race read by a fresh probe |")
    print("|---|---|---|---|---|")
    print(f"| shortcut_cnn (before) | {before['black']:.3f} | {max(groups) - min(groups):.3f} | {before['overall']:.3f} | "
          f"{adversary_accuracy(load_model(str(SPEC)).module, None, probe.images, probe.bias, seed=0):.3f} |")
    for name, rs in rows.items():
        print(f"| {name} | {mean_sd([r['black'] for r in rs])} | {mean_sd([r['gap'] for r in rs])} | "
              f"{mean_sd([r['overall'] for r in rs])} | {mean_sd([r['probe'] for r in rs])} |")
    print(f"\ntotal time {time.perf_counter() - t_all:.0f}s")


if __name__ == "__main__":
    main()
