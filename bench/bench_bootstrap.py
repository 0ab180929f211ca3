"""Benchmark: the whole group_metrics check (1,000 bootstrap resamples, 10,000 permutations, exact
tests) on 100,000 predictions over three attributes and their four intersections, against
fairlearn's MetricFrame (point estimates, and MetricFrame(n_boot=...) rebuilding a frame per
resample), measured in the same run. Target: under 5 s on a 2-core CPU.

    .venv/bin/python bench/bench_bootstrap.py [--n 100000] [--n-boot 1000] [--n-perm 10000] [--fairlearn-boot 10]
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
    margin = rng.gamma(2.0, 1.0, n) * np.where(y_pred == 1, 1.0, -1.0)  # confidences spread over the bins
    logits = np.stack([-margin / 2, margin / 2], axis=1)
    probe = Probe("bench", "bench", None, table, ["neg", "pos"], "label", ["gender", "age", "race"])
    pred = Predictions(np.arange(n), logits, y_true, y_pred)
    return CheckContext(model=None, probe=probe, predictions=pred, classes=["neg", "pos"], positive_class=1,  # type: ignore[arg-type]
                        input_size=(1, 1), device=torch.device("cpu"), seed=0, budget="standard",
                        attributes=["gender", "age", "race"])


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--n-perm", type=int, default=10_000)
    ap.add_argument("--fairlearn-boot", type=int, default=10)
    args = ap.parse_args()
    ctx = make_context(args.n)
    full = get_check("group_metrics")(n_boot=args.n_boot, n_perm=args.n_perm)
    res = full.run(ctx)  # warm-up, and the scope count
    scopes = [s for s in res.metrics if s != "overall"]
    n_groups = sum(len(g) for g in res.by_group.values())
    ours = _timed(lambda: full.run(ctx))
    boot_only = _timed(lambda: get_check("group_metrics")(n_boot=args.n_boot, n_perm=0).run(ctx))
    point = _timed(lambda: get_check("group_metrics")(n_boot=0, n_perm=0).run(ctx))

    t = ctx.probe.table
    metrics = {"accuracy": accuracy_score, "selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate}

    def fairlearn_points() -> None:
        for scope in scopes:
            MetricFrame(metrics=metrics, y_true=ctx.predictions.y_true, y_pred=ctx.predictions.y_pred,
                        sensitive_features=t[scope.split("+")])

    fl_point = _timed(fairlearn_points)
    fl = _timed(lambda: [MetricFrame(metrics=metrics, y_true=ctx.predictions.y_true, y_pred=ctx.predictions.y_pred,
                                     sensitive_features=t[a], n_boot=args.fairlearn_boot, ci_quantiles=[0.025, 0.975],
                                     random_state=0) for a in ctx.attributes])
    fl_extrapolated = fl / args.fairlearn_boot * args.n_boot
    print(f"{args.n} predictions, binary, {len(scopes)} scopes (3 attributes + {len(scopes) - 3} intersections), {n_groups} groups")
    print(f"group_metrics, {args.n_boot} resamples + {args.n_perm} permutations + exact tests: {ours:.2f} s")
    print(f"  bootstrap only ({args.n_boot} resamples, no tests): {boot_only:.2f} s; point estimates only: {point:.2f} s")
    print(f"fairlearn MetricFrame point estimates, 4 rates, same {len(scopes)} scopes: {fl_point:.2f} s")
    print(f"fairlearn MetricFrame n_boot={args.fairlearn_boot} on the 3 attributes only: {fl:.2f} s -> "
          f"{fl_extrapolated:.0f} s extrapolated to {args.n_boot} resamples")
    print(f"ratio (fairlearn bootstrap of 3 attributes, extrapolated / ours, all scopes): {fl_extrapolated / ours:.0f}x")


if __name__ == "__main__":
    main()
