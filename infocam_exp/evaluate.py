"""Score saved heatmaps against wsolevaluation box metadata (Choe et al., CVPR 2020).

Usage::

    python -m infocam_exp.evaluate --metadata DIR --heatmaps DIR \\
        [--thresholds 1000] [--json PATH] [--device cpu|cuda] [--threads N]
        [--backend auto|compiled|torch]
    python -m infocam_exp.evaluate --warm-up

``--metadata`` holds wsolevaluation's text files for one split:

* ``image_ids.txt``: one image id (a relative path) per line;
* ``image_sizes.txt``: ``<id>,<width>,<height>`` of the original image;
* ``localization.txt``: ``<id>,<x0>,<y0>,<x1>,<y1>`` in original-image pixels, one line per box
  (several lines for an image with several boxes);
* ``class_labels.txt`` (``<id>,<label>``): checked when present, otherwise unused.

``--heatmaps`` holds one 2-D ``.npy`` per id at ``<heatmaps>/<id>.npy`` (sub-folders as in the id).

Ground-truth boxes are rescaled from the original image size to each heatmap's frame as
wsolevaluation does (``int(x * map_w / image_w)``, truncating); with 224 x 224 heatmaps this is its
exact procedure. Maps are min-max normalised (identity for the normalised maps wsolevaluation
saves). Classification results are unknown here, so only GT-known metrics are reported:
MaxBoxAcc, MaxBoxAccV2 (+ IoU 30/50/70) and GT-known Loc at a fixed threshold.

Mask metadata (wsolevaluation's OpenImages layout: ``localization.txt`` lines
``<id>,<mask_path>,<ignore_path>``) is detected and scored with PxAP instead; it needs
``--mask-root`` (see :mod:`infocam_exp.evaluate_masks`).

Speed (docs/evaluator_speed.md): on a CPU the module imports numpy only (torch is imported only
for ``--device cuda`` or ``--backend torch``); ``--threads`` threads (default: one per core) each
read, normalise and sweep their own batches with the compiled sweep: C kernels built by the
system's C compiler on first use (a fraction of a second), or numba's where no compiler builds
them (``INFOCAM_BOX_KERNEL`` chooses; see :func:`infocam_exp.metrics._boxes_compiled.select_kernels`).
``--warm-up`` builds or compiles them ahead of time (``make setup`` runs it).
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from infocam_exp.data.wsol_masks import metadata_lines, read_image_ids
from infocam_exp.errors import ConfigError, UserError, full_error_requested, log_user_error
from infocam_exp.files import read_npy, write_json_atomic
from infocam_exp.progress import ProgressCount

if TYPE_CHECKING:  # torch is imported only on the GPU / torch-sweep path (import time)
    import torch

log = logging.getLogger(__name__)


class MetadataError(UserError, ValueError):
    """A metadata or heatmap file is missing or malformed; the message names file and line."""


@dataclass(frozen=True)
class BoxMetadata:
    """One split's wsolevaluation metadata.

    Attributes:
        image_ids: ids in file order.
        image_sizes: id -> (width, height) in original-image pixels.
        boxes: id -> list of (x0, y0, x1, y1) in original-image pixels.
    """

    image_ids: list[str]
    image_sizes: dict[str, tuple[int, int]]
    boxes: dict[str, list[tuple[float, float, float, float]]]


def _box_error(path: object, problem: str, line: int | None = None) -> MetadataError:
    return MetadataError(f"{path}:{line}: {problem}" if line is not None else f"{path}: {problem}")


def _lines(path: Path) -> list[tuple[int, str]]:
    return metadata_lines(path, _box_error)


def _fields(path: Path, lineno: int, line: str, expected: str, count: int) -> list[str]:
    parts = line.split(",")
    if len(parts) != count or not parts[0]:
        raise MetadataError(f"{path}:{lineno}: {line!r}: expected {expected}")
    return parts


def load_metadata(metadata_dir: str | Path) -> BoxMetadata:
    """Parse and cross-check a wsolevaluation metadata folder (see the module docstring).

    Raises:
        MetadataError: naming the file and line of any problem.
    """
    root = Path(metadata_dir)
    image_ids = read_image_ids(root, _box_error)
    ids_path = root / "image_ids.txt"

    sizes_path = root / "image_sizes.txt"
    image_sizes: dict[str, tuple[int, int]] = {}
    for lineno, line in _lines(sizes_path):
        expected = "'<image_id>,<width>,<height>' with positive integer width and height"
        image_id, ws, hs = _fields(sizes_path, lineno, line, expected, 3)
        try:
            width, height = int(ws), int(hs)
        except ValueError:
            raise MetadataError(f"{sizes_path}:{lineno}: {line!r}: expected {expected}") from None
        if width <= 0 or height <= 0:
            raise MetadataError(f"{sizes_path}:{lineno}: {line!r}: expected {expected}")
        image_sizes[image_id] = (width, height)

    loc_path = root / "localization.txt"
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    for lineno, line in _lines(loc_path):
        expected = "'<image_id>,<x0>,<y0>,<x1>,<y1>' with numbers, x0 <= x1 and y0 <= y1"
        image_id, *coords = _fields(loc_path, lineno, line, expected, 5)
        try:
            x0, y0, x1, y1 = (float(c) for c in coords)
        except ValueError:
            raise MetadataError(f"{loc_path}:{lineno}: {line!r}: expected {expected}") from None
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
            raise MetadataError(f"{loc_path}:{lineno}: {line!r}: expected {expected}")
        boxes.setdefault(image_id, []).append((x0, y0, x1, y1))

    labels_path = root / "class_labels.txt"
    if labels_path.exists():
        for lineno, line in _lines(labels_path):
            expected = "'<image_id>,<integer label>'"
            _, label = _fields(labels_path, lineno, line, expected, 2)
            try:
                int(label)
            except ValueError:
                raise MetadataError(
                    f"{labels_path}:{lineno}: {line!r}: expected {expected}"
                ) from None

    for image_id in image_ids:
        if image_id not in image_sizes:
            raise MetadataError(f"{sizes_path}: no line for image id {image_id!r} ({ids_path})")
        if image_id not in boxes:
            raise MetadataError(f"{loc_path}: no box for image id {image_id!r} ({ids_path})")
    return BoxMetadata(image_ids=image_ids, image_sizes=image_sizes, boxes=boxes)


def rescale_boxes(
    boxes: Sequence[tuple[float, float, float, float]],
    image_size: tuple[int, int],
    map_size: tuple[int, int],
) -> np.ndarray:
    """Boxes from original-image pixels to a ``(width, height)`` map frame, as wsolevaluation.

    Each coordinate becomes ``int(v * map_w / image_w)`` (x) or ``int(v * map_h / image_h)``
    (y): float64 arithmetic, truncation. Returns ``(G, 4)`` int64.
    """
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    (img_w, img_h), (map_w, map_h) = image_size, map_size
    scale = np.array([map_w, map_h, map_w, map_h], dtype=np.float64)
    size = np.array([img_w, img_h, img_w, img_h], dtype=np.float64)
    return np.trunc(arr * scale / size).astype(np.int64)


def heatmap_path(heatmaps_dir: str | Path, image_id: str) -> Path:
    """Where the heatmap of ``image_id`` lives: ``<heatmaps_dir>/<image_id>.npy``."""
    return Path(heatmaps_dir) / f"{image_id}.npy"


def _load_heatmap(path: Path, image_id: str, allow_nan: bool) -> np.ndarray:
    try:
        arr = read_npy(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MetadataError(f"missing heatmap for image id {image_id!r}: expected {path}") from None
    except (ValueError, OSError) as err:
        raise MetadataError(f"{path}: not a readable .npy array ({err})") from None
    if arr.ndim != 2 or 0 in arr.shape:
        raise MetadataError(f"{path}: expected a 2-D (H, W) heatmap, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise MetadataError(f"{path}: expected a real-valued array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if np.isfinite(arr.min()) and np.isfinite(arr.max()):
            return arr  # min and max are NaN if any value is, and infinite if any value is
        if np.isinf(arr).any():
            raise MetadataError(f"{path}: heatmap contains infinite values")
        if not allow_nan and np.isnan(arr).any():
            raise MetadataError(
                f"{path}: heatmap contains NaN (pass --allow-nan to score NaN maps as all-zero "
                "maps, as wsolevaluation's normalize_scoremap does)"
            )
    else:
        arr = arr.astype(np.float64)
    return arr


IOU_THRESHOLD = 0.5
"""IoU of a hit for MaxBoxAcc and GT-known Loc."""
IOU_THRESHOLDS = (0.3, 0.5, 0.7)
"""IoUs averaged by MaxBoxAccV2."""


def box_thresholds(num: int) -> np.ndarray:
    """``[0, 1/num, ..., (num-1)/num]`` float64, bit-identical to ``boxes.default_thresholds``
    (and to wsolevaluation's ``np.arange(0, 1, 1 / num)``: both fill ``i * (1 / num)``)."""
    if num < 1:
        raise ValueError(f"need at least one threshold, got num={num}")
    return np.arange(num, dtype=np.float64) * (1.0 / num)


def _threshold_index(taus: np.ndarray, threshold: float) -> int:
    diff = np.abs(taus - float(threshold))
    idx = int(diff.argmin())
    if diff[idx] > 1e-9:
        raise ValueError(
            f"threshold {threshold} is not one of the {taus.size} thresholds "
            f"(nearest {float(taus[idx]):.6g})"
        )
    return idx


@dataclass
class _Hits:
    """Per-threshold hit counts: ``gt_known`` (T,), ``v2`` (len(IOU_THRESHOLDS), T), ``total``."""

    gt_known: np.ndarray
    v2: np.ndarray
    total: int = 0

    def add(self, other: _Hits) -> None:
        self.gt_known += other.gt_known
        self.v2 += other.v2
        self.total += other.total


def _read_group(
    heatmaps_dir: str | Path,
    meta: BoxMetadata,
    ids: Sequence[str],
    allow_nan: bool,
    normalize: bool,
    to_uint8: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Read and check the maps of ``ids``; yield ``(maps (B, H, W), gt (B, G, 4) float64 padded,
    valid (B, G) bool)`` per map shape, in first-seen order.

    With ``to_uint8`` (the compiled sweep) each map is converted to uint8 as soon as it is read,
    while it is in the CPU cache, in its own dtype, as wsolevaluation's per-image loop
    normalises it; otherwise the float maps of a group are stacked in their common dtype.
    """
    groups: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}
    for image_id in ids:
        path = heatmap_path(heatmaps_dir, image_id)
        arr = _load_heatmap(path, image_id, allow_nan)
        if not normalize and not allow_nan and (arr.min() < 0 or arr.max() > 1):
            raise MetadataError(f"{path}: values outside [0, 1] (drop --no-normalize)")
        height, width = arr.shape
        gt = rescale_boxes(meta.boxes[image_id], meta.image_sizes[image_id], (width, height))
        item = _to_uint8(arr[None], normalize)[0] if to_uint8 else arr
        groups.setdefault((height, width), []).append((item, gt))
    for items in groups.values():
        most = max(len(b) for _, b in items)
        gt = np.full((len(items), most, 4), -1.0, dtype=np.float64)
        valid = np.zeros((len(items), most), dtype=bool)
        for i, (_, b) in enumerate(items):
            gt[i, : len(b)] = b
            valid[i, : len(b)] = True
        maps = np.stack([m for m, _ in items])
        if not to_uint8:
            maps = maps.astype(np.result_type(*{m.dtype for m, _ in items}), copy=False)
        yield maps, gt, valid


def _to_uint8(maps: np.ndarray, normalize: bool) -> np.ndarray:
    """``boxes.scoremaps_to_uint8`` in numpy (same dtype rules, same bytes)."""
    from infocam_exp.metrics._boxes_compiled import maps_to_uint8

    if maps.dtype not in (np.float32, np.float64):
        maps = maps.astype(np.float32)  # half types are widened, as the torch form does
    if normalize:
        return maps_to_uint8(maps)
    if np.isnan(maps).any():
        raise ValueError("maps contain NaN; pass normalize=True to map NaN maps to zeros")
    if (maps < 0).any() or (maps > 1).any():
        raise ValueError("maps must lie in [0, 1] when normalize=False")
    return (maps * maps.dtype.type(255)).astype(np.uint8)


def _score_compiled(u8: np.ndarray, gt: np.ndarray, valid: np.ndarray, taus: np.ndarray) -> _Hits:
    """Hit counts of one group of uint8 maps with the compiled sweep, in the calling thread."""
    from infocam_exp.metrics._boxes_compiled import compiled_threshold_ious

    peak = u8.reshape(u8.shape[0], -1).max(axis=1).astype(np.float64)
    cuts = np.floor(taus[None, :] * peak[:, None]).astype(np.int64)  # boxes.threshold_cuts
    largest, best_any, _ = compiled_threshold_ious(u8, cuts, gt, valid, threads=1)
    v2 = np.stack([(best_any >= iou).sum(axis=0) for iou in IOU_THRESHOLDS]).astype(np.int64)
    return _Hits((largest >= IOU_THRESHOLD).sum(axis=0).astype(np.int64), v2, len(u8))


def default_workers() -> int:
    """CPU threads the evaluator uses by default: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def evaluate(
    metadata_dir: str | Path,
    heatmaps_dir: str | Path,
    thresholds: int = 1000,
    fixed_threshold: float = 0.2,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    allow_nan: bool = False,
    normalize: bool = True,
    progress: bool | None = None,
    workers: int | None = None,
    backend: str = "auto",
) -> dict:
    """Score every heatmap of a split against its boxes.

    Args:
        metadata_dir: wsolevaluation metadata folder of the split.
        heatmaps_dir: folder with ``<image_id>.npy`` per image.
        thresholds: number N of thresholds ``i / N`` (wsolevaluation: 1000).
        fixed_threshold: tau for ``gt_known_loc`` (must be one of the thresholds).
        device: where the box sweep runs (``cpu``: the compiled sweep; ``cuda``: the torch
            sweep there).
        batch_size: at most this many heatmaps are read and scored together.
        allow_nan: score NaN maps as zero maps instead of raising.
        normalize: min-max normalise each map (False: maps must already lie in [0, 1]).
        progress: tqdm bar with maps/s (heatmaps read and scored); None: a bar on a terminal,
            progress lines (at most every 10% and 30 s) otherwise.
        workers: CPU threads; each reads, normalises and sweeps its own batches, so reading
            overlaps the sweep (None: :func:`default_workers`). On a GPU they read ahead.
        backend: ``"auto"`` (compiled on a CPU, torch on a GPU), ``"compiled"`` or ``"torch"``
            (the torch sweep, also on a CPU); the numbers do not depend on it.

    Returns:
        ``{"metrics": {name: float (percent)}, "curves": {name: [float per threshold]},
        "num_images": int, ...}`` (JSON-serialisable).
    """
    if backend not in ("auto", "compiled", "torch"):
        raise ConfigError(f"backend must be one of auto, compiled, torch; got {backend!r}")
    meta = load_metadata(metadata_dir)
    taus = box_thresholds(thresholds)
    fixed_index = _threshold_index(taus, fixed_threshold)
    on_cpu = str(device) == "cpu"
    if backend == "compiled" and not on_cpu:
        raise ConfigError(f"the compiled sweep runs on the CPU, got device={device!r} (use --backend auto or torch)")
    if backend == "auto" and on_cpu:
        from infocam_exp.metrics._boxes_compiled import NO_COMPILED_SWEEP, kernels_available

        backend = "compiled" if kernels_available() else "torch"
        if backend == "torch":
            log.warning(NO_COMPILED_SWEEP)
    workers = default_workers() if workers is None or workers < 1 else int(workers)
    ids = meta.image_ids
    # Batches small enough that every thread gets several (noisy maps cost ~10x smooth ones).
    per = max(1, min(int(batch_size), -(-len(ids) // (4 * workers))))
    chunks = [ids[i : i + per] for i in range(0, len(ids), per)]
    hits = _Hits(np.zeros(taus.size, np.int64), np.zeros((len(IOU_THRESHOLDS), taus.size), np.int64))
    # a tqdm bar with maps/s on a terminal; off a terminal a line at most every 10% / 30 s
    if backend == "compiled" and on_cpu:
        from infocam_exp.metrics import _boxes_compiled

        # load the compiled sweep before any thread starts (a fresh install builds it; numba's
        # form compiles on two cores, forking)
        _boxes_compiled.warm_up()
    bar = ProgressCount(len(ids), desc="heatmaps", unit="map", enabled=progress)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        if backend == "compiled" and on_cpu:

            def work(chunk: list[str]) -> _Hits:
                part = _Hits(np.zeros_like(hits.gt_known), np.zeros_like(hits.v2))
                for group in _read_group(heatmaps_dir, meta, chunk, allow_nan, normalize, True):
                    part.add(_score_compiled(*group, taus))
                return part

            for part in pool.map(work, chunks):
                hits.add(part)
                bar.update(part.total)
        else:
            hits = _score_torch(
                pool.map(
                    lambda chunk: list(_read_group(heatmaps_dir, meta, chunk, allow_nan, normalize)),
                    chunks,
                ),
                taus,
                device,
                normalize,
                workers,
                bar,
            )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return _report(hits, taus, fixed_index, metadata_dir, heatmaps_dir, normalize)


def _score_torch(groups, taus, device, normalize, workers, bar) -> _Hits:
    """Hit counts from the torch sweep (``LocalizationMetrics`` with ``backend="torch"``) over
    groups read ahead by the pool."""
    import torch

    from infocam_exp.metrics.localization import LocalizationMetrics

    metric = LocalizationMetrics(
        thresholds=torch.from_numpy(taus),
        normalize=normalize,
        iou_threshold=IOU_THRESHOLD,
        iou_thresholds=IOU_THRESHOLDS,
        workers=workers,
        backend="torch",
        fixed_threshold=float(taus[0]),
    ).to(device)
    for chunk in groups:
        for maps, gt, valid in chunk:
            metric.update(
                torch.from_numpy(maps).to(device),
                torch.from_numpy(gt).to(device),
                gt_valid=torch.from_numpy(valid).to(device),
            )
            bar.update(len(maps))
    return _Hits(
        metric.gt_known_hits.cpu().numpy().copy(),
        metric.v2_hits.cpu().numpy().copy(),
        int(metric.total),
    )


def _report(
    hits: _Hits,
    taus: np.ndarray,
    fixed_index: int,
    metadata_dir: str | Path,
    heatmaps_dir: str | Path,
    normalize: bool,
) -> dict:
    """Metrics and curves from hit counts (``LocalizationMetrics.compute``'s formulas)."""
    total = float(max(hits.total, 1))
    gt_known = hits.gt_known.astype(np.float64) * 100.0 / total
    v2 = hits.v2.astype(np.float64) * 100.0 / total
    best = int(np.argmax(gt_known))  # the first threshold reaching the maximum
    v2_best = v2.max(axis=1)
    metrics = {
        "max_box_acc": float(gt_known[best]),
        "max_box_acc_threshold": float(taus[best]),
        "max_box_acc_v2": float(v2_best.mean()),
        **{
            f"max_box_acc_v2_iou{round(iou * 100):d}": float(v2_best[i])
            for i, iou in enumerate(IOU_THRESHOLDS)
        },
        "gt_known_loc": float(gt_known[fixed_index]),
        "gt_known_loc_threshold": float(taus[fixed_index]),
    }
    curves = {"thresholds": taus.tolist(), "gt_known_loc": gt_known.tolist()}
    for i, iou in enumerate(IOU_THRESHOLDS):
        curves[f"max_box_acc_v2_iou{round(iou * 100):d}"] = v2[i].tolist()
    return {
        "metrics": metrics,
        "curves": curves,
        "num_images": int(hits.total),
        "metadata": str(metadata_dir),
        "heatmaps": str(heatmaps_dir),
        "num_thresholds": int(taus.size),
        "normalize": normalize,
        "protocol": "wsolevaluation (Choe et al., CVPR 2020) box metrics, accuracies in percent",
    }


def format_table(report: dict) -> str:
    """The CLI's result table."""
    m = report["metrics"]
    rows = [
        ("images", f"{report['num_images']}"),
        (
            "MaxBoxAcc (IoU 0.5)",
            f"{m['max_box_acc']:.2f}  (tau = {m['max_box_acc_threshold']:.3f})",
        ),
        ("MaxBoxAccV2 (mean IoU 30/50/70)", f"{m['max_box_acc_v2']:.2f}"),
    ]
    for key in sorted(k for k in m if k.startswith("max_box_acc_v2_iou")):
        rows.append(
            (
                f"  MaxBoxAccV2 @ IoU {int(key[len('max_box_acc_v2_iou') :]) / 100:.1f}",
                f"{m[key]:.2f}",
            )
        )
    rows.append(
        (f"GT-known Loc @ tau = {m['gt_known_loc_threshold']:.3f}", f"{m['gt_known_loc']:.2f}")
    )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (2 on bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m infocam_exp.evaluate",
        description="WSOL metrics of saved heatmaps against wsolevaluation metadata: box metrics "
        "(MaxBoxAcc, MaxBoxAccV2, GT-known Loc) for box metadata, PxAP for mask metadata.",
    )
    parser.add_argument("--metadata", help="metadata folder of one split")
    parser.add_argument("--heatmaps", help="folder of <image_id>.npy heatmaps")
    parser.add_argument("--thresholds", type=int, default=1000, help="N thresholds i/N (1000)")
    parser.add_argument(
        "--fixed-threshold", type=float, default=0.2, help="tau for GT-known Loc (0.2)"
    )
    parser.add_argument(
        "--mask-root",
        help="mask metadata only: folder the mask paths in localization.txt are relative to "
        "(wsolevaluation: dataset/OpenImages)",
    )
    parser.add_argument("--json", help="write the full report (with curves) here, atomically")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=64, help="maps read and scored together")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads, each reading, normalising and sweeping its own batches (default 0: "
        "one per available core)",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "compiled", "torch"),
        help="box sweep: auto (compiled on CPU, torch on CUDA), compiled, torch; the compiled "
        "sweep's kernels are C (built by the system's C compiler) or numba, as the environment "
        "variable INFOCAM_BOX_KERNEL=auto|c|numba says",
    )
    parser.add_argument(
        "--allow-nan", action="store_true", help="score NaN heatmaps as all-zero maps"
    )
    parser.add_argument(
        "--no-normalize",
        action="store_true",
        help="do not min-max normalise (maps must lie in [0, 1], as wsolevaluation requires)",
    )
    parser.add_argument(
        "--warm-up",
        action="store_true",
        help="only build (or load) the compiled box sweep and print which kernels are in use and "
        "where their compiled code is; make setup runs this",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.warm_up:
        from infocam_exp.metrics import _boxes_compiled

        try:
            seconds = _boxes_compiled.warm_up()
        except UserError as err:  # an unknown INFOCAM_BOX_KERNEL, or C asked for and not built
            if full_error_requested():
                raise
            return log_user_error(err, log)
        sys.stdout.write(f"box sweep ready in {seconds:.1f} s: {_boxes_compiled.describe()}\n")
        return 0
    if not args.metadata or not args.heatmaps:
        parser.error("--metadata and --heatmaps are required (unless --warm-up)")
    if args.thresholds < 1:
        parser.error(f"--thresholds {args.thresholds}: need at least 1 threshold")
    n = args.thresholds
    if not (0 <= args.fixed_threshold < 1 and abs(args.fixed_threshold * n - round(args.fixed_threshold * n)) < 1e-6):
        parser.error(f"--fixed-threshold {args.fixed_threshold} must be one of the thresholds i/{n}, 0 <= i < {n}")
    from infocam_exp.data.wsol_masks import localization_kind

    if localization_kind(args.metadata) == "masks":
        from infocam_exp.evaluate_masks import run_cli

        return run_cli(args)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda requested but CUDA is not available")
    # The run makes little cyclic garbage, and each collection would walk every live object
    # (numba's many, when its kernels are in use).
    collecting = gc.isenabled()
    gc.disable()
    try:
        report = evaluate(
            args.metadata,
            args.heatmaps,
            thresholds=args.thresholds,
            fixed_threshold=args.fixed_threshold,
            device=args.device,
            batch_size=args.batch_size,
            allow_nan=args.allow_nan,
            normalize=not args.no_normalize,
            workers=args.threads,
            backend=args.backend,
        )
    except UserError as err:  # MetadataError, ConfigError; anything else keeps its traceback
        if full_error_requested():
            raise
        return log_user_error(err, log)
    finally:
        if collecting:
            gc.enable()
    sys.stdout.write(format_table(report) + "\n")
    if args.json:
        write_json_atomic(Path(args.json), report)
        log.info("wrote %s", args.json)
    return 0


def _exit_now(status: int) -> None:
    """End the CLI process without the interpreter's teardown (about 0.3 s collecting numba's
    objects when its kernels were used) after everything is written: flush, then ``os._exit``."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    _exit_now(main())
