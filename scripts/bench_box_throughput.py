"""Throughput of the full box metrics (MaxBoxAcc, MaxBoxAccV2 at IoU 30/50/70, GT-known Loc).

    python scripts/bench_box_throughput.py [--maps 5000] [--size 224] [--thresholds 1000]
        [--batch 64] [--threads 0] [--noise 0] [--check 16] [--target 50000]

Feeds generated CAM-like maps (``bench_box_eval.make_maps``, optionally plus uniform noise) batch
by batch to ``LocalizationMetrics.update`` exactly as the evaluate CLI and the training callback
do, times only ``update`` (map generation is excluded and reported apart), and prints maps/s, the
CPU seconds per map and the time ``--target`` maps would take at that rate. The first ``--check``
maps are also scored by the independent OpenCV reference (tests/metrics/opencv_reference.py): the
script reports how many (map, threshold) IoUs are identical and fails if any differs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_box_eval import add_noise, make_maps  # noqa: E402

from infocam_exp.metrics.boxes import batched_threshold_ious, default_thresholds  # noqa: E402
from infocam_exp.metrics.localization import LocalizationMetrics, scalar_metrics  # noqa: E402
from tests.metrics.opencv_reference import opencv_threshold_ious  # noqa: E402

log = logging.getLogger("bench_box_throughput")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, default=5000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--thresholds", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's count (one per core)")
    parser.add_argument("--noise", type=float, default=0.0, help="uniform noise, x map peak")
    parser.add_argument("--check", type=int, default=16, help="maps checked against OpenCV")
    parser.add_argument("--target", type=int, default=50000, help="maps to extrapolate to")
    parser.add_argument(
        "--pool",
        type=int,
        default=0,
        help="generate only this many distinct maps and score them over and over (0: every map "
        "is new); saves the generation time of very long runs",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    log.info(
        "%d maps of %dx%d, %d thresholds, batches of %d, %d threads, noise %.2f; %d CPUs, "
        "load average %.2f %.2f %.2f",
        args.maps, args.size, args.size, args.thresholds, args.batch, torch.get_num_threads(),
        args.noise, os.cpu_count(), *os.getloadavg(),
    )

    def batch_maps(i: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        maps, gt = make_maps(n, args.size, args.seed + i)
        return (add_noise(maps, args.seed + i, args.noise) if args.noise > 0 else maps), gt

    pool: list[tuple[torch.Tensor, torch.Tensor]] = []
    if args.pool > 0:
        pool = [batch_maps(i, args.batch) for i in range(max(1, args.pool // args.batch))]
        log.info("pool of %d distinct maps, scored in turn", len(pool) * args.batch)

    taus = default_thresholds(args.thresholds)
    start = time.perf_counter()
    batched_threshold_ious(*batch_maps(-1, 2), taus)  # build or load the compiled kernels
    log.info("first call (compile or cache load): %.2f s", time.perf_counter() - start)

    metric = LocalizationMetrics(thresholds=args.thresholds)
    wall = cpu = gen = 0.0
    done = 0
    bar = tqdm(total=args.maps, unit="map", desc="box metrics", mininterval=2.0)
    i = 0
    while done < args.maps:
        n = min(args.batch, args.maps - done)
        t0 = time.perf_counter()
        if pool:
            maps, gt = pool[i % len(pool)]
            maps, gt = maps[:n], gt[:n]
        else:
            maps, gt = batch_maps(i, n)
        t1 = time.perf_counter()
        c0 = time.process_time()
        metric.update(maps, gt)
        cpu += time.process_time() - c0
        t2 = time.perf_counter()
        gen += t1 - t0
        wall += t2 - t1
        done += n
        i += 1
        bar.update(n)
        bar.set_postfix_str(f"{done / wall:.0f} maps/s scored")
    bar.close()
    scalars = scalar_metrics(metric.compute())
    log.info(
        "MaxBoxAcc %.2f, MaxBoxAccV2 %.2f, GT-known Loc %.2f over %d maps",
        scalars["max_box_acc"], scalars["max_box_acc_v2"], scalars["gt_known_loc"], done,
    )
    rate = done / wall
    log.info(
        "scoring: %.1f s wall, %.1f maps/s, %.2f CPU ms per map; map generation %.1f s (excluded)",
        wall, rate, 1000 * cpu / done, gen,
    )
    log.info(
        "at this rate %d maps take %.0f s (%.1f min); load average now %.2f %.2f %.2f",
        args.target, args.target / rate, args.target / rate / 60, *os.getloadavg(),
    )
    if args.check > 0:
        maps, gt = batch_maps(0, min(args.batch, args.check))
        ours = batched_threshold_ious(maps, gt, taus)
        ref = opencv_threshold_ious(maps, gt, taus)
        same = int((ours[0] == ref[0]).sum()) + int((ours[1] == ref[1]).sum())
        total = 2 * ref[0].numel()
        log.info("OpenCV reference check: %d of %d IoUs identical (first %d maps, V1 and V2)",
                 same, total, ref[0].shape[0])
        if same != total:
            raise SystemExit("the compiled sweep differs from the OpenCV reference")


if __name__ == "__main__":
    main()
