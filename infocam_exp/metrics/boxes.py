"""Boxes from score maps at many thresholds, batched on the maps' device.

The semantics follow the wsolevaluation protocol (Choe et al., "Evaluating Weakly Supervised Object
Localization Methods Right", CVPR 2020) so that numbers computed here agree with that benchmark:

1. Each map is min-max normalised to [0, 1]; a map containing a NaN, or a constant map, becomes all
   zeros (and so yields no region at any threshold).
2. The normalised map is scaled to uint8 by ``(m * 255)`` with truncation.
3. At threshold ``tau`` the kept pixels are ``u8 > int(tau * max(u8))`` (OpenCV ``THRESH_BINARY``).
4. Regions are 8-connected components of the kept pixels (what OpenCV ``findContours`` traces as
   outer borders). A region's box is its pixel bounding box written ``[x0, y0, x0 + w, y0 + h]``
   with ``x1`` clipped to ``W - 1`` and ``y1`` to ``H - 1`` (wsolevaluation's convention, kept
   verbatim so that IoUs agree). No region gives the box ``[0, 0, 0, 0]``.
5. The "largest" region is the one with the largest OpenCV ``contourArea`` of its outer border
   (which covers the region's holes); ties go to the region whose first pixel comes last in
   raster order, as ``max(contours, key=cv2.contourArea)`` on OpenCV's contour order (reverse
   raster order of each region's first pixel, as observed with OpenCV 4/5).

Two implementations, one semantics: on a CPU :func:`batched_threshold_ious` runs a compiled (C,
or numba where no C compiler builds it) form of the sweep below, one map per thread
(:mod:`infocam_exp.metrics._boxes_compiled`); maps on
a GPU use the batched torch form here. Tests hold both to an independent per-image OpenCV
reference (tests/metrics/opencv_reference.py) and to each other, IoU for IoU.

How it is computed: thresholds only matter through the integer cut ``int(tau * max(u8))``, so at
most 256 distinct binary masks exist per map, and they are nested. Instead of labelling each mask
(or each threshold, as a per-image OpenCV loop does) we sweep the cut from 254 down to 0 once,
adding the pixels whose value equals ``cut + 1`` and merging regions with a union-find held in flat
tensors (all images of the batch at once; the only Python loop is over the levels, and only the
levels that the thresholds use are read: the pixels between two of them enter in one step). Each
region keeps its bounding box and its contour area as running reductions, so every level costs
work proportional to the pixels that change there, not to the image size. The torch form sweeps
chunks of a batch (on parallel threads on a CPU).

Contour area without tracing contours: the polygon through the centres of a region's outer
boundary pixels covers exactly the dual-grid unit squares (2x2 pixel windows) whose four corners
are in the region, plus half of each window with three corners in it (the border cuts it along a
diagonal). So ``area = #windows(4 in) + 0.5 * #windows(3 in)``; it gives ``(w - 1) * (h - 1)`` for
a filled ``w x h`` rectangle and 0 for lines and single pixels, as ``cv2.contourArea`` does. A
window's contribution appears when the cut drops below its third-largest (half) and its smallest
(other half) corner value, which makes the area another running sum in the sweep.

Hole borders: ``RETR_TREE`` also returns the borders of holes (4-connected background regions
not touching the image border) as contours, so wsolevaluation's MaxBoxAccV2 scores their boxes
too. We do the same with a second sweep over the background (rising cut, 4-connected), run only on
maps that have a hole at some level: regions minus the Euler number (Gray's bit-quad counts, again
a running sum over levels) counts holes without labelling them. A hole border's bounding box is
the hole's pixel box grown by one pixel on each side.

Holes and the largest region: the running area above counts only windows of region pixels, while
OpenCV's outer contour also covers the region's holes (and anything inside them). The compiled
sweep gets OpenCV's area exactly on maps with a hole at a read level by sweeping the grey-level
hole-filled map instead (see :mod:`infocam_exp.metrics._boxes_compiled`); the torch form hands
the maps that have holes at a read level to the compiled sweep for their largest-region boxes (on
the CPU; CAM-like maps rarely have holes).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

log = logging.getLogger(__name__)

NUM_LEVELS = 256
"""Number of uint8 levels; level ``t`` in ``[0, 255]`` means the mask ``u8 > t``."""

# Neighbour offsets (dy, dx) that visit each unordered pair once.
_FORWARD8 = ((0, 1), (1, -1), (1, 0), (1, 1))
_FORWARD4 = ((0, 1), (1, 0))


def default_thresholds(num: int = 1000, device: torch.device | str | None = None) -> Tensor:
    """Score-map thresholds ``[0, 1/num, ..., (num - 1)/num]`` as wsolevaluation builds them.

    The default 1000 is wsolevaluation's ``cam_curve_interval=0.001`` (its ``config.py``
    default; only its standalone ``evaluation.py`` command line uses 0.01, i.e. 100).
    Returns a float64 tensor of shape ``(num,)``, bit-identical to ``np.arange(0, 1, 1 / num)``
    (numpy fills ``i * step``), so that ``int(tau * 255)`` cuts agree with the reference.
    """
    if num < 1:
        raise ValueError(f"need at least one threshold, got num={num}")
    return torch.arange(num, dtype=torch.float64, device=device) * (1.0 / num)


def scoremaps_to_uint8(maps: Tensor, normalize: bool = True) -> Tensor:
    """Min-max normalise score maps and scale them to uint8 as wsolevaluation does.

    Args:
        maps: ``(B, H, W)`` floating score maps (any range when ``normalize``; values in [0, 1]
            otherwise).
        normalize: min-max normalise each map first (wsolevaluation's ``normalize_scoremap``);
            NaN-containing and constant maps become zeros. When False, the maps must already lie
            in [0, 1] without NaNs (the contract of wsolevaluation's file evaluator).

    Returns:
        ``(B, H, W)`` uint8 tensor, ``trunc(map * 255)``, on the maps' device.
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (B, H, W), got {tuple(maps.shape)}")
    if not maps.is_floating_point():
        raise TypeError(f"maps must be floating point, got {maps.dtype}")
    # Stay in the maps' own precision (float32 or float64) so the uint8 values match numpy's
    # in-place arithmetic on the same array bit for bit; half types are widened.
    x = maps if maps.dtype in (torch.float32, torch.float64) else maps.float()
    if normalize:
        flat = x.reshape(x.shape[0], -1)
        has_nan = torch.isnan(flat).any(dim=1)
        safe = torch.where(has_nan[:, None], torch.zeros_like(flat), flat)
        lo = safe.amin(dim=1, keepdim=True)
        shifted = safe - lo
        # max(x - min) equals fl(max - min): subtraction is monotone, so this is numpy's
        # `cam -= cam.min(); cam /= cam.max()` exactly.
        span = shifted.amax(dim=1, keepdim=True)
        degenerate = has_nan | (span[:, 0] == 0)
        scaled = shifted / torch.where(span == 0, torch.ones_like(span), span)
        scaled = torch.where(degenerate[:, None], torch.zeros_like(scaled), scaled)
        x = scaled.reshape(x.shape)
    else:
        if torch.isnan(x).any():
            raise ValueError("maps contain NaN; pass normalize=True to map NaN maps to zeros")
        if (x < 0).any() or (x > 1).any():
            raise ValueError("maps must lie in [0, 1] when normalize=False")
    return (x * 255).to(torch.uint8)


def threshold_cuts(u8: Tensor, thresholds: Tensor) -> Tensor:
    """Integer cuts ``int(tau * max(u8))`` per map and threshold.

    Args:
        u8: ``(B, H, W)`` uint8 maps.
        thresholds: ``(T,)`` thresholds in [0, 1) (any float dtype; evaluated in float64).

    Returns:
        ``(B, T)`` int64 level indices into the 256 levels of :func:`sweep_levels`.
    """
    taus = thresholds.to(device=u8.device, dtype=torch.float64)
    if taus.ndim != 1:
        raise ValueError(f"thresholds must be 1-D, got shape {tuple(taus.shape)}")
    if (taus < 0).any() or (taus >= 1).any():
        raise ValueError("thresholds must lie in [0, 1)")
    peak = u8.reshape(u8.shape[0], -1).amax(dim=1).to(torch.float64)
    return torch.floor(taus[None, :] * peak[:, None]).to(torch.int64)


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """IoU of ``x0y0x1y1`` pixel boxes with the inclusive (+1 pixel) convention of wsolevaluation.

    The intersection is clamped at zero, so disjoint boxes score 0 (the authors' IoU did not clamp
    and could score disjoint boxes above 0). A non-positive union gives 0.

    Args:
        boxes_a: ``(..., 4)`` boxes in pixels.
        boxes_b: ``(..., 4)`` boxes in pixels, broadcastable against ``boxes_a``.

    Returns:
        ``(...)`` float64 IoU in [0, 1].
    """
    a = boxes_a.to(torch.float64)
    b = boxes_b.to(torch.float64)
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0]) + 1).clamp(
        min=0
    )
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1]) + 1).clamp(
        min=0
    )
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    return torch.where(
        union > 0, inter / torch.where(union > 0, union, torch.ones_like(union)), 0.0
    )


def best_gt_iou(boxes: Tensor, gt_boxes: Tensor, gt_valid: Tensor) -> Tensor:
    """Best IoU of each predicted box over an image's ground-truth boxes.

    Args:
        boxes: ``(B, K, 4)`` predicted boxes (pixels).
        gt_boxes: ``(B, G, 4)`` ground-truth boxes (pixels), padded.
        gt_valid: ``(B, G)`` bool, False on padding rows.

    Returns:
        ``(B, K)`` float64 best IoU; 0 for an image without any valid ground-truth box.
    """
    iou = box_iou(boxes[:, :, None, :], gt_boxes[:, None, :, :])
    iou = torch.where(gt_valid[:, None, :], iou, -1.0)
    return iou.amax(dim=2).clamp(min=0) if iou.shape[2] else iou.new_zeros(iou.shape[:2])


# Tensor indexing (``x[idx]``, ``x[mask]``) is several times slower than ``index_select`` /
# ``masked_select`` on CPU, and ``torch.unique`` than a sort, at the sizes of one sweep level
# (measured with torch 2.14); the helpers below avoid them in the hot loop.
def _take(src: Tensor, idx: Tensor) -> Tensor:
    """``src[idx]`` along dim 0 (trailing dims of ``src`` kept)."""
    return src.index_select(0, idx.reshape(-1)).reshape(*idx.shape, *src.shape[1:])


def _select(src: Tensor, mask: Tensor) -> Tensor:
    """``src[mask]`` flattened; boolean indexing takes a far slower path on a busy CPU."""
    return torch.masked_select(src, mask)


def _find(parent: Tensor, nodes: Tensor) -> Tensor:
    """Roots of ``nodes`` in the union-find ``parent``; compresses the queried paths."""
    if nodes.numel() == 0:
        return nodes
    roots = _take(parent, nodes)
    while True:
        nxt = _take(parent, roots)
        if torch.equal(nxt, roots):
            break
        roots = nxt
    parent.scatter_(0, nodes, roots)
    return roots


def _window_corners(grid: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The four corners (top-left, top-right, bottom-left, bottom-right) of every 2x2 window."""
    return grid[:, :-1, :-1], grid[:, :-1, 1:], grid[:, 1:, :-1], grid[:, 1:, 1:]


def _sorted4(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Elementwise sort of four tensors, largest first (a 5-comparator network)."""
    lo1, hi1 = torch.minimum(a, b), torch.maximum(a, b)
    lo2, hi2 = torch.minimum(c, d), torch.maximum(c, d)
    mid_hi, mid_lo = torch.minimum(hi1, hi2), torch.maximum(lo1, lo2)
    return (
        torch.maximum(hi1, hi2),
        torch.maximum(mid_hi, mid_lo),
        torch.minimum(mid_hi, mid_lo),
        torch.minimum(lo1, lo2),
    )


def euler_numbers(u8: Tensor) -> Tensor:
    """Euler number (regions minus holes) of ``u8 > t`` for every level ``t``.

    Uses Gray's bit-quad counts for 8-connected foreground / 4-connected background, which are
    OpenCV's contour semantics: ``E = (Q1 - Q3 - 2 QD) / 4`` over the 2x2 windows of the map
    padded with background. Each window's pattern changes only when one of its corners enters, so
    ``E`` for all 256 levels is a suffix sum of per-corner deltas, with no loop over levels.

    Args:
        u8: ``(B, H, W)`` uint8 maps.

    Returns:
        ``(B, 256)`` int64; column ``t`` is the Euler number of the mask ``u8 > t``.
    """
    batch = u8.shape[0]
    grid = torch.nn.functional.pad(u8.to(torch.int64), (1, 1, 1, 1), value=0)
    a, b, c, d = _window_corners(grid)

    def above(x: Tensor, ix: int, y: Tensor, iy: int) -> Tensor:
        # Strict order with ties broken by corner index, so exactly two corners rank top-2.
        return (x > y) | ((x == y) & (ix < iy))

    corners = ((a, 0), (b, 1), (c, 2), (d, 3))
    rank = [
        sum(above(y, iy, x, ix).to(torch.int8) for y, iy in corners if iy != ix)
        for x, ix in corners
    ]
    top2 = [r < 2 for r in rank]
    diagonal = (top2[0] & top2[3]) | (top2[1] & top2[2])
    s1, s2, s3, s4 = _sorted4(a, b, c, d)
    one = torch.ones_like(s1)
    d2 = torch.where(diagonal, -3 * one, -one)
    d3 = torch.where(diagonal, one, -one)
    img = torch.arange(batch, device=u8.device).view(batch, 1, 1).expand_as(s1) * (NUM_LEVELS + 1)
    hist = torch.zeros(batch * (NUM_LEVELS + 1), dtype=torch.int64, device=u8.device)
    for value, delta in ((s1, one), (s2, d2), (s3, d3), (s4, one)):
        hist.scatter_add_(0, (img + value).reshape(-1), delta.reshape(-1))
    hist = hist.view(batch, NUM_LEVELS + 1)
    # Level t counts the corners with value > t: a suffix sum starting at t + 1.
    suffix = hist.flip(1).cumsum(1).flip(1)
    return suffix[:, 1:] // 4


class _Sweep:
    """Union-find over one batch while pixels enter level by level.

    ``foreground=True``: pixels enter in decreasing value (the mask ``u8 > t`` as ``t`` falls),
    8-connected, with the contour-area running sum. ``foreground=False``: the background
    ``u8 <= t`` as ``t`` rises, 4-connected (the connectivity of holes under OpenCV's 8-connected
    foreground). Roots are always the raster-first pixel of their region.
    """

    def __init__(self, values: Tensor, shape: tuple[int, int, int], foreground: bool):
        self.shape = shape
        self.foreground = foreground
        batch, height, width = shape
        dev = values.device
        n = values.numel()
        ids = torch.arange(n, device=dev)
        self.parent = ids.clone()
        xs = (ids % width).to(torch.int32)
        ys = ((ids // width) % height).to(torch.int32)
        self.x0, self.x1 = xs, xs.clone()
        self.y0, self.y1 = ys, ys.clone()
        # Twice the contour area, so it stays an exact integer.
        self.area2 = torch.zeros(n, dtype=torch.int32, device=dev)
        self.alive = ids[:0]
        self._stamp = torch.zeros(n, dtype=torch.int64, device=dev)
        self.pixels_at = _split_by_value(ids, values)
        grid = values.reshape(batch, height, width)
        gid = ids.reshape(batch, height, width)

        self.events_at: dict[int, Tensor] = {}
        if foreground and height > 1 and width > 1:
            a, b, c, d = _window_corners(grid)
            ia, ib, ic, id_ = _window_corners(gid)
            _, _, third, fourth = _sorted4(a, b, c, d)
            top_val = torch.maximum(torch.maximum(a, b), torch.maximum(c, d))
            top = torch.where(
                a == top_val, ia, torch.where(b == top_val, ib, torch.where(c == top_val, ic, id_))
            )
            top = top.reshape(-1)
            # Half a window joins the area when its 3rd-largest corner enters, half with its 4th.
            ev_val = torch.cat((third.reshape(-1), fourth.reshape(-1)))
            self.events_at = _split_by_value(torch.cat((top, top)), ev_val)

        # Every neighbour pair once, keyed by the level at which both ends are in (the smaller
        # value for the foreground, the larger for the background), entering end first: its
        # root is itself, so only the other end needs a find.
        ends_new, ends_old, levels = [], [], []
        for dy, dx in _FORWARD8 if foreground else _FORWARD4:
            rows = slice(0, height - dy)
            cols_a = slice(max(0, -dx), width - max(0, dx))
            cols_b = slice(max(0, dx), width + min(0, dx))
            ia, ib = gid[:, rows, cols_a].reshape(-1), gid[:, dy:, cols_b].reshape(-1)
            va, vb = grid[:, rows, cols_a].reshape(-1), grid[:, dy:, cols_b].reshape(-1)
            a_enters = va <= vb if foreground else va >= vb
            ia, ib = torch.where(a_enters, ia, ib), torch.where(a_enters, ib, ia)
            level = torch.where(a_enters, va, vb)
            if dy and dx:
                # A diagonal pair is already joined, from the same level on, through either pixel
                # 4-adjacent to both when that one is at least as high; on smooth maps this drops
                # nearly every diagonal edge, halving the work.
                corner_a = grid[:, rows, cols_b].reshape(-1)
                corner_b = grid[:, dy:, cols_a].reshape(-1)
                needed = torch.maximum(corner_a, corner_b) < level
                ia, ib, level = _select(ia, needed), _select(ib, needed), _select(level, needed)
            ends_new.append(ia)
            ends_old.append(ib)
            levels.append(level)
        ends = torch.stack((torch.cat(ends_new), torch.cat(ends_old)), dim=1)
        self.edges_at = _split_by_value(ends, torch.cat(levels))

    def _dedupe(self, nodes: Tensor) -> Tensor:
        """Distinct entries of ``nodes`` without sorting: the last position of each id survives."""
        if nodes.numel() < 2:
            return nodes
        pos = torch.arange(nodes.numel(), device=nodes.device)
        # amax (not a plain scatter) so the survivor does not depend on write order on a GPU.
        self._stamp.scatter_reduce_(0, nodes, pos, reduce="amax", include_self=False)
        return _select(nodes, _take(self._stamp, nodes) == pos)

    def add_level(self, vals: list[int]) -> Tensor | None:
        """Add the pixels whose value is in ``vals`` (and the area events there); touched roots.

        Several values at once give the same state as adding them one by one (unions and area
        sums commute; every pixel entering here is still a singleton when the call starts), at a
        fraction of the per-call cost: the sweep batches the levels between two needed cuts.
        """
        new = _cat_present(self.pixels_at, vals)
        events = _cat_present(self.events_at, vals)
        if new is None and events is None:
            return None
        parent = self.parent
        touched = []
        if new is not None:
            edges = _cat_present(self.edges_at, vals)
            if edges is not None:
                self._union(new, edges)
            self.alive = torch.cat((self.alive, new))
            self.alive = _select(self.alive, _take(parent, self.alive) == self.alive)
            touched.append(_find(parent, new))
        if events is not None:
            roots = _find(parent, events)
            self.area2.scatter_add_(0, roots, torch.ones_like(roots, dtype=torch.int32))
            touched.append(roots)
        return self._dedupe(torch.cat(touched))

    def _union(self, new: Tensor, edges: Tensor) -> None:
        """Merge along ``edges`` ``(E, 2)`` (pixel ids) and fold merged regions' statistics."""
        parent = self.parent
        ra, rb = edges[:, 0], _find(parent, edges[:, 1])
        old_roots = rb
        while True:
            differ = ra != rb
            if not differ.any():
                break
            ra, rb = _select(ra, differ), _select(rb, differ)
            hi, lo = torch.maximum(ra, rb), torch.minimum(ra, rb)
            # Hooking the larger root under the smaller keeps every root the raster-first
            # pixel of its region, which is also OpenCV's contour starting point.
            parent.scatter_reduce_(0, hi, lo, reduce="amin")
            ra, rb = _find(parent, ra), _find(parent, rb)

        was_root = self._dedupe(torch.cat((new, old_roots)))
        final = _find(parent, was_root)
        merged = final != was_root
        src, dst = _select(was_root, merged), _select(final, merged)
        if src.numel():
            self.area2.scatter_add_(0, dst, _take(self.area2, src))
            self.x0.scatter_reduce_(0, dst, _take(self.x0, src), reduce="amin")
            self.y0.scatter_reduce_(0, dst, _take(self.y0, src), reduce="amin")
            self.x1.scatter_reduce_(0, dst, _take(self.x1, src), reduce="amax")
            self.y1.scatter_reduce_(0, dst, _take(self.y1, src), reduce="amax")

    def boxes(self, roots: Tensor) -> Tensor:
        """``(K, 4)`` int64 wsolevaluation boxes of the regions ``roots``."""
        _, height, width = self.shape
        x0, y0 = _take(self.x0, roots), _take(self.y0, roots)
        x1 = (_take(self.x1, roots) + 1).clamp(max=width - 1)
        y1 = (_take(self.y1, roots) + 1).clamp(max=height - 1)
        return torch.stack((x0, y0, x1, y1), 1).to(torch.int64)

    def hole_boxes(self, roots: Tensor) -> tuple[Tensor, Tensor]:
        """Boxes OpenCV gives the hole borders around background regions ``roots``.

        A hole border runs through the foreground pixels next to the hole, so its bounding
        rectangle is the hole's pixel box grown by one pixel on each side. Returns ``(K, 4)``
        int64 boxes and a ``(K,)`` bool "is a hole" (the region does not touch the image border).
        """
        _, height, width = self.shape
        x0, y0 = _take(self.x0, roots), _take(self.y0, roots)
        x1, y1 = _take(self.x1, roots), _take(self.y1, roots)
        is_hole = (x0 > 0) & (y0 > 0) & (x1 < width - 1) & (y1 < height - 1)
        boxes = torch.stack(
            (x0 - 1, y0 - 1, (x1 + 2).clamp(max=width - 1), (y1 + 2).clamp(max=height - 1)), 1
        )
        return boxes.to(torch.int64), is_hole


def _cat_present(by_value: dict[int, Tensor], vals: list[int]) -> Tensor | None:
    """The entries of ``by_value`` at ``vals`` concatenated (None when there are none)."""
    parts = [by_value[v] for v in vals if v in by_value]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _level_buckets(levels: Tensor | None, descending: bool) -> list[tuple[int, list[int]]]:
    """Groups of pixel values to add before each needed level is read, in sweep order.

    The foreground sweep reads level ``t`` (mask ``u8 > t``) after adding value ``t + 1``; the
    background sweep reads level ``t`` (``u8 <= t``) after adding value ``t``. With ``levels``
    (the distinct cuts in use) the values between two needed levels are added in one step;
    without, every level is read.
    """
    needed = range(NUM_LEVELS - 1) if levels is None else sorted({int(v) for v in levels.tolist()})
    out: list[tuple[int, list[int]]] = []
    if descending:
        prev = NUM_LEVELS - 1  # values > 254 (i.e. 255) enter with the first read level
        for level in sorted(needed, reverse=True):
            if level < prev:
                out.append((level, list(range(prev, level, -1))))
                prev = level
    else:
        prev = -1
        for level in sorted(needed):
            if level > prev:
                out.append((level, list(range(prev + 1, level + 1))))
                prev = level
    return out


def _split_by_value(items: Tensor, values: Tensor) -> dict[int, Tensor]:
    """``{v: items[values == v]}`` for the uint8 levels present, with one sort."""
    # Order within a level is irrelevant, and a uint8 sort is 2x faster than an int64 one.
    order = torch.sort(values.to(torch.uint8)).indices
    counts = torch.bincount(values, minlength=NUM_LEVELS).tolist()
    sorted_items = _take(items, order)
    out: dict[int, Tensor] = {}
    start = 0
    for val, count in enumerate(counts):
        if count:
            out[val] = sorted_items[start : start + count]
        start += count
    return out


def sweep_levels(
    u8: Tensor,
    gt_boxes: Tensor | None = None,
    gt_valid: Tensor | None = None,
    levels: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Largest-region boxes (and best all-contour IoUs) at every uint8 cut, batched.

    Args:
        u8: ``(B, H, W)`` uint8 maps (see :func:`scoremaps_to_uint8`).
        gt_boxes: optional ``(B, G, 4)`` ground-truth boxes in the maps' pixel frame.
        gt_valid: ``(B, G)`` bool mask of real (non-padding) ground-truth rows; required with
            ``gt_boxes``.
        levels: optional cuts that will be read (e.g. ``threshold_cuts(...).unique()``). The
            columns of the other levels are then unspecified; the pixels between two needed
            levels are merged in one step (100 thresholds read about 100 of the 255 levels).

    Returns:
        ``largest``: ``(B, 256, 4)`` int64 box of the largest region of ``u8 > t`` at level ``t``
        (``[0, 0, 0, 0]`` where the mask is empty).
        ``best_any``: ``(B, 256)`` float64 best IoU over all contours' boxes (regions and their
        holes, as ``RETR_TREE`` returns both) and all ground-truth boxes at each level:
        MaxBoxAccV2's box set; the empty mask scores the box ``[0, 0, 0, 0]``. None without
        ``gt_boxes``.
    """
    if u8.ndim != 3 or u8.dtype != torch.uint8:
        raise ValueError(f"u8 must be a (B, H, W) uint8 tensor, got {u8.dtype} {tuple(u8.shape)}")
    batch, height, width = u8.shape
    dev = u8.device
    hw = height * width
    largest = torch.zeros(batch, NUM_LEVELS, 4, dtype=torch.int64, device=dev)
    best_any = None
    if gt_boxes is not None:
        if gt_valid is None:
            raise ValueError("gt_valid is required with gt_boxes")
        gt_boxes = gt_boxes.to(dev)
        gt_valid = gt_valid.to(dev)
        zero_box = torch.zeros(batch, 1, 4, dtype=torch.int64, device=dev)
        empty_iou = best_gt_iou(zero_box, gt_boxes, gt_valid)[:, 0]
        best_any = empty_iou[:, None].repeat(1, NUM_LEVELS)
    if batch == 0 or hw == 0:
        return largest, best_any

    values = u8.reshape(-1).to(torch.int64)
    shape = (batch, height, width)

    def root_ious(boxes: Tensor, roots: Tensor) -> Tensor:
        img = roots // hw
        return best_gt_iou(boxes[:, None, :], _take(gt_boxes, img), _take(gt_valid, img))[:, 0]

    state = _Sweep(values, shape, foreground=True)
    no_image = torch.full((batch,), -1, dtype=torch.int64, device=dev)
    regions = torch.zeros(batch, NUM_LEVELS, dtype=torch.int64, device=dev)
    root_iou = torch.zeros(values.numel(), dtype=torch.float64, device=dev)
    prev = NUM_LEVELS - 1
    for level, vals in _level_buckets(levels, descending=True):
        touched = state.add_level(vals)
        if touched is None:
            largest[:, level] = largest[:, prev]
            regions[:, level] = regions[:, prev]
            if best_any is not None:
                best_any[:, level] = best_any[:, prev]
            prev = level
            continue
        prev = level
        alive = state.alive
        image = alive // hw
        regions[:, level] = torch.bincount(image, minlength=batch)
        area = _take(state.area2, alive).to(torch.int64)
        top_area = no_image.scatter_reduce(0, image, area, reduce="amax")
        is_top = area == _take(top_area, image)
        choice = no_image.scatter_reduce(
            0, _select(image, is_top), _select(alive, is_top), reduce="amax"
        )
        has = choice >= 0
        boxes = state.boxes(choice.clamp(min=0))
        largest[:, level] = torch.where(has[:, None], boxes, 0)
        if best_any is not None:
            root_iou.scatter_(0, touched, root_ious(state.boxes(touched), touched))
            best = torch.full((batch,), -1.0, dtype=torch.float64, device=dev)
            best = best.scatter_reduce(0, image, _take(root_iou, alive), reduce="amax")
            best_any[:, level] = torch.where(has, best, empty_iou)
    del state

    # Holes (4-connected background regions not touching the border): regions minus the Euler
    # number counts them per level, so the extra work below runs only on the (usually few) maps
    # that have a hole at some read level.
    read = (
        torch.arange(NUM_LEVELS - 1, device=dev)
        if levels is None
        else levels.to(device=dev, dtype=torch.int64).unique()
    )
    holes_per_level = (regions - euler_numbers(u8))[:, read]
    with_holes = (holes_per_level > 0).any(dim=1).nonzero().flatten()
    if with_holes.numel():
        # OpenCV's outer-contour area covers a region's holes; ``area2`` does not. The compiled
        # sweep measures hole-filled areas exactly, so it picks the largest region on these maps.
        largest[with_holes[:, None], read[None, :]] = _compiled_largest_boxes(
            _take(u8, with_holes), read
        ).to(dev)
    if best_any is None:
        return largest, None

    # Hole contours (RETR_TREE lists them too) are scored for MaxBoxAccV2 by a background sweep.
    if with_holes.numel():
        hole_best = _hole_ious(
            _take(u8, with_holes), _take(gt_boxes, with_holes), _take(gt_valid, with_holes), levels
        )
        sub = _take(best_any, with_holes)
        best_any.index_copy_(0, with_holes, torch.maximum(sub, hole_best))
    return largest, best_any


def _compiled_largest_boxes(u8: Tensor, levels: Tensor) -> Tensor:
    """``(B, L, 4)`` int64 CPU boxes of the largest region (hole-filled area) at ``levels``."""
    from infocam_exp.metrics._boxes_compiled import compiled_threshold_ious

    batch = u8.shape[0]
    cuts = levels.cpu().to(torch.int64)[None, :].expand(batch, -1).numpy()
    _, _, boxes = compiled_threshold_ious(
        u8.cpu().numpy(),
        cuts,
        torch.zeros(batch, 0, 4, dtype=torch.float64).numpy(),
        torch.zeros(batch, 0, dtype=torch.bool).numpy(),
        want_any=False,
        want_boxes=True,
        threads=1,  # may run inside the torch sweep's worker threads
    )
    return torch.from_numpy(boxes)


def _hole_ious(
    u8: Tensor, gt_boxes: Tensor, gt_valid: Tensor, levels: Tensor | None = None
) -> Tensor:
    """``(B, 256)`` best IoU of hole-contour boxes with ground truth per level (-1: no hole).

    With ``levels`` only those columns are computed (see :func:`sweep_levels`).
    """
    batch, height, width = u8.shape
    hw = height * width
    dev = u8.device
    holes = _Sweep(u8.reshape(-1).to(torch.int64), (batch, height, width), foreground=False)
    root_iou = torch.full((batch * hw,), -1.0, dtype=torch.float64, device=dev)
    hole_best = torch.full((batch, NUM_LEVELS), -1.0, dtype=torch.float64, device=dev)
    prev = None
    for level, vals in _level_buckets(levels, descending=False):
        touched = holes.add_level(vals)
        if touched is None:
            if prev is not None:
                hole_best[:, level] = hole_best[:, prev]
            prev = level
            continue
        prev = level
        boxes, is_hole = holes.hole_boxes(touched)
        img = touched // hw
        iou = best_gt_iou(boxes[:, None, :], _take(gt_boxes, img), _take(gt_valid, img))[:, 0]
        root_iou.scatter_(0, touched, torch.where(is_hole, iou, -1.0))
        alive = holes.alive
        hole_best[:, level] = hole_best[:, level].scatter_reduce(
            0, alive // hw, _take(root_iou, alive), reduce="amax"
        )
    return hole_best


def largest_region_boxes(maps: Tensor, thresholds: Tensor, normalize: bool = True) -> Tensor:
    """Box of the largest region of each map at each threshold (wsolevaluation semantics).

    Args:
        maps: ``(B, H, W)`` floating score maps, any device.
        thresholds: ``(T,)`` thresholds in [0, 1), relative to each map's maximum.
        normalize: min-max normalise the maps first (see :func:`scoremaps_to_uint8`).

    Returns:
        ``(B, T, 4)`` int64 boxes ``[x0, y0, x1, y1]`` in pixels of the map, on the maps' device.
    """
    u8 = scoremaps_to_uint8(maps, normalize=normalize)
    cuts = threshold_cuts(u8, thresholds)
    largest, _ = sweep_levels(u8, levels=cuts.unique())
    return largest.gather(1, cuts[:, :, None].expand(-1, -1, 4))


def threshold_ious(
    maps: Tensor,
    gt_boxes: Tensor,
    thresholds: Tensor,
    gt_valid: Tensor | None = None,
    normalize: bool = True,
) -> tuple[Tensor, Tensor]:
    """Best IoU with ground truth per map and threshold, for the largest region and all regions.

    Args:
        maps: ``(B, H, W)`` floating score maps.
        gt_boxes: ``(B, G, 4)`` ground-truth boxes ``[x0, y0, x1, y1]`` in the maps' pixel frame;
            padding rows are marked by ``gt_valid`` or, without it, by any negative coordinate.
        thresholds: ``(T,)`` thresholds in [0, 1).
        gt_valid: optional ``(B, G)`` bool mask of real rows.
        normalize: min-max normalise the maps first.

    Returns:
        ``(iou_largest, iou_any)``, each ``(B, T)`` float64: the best IoU over ground-truth boxes of
        the largest region's box (MaxBoxAcc, top-k Loc) and of any region's box (MaxBoxAccV2).
    """
    if gt_boxes.ndim != 3 or gt_boxes.shape[-1] != 4 or gt_boxes.shape[0] != maps.shape[0]:
        raise ValueError(f"gt_boxes must have shape (B, G, 4), got {tuple(gt_boxes.shape)}")
    gt_boxes = gt_boxes.to(maps.device)
    if gt_valid is None:
        gt_valid = (gt_boxes >= 0).all(dim=-1)
    gt_valid = gt_valid.to(device=maps.device, dtype=torch.bool)
    u8 = scoremaps_to_uint8(maps, normalize=normalize)
    cuts = threshold_cuts(u8, thresholds)
    largest, best_any = sweep_levels(u8, gt_boxes, gt_valid, levels=cuts.unique())
    iou_largest_levels = best_gt_iou(largest, gt_boxes, gt_valid)
    return iou_largest_levels.gather(1, cuts), best_any.gather(1, cuts)


def _compiled_ious(
    maps: Tensor,
    gt_boxes: Tensor,
    thresholds: Tensor,
    gt_valid: Tensor | None,
    normalize: bool,
    threads: int,
    want_any: bool = True,
) -> tuple[Tensor, Tensor]:
    """The compiled CPU sweep (numba, maps split over threads); same results as
    :func:`threshold_ious`."""
    from infocam_exp.metrics._boxes_compiled import compiled_threshold_ious, maps_to_uint8

    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (B, H, W), got {tuple(maps.shape)}")
    if gt_boxes.ndim != 3 or gt_boxes.shape[-1] != 4 or gt_boxes.shape[0] != maps.shape[0]:
        raise ValueError(f"gt_boxes must have shape (B, G, 4), got {tuple(gt_boxes.shape)}")
    gt = gt_boxes.detach().to(device="cpu", dtype=torch.float64)
    if gt_valid is None:
        gt_valid = (gt >= 0).all(dim=-1)
    valid = gt_valid.detach().to(device="cpu", dtype=torch.bool)
    host = maps.detach().cpu()
    if normalize and host.dtype in (torch.float32, torch.float64):
        u8 = torch.from_numpy(maps_to_uint8(host.numpy()))
    else:
        u8 = scoremaps_to_uint8(host, normalize=normalize)
    cuts = threshold_cuts(u8, thresholds)
    largest, best_any, _ = compiled_threshold_ious(
        u8.numpy(), cuts.numpy(), gt.numpy(), valid.numpy(), want_any=want_any, threads=threads
    )
    return torch.from_numpy(largest), torch.from_numpy(best_any)


def compiled_sweep_available() -> bool:
    """True when the compiled CPU sweep can run: its C kernels build here, or numba imports (see
    :func:`infocam_exp.metrics._boxes_compiled.select_kernels`)."""
    from infocam_exp.metrics._boxes_compiled import kernels_available

    return kernels_available()


BACKENDS = ("auto", "compiled", "torch")
"""``auto``: the compiled sweep for CPU maps, the torch sweep for maps on another device."""


def batched_threshold_ious(
    maps: Tensor,
    gt_boxes: Tensor,
    thresholds: Tensor,
    gt_valid: Tensor | None = None,
    normalize: bool = True,
    max_pixels_per_chunk: int | None = None,
    workers: int | None = None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """:func:`threshold_ious` for a batch: compiled on a CPU, the torch sweep on a GPU.

    On a CPU (``backend="auto"`` or ``"compiled"``) a compiled (C or numba) union-find sweeps each map
    (the same semantics; tests hold both paths to one OpenCV reference and to each other), the
    maps split over ``workers`` threads. Maps on another device use the torch sweep there
    (``backend="torch"`` forces it on a CPU too), in chunks; on a CPU the chunks run on parallel
    threads, each single-threaded (torch's intra-op threads barely speed one sweep up). Results do
    not depend on the backend, the chunking or the thread count.

    Args:
        maps, gt_boxes, thresholds, gt_valid, normalize: as in :func:`threshold_ious`.
        max_pixels_per_chunk: torch sweep only: at most this many map pixels per sweep (about
            40 bytes each live); None: 2**21 on a CPU, 2**24 on a GPU.
        workers: CPU threads (compiled: Python threads over maps, the kernel releases the GIL;
            torch: parallel chunk sweeps);
            None: ``torch.get_num_threads()``. Sweeps on a GPU run one by one.
        backend: ``"auto"``, ``"compiled"`` (CPU maps only) or ``"torch"``.

    Returns:
        ``(iou_largest, iou_any)``, each ``(B, T)`` float64 on the maps' device.
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (B, H, W), got {tuple(maps.shape)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    batch, height, width = maps.shape
    on_cpu = maps.device.type == "cpu"
    if backend == "compiled" and not on_cpu:
        raise ValueError(
            f"the compiled sweep runs on CPU maps, got maps on {maps.device}; move them with "
            ".cpu() or use backend='torch'"
        )
    if backend == "auto" and on_cpu and not compiled_sweep_available():
        from infocam_exp.metrics._boxes_compiled import NO_COMPILED_SWEEP

        log.warning(NO_COMPILED_SWEEP)
        backend = "torch"
    if batch == 0:
        empty = torch.zeros(0, thresholds.numel(), dtype=torch.float64, device=maps.device)
        return empty, empty.clone()
    if backend != "torch" and on_cpu:
        threads = torch.get_num_threads() if workers is None else int(workers)
        return _compiled_ious(maps, gt_boxes, thresholds, gt_valid, normalize, threads)
    if workers is None:
        workers = torch.get_num_threads() if on_cpu else 1
    workers = max(1, min(int(workers), batch))
    if max_pixels_per_chunk is None:
        max_pixels_per_chunk = 2**21 if maps.device.type == "cpu" else 2**24
    chunk = max(1, int(max_pixels_per_chunk) // max(1, height * width))
    if workers > 1:
        chunk = min(chunk, -(-batch // workers))
    slices = [slice(start, start + chunk) for start in range(0, batch, chunk)]

    def run(sl: slice) -> tuple[Tensor, Tensor]:
        valid = None if gt_valid is None else gt_valid[sl]
        return threshold_ious(maps[sl], gt_boxes[sl], thresholds, valid, normalize=normalize)

    if not slices:
        empty = torch.zeros(0, thresholds.numel(), dtype=torch.float64, device=maps.device)
        return empty, empty.clone()
    if workers == 1 or len(slices) == 1:
        parts = [run(sl) for sl in slices]
    else:
        intra = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                parts = list(pool.map(run, slices))
        finally:
            torch.set_num_threads(intra)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
