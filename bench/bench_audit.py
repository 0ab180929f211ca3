"""Benchmark: wall time and peak memory of the README's audit, and raw forward throughput of the
sample model at the audit's batch size, measured in one run so the audit's overhead over raw model
time can be stated.

    .venv/bin/python bench/bench_audit.py [--runs 5] [--model sample_models/shortcut_cnn/model.yaml]

Prints the medians and the ratio (audit seconds / seconds the model alone needs for the same images).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def audit_once(model: str, probe: str, out: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one `auditor audit` in a fresh process."""
    cmd = [sys.executable, "-m", "auditor", "audit", model, "--probe", probe, "--out", str(out), "--device", "cpu"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def forward_throughput(model_src: str, n_images: int, batch_size: int) -> float:
    """Images per second of the wrapped model alone (no_grad, CPU) on random [0,1] input."""
    from auditor.models import load_model

    model = load_model(model_src, device="cpu")
    h, w = model.input_size or (64, 64)
    x = torch.rand(batch_size, 3, h, w)
    with torch.no_grad():
        for _ in range(3):
            model.module(x)
        done = 0
        start = time.perf_counter()
        while done < n_images:
            model.module(x)
            done += batch_size
    return done / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default="sample_models/shortcut_cnn/model.yaml")
    ap.add_argument("--probe", default="synth:faces")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    from probes import open_probe

    n = len(open_probe(args.probe))
    walls, rss, stages = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            wall, peak, code = audit_once(args.model, args.probe, Path(tmp) / f"run{i}")
            if code not in (0, 1):
                raise SystemExit(f"audit run {i} exited {code}; run it by hand to see why")
            walls.append(wall)
            rss.append(peak)
            cost = json.loads((Path(tmp) / f"run{i}" / "results.json").read_text())["cost"]
            stages.append({**cost["seconds"], "run_audit total": cost["seconds_total"]})
    ips = statistics.median(forward_throughput(args.model, n, args.batch_size) for _ in range(3))
    audit_s = statistics.median(walls)
    model_s = n / ips
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"audit ({args.model} on {args.probe}, {n} images, {args.runs} runs): "
          f"median wall {audit_s:.2f} s (min {min(walls):.2f}, max {max(walls):.2f}), median peak RSS {statistics.median(rss):.0f} MiB")
    print("inside the audit (median s): " + ", ".join(
        f"{k} {statistics.median(st[k] for st in stages):.2f}" for k in stages[0]))
    print(f"forward only, batch {args.batch_size}: {ips:.0f} images/s -> {model_s:.3f} s for the probe")
    print(f"ratio audit wall / model forward time: {audit_s / model_s:.1f}x")


if __name__ == "__main__":
    main()
