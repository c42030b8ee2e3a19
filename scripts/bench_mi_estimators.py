"""Per-call time of every MI estimator of ``infocam_exp.estimators.registry``.

    OMP_NUM_THREADS=1 python scripts/bench_mi_estimators.py [--n 1000 10000] [--dim 5]
        [--classes 5] [--names classifier infonce ...] [--seed 0] [--max-steps 2000]

Data: the paper's task (x | y = k ~ N(mu_k 1_d, I), mu = 0, +2, -2, +4, -4, ...; balanced), N
samples, seeded. Each estimator is called once per N with the registry's defaults (trained ones:
5-fold cross-fitting, lr grid {1e-3, 3e-3, 1e-2}, batch 256, torch threads 1) and the fit cache
off, so ``classifier_plugin`` pays for its own fit. Prints wall and CPU seconds, the estimate, the
exact truth, and for trained estimators the steps trained and kept per fold, and ``uptime``
before and after (the machine's load is part of every timing).
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np

from infocam_exp.estimators import trained
from infocam_exp.estimators.registry import ESTIMATORS, estimate_mi
from infocam_exp.metrics.mi_truth import gaussian_mixture_mi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--dim", type=int, default=5)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--names", nargs="+", default=list(ESTIMATORS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=None)
    args = ap.parse_args()
    k, d = args.classes, args.dim
    mu = np.array([0.0] + [s * 2.0 * m for m in range(1, k) for s in (1, -1)][: k - 1])
    truth = gaussian_mixture_mi(np.repeat(mu[:, None], d, 1), np.ones(k) / k).value
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"K = {k}, d = {d}, truth = {truth:.4f} nats")
    print(f"{'N':>6} {'estimator':<18} {'wall s':>7} {'cpu s':>7} {'estimate':>9}  steps kept / trained per fold")
    for n in args.n:
        rng = np.random.default_rng(args.seed)
        y = np.repeat(np.arange(k), n // k)
        x = mu[y][:, None] + rng.standard_normal((len(y), d))
        for name in args.names:
            opts = {}
            if ESTIMATORS[name].trained:
                opts["cache"] = False
                if args.max_steps:
                    opts["max_steps"] = args.max_steps
            w, c = time.perf_counter(), time.process_time()
            r = estimate_mi(name, x, y, k, seed=args.seed, **opts)
            w, c = time.perf_counter() - w, time.process_time() - c
            steps = ""
            if "steps" in r.info:
                steps = f"{r.info['steps']} / {r.info['steps_trained']}"
            print(f"{len(y):>6} {name:<18} {w:>7.2f} {c:>7.2f} {r.estimate:>9.4f}  {steps}", flush=True)
    trained._CACHE.clear()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
