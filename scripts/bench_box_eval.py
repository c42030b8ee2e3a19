"""Benchmark: batched box sweep vs a per-image OpenCV loop (wsolevaluation's procedure).

    python scripts/bench_box_eval.py [--maps 200] [--size 224] [--thresholds 1000]
                                     [--device cpu|cuda] [--threads 0]

Both sides compute, for every map and threshold, the best IoU with ground truth of the largest
region's box (MaxBoxAcc) and of every contour's box (MaxBoxAccV2). The script checks the results
agree, then prints the seconds each took and the speedup. Maps are smooth random blobs like
upsampled CAMs.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from infocam_exp.metrics.boxes import (
    batched_threshold_ious,
    default_thresholds,
    opencv_threshold_ious,
)

log = logging.getLogger("bench_box_eval")


def make_maps(num: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(num, size, size)`` sums of 1-4 Gaussian blobs and ``(num, 2, 4)`` GT boxes (pixels).

    The ground truth is a jittered box of about +-1.5 sigma around the first blob (and, for half
    the images, the second blob too), so accuracies land in a realistic range.
    """
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32),
        torch.arange(size, dtype=torch.float32),
        indexing="ij",
    )
    maps = torch.zeros(num, size, size)
    gt = torch.full((num, 2, 4), -1, dtype=torch.int64)
    for k in range(4):
        present = torch.rand(num, generator=g) < (1.0 if k == 0 else 0.5)
        cx, cy = (torch.rand(2, num, generator=g) * size).unbind(0)
        sigma = size * (0.04 + 0.2 * torch.rand(num, generator=g))
        amp = 0.3 + torch.rand(num, generator=g)
        blob = torch.exp(
            -((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2)
            / (2 * sigma[:, None, None] ** 2)
        )
        maps += (present.float() * amp)[:, None, None] * blob
        if k < 2:
            half = 1.5 * sigma[:, None] * (0.7 + 0.6 * torch.rand(num, 2, generator=g))
            centre = torch.stack((cx, cy), 1)
            box = torch.cat((centre - half, centre + half), 1).clamp(0, size - 1).long()
            use = present if k == 0 else present & (torch.arange(num) % 2 == 0)
            gt[use, k] = box[use]
    return maps, gt


def ours(maps, gt, taus, device, chunk_pixels: int | None):
    largest, anyr = batched_threshold_ious(
        maps.to(device), gt.to(device), taus.to(device), max_pixels_per_chunk=chunk_pixels
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return largest.cpu(), anyr.cpu()


def summary(iou_largest: torch.Tensor, iou_any: torch.Tensor) -> tuple[float, float]:
    box_acc = float((iou_largest >= 0.5).double().mean(0).max() * 100)
    v2 = sum(float((iou_any >= t).double().mean(0).max() * 100) for t in (0.3, 0.5, 0.7)) / 3
    return box_acc, v2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, default=200)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--thresholds", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for our side: parallel single-threaded sweeps (default 0: torch's "
        "count, one per core); the OpenCV loop is single-threaded as in wsolevaluation",
    )
    parser.add_argument(
        "--chunk-pixels",
        type=int,
        default=None,
        help="map pixels per sweep (default 2**21 on CPU, 2**24 on GPU)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    maps, gt = make_maps(args.maps, args.size, args.seed)
    taus = default_thresholds(args.thresholds)
    log.info(
        "%d maps of %dx%d, %d thresholds, device %s, CPU sweep threads %d, pixels per sweep %s",
        args.maps,
        args.size,
        args.size,
        args.thresholds,
        device,
        torch.get_num_threads(),
        args.chunk_pixels,
    )
    ours(maps[:2], gt[:2], taus, device, args.chunk_pixels)  # warm-up (allocator, CUDA context)

    start = time.perf_counter()
    got = ours(maps, gt, taus, device, args.chunk_pixels)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    want = opencv_threshold_ious(maps, gt, taus)
    t_ref = time.perf_counter() - start

    same_largest = int((got[0] == want[0]).sum())
    same_any = int((got[1] == want[1]).sum())
    total = want[0].numel()
    ours_m, ref_m = summary(*got), summary(*want)
    log.info(
        "per-(map, threshold) IoU identical: largest %d/%d, all-contours %d/%d",
        same_largest,
        total,
        same_any,
        total,
    )
    log.info("MaxBoxAcc   ours %.3f  OpenCV %.3f", ours_m[0], ref_m[0])
    log.info("MaxBoxAccV2 ours %.3f  OpenCV %.3f", ours_m[1], ref_m[1])
    log.info("ours %.2f s, OpenCV loop %.2f s, speedup %.1fx", t_ours, t_ref, t_ref / t_ours)
    if abs(ours_m[0] - ref_m[0]) > 0.1 or abs(ours_m[1] - ref_m[1]) > 0.1:
        raise SystemExit("metrics disagree by more than 0.1 points")


if __name__ == "__main__":
    main()
