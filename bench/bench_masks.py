"""Benchmark: batched meaningful-perturbation masks (16 images optimised together) against a
one-image-at-a-time loop of the same algorithm (``batch_size=1``: same steps, same jitter draws),
measured in the same run, on torchvision ResNet-18 (random init, seeded, 2 classes) at 64 x 64.
Target: at least 3.9x on a 2-core CPU for 16 images. Also checks that both give the same masks.

    .venv/bin/python bench/bench_masks.py [--n 16] [--steps 40] [--areas 0.05,0.1,0.2] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _workload import random_resnet, sync  # bench/ is on the path when a bench script runs
from auditor.spurious import learn_masks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--areas", default="", help="comma-separated fractions for the extremal variant; empty = plain")
    ap.add_argument("--operator", default="blur")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave torch's default)")
    args = ap.parse_args()
    device = torch.device(args.device)
    model, images, targets = random_resnet(args.n, args.size, device, args.threads)
    areas = tuple(float(a) for a in args.areas.split(",")) if args.areas else None
    kw = dict(game="deletion", areas=areas, operator=args.operator, steps=args.steps, seed=0, device=device)
    print(f"ResNet-18 (random init, 2 classes), {args.n} images {args.size}x{args.size}, {args.steps} steps, "
          f"areas={areas}, operator={args.operator}, device={device}, threads={torch.get_num_threads()}")
    learn_masks(model, images[:2], targets[:2], **dict(kw, steps=2), batch_size=2)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    batched = learn_masks(model, images, targets, batch_size=args.n, **kw)
    sync(device)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = learn_masks(model, images, targets, batch_size=1, **kw)
    sync(device)
    t_single = time.perf_counter() - t0
    diff = float((batched.masks - single.masks).abs().max())
    print(f"batched ({args.n} images in one optimisation): {t_batched:7.2f} s  "
          f"({t_batched / args.steps * 1e3:.1f} ms/step)")
    print(f"one image at a time ({args.n} optimisations):   {t_single:7.2f} s")
    print(f"mean mask area: {float(batched.area.mean()):.3f}, converged: {float(batched.converged.float().mean()):.0%}")
    print(f"ratio: {t_single / t_batched:.2f}x   max |mask difference|: {diff:.2e}   "
          f"forward passes: {batched.forward_passes}, backward: {batched.backward_passes}")


if __name__ == "__main__":
    main()
