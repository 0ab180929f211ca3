"""Benchmark: group_metrics with 1,000 bootstrap resamples on 100,000 predictions over three
attributes (the vectorised multinomial bootstrap), against fairlearn's MetricFrame(n_boot=...)
rebuilding a frame per resample, measured in the same run.

    .venv/bin/python bench/bench_bootstrap.py [--n 100000] [--n-boot 1000] [--fairlearn-boot 10]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate, false_positive_rate
from sklearn.metrics import accuracy_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auditor.checks import CheckContext, Predictions, get_check  # noqa: E402
from probes.base import Probe  # noqa: E402


def make_context(n: int, seed: int = 0) -> CheckContext:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({
        "path": [""] * n,
        "label": rng.integers(0, 2, n),
        "gender": rng.choice(["female", "male"], n),
        "age": rng.choice(["0-19", "20-39", "40-59", "60+"], n),
        "race": rng.choice(["white", "black", "asian", "indian"], n),
    })
    y_true = table["label"].to_numpy()
    y_pred = np.where(rng.random(n) < 0.15, 1 - y_true, y_true)
    logits = np.stack([-y_pred, y_pred], axis=1).astype(float)
    probe = Probe("bench", "bench", None, table, ["neg", "pos"], "label", ["gender", "age", "race"])
    pred = Predictions(np.arange(n), logits, y_true, y_pred)
    return CheckContext(model=None, probe=probe, predictions=pred, classes=["neg", "pos"], positive_class=1,  # type: ignore[arg-type]
                        input_size=(1, 1), device=torch.device("cpu"), seed=0, budget="standard",
                        attributes=["gender", "age", "race"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--fairlearn-boot", type=int, default=10)
    args = ap.parse_args()
    ctx = make_context(args.n)

    check = get_check("group_metrics")(n_boot=args.n_boot)
    start = time.perf_counter()
    check.run(ctx)
    ours = time.perf_counter() - start
    no_ci = get_check("group_metrics")(n_boot=0)
    start = time.perf_counter()
    no_ci.run(ctx)
    point = time.perf_counter() - start

    t = ctx.probe.table
    metrics = {"accuracy": accuracy_score, "selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate}
    start = time.perf_counter()
    for attr in ctx.attributes:
        MetricFrame(metrics=metrics, y_true=ctx.predictions.y_true, y_pred=ctx.predictions.y_pred,
                    sensitive_features=t[attr], n_boot=args.fairlearn_boot, ci_quantiles=[0.025, 0.975], random_state=0)
    fl = time.perf_counter() - start
    fl_per_boot = fl / args.fairlearn_boot
    print(f"{args.n} predictions, 3 attributes (2+4+4 groups), binary")
    print(f"group_metrics with {args.n_boot} resamples: {ours:.2f} s (point estimates alone: {point:.2f} s)")
    print(f"fairlearn MetricFrame n_boot={args.fairlearn_boot}: {fl:.2f} s -> {fl_per_boot * args.n_boot:.0f} s extrapolated to {args.n_boot} resamples")
    print(f"ratio (fairlearn extrapolated / ours): {fl_per_boot * args.n_boot / ours:.0f}x")


if __name__ == "__main__":
    main()
