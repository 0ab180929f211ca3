"""Stress: pairs of concurrent audits into one output folder, with SIGINT at random moments.

    .venv/bin/python bench/bench_outdir_stress.py [--rounds 20] [--seed 0]

A first audit (timed: T seconds) seeds the folder. Each round starts two ``auditor audit ... --force``
processes (different seeds, so their results.json tell them apart) into the same folder, the second up to
1.5 s after the first, and sends SIGINT to one of them (chosen at random) at a random moment between its
start and 1.2 T (start-up, lock, model, checks, reports, swap). After both exit, the folder must
be one whole audit: `auditor.outdir.check_folder` finds nothing (every file the one the manifest lists,
every report rendered from the results.json beside it), and results.json is the previous round's or one
of the two new ones; no lock file may be left. Printed: the counts of each outcome.
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from auditor.outdir import check_folder  # noqa: E402

AUDIT = [sys.executable, "-m", "auditor", "audit", str(ROOT / "sample_models" / "clean_cnn" / "model.yaml"),
         "--probe", "synth:faces:n=120", "--checks", "group_metrics", "--budget", "quick", "--device", "cpu",
         "--param", "group_metrics.n_boot=0", "--format", "json,md", "--force"]


def _seed_in(out: Path) -> int | None:
    try:
        return int(json.loads((out / "results.json").read_text())["seed"])
    except (OSError, ValueError, KeyError):
        return None


def _round(out: Path, seeds: tuple[int, int], rng: random.Random, max_delay: float) -> dict[str, object]:
    """One pair; SIGINT to one of them up to ``max_delay`` seconds after its start."""
    before = _seed_in(out)
    procs, started = [], []
    for i, seed in enumerate(seeds):
        if i:
            time.sleep(rng.uniform(0, 1.5))
        started.append(time.monotonic())
        procs.append(subprocess.Popen([*AUDIT, "--seed", str(seed), "--out", str(out)], cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    victim = rng.randrange(2)
    deadline = started[victim] + rng.uniform(0, max_delay)
    while time.monotonic() < deadline and procs[victim].poll() is None:
        time.sleep(0.05)
    interrupted = procs[victim].poll() is None
    if interrupted:
        procs[victim].send_signal(signal.SIGINT)
    codes = []
    locked = 0
    for p in procs:
        _, err = p.communicate(timeout=600)
        codes.append(p.returncode)
        locked += "another audit is writing to" in err
    after = _seed_in(out)
    problems = check_folder(out) if out.exists() else ["the folder is gone"]
    leftovers = [p.name for p in out.parent.iterdir() if p.name != out.name]
    return {"codes": tuple(sorted(codes)), "interrupted": interrupted, "locked": locked,
            "folder": "kept" if after == before else ("new" if after in seeds else "unknown"),
            "consistent": not problems and after is not None, "problems": problems, "leftovers": leftovers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    counts: collections.Counter[str] = collections.Counter()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        t = time.perf_counter()
        subprocess.run([*AUDIT, "--seed", "1", "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
        solo = time.perf_counter() - t
        print(f"one audit alone: {solo:.1f} s; SIGINT up to {1.2 * solo:.1f} s after the victim's start")
        for r in range(args.rounds):
            res = _round(out, (100 + 2 * r, 101 + 2 * r), rng, 1.2 * solo)
            counts["rounds"] += 1
            counts[f"exit codes {res['codes']}"] += 1
            counts["SIGINT sent to a running audit"] += bool(res["interrupted"])
            counts["refused by the lock"] += int(res["locked"])  # type: ignore[call-overload]
            counts[f"folder afterwards: {res['folder']}"] += 1
            counts["consistent" if res["consistent"] else "INCONSISTENT"] += 1
            counts["rounds with leftovers beside the folder"] += bool(res["leftovers"])
            if not res["consistent"] or res["leftovers"]:
                print(f"round {r}: {res}", file=sys.stderr)
    print(f"{args.rounds} rounds in {time.perf_counter() - t0:.0f} s")
    for key, n in sorted(counts.items()):
        print(f"  {key}: {n}")


if __name__ == "__main__":
    main()
