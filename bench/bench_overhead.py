"""Benchmark: the overhead ledger. For each model, every check's wall time against the time its own
image passes would take at the raw throughput measured in the same run, and the cost plan against
what happened.

    .venv/bin/python bench/bench_overhead.py [--models sample,resnet18,resnet50] [--budget-sample standard]
                                              [--budget-resnet quick] [--probe-n 1200] [--resnet-probe-n 300]
                                              [--full-resnet50] [--batch-size 64]

A check's ratio is ``wall seconds / (forward-only passes / forward rate + forward+backward passes /
backward rate)``, its passes counted on the model while it ran (`auditor.cost.PassCounter`) and the
rates timed on one batch of the audit's size just before the checks (`auditor.cost.measure_throughput`).
1.0 means the check spends all its time in model passes at full batches; above that is Python,
statistics, figures, image loading and passes on batches smaller than the audit's. The ResNets are
randomly initialised (nothing is downloaded): their passes cost what a trained one's do.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHECKS = ("group_metrics", "spurious", "attacks", "explanations")
# ResNet-50 at 224 px on a 2-core CPU runs about 10 images/s forward: even --budget quick plans over an
# hour, so the bench sizes its checks down (the ratio does not depend on how many images a check takes)
RESNET50_PARAMS = {"spurious": {"n_images": 8, "steps": 20},
                   "attacks": {"n_images": 8, "steps": 5, "n_blackbox": 2, "max_queries": 50},
                   "explanations": {"n_images": 4, "n_group_images": 8, "n_sanity": 2, "sanity_stages": 2}}


def _resnet(name: str, folder: Path) -> str:
    """A randomly initialised torchvision model's state_dict; returns the file's path."""
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = folder / f"{name}.safetensors"
    save_file(getattr(torchvision.models, name)(num_classes=2).state_dict(), str(path))
    return str(path)


def audit(label: str, cfg_kw: dict) -> dict:
    from auditor.api import AuditConfig, run_audit

    start = time.perf_counter()
    outcome = run_audit(AuditConfig(checks=list(CHECKS), device="cpu", out_dir=None, **cfg_kw))
    results = outcome.results
    results["_wall"] = time.perf_counter() - start
    results["_label"] = label
    return results


def rows(results: dict) -> list[str]:
    cost = results["cost"]
    t = cost["throughput"]
    fw, bw = t["forward_images_per_s"], t["backward_images_per_s"]
    out = []
    for name in ("predict", *CHECKS):
        actual, planned = cost["actual"][name], cost["planned"][name]
        f, b = actual["forward"], actual["backward"]
        model_s = b / bw + max(0, f - b) / fw
        wall = actual["seconds"]
        ratio = f"{wall / model_s:.2f}x" if model_s > 0.05 else "n/a (no passes)"
        out.append(f"| {results['_label']} | {name} | {planned.get('budget') or ''} | {planned['forward']:,} / {planned['backward']:,} "
                   f"| {f:,} / {b:,} | {planned['seconds']:.1f} | {wall:.1f} | {model_s:.1f} | {ratio} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="sample,resnet18,resnet50")
    ap.add_argument("--budget-sample", default="standard")
    ap.add_argument("--budget-resnet", default="quick")
    ap.add_argument("--probe-n", type=int, default=1200, help="synthetic probe images for the sample CNN")
    ap.add_argument("--resnet-probe-n", type=int, default=300, help="synthetic probe images for the ResNets")
    ap.add_argument("--full-resnet50", action="store_true", help="ResNet-50 at the budget's sizes, not the bench's small ones")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    common = {"batch_size": args.batch_size, "seed": 0}
    flags = {"classes": ["not_smiling", "smiling"], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for m in args.models.split(","):
            if m == "sample":
                runs.append(audit("sample CNN, 64 px", dict(model=str(ROOT / "sample_models/shortcut_cnn/model.yaml"),
                                                             probe=f"synth:faces:n={args.probe_n}", budget=args.budget_sample,
                                                             **common)))
            elif m in ("resnet18", "resnet50"):
                size = 64 if m == "resnet18" else 224
                runs.append(audit(f"ResNet-{m[6:]}, {size} px", dict(
                    model=f"torchvision:{m}", weights=_resnet(m, folder), num_classes=2, input_size=(size, size),
                    probe=f"synth:faces:n={args.resnet_probe_n}", budget=args.budget_resnet, **flags, **common,
                    check_params=RESNET50_PARAMS if m == "resnet50" and not args.full_resnet50 else {})))
            else:
                raise SystemExit(f"bench_overhead: unknown model {m!r}; use sample, resnet18 or resnet50")
            print(f"# {runs[-1]['_label']}: done in {runs[-1]['_wall']:.0f} s", file=sys.stderr, flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, CPU\n")
    print("| model | check | budget | planned passes (fwd / of which bwd) | counted passes | planned s | wall s "
          "| s in model passes | wall / model |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        for line in rows(r):
            print(line)
    print()
    for r in runs:
        t = r["cost"]["throughput"]
        print(f"{r['_label']}: {t['forward_images_per_s']:.0f} img/s forward, {t['backward_images_per_s']:.0f} img/s "
              f"forward+backward; plan {r['cost']['planned_seconds'] / 60:.1f} min, checks took "
              f"{sum(r['cost']['actual'][c]['seconds'] for c in CHECKS) / 60:.1f} min, whole audit {r['_wall'] / 60:.1f} min")


if __name__ == "__main__":
    main()
