"""Paired margin of one setting over another across seeds, with a 95% interval.

Reads the ``metrics.json`` records of a sweep folder (a table's runs or an ad-hoc multirun), pairs
the jobs of two settings by seed, and prints each seed's difference of one metric, their mean, a
95% Student-t interval and a 95% percentile-bootstrap interval over seeds. Used for the README's
Fashion-MNIST claim (PC-softmax vs CE mean per-class accuracy):

    python scripts/paired_seed_margin.py outputs/tables/runs/mnist --metric test/mean_class_acc \\
        --select data=fashion_mnist --a loss=pc_softmax --b loss=ce --scale 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from infocam_exp.tables.aggregate import load_records


def _overrides(rec: dict) -> dict[str, str]:
    return dict(o.split("=", 1) for o in rec.get("overrides", []) if "=" in o and not o.startswith("+"))


def _matches(rec: dict, wanted: list[str]) -> bool:
    ov = _overrides(rec)
    return all(ov.get(k) == v for k, v in (w.split("=", 1) for w in wanted))


def paired_margin(runs: Path, metric: str, select: list[str], a: str, b: str) -> dict[int, float]:
    """{seed: metric(a) - metric(b)} over the complete records of both settings."""
    recs = [r for r in load_records(runs) if r.get("status") == "complete" and _matches(r, select)]
    by = {}
    for side, want in (("a", a), ("b", b)):
        for r in recs:
            if _matches(r, [want]) and isinstance(r["metrics"].get(metric), int | float):
                by.setdefault(int(r["seed"]), {})[side] = float(r["metrics"][metric])
    return {s: v["a"] - v["b"] for s, v in sorted(by.items()) if len(v) == 2}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path)
    p.add_argument("--metric", required=True)
    p.add_argument("--select", nargs="*", default=[], help="key=value overrides every job must have")
    p.add_argument("--a", required=True, help="key=value of the first setting")
    p.add_argument("--b", required=True, help="key=value of the second setting")
    p.add_argument("--scale", type=float, default=1.0)
    args = p.parse_args(argv)
    diffs = paired_margin(args.runs, args.metric, args.select, args.a, args.b)
    if len(diffs) < 2:
        print(f"need at least 2 seeds with both settings, found {len(diffs)}", file=sys.stderr)
        return 2
    d = np.array(list(diffs.values())) * args.scale
    for s, v in zip(diffs, d, strict=True):
        print(f"seed {s}: {v:+.3f}")
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    boot = np.random.default_rng(0).choice(d, size=(10_000, len(d))).mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    print(f"{args.a} - {args.b}, {args.metric} x {args.scale:g}, {len(d)} seeds: mean {d.mean():+.3f}, "
          f"t 95% [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}], bootstrap 95% [{lo:+.3f}, {hi:+.3f}], "
          f"{int((d > 0).sum())}/{len(d)} seeds positive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
