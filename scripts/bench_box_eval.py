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

``--compile-time`` also reports the compiled path's one-off cost in fresh processes: building
into empty caches (no C library, no numba code), then loading them.

``--whole-process`` times what a user waits for instead: it writes ``--maps`` heatmaps (``.npy``,
a mix of smooth, shifted, multi-modal and noisy maps, see :func:`mixed_maps`) with wsolevaluation
box metadata into a temporary folder, then runs ``python -m infocam_exp.evaluate`` on them as a
subprocess twice, first with empty caches (a fresh install: no C library built, an empty numba
cache: ``cold``) and then with what that run built (``warm``), and times wsolevaluation's per-image procedure (read the
``.npy``, normalise, OpenCV at every threshold, the largest contour's box only: V1) on
``--opencv-maps`` of the same files right before, between and right after the two CLI runs
(this machine's speed drifts by tens of percent within a minute; each ratio uses the mean of the
two reference timings around its run). It prints maps/s of each, the ratios, and with
``--repeats`` above 1 their medians. With ``--wsolevaluation CHECKOUT`` the reference is
wsolevaluation's own ``BoxEvaluator`` from a checkout of clovaai/wsolevaluation instead of the
script's transcription of its procedure. ``--kernel`` sets the CLI's ``INFOCAM_BOX_KERNEL``
(``auto``: C where a compiler builds it; ``numba`` times the fallback)::

    python scripts/bench_box_eval.py --whole-process [--maps 3000] [--thresholds 1000]
        [--opencv-maps 20] [--repeats 3] [--data DIR] [--wsolevaluation CHECKOUT]
        [--kernel auto|c|numba]
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
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
from tests.metrics.opencv_reference import (  # noqa: E402
    multiple_iou,
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


def _cache_env(cache: Path | str, kernel: str = "auto") -> dict[str, str]:
    """The environment of a process whose compiled code lives in ``cache`` (both kernel sets)."""
    return dict(
        os.environ, NUMBA_CACHE_DIR=str(Path(cache) / "numba"),
        INFOCAM_KERNEL_CACHE=str(Path(cache) / "native"), INFOCAM_BOX_KERNEL=kernel,
        PYTHONPATH=str(ROOT),
    )


def compile_time() -> tuple[float, float]:
    """Seconds of the first compiled call in a fresh process: empty caches, then warm ones."""
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
        env = _cache_env(cache)
        for _ in range(2):
            res = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            out.append(float(res.stdout.strip().splitlines()[-1]))
    return out[0], out[1]


def mixed_maps(num: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(num, size, size)`` float32 maps of four kinds in turn and ``(num, 2, 4)`` GT boxes.

    Kinds, by ``index % 4``: smooth (:func:`make_maps`), shifted (the same times 3 minus 1, so
    negative values and another range go through the normalisation), multi-modal (the sum of two
    smooth maps: more blobs, several regions per level) and noisy (:func:`add_noise`: many small
    regions and holes).
    """
    maps, gt = make_maps(num, size, seed)
    other, _ = make_maps(num, size, seed + 7)
    noisy = add_noise(maps, seed)
    kind = torch.arange(num) % 4
    out = torch.where((kind == 1)[:, None, None], 3 * maps - 1, maps)
    out = torch.where((kind == 2)[:, None, None], maps + other, out)
    out = torch.where((kind == 3)[:, None, None], noisy, out)
    return out.numpy().astype(np.float32), gt.numpy()


def write_split(root: Path, maps: np.ndarray, gt: np.ndarray, seed: int) -> tuple[Path, Path]:
    """wsolevaluation metadata (original sizes 200-600 px, boxes in those pixels) and one
    ``<id>.npy`` per map under ``root``; returns ``(metadata_dir, heatmaps_dir)``."""
    rng = np.random.default_rng(seed)
    meta, heat = root / "metadata", root / "heatmaps"
    meta.mkdir(parents=True, exist_ok=True)
    ids, sizes, boxes = [], [], []
    size = maps.shape[-1]
    for i, m in enumerate(maps):
        image_id = f"{i % 50:03d}.class/img_{i:05d}.jpg"
        width, height = (int(v) for v in rng.integers(200, 601, size=2))
        ids.append(image_id)
        sizes.append(f"{image_id},{width},{height}\n")
        for x0, y0, x1, y1 in gt[i]:
            if x0 < 0:
                continue
            sx, sy = width / size, height / size
            # integers, as wsolevaluation's own loader requires
            coords = (int(x0 * sx), int(y0 * sy), int(x1 * sx), int(y1 * sy))
            boxes.append(f"{image_id},{','.join(map(str, coords))}\n")
        path = heat / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, m)
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "image_sizes.txt").write_text("".join(sizes))
    (meta / "localization.txt").write_text("".join(boxes))
    return meta, heat


def wsolevaluation_v1_rate(
    meta: Path, heat: Path, num: int, thresholds: int
) -> tuple[float, np.ndarray]:
    """Maps/s of wsolevaluation's per-image V1 procedure on the split's first ``num`` maps, and
    its hit counts per threshold (IoU >= 0.5; ``tests/test_bench_box_eval.py`` checks them
    against the evaluator's).

    Per map, as its pipeline and ``BoxEvaluator.accumulate`` with ``multi_contour_eval=False``
    do: read the ``.npy``, ``normalize_scoremap`` in float64, check the map (NaN, range), then at
    every threshold ``cv2.threshold`` of the (H, W, 1) uint8 image, ``cv2.findContours(RETR_TREE,
    CHAIN_APPROX_SIMPLE)``, the ``max`` contour by ``cv2.contourArea`` and its
    ``cv2.boundingRect`` (keyword calls from a nested function, as there); then the IoUs of all
    those boxes with the ground-truth boxes in one call, the best per threshold, and the hit
    counts at IoU 0.5. Written from that description with numpy and OpenCV; single-threaded, as
    wsolevaluation. Timed by hand against wsolevaluation's own ``evaluation.py`` (96f4b88) on the
    benchmark's first 20 maps, eight alternating rounds: median 7.02 maps/s there, 6.55 here
    (docs/evaluator_speed.md).
    """
    from infocam_exp.evaluate import load_metadata, rescale_boxes

    info = load_metadata(meta)
    ids = info.image_ids[:num]  # the kinds come in turn (mixed_maps), so all four are here
    taus = np.arange(0, 1, 1 / thresholds)
    hits = np.zeros(len(taus), np.int64)
    start = time.perf_counter()
    for image_id in ids:
        cam = np.load(heat / f"{image_id}.npy").astype(np.float64)
        if np.isnan(cam).any() or cam.min() == cam.max():
            cam = np.zeros_like(cam)
        else:
            cam -= cam.min()
            cam /= cam.max()
        if np.isnan(cam).any() or (cam > 1).any() or (cam < 0).any():
            raise ValueError(f"{image_id}: not a score map in [0, 1]")
        height, width = cam.shape
        image = np.expand_dims((cam * 255).astype(np.uint8), 2)
        gt_b = rescale_boxes(info.boxes[image_id], info.image_sizes[image_id], (width, height))

        def box_at(tau, image=image, width=width, height=height):
            _, mask = cv2.threshold(
                src=image, thresh=int(tau * np.max(image)), maxval=255, type=cv2.THRESH_BINARY
            )
            contours = cv2.findContours(
                image=mask, mode=cv2.RETR_TREE, method=cv2.CHAIN_APPROX_SIMPLE
            )[0]
            if len(contours) == 0:
                return np.asarray([[0, 0, 0, 0]]), 1
            x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
            return np.asarray([[x, y, min(x + w, width - 1), min(y + h, height - 1)]]), 1

        boxes, counts = zip(*(box_at(tau) for tau in taus), strict=True)
        best = multiple_iou(np.concatenate(boxes, axis=0), gt_b.astype(np.float64)).max(1)
        per_tau, first = [], 0
        for count in counts:
            per_tau.append(max(best[first : first + count]))
            first += count
        hits[np.where(np.asarray(per_tau) >= 0.5)[0]] += 1
    return len(ids) / (time.perf_counter() - start), hits


@functools.cache
def _wsolevaluation_modules(checkout: Path):
    """wsolevaluation's ``evaluation`` and ``inference`` modules, imported once per process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from check_pxap_against_wsolevaluation import _import_wsolevaluation

    return _import_wsolevaluation(checkout)


def real_wsolevaluation_v1_rate(
    checkout: Path, meta: Path, heat: Path, num: int, thresholds: int
) -> tuple[float, np.ndarray]:
    """Maps/s of wsolevaluation's own ``BoxEvaluator`` (V1, ``multi_contour_eval=False``) from a
    checkout of clovaai/wsolevaluation: per map, ``np.load``, float64, its
    ``normalize_scoremap`` and ``accumulate``, as its ``evaluate_wsol`` does (imported with the
    shims of ``check_pxap_against_wsolevaluation.py``)."""
    evaluation, inference = _wsolevaluation_modules(checkout)

    class Metadata(dict):  # what munch.Munch gives wsolevaluation: keys and attributes
        __getattr__ = dict.__getitem__

    names = ("image_ids", "image_ids_proxy", "class_labels", "image_sizes", "localization")
    metadata = Metadata({n: str(meta / f"{n}.txt") for n in names})
    evaluator = evaluation.BoxEvaluator(
        metadata=metadata, dataset_name="bench", split="test",
        cam_threshold_list=list(np.arange(0, 1, 1 / thresholds)), iou_threshold_list=[50],
        mask_root=None, multi_contour_eval=False,
    )
    ids = evaluator.image_ids[:num]
    start = time.perf_counter()
    for image_id in ids:
        cam = np.load(heat / f"{image_id}.npy").astype(np.float64)
        evaluator.accumulate(inference.normalize_scoremap(cam), image_id)
    return len(ids) / (time.perf_counter() - start), evaluator.num_correct[50]


def run_cli(meta: Path, heat: Path, thresholds: int, cache: Path, out: Path, kernel: str) -> float:
    """Wall seconds of one ``python -m infocam_exp.evaluate`` process (compiled code in
    ``cache``, kernels ``kernel``)."""
    env = _cache_env(cache, kernel)
    cmd = [
        sys.executable, "-m", "infocam_exp.evaluate", "--metadata", str(meta), "--heatmaps",
        str(heat), "--thresholds", str(thresholds), "--json", str(out),
    ]
    start = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return wall


def whole_process(args: argparse.Namespace) -> None:
    """The ``--whole-process`` mode (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="bench_box_eval_") as tmp:
        root = Path(tmp)
        data = Path(args.data) if args.data else root
        meta, heat = data / "metadata", data / "heatmaps"
        if not (meta / "localization.txt").is_file():
            start = time.perf_counter()
            maps, gt = mixed_maps(args.maps, args.size, args.seed)
            write_split(data, maps, gt, args.seed)
            del maps
            log.info("wrote %d maps and metadata to %s in %.1f s (not timed below)", args.maps,
                     data, time.perf_counter() - start)
        else:
            log.info("reusing the maps in %s", data)
        num = len((meta / "image_ids.txt").read_text().split())  # the CLI scores them all
        results = []
        if args.wsolevaluation:
            checkout = Path(args.wsolevaluation)
            reference = functools.partial(real_wsolevaluation_v1_rate, checkout)
            log.info("reference: wsolevaluation's own BoxEvaluator from %s", checkout)
        else:
            reference = wsolevaluation_v1_rate
        for rep in range(args.repeats):
            log.info("load average %.2f %.2f %.2f", *os.getloadavg())
            cache = root / f"cache_{rep}"
            # The machine's speed drifts by tens of percent within a minute, so the reference
            # is timed right before and right after each CLI run and each ratio uses the mean
            # of the two around it.
            ref0 = reference(meta, heat, args.opencv_maps, args.thresholds)[0]
            cold = run_cli(meta, heat, args.thresholds, cache, root / "cold.json", args.kernel)
            used = "c" if any((cache / "native").glob("*.so")) else "numba"
            ref1 = reference(meta, heat, args.opencv_maps, args.thresholds)[0]
            warm = run_cli(meta, heat, args.thresholds, cache, root / "warm.json", args.kernel)
            ref2 = reference(meta, heat, args.opencv_maps, args.thresholds)[0]
            same = (root / "cold.json").read_text() == (root / "warm.json").read_text()
            cold_x = num / cold / ((ref0 + ref1) / 2)
            warm_x = num / warm / ((ref1 + ref2) / 2)
            results.append((cold, warm, cold_x, warm_x))
            log.info(
                "run %d: CLI (V1 + V2, %s kernels) cold %.1f s = %.1f maps/s (%.0fx), warm %.1f s = %.1f "
                "maps/s (%.0fx); wsolevaluation V1 loop %.2f / %.2f / %.2f maps/s (%d maps, "
                "before cold / between / after warm); cold and warm reports %s",
                rep, used, cold, num / cold, cold_x, warm, num / warm, warm_x, ref0, ref1,
                ref2, args.opencv_maps, "identical" if same else "DIFFER",
            )
            if not same:
                raise SystemExit("cold and warm runs wrote different reports")
        if len(results) > 1:
            med = np.median(np.array(results), axis=0)
            log.info(
                "median of %d runs: cold %.1f s (%.0fx), warm %.1f s (%.0fx)",
                len(results), med[0], med[2], med[1], med[3],
            )
        report = json.loads((root / "warm.json").read_text())
        log.info("metrics: %s", {k: round(v, 4) for k, v in report["metrics"].items()})
    log.info("load average after: %.2f %.2f %.2f", *os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--maps", type=int, default=None, help="maps for the compiled path (200; 3000 with "
        "--whole-process)"
    )
    parser.add_argument("--torch-maps", type=int, default=40, help="maps for the torch sweep")
    parser.add_argument(
        "--opencv-maps", type=int, default=None, help="maps for the OpenCV loop (8; 20 with "
        "--whole-process)"
    )
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument(
        "--thresholds", type=int, nargs="+", default=None, help="(100 1000; 1000 with "
        "--whole-process)"
    )
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
    parser.add_argument(
        "--whole-process",
        action="store_true",
        help="time the evaluate CLI as a subprocess (cold and warm caches) against "
        "wsolevaluation's per-image V1 loop; --maps maps (default 3000), --thresholds N (1000)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="--whole-process runs (medians reported)")
    parser.add_argument(
        "--data", help="--whole-process: keep the generated maps here and reuse them next time"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--kernel", choices=("auto", "c", "numba"), default="auto",
        help="--whole-process: the CLI's INFOCAM_BOX_KERNEL (numba: time the fallback kernels)",
    )
    parser.add_argument(
        "--wsolevaluation",
        metavar="CHECKOUT",
        help="--whole-process: time wsolevaluation's own BoxEvaluator from this checkout of "
        "clovaai/wsolevaluation instead of the built-in transcription of its procedure",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.whole_process:
        args.maps = 3000 if args.maps is None else args.maps
        args.opencv_maps = 20 if args.opencv_maps is None else args.opencv_maps
        args.thresholds = 1000 if args.thresholds is None else args.thresholds[0]
        log.info(
            "whole process: %d maps of %d x %d, %d thresholds, V1 + V2; %d CPUs; uptime: %s",
            args.maps, args.size, args.size, args.thresholds, os.cpu_count(),
            subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        )
        whole_process(args)
        return
    args.maps = 200 if args.maps is None else args.maps
    args.opencv_maps = 8 if args.opencv_maps is None else args.opencv_maps
    args.thresholds = [100, 1000] if args.thresholds is None else args.thresholds
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
