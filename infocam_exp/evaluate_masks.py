"""Score saved heatmaps against wsolevaluation mask metadata: PxAP (Choe et al., CVPR 2020).

``python -m infocam_exp.evaluate`` calls this when the metadata's ``localization.txt`` has mask
lines (``<image_id>,<mask_path>,<ignore_path>``, wsolevaluation's OpenImages layout; see
:mod:`infocam_exp.data.wsol_masks`)::

    python -m infocam_exp.evaluate --metadata DIR --heatmaps DIR --mask-root DIR \\
        [--thresholds 1000] [--json PATH] [--device cpu|cuda]

``--mask-root`` is the folder the mask paths are relative to (wsolevaluation:
``dataset/OpenImages``). Heatmaps are ``<heatmaps>/<image_id>.npy`` 2-D arrays, as for boxes;
each image's masks are resized (nearest neighbour) to its heatmap's frame, which for
wsolevaluation's 224 x 224 maps is its exact procedure. Maps are min-max normalised (identity
for the normalised maps wsolevaluation saves; ``--no-normalize`` requires [0, 1]).

Reported: PxAP (percent) and the pixel precision-recall curve
(:mod:`infocam_exp.metrics.masks`). With ``--json PATH`` the report (curve included) is written
there atomically, and the curve also as ``<PATH stem>_pr_curve.csv`` and ``_pr_curve.png``
beside it.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from infocam_exp.data.wsol_masks import MaskMetadataError, ground_truth, read_mask_metadata
from infocam_exp.errors import UserError, full_error_requested, log_user_error
from infocam_exp.files import read_npy
from infocam_exp.metrics.masks import (
    PxAPCurve,
    PxAPError,
    bin_edges,
    prepare_scoremaps,
    pxap_curve,
    score_histograms,
)
from infocam_exp.results import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

PROTOCOL = "wsolevaluation (Choe et al., CVPR 2020) mask metric PxAP, in percent"


def _load_heatmap(path: Path, image_id: str, allow_nan: bool, normalize: bool) -> np.ndarray:
    if not path.is_file():
        raise MaskMetadataError(path, f"missing heatmap for image id {image_id!r}")
    try:
        arr = read_npy(path)
    except (ValueError, OSError) as err:
        raise MaskMetadataError(path, f"not a readable .npy array ({err})") from None
    if arr.ndim != 2 or 0 in arr.shape:
        raise MaskMetadataError(path, f"expected a 2-D (H, W) heatmap, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64)
    elif not np.issubdtype(arr.dtype, np.floating):
        raise MaskMetadataError(path, f"expected a real-valued array, got dtype {arr.dtype}")
    if np.isinf(arr).any():
        raise MaskMetadataError(path, "heatmap contains infinite values")
    if np.isnan(arr).any() and not (allow_nan and normalize):
        raise MaskMetadataError(
            path,
            "heatmap contains NaN (pass --allow-nan to score NaN maps as all-zero maps, as "
            "wsolevaluation's normalize_scoremap does)",
        )
    if not normalize and ((arr < 0).any() or (arr > 1).any()):
        raise MaskMetadataError(path, "values outside [0, 1] (drop --no-normalize)")
    return arr


def _read_ahead(pool: ThreadPoolExecutor, fn, items, window: int):
    """``fn(item)`` for each item, in order, at most ``window`` running or waiting ahead."""
    queue: deque = deque()
    for item in items:
        queue.append(pool.submit(fn, item))
        if len(queue) >= window:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


def evaluate_masks(
    metadata_dir: str | Path,
    heatmaps_dir: str | Path,
    mask_root: str | Path,
    thresholds: int = 1000,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    allow_nan: bool = False,
    normalize: bool = True,
    progress: bool | None = None,
    workers: int | None = None,
) -> dict:
    """PxAP of every heatmap of a split against its masks.

    Args:
        metadata_dir: wsolevaluation metadata folder of the split (mask layout).
        heatmaps_dir: folder with ``<image_id>.npy`` per image.
        mask_root: folder the mask paths of ``localization.txt`` are relative to.
        thresholds: number N of thresholds ``i / N`` (wsolevaluation: 1000).
        device: where the histograms are accumulated.
        batch_size: heatmaps per batch (same-shape maps are batched together).
        allow_nan: score NaN maps as zero maps instead of raising (needs ``normalize``).
        normalize: min-max normalise each map (False: maps must already lie in [0, 1]).
        progress: tqdm bar (maps/s); None: on a terminal only.
        workers: threads reading heatmaps and masks ahead (None: up to 8, one per core).

    Returns:
        ``{"metrics": {"pxap": float}, "curves": {...}, "pixels": {...}, "num_images": int,
        ...}`` (JSON-serialisable; undefined precisions are None).

    Raises:
        MaskMetadataError: a metadata, mask or heatmap file is missing or malformed, or the split
            has no foreground pixel (naming ``localization.txt``).
    """
    meta = read_mask_metadata(metadata_dir)
    edges = bin_edges(thresholds)
    num_bins = edges.size - 1
    fg_total = torch.zeros(num_bins, dtype=torch.int64, device=device)
    bg_total = torch.zeros(num_bins, dtype=torch.int64, device=device)
    ignored_total = torch.zeros((), dtype=torch.int64, device=device)
    pending: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def flush(shape: tuple[int, int]) -> None:
        nonlocal fg_total, bg_total, ignored_total
        items = pending.pop(shape, [])
        if not items:
            return
        maps = torch.from_numpy(np.stack([m for m, _, _ in items])).to(device)
        fg = torch.from_numpy(np.stack([f for _, f, _ in items])).to(device)
        ign = torch.from_numpy(np.stack([i for _, _, i in items])).to(device)
        fg_hist, bg_hist, ignored = score_histograms(
            prepare_scoremaps(maps, normalize), fg, ign, edges
        )
        fg_total += fg_hist
        bg_total += bg_hist
        ignored_total += ignored

    def load(image_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        path = Path(heatmaps_dir) / f"{image_id}.npy"
        arr = _load_heatmap(path, image_id, allow_nan, normalize)
        annotation = meta.annotations[image_id]
        where = f"{meta.localization}:{annotation.line}"
        fg, ign = ground_truth(mask_root, annotation, arr.shape, where)
        return arr, fg, ign

    bar = tqdm(
        total=len(meta.image_ids),
        desc="heatmaps",
        unit="map",
        disable=None if progress is None else not progress,
    )
    # Decoding the PNGs dominates; OpenCV and numpy release the GIL, so threads read ahead.
    with bar, ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for arr, fg, ign in _read_ahead(pool, load, meta.image_ids, 2 * batch_size):
            pending.setdefault(arr.shape, []).append((arr, fg, ign))
            if len(pending[arr.shape]) >= batch_size:
                flush(arr.shape)
            bar.update(1)
    for shape in list(pending):
        flush(shape)

    try:
        curve = pxap_curve(fg_total, bg_total, edges)
    except PxAPError as err:
        raise MaskMetadataError(
            meta.localization, f"{err} ({len(meta.image_ids)} images, masks under {mask_root})"
        ) from None
    return {
        "metrics": {"pxap": curve.pxap},
        "curves": curve_dict(curve),
        "pixels": {
            "foreground": curve.num_foreground,
            "background": curve.num_background,
            "ignored": int(ignored_total),
        },
        "num_images": len(meta.image_ids),
        "metadata": str(metadata_dir),
        "heatmaps": str(heatmaps_dir),
        "mask_root": str(mask_root),
        "num_thresholds": int(edges.size - 3),
        "normalize": normalize,
        "protocol": PROTOCOL,
    }


def curve_dict(curve: PxAPCurve) -> dict[str, list]:
    """The curve as JSON-ready lists, highest threshold first; undefined precision -> None."""
    return {
        "thresholds": curve.thresholds.tolist(),
        "precision": [None if math.isnan(p) else p for p in curve.precision.tolist()],
        "recall": curve.recall.tolist(),
        "tp": curve.tp.tolist(),
        "fp": curve.fp.tolist(),
    }


def format_mask_table(report: dict) -> str:
    """The CLI's result table for mask metadata."""
    pix = report["pixels"]
    rows = [
        ("images", f"{report['num_images']}"),
        ("PxAP", f"{report['metrics']['pxap']:.2f}  ({report['num_thresholds']} thresholds)"),
        (
            "pixels fg / bg / ignored",
            f"{pix['foreground']} / {pix['background']} / {pix['ignored']}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def curve_paths(json_path: str | Path) -> tuple[Path, Path]:
    """Where the curve's CSV and PNG go for a report written to ``json_path``."""
    path = Path(json_path)
    stem = path.with_suffix("").name
    return path.with_name(f"{stem}_pr_curve.csv"), path.with_name(f"{stem}_pr_curve.png")


def write_curve_csv(report: dict, path: str | Path) -> None:
    """The precision-recall curve as CSV (``threshold,precision,recall,tp,fp``), atomically;
    an undefined precision is an empty field."""
    c = report["curves"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["threshold", "precision", "recall", "tp", "fp"])
    for row in zip(c["thresholds"], c["precision"], c["recall"], c["tp"], c["fp"], strict=True):
        writer.writerow(["" if v is None else repr(v) for v in row])
    write_text_atomic(Path(path), buf.getvalue())


def write_curve_png(report: dict, path: str | Path) -> None:
    """A plot of the precision-recall curve (points with defined precision), atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    c = report["curves"]
    points = [(r, p) for r, p in zip(c["recall"], c["precision"], strict=True) if p is not None]
    fig = Figure(figsize=(4.5, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if points:
        recall, precision = zip(*points, strict=True)
        ax.plot(recall, precision, drawstyle="steps-post", lw=1.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("pixel recall")
    ax.set_ylabel("pixel precision")
    ax.set_title(f"PxAP {report['metrics']['pxap']:.2f} ({report['num_images']} images)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_text_atomic(Path(path), buf.getvalue())


def write_outputs(report: dict, json_path: str | Path) -> list[Path]:
    """The report as JSON at ``json_path`` plus the curve's CSV and PNG beside it (atomic
    writes); returns the three paths."""
    json_path = Path(json_path)
    write_json_atomic(json_path, report)
    csv_path, png_path = curve_paths(json_path)
    write_curve_csv(report, csv_path)
    write_curve_png(report, png_path)
    return [json_path, csv_path, png_path]


def run_cli(args) -> int:
    """``python -m infocam_exp.evaluate`` on mask metadata (``args`` from its parser); returns
    the exit status (2 on bad input)."""
    if not args.mask_root:
        log.error(
            "%s/localization.txt lists masks: pass --mask-root DIR, the folder its mask paths "
            "are relative to (wsolevaluation: dataset/OpenImages)",
            args.metadata,
        )
        return 2
    try:
        report = evaluate_masks(
            args.metadata,
            args.heatmaps,
            args.mask_root,
            thresholds=args.thresholds,
            device=args.device,
            batch_size=args.batch_size,
            allow_nan=args.allow_nan,
            normalize=not args.no_normalize,
        )
    except UserError as err:  # MaskMetadataError; anything else keeps its traceback
        if full_error_requested():
            raise
        return log_user_error(err, log)
    sys.stdout.write(format_mask_table(report) + "\n")
    if args.json:
        for path in write_outputs(report, args.json):
            log.info("wrote %s", path)
    return 0
