"""Independent numpy reference for PxAP (wsolevaluation's mask metric), from its definition.

Written from the protocol of Choe et al., CVPR 2020 (pixel precision-recall over score
thresholds, ignore regions not counted, area under the curve in percent), with numpy only: it
imports nothing from ``infocam_exp`` and shares no step with the package (no histograms, no
cumulative sums, no bucketing). Per operating point it counts, from sorted score lists, the
foreground and background pixels whose score is at least the point's threshold.

Definitions used:

* thresholds ``np.arange(0, 1, interval)`` (or ``i / N``); operating points, from the top:
  score >= 2, score >= 1, then score >= t for each threshold t from the largest down (2 is the
  left edge of wsolevaluation's extra ``[2, 3]`` bin, 1 of its ``[1, 2)`` bin);
* foreground: any instance's grey value > 0.5; ignore: ignore grey > 0.5 and not foreground;
* masks are resized with OpenCV's nearest-neighbour rule, written out here: destination column
  ``x`` reads source column ``min(floor(x * (1 / (dst_w / src_w))), src_w - 1)`` (rows alike;
  the double-precision reciprocal of the scale matters: plain ``x * src_w // dst_w`` differs);
* precision ``tp / (tp + fp)`` where some pixel reaches the point, recall ``tp / P``;
* area: sum over points j >= 1 with a defined precision of ``precision_j * (recall_j -
  recall_{j-1})``, times 100 (a plain left-to-right sum).
"""

from __future__ import annotations

import numpy as np


def nearest_resize(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``grey`` resized to ``(height, width)`` with OpenCV's INTER_NEAREST index rule."""
    height, width = size
    src_h, src_w = grey.shape
    rows = np.minimum(np.floor(np.arange(height) * (1.0 / (height / src_h))).astype(int), src_h - 1)
    cols = np.minimum(np.floor(np.arange(width) * (1.0 / (width / src_w))).astype(int), src_w - 1)
    return grey[rows][:, cols]


def gt_labels(instances, ignore_grey, size) -> tuple[np.ndarray, np.ndarray]:
    """``(foreground, ignored)`` bool arrays in a ``(height, width)`` frame from grey masks (any
    size; ``ignore_grey`` may be None)."""
    foreground = np.zeros(size, dtype=bool)
    for grey in instances:
        foreground = foreground | (nearest_resize(np.asarray(grey, np.float64), size) > 0.5)
    if ignore_grey is None:
        return foreground, np.zeros(size, dtype=bool)
    box = nearest_resize(np.asarray(ignore_grey, np.float64), size) > 0.5
    return foreground, box & ~foreground


def normalize(scoremap: np.ndarray) -> np.ndarray:
    """Min-max normalisation in the map's dtype; NaN or constant maps become zeros."""
    cam = np.array(scoremap, copy=True)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def reference_pxap(maps, foregrounds, ignores, thresholds) -> dict:
    """PxAP over a dataset.

    Args:
        maps: score maps in [0, 1] (any float dtype; compared with thresholds in float64).
        foregrounds, ignores: bool arrays of the maps' shapes (``ignores`` already excludes
            foreground).
        thresholds: an interval (float < 1, as wsolevaluation's ``cam_curve_interval``), an int N
            (thresholds ``i / N``) or an explicit array.

    Returns:
        ``{"pxap": float, "levels", "tp", "fp", "precision", "recall"}`` (arrays from the top
        operating point down).
    """
    if isinstance(thresholds, int):
        taus = np.arange(thresholds, dtype=np.float64) * (1.0 / thresholds)
    elif np.ndim(thresholds) == 0:
        taus = np.arange(0, 1, thresholds)
    else:
        taus = np.asarray(thresholds, dtype=np.float64)
    levels = np.concatenate([[2.0, 1.0], taus[::-1]])
    pos, neg = [], []
    for scoremap, fg, ign in zip(maps, foregrounds, ignores, strict=True):
        values = np.asarray(scoremap).astype(np.float64)
        pos.append(values[fg])
        neg.append(values[~fg & ~ign])
    pos = np.sort(np.concatenate(pos))
    neg = np.sort(np.concatenate(neg))
    # pixels scoring >= level: all minus those strictly below (scores never exceed 3 here)
    tp = pos.size - np.searchsorted(pos, levels, side="left")
    fp = neg.size - np.searchsorted(neg, levels, side="left")
    if pos.size == 0:
        raise RuntimeError("no positive ground truth")
    precision = np.full(levels.size, np.nan)
    for j in range(levels.size):
        if tp[j] + fp[j] > 0:
            precision[j] = tp[j] / (tp[j] + fp[j])
    recall = tp / pos.size
    area = 0.0
    for j in range(1, levels.size):
        if tp[j] + fp[j] > 0:
            area += precision[j] * (recall[j] - recall[j - 1])
    return {
        "pxap": 100.0 * area,
        "levels": levels,
        "tp": tp,
        "fp": fp,
        "precision": precision,
        "recall": recall,
    }
