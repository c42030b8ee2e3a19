"""Independent per-image OpenCV reference for the box evaluator (wsolevaluation's procedure).

Written from wsolevaluation's description (Choe et al., CVPR 2020: ``normalize_scoremap``,
``compute_bboxes_from_scoremaps``, ``calculate_multiple_iou``) with numpy and OpenCV only; it
imports nothing from ``infocam_exp``, so the package's tests compare against code that shares no
step with the code under test. Per map and threshold, literally:

1. normalise with numpy in the map's own dtype: NaN or constant map -> zeros, else
   ``m -= m.min(); m /= m.max()``; then ``(m * 255).astype(np.uint8)``;
2. ``cv2.threshold(u8, int(tau * u8.max()), 255, THRESH_BINARY)``;
3. ``cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)``; no contour -> box ``[0, 0, 0, 0]``;
4. each contour's ``cv2.boundingRect`` as ``[x, y, min(x + w, W - 1), min(y + h, H - 1)]``; the
   largest is ``max(contours, key=cv2.contourArea)``;
5. IoU with the +1 pixel convention, intersection clamped at zero (our one intended departure
   from wsolevaluation, whose IoU does not clamp), best over the image's ground-truth boxes.

Slow (one ``findContours`` per map and threshold); used by tests and by
``scripts/bench_box_eval.py`` for its side-by-side timing.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def normalize_to_uint8(scoremap: np.ndarray, normalize: bool = True) -> np.ndarray:
    """wsolevaluation's ``normalize_scoremap`` followed by ``(m * 255).astype(np.uint8)``."""
    cam = np.array(scoremap, copy=True)
    if normalize:
        if np.isnan(cam).any() or cam.min() == cam.max():
            cam = np.zeros_like(cam)
        else:
            cam -= cam.min()
            cam /= cam.max()
    return (cam * 255).astype(np.uint8)


def contour_boxes(u8: np.ndarray, tau: float) -> tuple[np.ndarray, int]:
    """All contour boxes at ``tau`` and the index of the largest contour's box."""
    height, width = u8.shape
    _, mask = cv2.threshold(u8, int(tau * np.max(u8)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
    if len(contours) == 0:
        return np.zeros((1, 4), dtype=np.float64), 0
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    largest = max(range(len(contours)), key=lambda k: cv2.contourArea(contours[k]))
    return np.asarray(boxes, dtype=np.float64), largest


def multiple_iou(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(K, G)`` IoU of boxes with ground-truth boxes: +1 convention, clamped intersection."""
    a = boxes[:, None, :]
    b = gt[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    safe = np.where(union > 0, union, 1.0)
    return np.where(union > 0, inter / safe, 0.0)


def opencv_threshold_ious(
    maps,
    gt_boxes,
    thresholds,
    gt_valid=None,
    normalize: bool = True,
    all_contours: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(iou_largest, iou_any)``, each ``(B, T)`` float64 (CPU tensors), one map at a time.

    Args:
        maps: ``(B, H, W)`` floating score maps (tensor or array).
        gt_boxes: ``(B, G, 4)`` boxes ``[x0, y0, x1, y1]``; rows with a negative coordinate are
            padding unless ``gt_valid`` says otherwise.
        thresholds: ``(T,)`` thresholds in [0, 1).
        gt_valid: optional ``(B, G)`` bool mask of real rows.
        normalize: wsolevaluation's min-max normalisation (else maps must lie in [0, 1]).
        all_contours: also score every contour (MaxBoxAccV2); False leaves ``iou_any`` zero.
    """
    maps_np = np.asarray(maps.detach().cpu() if isinstance(maps, torch.Tensor) else maps)
    gt = np.asarray(
        gt_boxes.detach().cpu() if isinstance(gt_boxes, torch.Tensor) else gt_boxes,
        dtype=np.float64,
    )
    if gt_valid is None:
        valid = (gt >= 0).all(axis=-1)
    else:
        valid = np.asarray(
            gt_valid.detach().cpu() if isinstance(gt_valid, torch.Tensor) else gt_valid, dtype=bool
        )
    taus = np.asarray(
        thresholds.detach().cpu() if isinstance(thresholds, torch.Tensor) else thresholds,
        dtype=np.float64,
    )
    batch = maps_np.shape[0]
    iou_largest = np.zeros((batch, len(taus)))
    iou_any = np.zeros((batch, len(taus)))
    for b in range(batch):
        u8 = normalize_to_uint8(maps_np[b], normalize)
        gt_b = gt[b][valid[b]]
        if len(gt_b) == 0:
            continue
        for i, tau in enumerate(taus):
            boxes, largest = contour_boxes(u8, float(tau))
            if not all_contours:
                boxes = boxes[largest : largest + 1]
                largest = 0
            iou = multiple_iou(boxes, gt_b).max(axis=1)
            iou_largest[b, i] = iou[largest]
            if all_contours:
                iou_any[b, i] = iou.max()
    return torch.from_numpy(iou_largest), torch.from_numpy(iou_any)
