"""Benchmark: compiled sweep vs torch sweep vs a per-image OpenCV loop (wsolevaluation's procedure).

    python scripts/bench_box_eval.py [--maps 200] [--torch-maps 40] [--opencv-maps 8]
        [--size 224] [--thresholds 100 1000] [--kinds smooth noisy] [--threads 0]
        [--device cpu|cuda] [--compile-time]

For every map kind (smooth: sums of Gaussian blobs like upsampled CAMs; noisy: the same plus
uniform noise of 10% of each map's peak, many small regions and holes), number of thresholds and
metric set (V1: the largest region's box only, MaxBoxAcc / GT-known Loc; V1+V2: also every
contour's box, MaxBoxAccV2), it prints maps/s of the three paths side by side. Each path runs on
the first N maps of the same set (N per path, the slower ones on fewer maps), and the script counts
the (map, threshold) IoUs of each that differ from the compiled path's (the torch sweep must match
exactly; the OpenCV loop may differ on the largest region of maps with holes, see boxes.py). The OpenCV loop is
single-threaded, as in wsolevaluation; the other two use ``--threads``.

``--compile-time`` also reports the compiled path's one-off cost in fresh processes: compiling
into an empty numba cache, then loading that cache.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infocam_exp.metrics.boxes import (  # noqa: E402
    _compiled_ious,
    batched_threshold_ious,
    best_gt_iou,
    default_thresholds,
    largest_region_boxes,
)
from tests.metrics.opencv_reference import opencv_threshold_ious  # noqa: E402

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


def add_noise(maps: torch.Tensor, seed: int, level: float = 0.1) -> torch.Tensor:
    """``maps`` plus uniform noise of ``level`` times each map's peak."""
    g = torch.Generator().manual_seed(seed + 1)
    peak = maps.flatten(1).amax(1)[:, None, None]
    return maps + level * peak * torch.rand(maps.shape, generator=g)


def run_path(path, maps, gt, taus, device, v2: bool, threads: int):
    """``(iou_largest, iou_any or None)`` on the CPU from one path."""
    if path == "compiled":
        largest, anyr = _compiled_ious(maps, gt, taus, None, True, threads, want_any=v2)
        return largest, (anyr if v2 else None)
    if path == "torch":
        m, g = maps.to(device), gt.to(device)
        if v2:
            largest, anyr = batched_threshold_ious(
                m, g, taus.to(device), backend="torch", workers=threads
            )
        else:
            boxes = largest_region_boxes(m, taus.to(device))
            largest, anyr = best_gt_iou(boxes, g, (g >= 0).all(dim=-1)), None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return largest.cpu(), (anyr.cpu() if anyr is not None else None)
    largest, anyr = opencv_threshold_ious(maps, gt, taus, all_contours=v2)
    return largest, (anyr if v2 else None)


def compile_time() -> tuple[float, float]:
    """Seconds of the first compiled call in a fresh process: empty cache, then warm cache."""
    code = (
        "import time, torch\n"
        "from infocam_exp.metrics.boxes import batched_threshold_ious, default_thresholds\n"
        "t = time.perf_counter()\n"
        "batched_threshold_ious(torch.rand(2, 16, 16), torch.tensor([[[1, 1, 8, 8]]] * 2),"
        " default_thresholds(10))\n"
        "print(time.perf_counter() - t)\n"
    )
    out = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        for _ in range(2):
            res = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            out.append(float(res.stdout.strip().splitlines()[-1]))
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, default=200, help="maps for the compiled path")
    parser.add_argument("--torch-maps", type=int, default=40, help="maps for the torch sweep")
    parser.add_argument("--opencv-maps", type=int, default=8, help="maps for the OpenCV loop")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--thresholds", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--kinds", nargs="+", default=["smooth", "noisy"])
    parser.add_argument("--device", default="cpu", help="device of the torch sweep")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads of the compiled and torch paths (default 0: torch's count, one per "
        "core); the OpenCV loop is single-threaded as in wsolevaluation",
    )
    parser.add_argument("--compile-time", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device(args.device)
    load = os.getloadavg()
    log.info(
        "%d x %d maps; compiled %d maps, torch sweep %d, OpenCV loop %d; %d threads; torch on %s; "
        "load average %.2f %.2f %.2f; %d CPUs",
        args.size, args.size, args.maps, args.torch_maps, args.opencv_maps, threads, device,
        *load, os.cpu_count(),
    )
    if args.compile_time:
        cold, warm = compile_time()
        log.info("compiled path, first call in a fresh process: %.1f s compiling into an empty "
                 "cache, %.2f s loading the cache", cold, warm)
    smooth, gt = make_maps(args.maps, args.size, args.seed)
    kinds = {"smooth": smooth, "noisy": add_noise(smooth, args.seed)}
    # warm-up: compile or load the cache, CUDA context
    run_path("compiled", smooth[:2], gt[:2], default_thresholds(10), device, True, threads)
    run_path("torch", smooth[:2], gt[:2], default_thresholds(10), device, True, threads)
    counts = {"compiled": args.maps, "torch": args.torch_maps, "opencv": args.opencv_maps}
    header = f"{'maps':<7}{'taus':>6}  {'metrics':<7}" + "".join(
        f"{p + ' maps/s':>18}" for p in counts
    ) + "   IoUs that differ from the compiled path's"
    log.info(header)
    mismatch = False
    for kind in args.kinds:
        maps = kinds[kind]
        for num in args.thresholds:
            taus = default_thresholds(num)
            for v2 in (False, True):
                rates, results = {}, {}
                for path, n in counts.items():
                    if n <= 0:
                        continue
                    start = time.perf_counter()
                    results[path] = run_path(path, maps[:n], gt[:n], taus, device, v2, threads)
                    rates[path] = n / (time.perf_counter() - start)
                same = []
                ref_l, ref_a = results["compiled"]
                for path in ("torch", "opencv"):
                    if path not in results:
                        continue
                    lar, anyr = results[path]
                    n = lar.shape[0]
                    diff = int((lar != ref_l[:n]).sum())
                    if v2:
                        diff += int((anyr != ref_a[:n]).sum())
                    if path == "torch":
                        mismatch |= diff > 0
                    same.append(f"{path}: {diff} of {lar.numel() * (2 if v2 else 1)} differ")
                log.info(
                    "%-7s%6d  %-7s%s   %s",
                    kind, num, "V1+V2" if v2 else "V1",
                    "".join(f"{rates.get(p, float('nan')):>18.1f}" for p in counts),
                    ", ".join(same),
                )
    log.info("load average after: %.2f %.2f %.2f", *os.getloadavg())
    if mismatch:
        raise SystemExit("the torch sweep disagrees with the compiled path")


if __name__ == "__main__":
    main()
