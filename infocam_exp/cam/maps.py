"""Class activation maps (CAM) and infoCAM for networks that end in GAP + linear.

All functions are pure tensor code: batched, device- and dtype-agnostic, no Lightning.

Notation (paper section 4): a classifier computes features ``F`` of shape (B, C, H, W), pools them
to ``mean_ij F_ij`` and applies a linear layer ``f_k = w_k . mean_ij F_ij + b_k``. Then

* CAM:      ``CAM_k(i, j) = w_k . F_ij`` (no bias, no ReLU), so ``mean_ij CAM_k = f_k - b_k``.
* infoCAM:  ``infoCAM_y(i, j) = (w_y - mean_{k != y} w_k) . F_ij``. Its mean over locations is
  ``PMI(x, y) - mean_{k != y} PMI(x, k)`` up to the bias (and prior) difference, because the
  softmax normaliser cancels.
* infoCAM, least-likely variant: ``(w_y - w_{k*}) . F_ij`` with ``k* = argmin_k f_k`` per image,
  as in one of the authors' scripts.

The information of a region is the sum of the map over it; the authors slide an all-ones k x k
window (zero padding k - 1) over the map, see :func:`window_sum`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Method = Literal["cam", "infocam", "infocam_least_likely"]
METHODS: tuple[str, ...] = ("cam", "infocam", "infocam_least_likely")
ClassSpec = None | str | int | Sequence[int] | Tensor

__all__ = [
    "METHODS",
    "Method",
    "class_maps",
    "method_weights",
    "select_classes",
    "upsample_maps",
    "window_sum",
]


def _as_class_matrix(classes: Tensor, batch: int) -> tuple[Tensor, bool]:
    """(B,) or (B, M) integer classes -> ((B, M) long, was_1d)."""
    if classes.dtype.is_floating_point or classes.dtype == torch.bool:
        raise TypeError(f"classes must be an integer tensor, got dtype {classes.dtype}")
    if classes.dim() == 1:
        classes, was_1d = classes[:, None], True
    elif classes.dim() == 2:
        was_1d = False
    else:
        raise ValueError(f"classes must have shape (B,) or (B, M), got {tuple(classes.shape)}")
    if classes.shape[0] != batch:
        raise ValueError(f"classes has batch size {classes.shape[0]}, features have {batch}")
    return classes.long(), was_1d


def method_weights(
    weight: Tensor,
    classes: Tensor,
    method: str = "infocam",
    logits: Tensor | None = None,
) -> Tensor:
    """Per-image, per-target weight vectors whose dot product with ``F_ij`` gives the map.

    Args:
        weight: (K, C) weight matrix of the final linear layer.
        classes: (B, M) long, target classes per image, values in [0, K).
        method: one of :data:`METHODS`:
            ``"cam"`` -> ``w_y``;
            ``"infocam"`` -> ``w_y - mean_{k != y} w_k``;
            ``"infocam_least_likely"`` -> ``w_y - w_{argmin_k logits_k}`` (needs ``logits``;
            gives the zero vector when ``y`` itself is the least likely class).
        logits: (B, K) classifier outputs, only used by ``"infocam_least_likely"``.

    Returns:
        (B, M, C) weight vectors, same dtype/device as ``weight``.
    """
    if weight.dim() != 2:
        raise ValueError(f"weight must have shape (K, C), got {tuple(weight.shape)}")
    num_classes = weight.shape[0]
    if classes.numel() and (int(classes.min()) < 0 or int(classes.max()) >= num_classes):
        raise ValueError(f"classes must lie in [0, {num_classes}), got {classes.tolist()}")
    w_y = weight[classes]  # (B, M, C)
    if method == "cam":
        return w_y
    if method == "infocam":
        if num_classes < 2:
            raise ValueError("infocam needs at least two classes")
        # mean over the other K-1 classes via the total, so the cost is O(K C) not O(B M K C)
        others = (weight.sum(dim=0) - w_y) / (num_classes - 1)
        return w_y - others
    if method == "infocam_least_likely":
        if logits is None:
            raise ValueError("method 'infocam_least_likely' needs the logits (B, K)")
        if logits.shape != (classes.shape[0], num_classes):
            raise ValueError(
                f"logits must have shape {(classes.shape[0], num_classes)}, "
                f"got {tuple(logits.shape)}"
            )
        least = logits.argmin(dim=1)  # (B,)
        return w_y - weight[least][:, None, :]
    raise ValueError(f"unknown CAM method {method!r}; choose one of {METHODS}")


def window_sum(maps: Tensor, window: int | None) -> Tensor:
    """Sum of each map over a sliding ``window`` x ``window`` square (all-ones box filter).

    Zero padding of ``window - 1`` on every side, matching the authors' convolution, so every
    input location contributes to exactly ``window**2`` outputs and the total sum is scaled by
    ``window**2``.

    Args:
        maps: (..., H, W) maps (any leading dims).
        window: side k of the window in feature-map cells; ``None`` or 1 returns ``maps`` as is.

    Returns:
        (..., H + k - 1, W + k - 1) window sums.
    """
    if window is None or window == 1:
        return maps
    if window < 1:
        raise ValueError(f"window must be a positive int or None, got {window}")
    *lead, h, w = maps.shape
    flat = maps.reshape(-1, 1, h, w)
    kernel = torch.ones(1, 1, window, window, dtype=maps.dtype, device=maps.device)
    out = F.conv2d(flat, kernel, padding=window - 1)
    return out.reshape(*lead, h + window - 1, w + window - 1)


def class_maps(
    features: Tensor,
    weight: Tensor,
    classes: Tensor,
    method: str = "infocam",
    logits: Tensor | None = None,
    window: int | None = None,
) -> Tensor:
    """CAM / infoCAM maps for given target classes.

    The map is linear in the features, so the channel sum is done first (one einsum to
    (B, M, H, W)) and the optional window afterwards, which equals windowing every channel.

    Args:
        features: (B, C, H, W) last convolutional features (the input of the global average pool).
        weight: (K, C) weight of the final linear layer (its bias is never used).
        classes: (B,) or (B, M) integer target classes (ground truth, predictions, top-k, ...).
        method: ``"cam"``, ``"infocam"`` or ``"infocam_least_likely"`` (see
            :func:`method_weights`).
        logits: (B, K) logits, required by ``"infocam_least_likely"``.
        window: side of the summing window (see :func:`window_sum`); ``None``/1 for none.

    Returns:
        (B, H', W') if ``classes`` is (B,), else (B, M, H', W'), where H' = H + k - 1 and
        W' = W + k - 1 with a window of side k (H' = H, W' = W without). Units: logit units
        (per-location contributions; their spatial mean is the class's logit minus bias for CAM).
    """
    if features.dim() != 4:
        raise ValueError(f"features must have shape (B, C, H, W), got {tuple(features.shape)}")
    if weight.dim() != 2 or weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"weight must have shape (K, {features.shape[1]}), got {tuple(weight.shape)}"
        )
    cls, was_1d = _as_class_matrix(classes.to(features.device), features.shape[0])
    w = method_weights(weight.to(features.dtype), cls, method, logits)
    maps = torch.einsum("bmc,bchw->bmhw", w, features)
    maps = window_sum(maps, window)
    return maps[:, 0] if was_1d else maps


def select_classes(logits: Tensor, classes: ClassSpec = None, topk: int | None = None) -> Tensor:
    """Resolve a target-class specification into an integer tensor.

    Args:
        logits: (B, K) classifier outputs.
        classes: ``None`` or ``"pred"`` -> predicted class (argmax), or the top-``topk``
            classes (highest first) when ``topk`` is given; an int -> that class for every image;
            a sequence/tensor of shape (B,) or (B, M) -> given per-image classes (e.g. ground
            truth labels).
        topk: number of top classes; only valid with ``classes`` ``None`` or ``"pred"``.

    Returns:
        (B,) long tensor, or (B, M) when ``topk`` is given or ``classes`` is 2-D, on the logits'
        device.
    """
    batch, num_classes = logits.shape
    if classes is None or (isinstance(classes, str) and classes == "pred"):
        if topk is None:
            return logits.argmax(dim=1)
        if not 1 <= topk <= num_classes:
            raise ValueError(f"topk must be in [1, {num_classes}], got {topk}")
        return logits.topk(topk, dim=1).indices
    if isinstance(classes, str):
        raise ValueError(f"classes must be None, 'pred', an int or a tensor, got {classes!r}")
    if topk is not None:
        raise ValueError("topk only applies to predicted classes (classes=None or 'pred')")
    if isinstance(classes, int):
        return torch.full((batch,), classes, dtype=torch.long, device=logits.device)
    cls = torch.as_tensor(classes, device=logits.device)
    _as_class_matrix(cls, batch)  # validates shape and dtype
    return cls.long()


def upsample_maps(maps: Tensor, size: int | tuple[int, int], mode: str = "bicubic") -> Tensor:
    """Resize maps to an image size (bicubic by default, as in the paper's box step).

    Args:
        maps: (..., h, w) maps (any leading dims).
        size: output (H, W) in pixels, or an int for a square.
        mode: ``torch.nn.functional.interpolate`` mode; bicubic may overshoot the input range.

    Returns:
        (..., H, W) maps, same dtype as the input (computed in at least float32).
    """
    if isinstance(size, int):
        size = (size, size)
    *lead, h, w = maps.shape
    flat = maps.reshape(-1, 1, h, w)
    work = flat if flat.dtype in (torch.float32, torch.float64) else flat.float()
    align = False if mode in ("bilinear", "bicubic") else None
    out = F.interpolate(work, size=tuple(size), mode=mode, align_corners=align)
    return out.to(maps.dtype).reshape(*lead, *size)
