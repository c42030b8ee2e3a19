"""Pixel average precision (PxAP) of score maps against foreground masks, as wsolevaluation.

Protocol: Choe et al., "Evaluating Weakly Supervised Object Localization Methods Right", CVPR 2020
(github.com/clovaai/wsolevaluation, ``MaskEvaluator`` in ``evaluation.py``). Every pixel of every
image is a sample: foreground (in any instance mask) is positive, background negative, and the
ignore region (the ignore box minus the foreground) is not counted. The whole dataset shares one
precision-recall curve over score thresholds; PxAP is the area under it, in percent.

The computation, step by step (the same per-bin counts and, on the data checked by
``scripts/check_pxap_against_wsolevaluation.py``, the same PxAP bit for bit as ``MaskEvaluator``):

1. Bins. ``T`` thresholds ``0 <= t_0 < t_1 < ... < t_{T-1} < 1`` (wsolevaluation:
   ``np.arange(0, 1, cam_curve_interval)``) are the left edges of ``T`` bins, followed by two
   extra bins: edges ``[t_0, ..., t_{T-1}, 1, 2, 3]`` give ``[t_0, t_1), ..., [t_{T-1}, 1),
   [1, 2), [2, 3]`` (``np.histogram`` semantics: the last bin is closed). A score of exactly 1.0
   lands in ``[1, 2)``; ``[2, 3]`` stays empty for maps in [0, 1]. Scores are compared with the
   edges in float64.
2. Histograms. Per image, the scores of foreground pixels and of counted background pixels are
   binned; the counts are summed over the dataset (integers here, exact).
3. Curve. Reading the bins from the top down, ``tp[j]`` / ``fp[j]`` are the foreground /
   background pixels scoring at least the ``j``-th left edge from the top (2, 1, ``t_{T-1}``, ...,
   ``t_0``): cumulative sums of the reversed histograms. ``fn = P - tp`` with ``P`` the number of
   foreground pixels; ``precision = tp / (tp + fp)`` (undefined where nothing scores that high),
   ``recall = tp / P``.
4. Area. ``PxAP = 100 * sum_{j >= 1, tp[j] + fp[j] > 0} precision[j] * (recall[j] - recall[j-1])``
   (numpy's pairwise ``sum`` over the selected terms, in that order, as wsolevaluation sums them).

Errors as wsolevaluation raises them: no foreground pixel in the whole set raises
:class:`PxAPError` (a ``RuntimeError``, like wsolevaluation's "No positive ground truth").
wsolevaluation has two more checks that can never fire, so they have no counterpart here: "no
positive prediction" (some pixel is counted once a foreground pixel is) and "ignore and
foreground masks intersect" (the ignore region is defined as the ignore box *minus* the
foreground, so a pixel in both an instance mask and the ignore box is foreground, here as there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

EXTRA_EDGES = (1.0, 2.0, 3.0)
"""Right edges appended to the thresholds: the last threshold bin ends at 1, then [1, 2), [2, 3]."""


class PxAPError(RuntimeError):
    """PxAP is undefined for the accumulated pixels: no foreground pixel."""


def mask_thresholds(thresholds: int | Sequence[float] | np.ndarray | Tensor) -> np.ndarray:
    """The score thresholds (bin left edges below 1) as a float64 array.

    Args:
        thresholds: an int ``N`` for ``[0, 1/N, ..., (N-1)/N]`` (bit-identical to
            wsolevaluation's ``np.arange(0, 1, cam_curve_interval)`` with interval ``1/N``:
            numpy fills ``i * step``), or explicit thresholds: strictly increasing, in [0, 1).
    """
    if isinstance(thresholds, (int, np.integer)):
        if thresholds < 1:
            raise ValueError(f"need at least one threshold, got {thresholds}")
        return np.arange(int(thresholds), dtype=np.float64) * (1.0 / int(thresholds))
    if isinstance(thresholds, Tensor):
        thresholds = thresholds.detach().cpu().numpy()
    taus = np.asarray(thresholds, dtype=np.float64).ravel()
    if taus.size == 0 or not np.all(np.isfinite(taus)) or taus[0] < 0 or taus[-1] >= 1:
        raise ValueError("thresholds must be a non-empty, finite set of values in [0, 1)")
    if taus.size > 1 and not np.all(np.diff(taus) > 0):
        raise ValueError("thresholds must be strictly increasing")
    return taus


def bin_edges(thresholds: int | Sequence[float] | np.ndarray | Tensor) -> np.ndarray:
    """``(T + 3,)`` float64 bin edges ``[t_0, ..., t_{T-1}, 1, 2, 3]`` (``T + 2`` bins)."""
    return np.concatenate([mask_thresholds(thresholds), np.asarray(EXTRA_EDGES)])


def normalize_scoremaps(maps: Tensor) -> Tensor:
    """Min-max normalise each map as wsolevaluation's ``normalize_scoremap``.

    Args:
        maps: ``(B, H, W)`` floating maps.

    Returns:
        ``(B, H, W)`` maps in [0, 1], in the maps' own precision (float32 or float64; half types
        are widened to float32): ``(m - min) / (max - min)``; a map with a NaN, or a constant
        map, becomes all zeros.
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (B, H, W), got {tuple(maps.shape)}")
    if not maps.is_floating_point():
        raise TypeError(f"maps must be floating point, got {maps.dtype}")
    x = maps if maps.dtype in (torch.float32, torch.float64) else maps.float()
    flat = x.reshape(x.shape[0], -1)
    has_nan = torch.isnan(flat).any(dim=1)
    safe = torch.where(has_nan[:, None], torch.zeros_like(flat), flat)
    shifted = safe - safe.amin(dim=1, keepdim=True)
    # max(m - min) is fl(max - min) (subtraction is monotone): numpy's in-place
    # `cam -= cam.min(); cam /= cam.max()` bit for bit.
    span = shifted.amax(dim=1, keepdim=True)
    scaled = shifted / torch.where(span == 0, torch.ones_like(span), span)
    degenerate = has_nan | (span[:, 0] == 0)
    scaled = torch.where(degenerate[:, None], torch.zeros_like(scaled), scaled)
    return scaled.reshape(x.shape)


def check_scoremaps(maps: Tensor) -> None:
    """Raise ValueError unless every value lies in [0, 1] (no NaN): wsolevaluation's contract."""
    if torch.isnan(maps).any():
        raise ValueError("score maps contain NaN (normalise them first: NaN maps become zeros)")
    if (maps < 0).any() or (maps > 1).any():
        raise ValueError(
            f"score maps must lie in [0, 1], got min {float(maps.min()):.6g} and max "
            f"{float(maps.max()):.6g} (normalise them first)"
        )


def prepare_scoremaps(maps: Tensor, normalize: bool = True) -> Tensor:
    """``normalize_scoremaps(maps)`` when ``normalize``, else ``maps`` after
    :func:`check_scoremaps`."""
    if normalize:
        return normalize_scoremaps(maps)
    check_scoremaps(maps)
    return maps


def score_histograms(
    maps: Tensor, foreground: Tensor, ignore: Tensor | None, edges: Tensor | np.ndarray
) -> tuple[Tensor, Tensor, Tensor]:
    """Histograms of foreground and counted background scores, on the maps' device.

    Args:
        maps: ``(B, H, W)`` (or any shape) real scores; compared with ``edges`` in float64.
        foreground: bool, the maps' shape: pixels in any instance mask.
        ignore: bool, the maps' shape, or None: the ignore box. Its pixels that are not
            foreground are not counted; foreground wins where both are set.
        edges: ``(K + 1,)`` increasing bin edges (see :func:`bin_edges`).

    Returns:
        ``(foreground_hist, background_hist, ignored)``: two ``(K,)`` int64 histograms with
        ``np.histogram`` semantics (bin ``k`` is ``[e_k, e_{k+1})``, the last one closed; values
        outside ``[e_0, e_K]`` are dropped) and the number of ignored pixels (0-d int64), all on
        the maps' device. No host synchronisation.
    """
    if foreground.shape != maps.shape or (ignore is not None and ignore.shape != maps.shape):
        raise ValueError(
            f"maps {tuple(maps.shape)}, foreground {tuple(foreground.shape)} and ignore "
            f"{None if ignore is None else tuple(ignore.shape)} must have the same shape"
        )
    device = maps.device
    edges_np = np.asarray(edges.detach().cpu() if isinstance(edges, Tensor) else edges, np.float64)
    edges_t = torch.as_tensor(edges_np, device=device)
    num_bins = edges_np.size - 1
    values = maps.detach().to(torch.float64).reshape(-1)
    fg = foreground.to(device=device, dtype=torch.bool).reshape(-1)
    counted = (values >= edges_t[0]) & (values <= edges_t[-1])  # False for NaN
    steps = _uniform_steps(edges_np)
    if steps:
        # Thresholds i / N: floor(v * N) is the bin or its neighbour (v * N and the edges are
        # off by a few ulps at most); one comparison with each neighbouring edge settles it.
        # O(1) per pixel instead of a binary search over the edges.
        guess = torch.nan_to_num(values * steps, nan=0.0).floor_().clamp_(0, steps).long()
        index = guess - (values < edges_t[guess]).long()
        index += (values >= edges_t[guess + 1]).long()
    else:
        # bucketize(right=True) - 1 is the k with e_k <= v < e_{k+1}
        index = torch.bucketize(values, edges_t, right=True) - 1
        # np.histogram closes the last bin on the right (the uniform form above does too)
        index = torch.where(values == edges_t[-1], torch.full_like(index, num_bins - 1), index)
    if ignore is not None:
        dropped = ignore.to(device=device, dtype=torch.bool).reshape(-1) & ~fg
        counted &= ~dropped
        ignored = dropped.sum()
    else:
        ignored = torch.zeros((), dtype=torch.int64, device=device)
    # One count over [background bins | foreground bins | trash]: no data-dependent shapes.
    key = index.add_(fg.long() * num_bins).masked_fill_(~counted, 2 * num_bins)
    if key.device.type == "cpu":
        hist = torch.bincount(key, minlength=2 * num_bins + 1)
    else:  # bincount would read the maximum back to the host
        hist = torch.zeros(2 * num_bins + 1, dtype=torch.int64, device=device)
        hist.scatter_add_(0, key, torch.ones_like(key))
    return hist[num_bins : 2 * num_bins], hist[:num_bins], ignored


def _uniform_steps(edges: np.ndarray) -> int:
    """N when ``edges`` are ``[i / N for i < N] + [1, 2, 3]`` as :func:`bin_edges` builds them,
    else 0."""
    n = edges.size - 3
    if n < 1 or not np.array_equal(edges[n:], EXTRA_EDGES):
        return 0
    return n if np.array_equal(edges[:n], np.arange(n, dtype=np.float64) * (1.0 / n)) else 0


@dataclass(frozen=True)
class PxAPCurve:
    """PxAP and its precision-recall curve (numpy, float64; index 0 is the highest threshold).

    Attributes:
        pxap: area under the curve, percent.
        thresholds: ``(K,)`` the score a pixel must reach at each point: the bins' left edges
            from the top, ``[2, 1, t_{T-1}, ..., t_0]``.
        precision: ``(K,)`` ``tp / (tp + fp)``; NaN where no pixel scores that high.
        recall: ``(K,)`` ``tp / (number of foreground pixels)``.
        tp, fp: ``(K,)`` int64 foreground / background pixels scoring at least the threshold.
        num_foreground, num_background: counted pixels of each kind.
    """

    pxap: float
    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    num_foreground: int
    num_background: int


def pxap_curve(
    foreground_hist: np.ndarray | Tensor,
    background_hist: np.ndarray | Tensor,
    edges: np.ndarray | Tensor,
) -> PxAPCurve:
    """PxAP and the precision-recall curve from summed histograms (see the module docstring).

    Args:
        foreground_hist, background_hist: ``(K,)`` pixel counts per bin (any numeric dtype).
        edges: the ``(K + 1,)`` bin edges the histograms were made with.

    Raises:
        PxAPError: no foreground pixel.
    """

    def host(x) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)

    fg, bg, edge = host(foreground_hist), host(background_hist), host(edges)
    if fg.shape != bg.shape or fg.ndim != 1 or edge.shape != (fg.size + 1,):
        raise ValueError(
            f"histograms {fg.shape} and {bg.shape} must be 1-D of equal length, with one edge "
            f"more ({edge.shape})"
        )
    tp_count = np.cumsum(fg[::-1].astype(np.int64))
    fp_count = np.cumsum(bg[::-1].astype(np.int64))
    num_fg, num_bg = int(tp_count[-1]), int(fp_count[-1])
    if num_fg <= 0:
        raise PxAPError("no positive ground truth: no foreground pixel in any mask of the set")
    # Counts are below 2**53, so float64 holds them exactly: the same values wsolevaluation's
    # float64 histograms give.
    tp = tp_count.astype(np.float64)
    predicted = tp + fp_count.astype(np.float64)
    defined = predicted != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / predicted
    recall = tp / float(num_fg)
    terms = precision[1:] * np.diff(recall)
    pxap = float(terms[defined[1:]].sum() * 100)
    return PxAPCurve(
        pxap=pxap,
        thresholds=edge[:-1][::-1].astype(np.float64),
        precision=precision,
        recall=recall,
        tp=tp_count,
        fp=fp_count,
        num_foreground=num_fg,
        num_background=num_bg,
    )
