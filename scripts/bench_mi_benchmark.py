"""Time the MI-estimator benchmark (`make table-mi-bench`: 140 jobs) and summarise its job costs.

Runs the table's Hydra multirun in a fresh output folder (nothing is skipped) as two child
processes (even and odd seeds, as the Makefile does), then the table, and prints: the sweep's wall
time, the children's CPU time (user + system, which contention on a shared machine distorts less
than wall time), the load average before and after, the mean / max CPU time of a job, and per
estimator its mean CPU time per job (``test/<E>/cpu_s`` of the records).
``--summarise DIR`` only prints the costs of existing runs under DIR
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
    jobs: list[float] = []
    walls: list[float] = []
    status = collections.Counter()
    for path in sorted(runs_dir.rglob("metrics.json")):
        rec = json.loads(path.read_text())
        status[rec.get("status")] += 1
        if rec.get("status") != "complete":
            continue
        cpu = {k.split("/")[1]: float(v) for k, v in rec["metrics"].items() if k.endswith("/cpu_s")}
        for est, v in cpu.items():
            per[est].append(v)
        jobs.append(sum(cpu.values()))
        walls.append(float(rec.get("wall_time_s", 0.0)))
    print(f"records: {dict(status)}")
    if jobs:
        print(f"estimator CPU per job: mean {sum(jobs) / len(jobs):.1f} s, max {max(jobs):.1f} s, sum {sum(jobs):.0f} s; "
              f"job wall mean {sum(walls) / len(walls):.1f} s")
    for est, v in sorted(per.items()):
        print(f"  {est:>18s}: {len(v):3d} jobs, mean {sum(v) / len(v):6.2f} CPU s, max {max(v):6.2f} s")


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
    cmd = [sys.executable, "-m", "infocam_exp", "+table=mi_benchmark", f"paths.output_dir={out}"]
    procs = [subprocess.Popen([*cmd, f"seed={seeds}"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for seeds in ("0,2,4,6,8", "1,3,5,7,9")]
    errs = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - start
    sweep = subprocess.CompletedProcess(cmd, max(p.returncode for p in procs), "", "\n".join(errs))
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
