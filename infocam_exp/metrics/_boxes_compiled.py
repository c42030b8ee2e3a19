"""Compiled (numba) CPU form of the level sweep in :mod:`infocam_exp.metrics.boxes`.

Same semantics as the torch sweep there (read that module's docstring): per map, a union-find over
the pixels entering in decreasing uint8 value (8-connected), each region carrying its bounding
box and its contour area (in half units, from the 2x2-window rule), read at every needed cut; a
second, rising sweep over the background (4-connected) gives the hole-border boxes, run only on
maps whose Euler numbers show a hole at some needed cut. At cuts with holes, the largest region
is chosen by its hole-filled (OpenCV outer-contour) area, see :func:`_filled_largest`. Maps are
independent: the kernel releases the GIL (``nogil``), so Python threads split a batch (one
compiled signature, no ``parallel=True``: numba's parallel pass and its thread pool cost compile
time and add nothing here). Compiled code is cached on disk (``cache=True``, see
:mod:`infocam_exp.metrics._numba_cache`): the first call in a fresh environment compiles, later
processes load the cache.

Everything here works on plain numpy arrays; :func:`infocam_exp.metrics.boxes.batched_threshold_ious`
is the public entry point.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def fallback_cache_dir(
    env: dict[str, str] | None = None, package_dir: Path | None = None, writable=_writable
) -> Path | None:
    """Where the compiled code must be cached when numba's own choices fail, else None.

    numba tries, in order: ``NUMBA_CACHE_DIR``; ``__pycache__`` next to this file (an editable
    install, or a site-packages the user may write); the user cache dir
    (``~/.cache/numba``, ``$XDG_CACHE_HOME``). When none is writable (a read-only install with a
    read-only home, as in some containers) numba does not cache at all and every process compiles
    again; then we cache under the temp dir, one folder per user.
    """
    env = os.environ if env is None else env
    if env.get("NUMBA_CACHE_DIR"):
        return None
    here = Path(__file__).resolve().parent if package_dir is None else package_dir
    if writable(here / "__pycache__"):
        return None
    home = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if writable(Path(home) / "numba"):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"numba-cache-{uid}"


_FALLBACK = fallback_cache_dir()
if _FALLBACK is not None:  # before the decorators below: they pick the cache folder
    import numba.core.config

    numba.core.config.CACHE_DIR = str(_FALLBACK)

from numba import njit  # noqa: E402

_NUM_LEVELS = 256


@njit(cache=True, nogil=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@njit(cache=True, nogil=True)
def _best_iou(bx0, by0, bx1, by1, gt, gvalid):
    """Best IoU (+1 pixel convention, clamped) of one box over the valid ground-truth rows.

    The float64 operations are those of ``boxes.box_iou`` in the same order, so the result is
    bit-identical to the torch path.
    """
    best = -1.0
    a0 = float(bx0)
    a1 = float(by0)
    a2 = float(bx1)
    a3 = float(by1)
    area_a = (a2 - a0 + 1.0) * (a3 - a1 + 1.0)
    for g in range(gt.shape[0]):
        if not gvalid[g]:
            continue
        iw = min(a2, gt[g, 2]) - max(a0, gt[g, 0]) + 1.0
        ih = min(a3, gt[g, 3]) - max(a1, gt[g, 1]) + 1.0
        if iw < 0.0:
            iw = 0.0
        if ih < 0.0:
            ih = 0.0
        inter = iw * ih
        area_b = (gt[g, 2] - gt[g, 0] + 1.0) * (gt[g, 3] - gt[g, 1] + 1.0)
        union = area_a + area_b - inter
        iou = inter / union if union > 0.0 else 0.0
        if iou > best:
            best = iou
    return best if best > 0.0 else 0.0


@njit(cache=True, nogil=True)
def _sort_by_value(flat):
    """Pixel indices grouped by value (raster order inside a group) and each group's start."""
    n = flat.shape[0]
    start = np.zeros(_NUM_LEVELS + 1, np.int64)
    for p in range(n):
        start[flat[p] + 1] += 1
    for v in range(_NUM_LEVELS):
        start[v + 1] += start[v]
    fill = start[:_NUM_LEVELS].copy()
    order = np.empty(n, np.int64)  # int64 like every other index: one signature per helper
    for p in range(n):
        v = flat[p]
        order[fill[v]] = p
        fill[v] += 1
    return order, start


@njit(cache=True, nogil=True)
def _euler_numbers(u8):
    """Euler number of ``u8 > t`` for every level t (Gray's bit-quads, 8/4 connectivity).

    Same per-window rule as ``boxes.euler_numbers``: over the 2x2 windows of the map padded with
    background, each corner's entry changes the window's pattern by a fixed delta.
    """
    height, width = u8.shape
    hist = np.zeros(_NUM_LEVELS + 1, np.int64)
    for wy in range(height + 1):
        for wx in range(width + 1):
            # corners tl, tr, bl, br of the grid padded with 0 (never in any mask u8 > t)
            a = np.int64(u8[wy - 1, wx - 1]) if wy > 0 and wx > 0 else np.int64(0)
            b = np.int64(u8[wy - 1, wx]) if wy > 0 and wx < width else np.int64(0)
            c = np.int64(u8[wy, wx - 1]) if wy < height and wx > 0 else np.int64(0)
            d = np.int64(u8[wy, wx]) if wy < height and wx < width else np.int64(0)
            # rank of each corner, ties broken by corner index (tl < tr < bl < br)
            ra = (b > a) + (c > a) + (d > a)
            rb = (a >= b) + (c > b) + (d > b)
            rc = (a >= c) + (b >= c) + (d > c)
            rd = (a >= d) + (b >= d) + (c >= d)
            diagonal = (ra < 2 and rd < 2) or (rb < 2 and rc < 2)
            lo1 = min(a, b)
            hi1 = max(a, b)
            lo2 = min(c, d)
            hi2 = max(c, d)
            s1 = max(hi1, hi2)
            s2 = max(min(hi1, hi2), max(lo1, lo2))
            s3 = min(min(hi1, hi2), max(lo1, lo2))
            s4 = min(lo1, lo2)
            hist[s1] += 1
            hist[s2] += -3 if diagonal else -1
            hist[s3] += 1 if diagonal else -1
            hist[s4] += 1
    euler = np.zeros(_NUM_LEVELS, np.int64)
    acc = 0
    for t in range(_NUM_LEVELS - 1, -1, -1):
        acc += hist[t + 1]  # corners with value > t
        euler[t] = acc // 4
    return euler


@njit(cache=True, nogil=True)
def _filled_largest(flat, t, width, parent, area2, alive, kept, bgpar, border, acc):
    """The region of ``flat > t`` with the largest OpenCV outer-contour area, holes included.

    ``area2`` (half units) counts only windows of region pixels; OpenCV's outer contour also
    covers the region's holes and whatever lies inside them. Labelling the background
    (4-connected) at this cut gives every hole; a hole's own contour polygon (through the region
    pixels around it) covers, per 2x2 window, half a unit when one corner is in the hole and a
    whole unit when two or more are, so in half units a hole adds ``#windows(1 corner) +
    2 #windows(2+ corners)`` plus the full areas of the islands inside it. The pixel left of a
    region's (or hole's) raster-first pixel lies in whatever encloses it, so summing children into
    parents in reverse raster order gives each region's filled area. Ties go to the region
    starting last in raster order, as for ``area2``.
    """
    n = flat.shape[0]
    height = n // width
    for p in range(n):
        if flat[p] > t:
            continue
        py = p // width
        px = p - py * width
        bgpar[p] = p
        acc[p] = 0
        border[p] = px == 0 or py == 0 or px == width - 1 or py == height - 1
        r = p
        if px > 0 and flat[p - 1] <= t:
            r = _find(bgpar, p - 1)
            bgpar[p] = r
            border[r] = border[r] or border[p]
        if py > 0 and flat[p - width] <= t:
            r2 = _find(bgpar, p - width)
            if r2 != r:
                lo = min(r, r2)
                hi = max(r, r2)
                bgpar[hi] = lo
                border[lo] = border[lo] or border[hi]
    # hole polygons, window by window (a window's background corners form one or two components)
    for wy in range(height - 1):
        for wx in range(width - 1):
            c0 = wy * width + wx
            ha = -1
            hb = -1
            ka = 0
            kb = 0
            for j in range(4):
                q = c0 + (j & 1) + (width if j >= 2 else 0)
                if flat[q] > t:
                    continue
                h = _find(bgpar, q)
                if h == ha or ha < 0:
                    ha = h
                    ka += 1
                else:
                    hb = h
                    kb += 1
            if ha >= 0 and not border[ha]:
                acc[ha] += 1 if ka == 1 else 2
            if hb >= 0 and not border[hb]:
                acc[hb] += 1 if kb == 1 else 2
    for i in range(kept):
        r = alive[i]
        acc[r] = area2[r]
    for p in range(n - 1, -1, -1):
        if flat[p] > t:
            if parent[p] == p and p % width > 0:
                h = _find(bgpar, p - 1)
                if not border[h]:
                    acc[h] += acc[p]
        elif bgpar[p] == p and not border[p]:
            acc[_find(parent, p - 1)] += acc[p]
    best_area = -1
    best_root = -1
    for i in range(kept):
        r = alive[i]
        if acc[r] > best_area or (acc[r] == best_area and r > best_root):
            best_area = acc[r]
            best_root = r
    return best_root


@njit(cache=True, nogil=True)
def _map_ious(u8, cuts, gt, gvalid, want_any, want_boxes, out_largest, out_any, out_boxes):
    """One map: best IoU of the largest region (and of every contour) at each cut in ``cuts``;
    with ``want_boxes`` also the largest region's box (``[0, 0, 0, 0]`` for an empty mask)."""
    height, width = u8.shape
    n = height * width
    flat = u8.ravel()
    needed = np.zeros(_NUM_LEVELS, np.bool_)
    for i in range(cuts.shape[0]):
        needed[cuts[i]] = True
    zero = np.int64(height * 0)  # not a literal: literals would compile a second signature
    empty_iou = _best_iou(zero, zero, zero, zero, gt, gvalid)
    lvl_largest = np.full(_NUM_LEVELS, empty_iou)
    lvl_any = np.full(_NUM_LEVELS, empty_iou)
    regions_at = np.zeros(_NUM_LEVELS, np.int64)
    lvl_box = np.zeros((_NUM_LEVELS, 4), np.int64)
    last_box = np.zeros(4, np.int64)

    order, start = _sort_by_value(flat)
    euler = _euler_numbers(u8)  # regions - euler = holes, at every level
    bgpar = np.empty(n, np.int32)
    border = np.empty(n, np.bool_)
    acc = np.empty(n, np.int64)
    parent = np.empty(n, np.int32)
    x0 = np.empty(n, np.int64)
    y0 = np.empty(n, np.int64)
    x1 = np.empty(n, np.int64)
    y1 = np.empty(n, np.int64)
    area2 = np.zeros(n, np.int64)  # contour area in half units
    inside = np.zeros(n, np.bool_)
    dirty = np.zeros(n, np.bool_)
    root_iou = np.zeros(n, np.float64)
    alive = np.empty(n, np.int32)
    n_alive = 0
    changed = False
    last_largest = empty_iou
    last_any = empty_iou
    last_regions = 0

    # --- foreground: values 255 .. 1 enter; level t = v - 1 is read after value v -------------
    for v in range(_NUM_LEVELS - 1, 0, -1):
        for k in range(start[v], start[v + 1]):
            p = order[k]
            py = p // width
            px = p - py * width
            parent[p] = p
            x0[p] = px
            x1[p] = px
            y0[p] = py
            y1[p] = py
            area2[p] = 0
            inside[p] = True
            dirty[p] = True
            alive[n_alive] = p
            n_alive += 1
            changed = True
            ra = p  # p's root, kept current through the merges below
            for dy in range(-1, 2):
                qy = py + dy
                if qy < 0 or qy >= height:
                    continue
                for dx in range(-1, 2):
                    qx = px + dx
                    if (dy == 0 and dx == 0) or qx < 0 or qx >= width:
                        continue
                    q = qy * width + qx
                    if not inside[q]:
                        continue
                    # The union step is written out here and in the 4-connected background sweep:
                    # one shared helper measured 10-20% slower (docs/evaluator_speed.md).
                    rb = _find(parent, q)
                    if ra == rb:
                        continue
                    lo = min(ra, rb)
                    hi = max(ra, rb)
                    ra = lo
                    # the raster-first pixel stays the root (OpenCV's contour start)
                    parent[hi] = lo
                    x0[lo] = min(x0[lo], x0[hi])
                    y0[lo] = min(y0[lo], y0[hi])
                    x1[lo] = max(x1[lo], x1[hi])
                    y1[lo] = max(y1[lo], y1[hi])
                    area2[lo] += area2[hi]
                    dirty[lo] = True
        # Area events: a window gains half a unit when its 3rd-largest corner enters and half
        # when its smallest does. Each window is handled once, by its first corner of value v.
        for k in range(start[v], start[v + 1]):
            p = order[k]
            py = p // width
            px = p - py * width
            for wy in range(py - 1, py + 1):
                if wy < 0 or wy + 1 >= height:
                    continue
                for wx in range(px - 1, px + 1):
                    if wx < 0 or wx + 1 >= width:
                        continue
                    c0 = wy * width + wx
                    c1 = c0 + 1
                    c2 = c0 + width
                    c3 = c2 + 1
                    first = c0
                    if flat[c0] != v:
                        first = c1 if flat[c1] == v else (c2 if flat[c2] == v else c3)
                    if first != p:
                        continue
                    a = np.int64(flat[c0])
                    b = np.int64(flat[c1])
                    c = np.int64(flat[c2])
                    d = np.int64(flat[c3])
                    lo1 = min(a, b)
                    hi1 = max(a, b)
                    lo2 = min(c, d)
                    hi2 = max(c, d)
                    third = min(min(hi1, hi2), max(lo1, lo2))
                    fourth = min(lo1, lo2)
                    gain = (1 if third == v else 0) + (1 if fourth == v else 0)
                    if gain:
                        r = _find(parent, p)
                        area2[r] += gain
                        dirty[r] = True
                        changed = True
        t = v - 1
        if not needed[t]:
            continue
        if changed:
            kept = 0
            best_area = -1
            best_root = -1
            best_any = -1.0
            for i in range(n_alive):
                r = alive[i]
                if parent[r] != r:
                    continue
                alive[kept] = r
                kept += 1
                if area2[r] > best_area or (area2[r] == best_area and r > best_root):
                    best_area = area2[r]
                    best_root = r
                if want_any:
                    if dirty[r]:
                        root_iou[r] = _best_iou(
                            x0[r], y0[r], min(x1[r] + 1, width - 1), min(y1[r] + 1, height - 1),
                            gt, gvalid,
                        )
                        dirty[r] = False
                    if root_iou[r] > best_any:
                        best_any = root_iou[r]
            n_alive = kept
            last_regions = kept
            if kept > 1 and kept - euler[t] > 0:
                # Holes at this cut: another region beats the largest one only if its hole-filled
                # area can reach ours; the box bounds that area by (w - 1)(h - 1).
                for i in range(kept):
                    r = alive[i]
                    if r != best_root and 2 * (x1[r] - x0[r]) * (y1[r] - y0[r]) >= best_area:
                        best_root = _filled_largest(
                            flat, t, width, parent, area2, alive, kept, bgpar, border, acc
                        )
                        break
            if kept:
                r = best_root
                last_box[0] = x0[r]
                last_box[1] = y0[r]
                last_box[2] = min(x1[r] + 1, width - 1)
                last_box[3] = min(y1[r] + 1, height - 1)
                if want_any and not dirty[r]:
                    last_largest = root_iou[r]
                else:
                    last_largest = _best_iou(
                        x0[r], y0[r], min(x1[r] + 1, width - 1), min(y1[r] + 1, height - 1),
                        gt, gvalid,
                    )
                last_any = best_any
            changed = False
        lvl_largest[t] = last_largest
        lvl_box[t] = last_box
        lvl_any[t] = last_any
        regions_at[t] = last_regions

    if want_any and n > 0:
        # --- holes: background regions not touching the border, only where some exist -------
        has_holes = False
        for t in range(_NUM_LEVELS):
            if needed[t] and regions_at[t] - euler[t] > 0:
                has_holes = True
                break
        if has_holes:
            for p in range(n):
                inside[p] = False
            n_alive = 0
            for v in range(_NUM_LEVELS - 1):  # level t = v: the background u8 <= t
                for k in range(start[v], start[v + 1]):
                    p = order[k]
                    py = p // width
                    px = p - py * width
                    parent[p] = p
                    x0[p] = px
                    x1[p] = px
                    y0[p] = py
                    y1[p] = py
                    inside[p] = True
                    dirty[p] = True
                    alive[n_alive] = p
                    n_alive += 1
                    ra = p
                    for j in range(4):
                        qy = py + (-1 if j == 0 else (1 if j == 1 else 0))
                        qx = px + (-1 if j == 2 else (1 if j == 3 else 0))
                        if qy < 0 or qy >= height or qx < 0 or qx >= width:
                            continue
                        q = qy * width + qx
                        if not inside[q]:
                            continue
                        rb = _find(parent, q)
                        if ra == rb:
                            continue
                        lo = min(ra, rb)
                        hi = max(ra, rb)
                        ra = lo
                        parent[hi] = lo
                        x0[lo] = min(x0[lo], x0[hi])
                        y0[lo] = min(y0[lo], y0[hi])
                        x1[lo] = max(x1[lo], x1[hi])
                        y1[lo] = max(y1[lo], y1[hi])
                        dirty[lo] = True
                if not needed[v] or regions_at[v] - euler[v] <= 0:
                    continue
                kept = 0
                best_hole = -1.0
                for i in range(n_alive):
                    r = alive[i]
                    if parent[r] != r:
                        continue
                    alive[kept] = r
                    kept += 1
                    if x0[r] == 0 or y0[r] == 0 or x1[r] == width - 1 or y1[r] == height - 1:
                        continue
                    if dirty[r]:
                        # a hole border runs through the foreground around the hole
                        root_iou[r] = _best_iou(
                            x0[r] - 1, y0[r] - 1, min(x1[r] + 2, width - 1),
                            min(y1[r] + 2, height - 1), gt, gvalid,
                        )
                        dirty[r] = False
                    if root_iou[r] > best_hole:
                        best_hole = root_iou[r]
                n_alive = kept
                if best_hole > lvl_any[v]:
                    lvl_any[v] = best_hole

    for i in range(cuts.shape[0]):
        out_largest[i] = lvl_largest[cuts[i]]
        out_any[i] = lvl_any[cuts[i]]
        if want_boxes:
            out_boxes[i] = lvl_box[cuts[i]]


def maps_to_uint8(maps: np.ndarray) -> np.ndarray:
    """``(B, H, W)`` float maps, min-max normalised, to uint8 (wsolevaluation's procedure).

    numpy in the maps' own dtype, ``m -= m.min(); m /= m.max(); trunc(m * 255)``, so the bytes
    equal those of ``boxes.scoremaps_to_uint8`` and of a per-image numpy loop; a map with a NaN or
    a constant map gives zeros. numpy releases the GIL here, so threads normalise in parallel.
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (B, H, W), got {maps.shape}")
    x = maps if maps.dtype in (np.float32, np.float64) else maps.astype(np.float32)
    out = np.zeros(x.shape, np.uint8)
    if x.size == 0:
        return out
    flat = x.reshape(x.shape[0], -1)
    lo = flat.min(axis=1)  # NaN where the map has a NaN
    shifted = flat - lo[:, None]
    span = shifted.max(axis=1)
    good = np.isfinite(span) & (span > 0)
    if good.all():
        shifted /= span[:, None]
        shifted *= x.dtype.type(255)
        return shifted.astype(np.uint8).reshape(x.shape)
    for b in np.flatnonzero(good):
        out[b] = ((shifted[b] / span[b]) * x.dtype.type(255)).astype(np.uint8).reshape(x.shape[1:])
    return out


def compiled_threshold_ious(
    u8: np.ndarray,
    cuts: np.ndarray,
    gt: np.ndarray,
    gvalid: np.ndarray,
    want_any: bool = True,
    want_boxes: bool = False,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-map, per-cut best IoUs of the largest region and (``want_any``) of every contour.

    Args:
        u8: ``(B, H, W)`` uint8 maps.
        cuts: ``(B, T)`` int64 levels in [0, 254] (``boxes.threshold_cuts``).
        gt: ``(B, G, 4)`` float64 ground-truth boxes.
        gvalid: ``(B, G)`` bool, False on padding rows.
        want_any: also compute MaxBoxAccV2's all-contour IoU (else the second output is zeros).
        want_boxes: also return the largest region's boxes.
        threads: Python threads the maps are split over (the kernel releases the GIL); 1 runs
            them in the calling thread. Safe to call from several threads at once.

    Returns:
        ``(iou_largest, iou_any, boxes)``: ``(B, T)`` float64 each, and ``(B, T, 4)`` int64
        ``[x0, y0, x1, y1]`` boxes (None without ``want_boxes``).
    """
    batch, num = cuts.shape
    out_largest = np.zeros((batch, num), np.float64)
    out_any = np.zeros((batch, num), np.float64)
    out_boxes = np.zeros((batch, num if want_boxes else 0, 4), np.int64)
    if batch == 0 or num == 0 or u8.shape[1] * u8.shape[2] == 0:
        return out_largest, out_any, (out_boxes if want_boxes else None)
    args = (
        np.ascontiguousarray(u8),
        np.ascontiguousarray(cuts, dtype=np.int64),
        np.ascontiguousarray(gt, dtype=np.float64),
        np.ascontiguousarray(gvalid, dtype=np.bool_),
    )
    flags = (bool(want_any), bool(want_boxes))
    outs = (out_largest, out_any, out_boxes)

    def run(sl: slice) -> None:
        # One compiled entry point, called per map: a compiled batch loop around it would be a
        # second kernel to compile (seconds) for a dispatch cost of microseconds per map.
        for b in range(sl.start, min(sl.stop, batch)):
            _map_ious(*(a[b] for a in args), *flags, *(o[b] for o in outs))

    threads = max(1, min(int(threads), batch))
    if threads == 1:
        run(slice(0, batch))
    else:
        # Small slices taken in turn balance cheap (smooth) and costly (noisy) maps.
        step = max(1, min(8, batch // (4 * threads)))
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, [slice(i, i + step) for i in range(0, batch, step)]))
    return out_largest, out_any, (out_boxes if want_boxes else None)


def cache_dir() -> str:
    """The folder numba caches this module's compiled code in."""
    return str(_map_ious._cache._cache_path)


def warm_up() -> float:
    """Compile (or load from the cache) the sweep's one signature; returns the seconds it took.

    ``make setup`` calls it (``python -m infocam_exp.evaluate --warm-up``), so the first real
    evaluation in a new environment loads the cache instead of compiling.
    """
    import time

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(1, 8, 8), dtype=np.uint8)
    compiled_threshold_ious(
        u8,
        np.arange(4, dtype=np.int64)[None, :],
        np.array([[[1.0, 1.0, 5.0, 5.0]]]),
        np.ones((1, 1), np.bool_),
        want_any=True,
        want_boxes=True,
    )
    return time.perf_counter() - start
