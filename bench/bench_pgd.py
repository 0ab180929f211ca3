"""Benchmark: our PGD (auditor.attacks.whitebox.pgd) against (a) the raw forward + input-backward
passes it is made of and (b) ART's ProjectedGradientDescentPyTorch with the same eps, step size,
steps and one random start, measured in the same run on torchvision ResNet-18 (random init,
seeded, 2 classes). Targets: our PGD steps/s >= 0.9 x raw passes/s; ours >= 1.4x faster than ART.

    .venv/bin/python bench/bench_pgd.py [--batch 256] [--size 64] [--steps 10] [--eps 0.0157]
                                        [--norm linf|l2] [--device cpu|cuda] [--threads N] [--repeats R]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _workload import random_resnet, sync  # bench/ is on the path when a bench script runs
from auditor.attacks.whitebox import pgd


def raw_passes(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """``steps`` forward + input-gradient backward passes of the batch, parameters frozen."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            xg = x.detach().requires_grad_(True)
            loss = F.cross_entropy(model(xg), y, reduction="sum")
            torch.autograd.grad(loss, xg)
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--eps", type=float, default=4 / 255)
    ap.add_argument("--norm", default="linf", choices=["linf", "l2"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave torch's default)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved timings of each; the fastest is reported")
    args = ap.parse_args()
    device = torch.device(args.device)
    # attack away from the model's own predictions: every image starts right
    model, x, y = random_resnet(args.batch, args.size, device, args.threads)
    step_size = 2.5 * args.eps / args.steps
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    print(f"ResNet-18 (random init, 2 classes), batch {args.batch} at {args.size}x{args.size}, {args.norm} eps={args.eps:.4f}, "
          f"{args.steps} steps (step {step_size:.5f}), device={device} {gpu}, threads={torch.get_num_threads()}, "
          f"torch {torch.__version__}, best of {args.repeats}")

    from art import __version__ as art_version
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(3, args.size, args.size), nb_classes=2,
        clip_values=(0.0, 1.0), device_type="gpu" if device.type == "cuda" else "cpu",
    )

    def art_attack(steps: int) -> ProjectedGradientDescentPyTorch:
        return ProjectedGradientDescentPyTorch(
            classifier, norm=np.inf if args.norm == "linf" else 2, eps=args.eps, eps_step=step_size, max_iter=steps,
            num_random_init=1, batch_size=args.batch, verbose=False,
        )

    x_np, y_np = x.cpu().numpy(), y.cpu().numpy()

    def timed(run) -> tuple[float, float, object]:
        """Wall seconds, this process's CPU seconds (all threads) and the result."""
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        out = run()
        sync(device)
        return time.perf_counter() - t0, time.process_time() - c0, out

    # warm-up at the full batch: kernels and their plans (oneDNN/cuDNN) are chosen per shape
    raw_passes(model, x, y, 1)
    pgd(model, x, y, args.eps, norm=args.norm, steps=1)
    art_attack(1).generate(x_np, y=y_np)
    t_raw = t_ours = t_art = c_raw = c_ours = c_art = float("inf")
    for _ in range(args.repeats):  # interleaved; the fastest of each is kept (noise only ever adds time)
        t, c, _ = timed(lambda: raw_passes(model, x, y, args.steps))
        t_raw, c_raw = min(t_raw, t), min(c_raw, c)
        t, c, ours = timed(lambda: pgd(model, x, y, args.eps, norm=args.norm, steps=args.steps, step_size=step_size,
                                       random_start=True, batch_size=args.batch))
        t_ours, c_ours = min(t_ours, t), min(c_ours, c)
        t, c, x_art = timed(lambda: art_attack(args.steps).generate(x_np, y=y_np))
        t_art, c_art = min(t_art, t), min(c_art, c)

    with torch.no_grad():
        art_robust = float((model(torch.from_numpy(x_art).to(device)).argmax(1) == y).float().mean())
    ours_robust = 1.0 - float(ours.success.float().mean())
    raw_rate = args.steps / t_raw
    ours_rate = args.steps / t_ours
    art_rate = args.steps / t_art
    print(f"(a) raw forward+input-backward: {raw_rate:8.3f} batch passes/s ({raw_rate * args.batch:9.1f} images/s), "
          f"{t_raw:.2f} s wall, {c_raw:.2f} s CPU for {args.steps}")
    print(f"(b) ours pgd:                   {ours_rate:8.3f} steps/s        ({ours_rate * args.batch:9.1f} image-steps/s), "
          f"{t_ours:.2f} s wall, {c_ours:.2f} s CPU; forward {ours.forward_passes}, backward {ours.backward_passes} images")
    print(f"(c) ART {art_version} PGD:            {art_rate:8.3f} steps/s        ({art_rate * args.batch:9.1f} image-steps/s), "
          f"{t_art:.2f} s wall, {c_art:.2f} s CPU")
    print(f"ratio ours / raw: {ours_rate / raw_rate:.3f} wall, {c_raw / c_ours:.3f} CPU  (target >= 0.9)")
    print(f"speed-up ours vs ART: {t_art / t_ours:.2f}x wall, {c_art / c_ours:.2f}x CPU  (target >= 1.4x)")
    print(f"robust accuracy: ours {ours_robust:.3f}, ART {art_robust:.3f} (both one random start)")


if __name__ == "__main__":
    main()
