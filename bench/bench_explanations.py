"""Benchmark: attributions per second of each method of the explanations check, batched as the check runs
them (``batch_size`` images per pass, IG's ``internal_batch_size``, occlusion's ``perturbations_per_eval``)
against one image at a time (captum's plain per-image use), measured in the same run, on the shortcut
sample model and on torchvision ResNet-18 (random init, seeded, 2 classes), both at 64 x 64. Also checks
how far apart the two maps are (max |difference| / max |map|): float sums in another order for most
methods; SmoothGrad draws its noise per chunk of images, so its one-by-one maps use other draws.

    .venv/bin/python bench/bench_explanations.py [--n 32] [--device cpu|cuda] [--threads 0] [--models sample,resnet18]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _workload import sync  # bench/ is on the path when a bench script runs
from auditor.explain.attributions import METHODS, Settings, attribute, find_conv_layer
from auditor.frozen import frozen
from auditor.models import AuditModel, load_model

ROOT = Path(__file__).resolve().parents[1]


def models(names: list[str], device: torch.device) -> dict[str, torch.nn.Module]:
    out: dict[str, torch.nn.Module] = {}
    if "sample" in names:
        out["shortcut_cnn"] = load_model(str(ROOT / "sample_models" / "shortcut_cnn" / "model.yaml"), device=device).module
    if "resnet18" in names:
        torch.manual_seed(0)
        out["resnet18"] = AuditModel(torchvision.models.resnet18(num_classes=2).eval()).to(device)
    return out


def timed(model: torch.nn.Module, method: str, x: torch.Tensor, y: torch.Tensor, settings: Settings, layer, device) -> tuple[float, torch.Tensor]:
    sync(device)
    t = time.perf_counter()
    maps = attribute(model, method, x, y, settings, layer=layer)
    sync(device)
    return time.perf_counter() - t, maps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="images")
    ap.add_argument("--batch", type=int, default=64, help="the check's batch size")
    ap.add_argument("--ig-steps", type=int, default=24)
    ap.add_argument("--nt-samples", type=int, default=12)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave torch's default)")
    ap.add_argument("--models", default="sample,resnet18")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x = torch.rand(args.n, 3, 64, 64, generator=torch.Generator().manual_seed(1)).to(device)
    batched = Settings(ig_steps=args.ig_steps, nt_samples=args.nt_samples, occlusion_window=8, occlusion_stride=8,
                       batch_size=args.batch)
    single = Settings(**{**batched.__dict__, "batch_size": 1})
    print(f"{args.n} images 64x64, device={device}, threads={torch.get_num_threads()}, IG {args.ig_steps} steps, "
          f"SmoothGrad {args.nt_samples} samples, occlusion 8x8 patches stride 8, batch {args.batch}")
    print(f"{'model':14s} {'method':22s} {'batched/s':>10s} {'1-by-1/s':>10s} {'ratio':>6s}  apart")
    for name, model in models(args.models.split(","), device).items():
        with frozen(model):
            with torch.no_grad():
                y = model(x).argmax(1)
            layer = find_conv_layer(model, None, x)
            for method in METHODS:
                attribute(model, method, x[:2], y[:2], batched, layer=layer)  # warm-up
                tb, mb = timed(model, method, x, y, batched, layer, device)
                ts, ms = timed(model, method, x, y, single, layer, device)
                apart = float((mb - ms).abs().max() / mb.abs().max().clamp_min(1e-30))
                print(f"{name:14s} {method:22s} {args.n / tb:10.1f} {args.n / ts:10.1f} {ts / tb:6.2f}  {apart:.1e}")


if __name__ == "__main__":
    main()
