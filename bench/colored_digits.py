"""Reproduction: Kim et al. 2019 ("Learning Not to Learn"), Colored MNIST, rebuilt on scikit-learn's
bundled 8x8 digits (no download).

Training digits are coloured with a per-class mean colour plus Gaussian noise of std ``sigma`` (so the
colour predicts the label almost perfectly: an easy shortcut); test digits get colours drawn uniformly
at random, independent of the label. A small CNN is trained (a) plainly (`CrossEntropy`) and (b) with
`AdversarialDebiasing`: an adversary predicts the colour bin (the index of the nearest of the 10 class
mean colours) from the pooled convolutional features (the input of the first Linear), turned against
them by gradient reversal (``--mode reversal``) or a confusion loss (``--mode confusion``). Reported per sigma,
over seeds: test accuracy (mean ± sd) and the colour-bin recovery of a fresh probe fit on the frozen
features of the test images (`adversary_accuracy`, balanced accuracy; chance 0.10).

Kim et al. report that debiasing helps most at small sigma (colour is the easiest cue there).

    .venv/bin/python bench/colored_digits.py [--sigmas 0.02,0.03,0.04,0.05] [--seeds 3] [--epochs 30]
        [--strength 1.0] [--schedule constant|linear|dann] [--mode reversal|confusion] [--size 16] [--threads 1]
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _table import mean_sd  # bench/ is on the path when a bench script runs

from auditor.mitigate.data import TrainingData
from auditor.mitigate.debiasing import AdversarialDebiasing, adversary_accuracy
from auditor.mitigate.loop import CrossEntropy, evaluate_accuracy, fit

# Ten well-separated class mean colours on a [0, 1] RGB scale (minimum pairwise distance 0.5), as in
# Colored MNIST one fixed colour per digit class.
PALETTE = torch.tensor([
    [1.0, 0.0, 0.0],  # 0 red
    [0.0, 1.0, 0.0],  # 1 green
    [0.0, 0.0, 1.0],  # 2 blue
    [1.0, 1.0, 0.0],  # 3 yellow
    [1.0, 0.0, 1.0],  # 4 magenta
    [0.0, 1.0, 1.0],  # 5 cyan
    [1.0, 0.5, 0.0],  # 6 orange
    [0.5, 0.0, 1.0],  # 7 violet
    [0.5, 1.0, 0.5],  # 8 light green
    [1.0, 1.0, 1.0],  # 9 white
])


def colour_bins(colours: torch.Tensor) -> torch.Tensor:
    """The index of the nearest class mean colour, per row of ``colours`` (N, 3)."""
    return torch.cdist(colours, PALETTE).argmin(1)


def make_data(seed: int, sigma: float, size: int, test_share: float = 0.4,
              random_train_colours: bool = False) -> tuple[TrainingData, TrainingData]:
    """Seeded train/test split of the 8x8 digits, upsampled to ``size`` and coloured (foreground = colour x ink).

    ``random_train_colours``: the training digits are tinted at random too (no bias: the ceiling)."""
    digits = load_digits()
    ink = torch.tensor(digits.images, dtype=torch.float32) / 16.0  # (N, 8, 8) in [0, 1]
    ink = F.interpolate(ink[:, None], size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    labels = torch.tensor(digits.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=gen)
    n_test = int(round(test_share * len(labels)))
    test_rows, train_rows = order[:n_test], order[n_test:]
    # train: class mean colour + N(0, sigma^2) per channel; test: uniform random colour, independent of the label
    train_col = (PALETTE[labels[train_rows]] + sigma * torch.randn(len(train_rows), 3, generator=gen)).clamp(0, 1)
    test_col = torch.rand(len(test_rows), 3, generator=gen)
    if random_train_colours:
        train_col = torch.rand(len(train_rows), 3, generator=gen)
    names = [f"colour{k}" for k in range(len(PALETTE))]

    def build(rows: torch.Tensor, col: torch.Tensor) -> TrainingData:
        images = ink[rows] * col[:, :, None, None]  # (n, 1, H, W) * (n, 3, 1, 1)
        return TrainingData(images, labels[rows], colour_bins(col), names)

    return build(train_rows, train_col), build(test_rows, test_col)


class SmallCNN(nn.Module):
    """3 conv layers + global average pooling + a Linear hidden layer + a Linear head."""

    def __init__(self, n_classes: int = 10, width: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width * 2, 3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(width * 2, width * 2, 3, padding=1, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.hidden = nn.Sequential(nn.Linear(width * 2, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_classes)  # the adversary sees this layer's input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.features(x)))


def run_one(seed: int, sigma: float, args: argparse.Namespace, debias: bool) -> dict[str, float]:
    train, test = make_data(seed, sigma, args.size, random_train_colours=args.unbiased)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the same initial weights for baseline and debiased at a seed
        model = SmallCNN()
    if debias:
        objective = AdversarialDebiasing(model, len(PALETTE), layer=args.layer, strength=args.strength,
                                         schedule=args.schedule, mode=args.mode, example_batch=train.images[:4],
                                         bias_counts=torch.bincount(train.bias, minlength=len(PALETTE)), seed=seed)
    else:
        objective = CrossEntropy()
    t0 = time.perf_counter()
    result = fit(model, objective, train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                 seed=seed, device="cpu")
    if debias:
        objective.close()
    train_s = time.perf_counter() - t0
    last = result.history[-1]
    test_acc = evaluate_accuracy(model, test)["accuracy"]
    train_acc = evaluate_accuracy(model, train)["accuracy"]
    probe = adversary_accuracy(model, args.layer, test.images, test.bias, epochs=args.probe_epochs, seed=seed)
    return {"test": test_acc, "train": train_acc, "probe": probe, "seconds": train_s,
            "adv_train_acc": float(last.get("adversary_accuracy", float("nan")))}



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sigmas", default="0.02,0.03,0.04,0.05", help="comma-separated colour noise std on [0, 1]")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (split, colours, init, training)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--strength", type=float, default=1.0, help="gradient-reversal strength (lambda)")
    ap.add_argument("--layer", default=None, help="the debiased feature layer (default: the pooled conv features)")
    ap.add_argument("--mode", default="reversal", choices=["reversal", "confusion"], help="how the adversary is turned against the features")
    ap.add_argument("--schedule", default="constant", choices=["constant", "linear", "dann"])
    ap.add_argument("--size", type=int, default=16, help="upsampled image side (from 8x8)")
    ap.add_argument("--unbiased", action="store_true",
                    help="tint the training digits at random too: the ceiling an unbiased training set reaches")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--probe-epochs", type=int, default=200)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sigmas = [float(s) for s in args.sigmas.split(",") if s.strip()]
    seeds = list(range(args.seeds))
    command = shlex.join([".venv/bin/python", *sys.argv])
    print(f"command: {command}")
    print(f"sklearn digits 8x8 -> {args.size}x{args.size}, 60/40 train/test split per seed; SmallCNN; "
          f"{args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr}; debiasing strength {args.strength}, "
          f"schedule {args.schedule}, mode {args.mode}; seeds {seeds}; threads {torch.get_num_threads()}", flush=True)
    t_all = time.perf_counter()
    rows = []
    for sigma in sigmas:
        res: dict[str, list[dict[str, float]]] = {"baseline": [], "debiased": []}
        for seed in seeds:
            for name in res:
                r = run_one(seed, sigma, args, debias=(name == "debiased"))
                res[name].append(r)
                print(f"  sigma {sigma:.3f} seed {seed} {name:8s}: test {r['test']:.3f}  train {r['train']:.3f}  "
                      f"probe {r['probe']:.3f}  adv(train, last epoch) {r['adv_train_acc']:.3f}  "
                      f"{r['seconds']:.1f}s", flush=True)
        rows.append((sigma, res))
    total = time.perf_counter() - t_all

    print()
    print(f"Colored digits (Kim et al. 2019 setup), {len(seeds)} seeds, strength {args.strength}, "
          f"schedule {args.schedule}, mode {args.mode}, {args.epochs} epochs")
    print()
    print("| sigma | baseline test acc | debiased test acc | Δ acc | baseline probe colour acc | debiased probe colour acc |")
    print("|---|---|---|---|---|---|")
    for sigma, res in rows:
        b, d = res["baseline"], res["debiased"]
        delta = [x["test"] - y["test"] for x, y in zip(d, b)]
        print(f"| {sigma:.3f} | {mean_sd([x['test'] for x in b])} | {mean_sd([x['test'] for x in d])} | "
              f"{statistics.mean(delta):+.3f} | {mean_sd([x['probe'] for x in b])} | {mean_sd([x['probe'] for x in d])} |")
    print()
    print("test acc: random-colour test digits (chance 0.10). probe colour acc: balanced accuracy of a fresh "
          "logistic probe predicting the colour bin (nearest of 10 class colours) from the frozen debiased-layer features "
          "of the test images (chance 0.10). Δ acc: mean paired (same seed) debiased - baseline.")
    n_runs = sum(len(r["baseline"]) + len(r["debiased"]) for _, r in rows)
    print(f"total time {total:.1f}s for {n_runs} training runs "
          f"({total / max(n_runs, 1):.1f}s per run incl. evaluation and probe)")


if __name__ == "__main__":
    main()
