"""Score saved heatmaps against wsolevaluation box metadata (Choe et al., CVPR 2020).

Usage::

    python -m infocam_exp.evaluate --metadata DIR --heatmaps DIR \\
        [--thresholds 1000] [--json PATH] [--device cpu|cuda]

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
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from infocam_exp.console import progress as log_progress
from infocam_exp.errors import UserError, full_error_requested, log_user_error
from infocam_exp.metrics.localization import LocalizationMetrics, scalar_metrics
from infocam_exp.results import write_json_atomic

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


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise MetadataError(f"metadata file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        return [(i, line.rstrip("\r\n")) for i, line in enumerate(handle, start=1) if line.strip()]


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
    if not root.is_dir():
        raise MetadataError(f"metadata folder not found: {root}")
    ids_path = root / "image_ids.txt"
    image_ids: list[str] = []
    seen: set[str] = set()
    for lineno, line in _lines(ids_path):
        image_id = line.strip()
        if image_id in seen:
            raise MetadataError(f"{ids_path}:{lineno}: duplicate image id {image_id!r}")
        seen.add(image_id)
        image_ids.append(image_id)
    if not image_ids:
        raise MetadataError(f"{ids_path}: no image ids")

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
    if not path.is_file():
        raise MetadataError(f"missing heatmap for image id {image_id!r}: expected {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise MetadataError(f"{path}: not a readable .npy array ({err})") from None
    if arr.ndim != 2 or 0 in arr.shape:
        raise MetadataError(f"{path}: expected a 2-D (H, W) heatmap, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise MetadataError(f"{path}: expected a real-valued array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
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
) -> dict:
    """Score every heatmap of a split against its boxes.

    Args:
        metadata_dir: wsolevaluation metadata folder of the split.
        heatmaps_dir: folder with ``<image_id>.npy`` per image.
        thresholds: number N of thresholds ``i / N`` (wsolevaluation: 1000).
        fixed_threshold: tau for ``gt_known_loc`` (must be one of the thresholds).
        device: where the box sweep runs.
        batch_size: heatmaps per batch (same-shape maps are batched together).
        allow_nan: score NaN maps as zero maps instead of raising.
        normalize: min-max normalise each map (False: maps must already lie in [0, 1]).
        progress: tqdm bar with maps/s (heatmaps read and scored); None: a bar on a terminal,
            progress lines (at most every 10% and 30 s) otherwise.

    Returns:
        ``{"metrics": {name: float (percent)}, "curves": {name: [float per threshold]},
        "num_images": int, ...}`` (JSON-serialisable).
    """
    meta = load_metadata(metadata_dir)
    metric = LocalizationMetrics(
        thresholds=thresholds, fixed_threshold=fixed_threshold, normalize=normalize
    ).to(device)
    pending: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}

    def flush(shape: tuple[int, int]) -> None:
        items = pending.pop(shape, [])
        if not items:
            return
        maps = torch.from_numpy(np.stack([m for m, _ in items])).to(device)
        most = max(len(b) for _, b in items)
        gt = np.full((len(items), most, 4), -1, dtype=np.int64)
        for i, (_, b) in enumerate(items):
            gt[i, : len(b)] = b
        gt_t = torch.from_numpy(gt).to(device)
        valid = torch.from_numpy(
            np.arange(most)[None, :] < np.array([len(b) for _, b in items])[:, None]
        ).to(device)
        metric.update(maps, gt_t, gt_valid=valid)

    if progress is None:  # a bar on a terminal, a line at most every 10% / 30 s in a log
        ids = log_progress(meta.image_ids, desc="heatmaps", unit="map")
    else:
        ids = tqdm(meta.image_ids, desc="heatmaps", unit="map", disable=not progress)
    for image_id in ids:
        path = heatmap_path(heatmaps_dir, image_id)
        arr = _load_heatmap(path, image_id, allow_nan)
        if not normalize and not allow_nan and ((arr < 0).any() or (arr > 1).any()):
            raise MetadataError(f"{path}: values outside [0, 1] (drop --no-normalize)")
        height, width = arr.shape
        gt = rescale_boxes(meta.boxes[image_id], meta.image_sizes[image_id], (width, height))
        pending.setdefault((height, width), []).append((arr, gt))
        if len(pending[(height, width)]) >= batch_size:
            flush((height, width))
    for shape in list(pending):
        flush(shape)

    result = metric.compute()
    scalars = scalar_metrics(result)
    metrics = {
        "max_box_acc": scalars["max_box_acc"],
        "max_box_acc_threshold": scalars["max_box_acc_threshold"],
        "max_box_acc_v2": scalars["max_box_acc_v2"],
        **{k: v for k, v in scalars.items() if k.startswith("max_box_acc_v2_")},
        "gt_known_loc": scalars["gt_known_loc"],
        "gt_known_loc_threshold": scalars["threshold"],
    }
    curves = {"thresholds": result["thresholds"].cpu().tolist()}
    curves["gt_known_loc"] = result["gt_known_loc_curve"].cpu().tolist()
    for key, value in result.items():
        if key.startswith("max_box_acc_v2_") and key.endswith("_curve"):
            curves[key[: -len("_curve")]] = value.cpu().tolist()
    return {
        "metrics": metrics,
        "curves": curves,
        "num_images": int(scalars["num_images"]),
        "metadata": str(metadata_dir),
        "heatmaps": str(heatmaps_dir),
        "num_thresholds": int(thresholds),
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
    parser.add_argument("--metadata", required=True, help="metadata folder of one split")
    parser.add_argument("--heatmaps", required=True, help="folder of <image_id>.npy heatmaps")
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
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads of the compiled box sweep, maps in parallel (default 0: torch's "
        "thread count, one per core)",
    )
    parser.add_argument(
        "--allow-nan", action="store_true", help="score NaN heatmaps as all-zero maps"
    )
    parser.add_argument(
        "--no-normalize",
        action="store_true",
        help="do not min-max normalise (maps must lie in [0, 1], as wsolevaluation requires)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.thresholds < 1:
        parser.error(f"--thresholds {args.thresholds}: need at least 1 threshold")
    n = args.thresholds
    if not (0 <= args.fixed_threshold < 1 and abs(args.fixed_threshold * n - round(args.fixed_threshold * n)) < 1e-6):
        parser.error(f"--fixed-threshold {args.fixed_threshold} must be one of the thresholds i/{n}, 0 <= i < {n}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from infocam_exp.data.wsol_masks import localization_kind

    if localization_kind(args.metadata) == "masks":
        from infocam_exp.evaluate_masks import run_cli

        return run_cli(args)
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
        )
    except UserError as err:  # MetadataError; anything else keeps its traceback
        if full_error_requested():
            raise
        return log_user_error(err, log)
    sys.stdout.write(format_table(report) + "\n")
    if args.json:
        write_json_atomic(Path(args.json), report)
        log.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
