"""Time the MI-estimator benchmark (`make table-mi-bench`: 210 jobs) and summarise its job times.

Runs the table's Hydra multirun in a fresh output folder (nothing is skipped) as a child process,
then the table, and prints: the sweep's wall time, the child's CPU time (user + system, which
contention on a shared machine distorts less than wall time), the load average before and after,
and per estimator the number of jobs and their mean / max ``wall_time_s`` from the records.
``--summarise DIR`` only prints the per-estimator job times of existing runs under DIR
(e.g. outputs/tables/runs/mi_benchmark).
Usage: python scripts/bench_mi_benchmark.py [--out DIR] [--summarise RUNS_DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def summarise(runs_dir: Path) -> None:
    per: dict[str, list[float]] = collections.defaultdict(list)
    status = collections.Counter()
    for path in sorted(runs_dir.rglob("metrics.json")):
        rec = json.loads(path.read_text())
        status[rec.get("status")] += 1
        est = rec.get("choices", {}).get("estimator", "?")
        if rec.get("status") == "complete" and isinstance(rec.get("wall_time_s"), int | float):
            per[est].append(float(rec["wall_time_s"]))
    total = sum(sum(v) for v in per.values())
    print(f"records: {dict(status)}; sum of job wall times {total:.0f} s")
    for est, walls in sorted(per.items()):
        print(f"  {est:>14s}: {len(walls):3d} jobs, mean {sum(walls) / len(walls):6.2f} s, max {max(walls):6.2f} s, sum {sum(walls):6.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temp dir)")
    parser.add_argument("--summarise", type=Path, default=None, help="only summarise the runs under this folder")
    args = parser.parse_args()
    if args.summarise:
        summarise(args.summarise)
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_mi_benchmark_"))
    load_before = os.getloadavg()
    start = time.perf_counter()
    sweep = subprocess.run([sys.executable, "-m", "infocam_exp", "+table=mi_benchmark", f"paths.output_dir={out}"],
                           cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    table = subprocess.run([sys.executable, "-m", "infocam_exp.tables", "mi_benchmark", f"paths.output_dir={out}"],
                           cwd=REPO, capture_output=True, text=True)
    print(f"machine: {os.cpu_count()} cores; load average before {load_before}, after {os.getloadavg()}")
    print(f"sweep: {wall:.0f} s wall, {usage.ru_utime + usage.ru_stime:.0f} s CPU (exit {sweep.returncode}); table exit {table.returncode}")
    if sweep.returncode:
        print(sweep.stderr[-3000:], file=sys.stderr)
    summarise(out / "tables" / "runs" / "mi_benchmark")
    print(f"table: {out / 'tables' / 'mi_benchmark.md'}")
    return 0 if sweep.returncode == 0 and table.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
