"""numba form of the level-sweep kernels of :mod:`infocam_exp.metrics._boxes_compiled`.

The fallback where no C compiler builds :mod:`infocam_exp.metrics._boxes_native` (and the form
``INFOCAM_BOX_KERNEL=numba`` selects): the same kernels, the same arguments, bit-identical
results. Compiled code is cached on disk (``cache=True``, where :func:`fallback_cache_dir` says);
with an empty cache :func:`warm_up` compiles the kernels in two processes at once."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

import numpy as np

from infocam_exp.metrics import _boxes_compiled
from infocam_exp.metrics._boxes_compiled import (
    _NUM_LEVELS,
    _RING,
    _STALE,
    _UNSCORED,
    _cache_candidates,
    _temp_cache,
    _Work,
    _writable,
)


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
    if any(writable(folder) for folder in _cache_candidates("numba", env, package_dir)):
        return None
    return _temp_cache("numba-cache")


_FALLBACK = fallback_cache_dir()
if _FALLBACK is not None:  # before the decorators below: they pick the cache folder
    import numba.core.config

    numba.core.config.CACHE_DIR = str(_FALLBACK)

from numba import njit  # noqa: E402


@njit(cache=True, nogil=True)
def _find(parent, x):
    while parent[x] != x:  # path halving
        grand = parent[parent[x]]
        parent[x] = grand
        x = grand
    return x


@njit(cache=True, nogil=True)
def _best_iou(a0, a1, a2, a3, gt, gvalid):
    """Best IoU (+1 pixel convention, clamped) of the box ``[a0, a1, a2, a3]`` (floats) over the
    valid ground-truth rows.

    The float64 operations are those of ``boxes.box_iou`` in the same order, so the result is
    bit-identical to the torch path.
    """
    best = -1.0
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
def _cover(a0, a1, a2, a3, gt, gvalid):
    """The largest share of a valid ground-truth box that the box ``[a0, a1, a2, a3]`` covers:
    no box inside it has a higher IoU (its intersection is no larger, its union no smaller than
    the ground truth), with the +1 pixel convention and float64 operations of :func:`_best_iou`.
    """
    best = 0.0
    for g in range(gt.shape[0]):
        if not gvalid[g]:
            continue
        iw = min(a2, gt[g, 2]) - max(a0, gt[g, 0]) + 1.0
        ih = min(a3, gt[g, 3]) - max(a1, gt[g, 1]) + 1.0
        if iw <= 0.0 or ih <= 0.0:
            continue
        area_b = (gt[g, 2] - gt[g, 0] + 1.0) * (gt[g, 3] - gt[g, 1] + 1.0)
        share = (iw * ih) / area_b if area_b > 0.0 else 1.0
        if share > best:
            best = share
    return best


@njit(cache=True, nogil=True)
def _fill_holes(val, stride, height, width, filled, order, count, depressions, head, nxt, seen):
    """Grey-level hole filling by a priority flood from the image border (4-connected).

    ``filled[p]`` is the lowest level t at which p joins the background that touches the border:
    the smallest, over 4-connected paths from outside the image to p, of the largest value on the
    path. So p lies in a hole of ``val > t`` exactly for ``val[p] <= t < filled[p]``, and
    ``filled > t`` is the union of the outer regions of ``val > t`` with their holes filled.
    Pixels leave the bucket queue in rising ``filled`` order; ``order`` receives them falling
    (``count[v]`` of them at level v), ``depressions`` the pixels with ``filled > val``.
    Returns the number of those. ``head`` (one entry per level), ``nxt`` and ``seen`` (one per
    pixel of the framed map) are scratch.
    """
    for v in range(_NUM_LEVELS):
        head[v] = -1
    for y in range(height + 2):  # the frame is outside
        for x in range(width + 2):
            seen[y * stride + x] = y == 0 or x == 0 or y == height + 1 or x == width + 1
    for y in range(1, height + 1):
        for x in range(1, width + 1):
            if y == 1 or x == 1 or y == height or x == width:
                p = y * stride + x
                seen[p] = 1
                level = val[p]
                filled[p] = level
                nxt[p] = head[level]
                head[level] = p
    n = height * width
    done = 0
    n_dep = 0
    for level in range(_NUM_LEVELS):
        while head[level] >= 0:
            p = head[level]
            head[level] = nxt[p]
            done += 1
            order[n - done] = p
            count[level] += 1
            for j in range(4):
                q = p + (-stride if j == 0 else (stride if j == 1 else (-1 if j == 2 else 1)))
                if seen[q]:
                    continue
                seen[q] = 1
                w = val[q]
                if w < level:
                    filled[q] = level
                    depressions[n_dep] = q
                    n_dep += 1
                    nxt[q] = head[level]
                    head[level] = q
                else:
                    filled[q] = w
                    nxt[q] = head[w]
                    head[w] = q
    return n_dep


@njit(cache=True, nogil=True)
def _sort_levels(val, stride, height, width, order, count, start):
    """The map's pixels by falling value, raster order within a value (a counting sort):
    ``order`` and ``count[v]`` per value; ``start`` (one entry per level) is scratch."""
    for v in range(_NUM_LEVELS):
        count[v] = 0
    for y in range(1, height + 1):
        for x in range(1, width + 1):
            count[val[y * stride + x]] += 1
    acc = 0
    for v in range(_NUM_LEVELS - 1, -1, -1):
        start[v] = acc
        acc += count[v]
    for y in range(1, height + 1):
        for x in range(1, width + 1):
            p = y * stride + x
            v = val[p]
            k = start[v]
            order[k] = p
            start[v] = k + 1


@njit(cache=True, nogil=True)
def _merge(parent, box, lo, hi):
    """Root ``hi`` joins root ``lo`` (the raster-first pixel stays the root); boxes merge."""
    parent[hi] = lo
    box[lo, 0] = min(box[lo, 0], box[hi, 0])
    box[lo, 1] = min(box[lo, 1], box[hi, 1])
    box[lo, 2] = max(box[lo, 2], box[hi, 2])
    box[lo, 3] = max(box[lo, 3], box[hi, 3])


@njit(cache=True, nogil=True)
def _new_root(parent, box, p, px, py):
    """Pixel ``p`` at ``(px, py)`` starts a region of its own."""
    parent[p] = p
    box[p, 0] = px
    box[p, 1] = py
    box[p, 2] = px
    box[p, 3] = py


@njit(cache=True, nogil=True)
def _take_root(parent, box, slot, alive, root, p, px, py):
    """Pixel ``p``, raster-before its region's ``root``, becomes the root (the raster-first pixel
    is OpenCV's contour start): it takes the region's box, grown by itself, and its live-list
    place."""
    parent[root] = p
    parent[p] = p
    box[p, 0] = min(box[root, 0], px)
    box[p, 1] = min(box[root, 1], py)
    box[p, 2] = max(box[root, 2], px)
    box[p, 3] = max(box[root, 3], py)
    i = slot[root]
    alive[i] = p
    slot[p] = i


@njit(cache=True, nogil=True)
def _join(parent, box, root, p, px, py):
    """Pixel ``p``, raster-after its region's ``root``, joins it; returns whether the box grew
    (``py`` cannot be above the root's row)."""
    parent[p] = root
    grew = False
    if px < box[root, 0]:
        box[root, 0] = px
        grew = True
    elif px > box[root, 2]:
        box[root, 2] = px
        grew = True
    if py > box[root, 3]:
        box[root, 3] = py
        grew = True
    return grew


@njit(cache=True, nogil=True)
def _drop(hi, slot, alive, alive_iou, n_alive):
    """Remove root ``hi`` from the live list (the last entry takes its place); returns the new
    length."""
    i = slot[hi]
    n_alive -= 1
    last = alive[n_alive]
    alive[i] = last
    alive_iou[i, 0] = alive_iou[n_alive, 0]
    alive_iou[i, 1] = alive_iou[n_alive, 1]
    alive_iou[i, 2] = alive_iou[n_alive, 2]
    slot[last] = i
    return n_alive


@njit(cache=True, nogil=True)
def _sweep_down(
    val, order, count, entered, offs, stride, height, width, needed, track_area, track_any,
    stop_at_hole, gt, gvalid, empty_iou, ring, parent, box, area2, slot, alive, alive_iou,
    lvl_largest, lvl_box, lvl_any,
):
    """Falling sweep: pixels enter in ``order`` (``count[v]`` at value v, from 255 down to 1;
    ``entered`` marks them; ``offs[mask]`` holds the offsets of the first neighbour of each
    group that ``ring[mask]`` lists, so no second lookup is needed), merging
    8-connected regions in a union-find whose
    root is each region's raster-first pixel. Each root keeps its box and (``track_area``) its
    contour area in half units; the live roots sit in ``alive`` (``slot[r]`` is r's place) with,
    for ``track_any``, their box's best IoU beside them in ``alive_iou``, recomputed only when the
    box grows. After the pixels of value v, level ``t = v - 1`` is read where ``needed``:
    ``track_area`` writes the largest region's box and IoU (``lvl_box``, ``lvl_largest``),
    ``track_any`` the best IoU of any region (``lvl_any``). With ``stop_at_hole`` it returns
    True at the first needed level with a hole (fewer holes than regions minus the Euler number,
    kept as a running sum), leaving the outputs incomplete; otherwise it returns False. ``val``
    is unused.
    """
    for i in range(entered.shape[0]):
        entered[i] = 0
    xmax = width - 1
    ymax = height - 1
    n_alive = np.int64(0)  # not a literal: a literal would compile _drop twice
    best_root = -1
    best_area = -1
    rescan = False
    changed = False
    euler4 = 0
    last_largest = empty_iou
    last_any = empty_iou
    b0 = 0
    b1 = 0
    b2 = 0
    b3 = 0
    k = 0
    for v in range(_NUM_LEVELS - 1, 0, -1):
        end = k + count[v]
        if end > k:
            changed = True
        while k < end:
            p = order[k]
            mask = (
                np.int64(entered[p - stride - 1])
                | (np.int64(entered[p - stride]) << 1)
                | (np.int64(entered[p - stride + 1]) << 2)
                | (np.int64(entered[p + 1]) << 3)
                | (np.int64(entered[p + stride + 1]) << 4)
                | (np.int64(entered[p + stride]) << 5)
                | (np.int64(entered[p + stride - 1]) << 6)
                | (np.int64(entered[p - 1]) << 7)
            )
            entered[p] = 1
            py = p // stride - 1
            px = p - (py + 1) * stride - 1
            runs = ring[mask, 0]
            grown = True
            if runs == 0:
                root = p
                _new_root(parent, box, np.int64(p), px, py)
                area2[p] = 0
                slot[p] = n_alive
                alive[n_alive] = p
                n_alive += 1
            else:
                root = _find(parent, p + offs[mask, 0])
                for j in range(1, runs):
                    rb = _find(parent, p + offs[mask, j])
                    if rb == root:
                        continue
                    lo = min(root, rb)
                    hi = max(root, rb)
                    _merge(parent, box, lo, hi)
                    area2[lo] += area2[hi]
                    n_alive = _drop(np.int64(hi), slot, alive, alive_iou, n_alive)
                    root = lo
                if p < root:
                    _take_root(parent, box, slot, alive, np.int64(root), np.int64(p), px, py)
                    area2[p] = area2[root]
                    root = p
                else:
                    extended = _join(parent, box, np.int64(root), np.int64(p), px, py)
                    grown = extended or runs > 1
            if grown:
                alive_iou[slot[root], 0] = _STALE
            euler4 += ring[mask, 6]
            if track_area:
                area2[root] += ring[mask, 5]
                a = area2[root]
                if best_root >= 0 and parent[best_root] != best_root:
                    # the leader was merged into this region, which is at least as large
                    if a == best_area:
                        rescan = True  # another region may tie it with a later first pixel
                    best_root = root
                    best_area = a
                elif a > best_area or (a == best_area and root > best_root):
                    best_root = root
                    best_area = a
            k += 1
        t = v - 1
        if not needed[t]:
            continue
        if stop_at_hole and 4 * n_alive > euler4:
            return True  # regions minus the Euler number: this level has a hole
        if changed:
            if rescan:
                best_area = -1
                best_root = -1
                for i in range(n_alive):
                    r = alive[i]
                    if area2[r] > best_area or (area2[r] == best_area and r > best_root):
                        best_area = area2[r]
                        best_root = r
                rescan = False
            if track_any and n_alive:
                best_any = -1.0
                for i in range(n_alive):
                    if alive_iou[i, 0] == _STALE:
                        r = alive[i]
                        alive_iou[i, 0] = _best_iou(
                            float(box[r, 0]), float(box[r, 1]), float(min(box[r, 2] + 1, xmax)),
                            float(min(box[r, 3] + 1, ymax)), gt, gvalid,
                        )
                    if alive_iou[i, 0] > best_any:
                        best_any = alive_iou[i, 0]
                last_any = best_any
            if track_area and best_root >= 0:
                r = best_root
                b0 = box[r, 0]
                b1 = box[r, 1]
                b2 = min(box[r, 2] + 1, xmax)
                b3 = min(box[r, 3] + 1, ymax)
                last_largest = _best_iou(float(b0), float(b1), float(b2), float(b3), gt, gvalid)
            changed = False
        if track_area:
            lvl_largest[t] = last_largest
            lvl_box[t, 0] = b0
            lvl_box[t, 1] = b1
            lvl_box[t, 2] = b2
            lvl_box[t, 3] = b3
        if track_any:
            lvl_any[t] = last_any
    return False


@njit(cache=True, nogil=True)
def _sweep_holes(
    val, filled, depressions, n_dep, stride, height, width, needed, gt, gvalid,
    parent, box, slot, alive, alive_iou, floor, lvl_hole, lvl_cover, count, order, entered,
):
    """Rising sweep over the pixels that are ever in a hole (``filled > val``): at level t the
    holes of ``val > t`` are the 4-connected regions of ``val <= t < filled``, and a hole leaves
    whole when it joins the outer background at ``t = filled``. At each needed level it writes
    the best IoU of a hole border's box (the hole's box grown by a pixel) to ``lvl_hole`` and the
    best :func:`_cover` of those boxes to ``lvl_cover``: a bound on the IoU of any region inside
    a hole (an island), whose box lies in the hole border's box. Both stay -1 without holes.
    Holes whose box is too small to beat ``floor[t]`` (the regions' best IoU at level t) are not
    scored, so both outputs are exact only where they exceed the floor, which is all that
    MaxBoxAccV2 and the island test need. ``count``, ``order`` and ``entered`` are scratch."""
    for v in range(_NUM_LEVELS + 1):
        count[v] = 0
    for i in range(n_dep):
        count[val[depressions[i]] + 1] += 1
    for v in range(_NUM_LEVELS):
        count[v + 1] += count[v]
    for i in range(n_dep):
        p = depressions[i]
        order[count[val[p]]] = p
        count[val[p]] += 1
    for i in range(entered.shape[0]):
        entered[i] = 0
    min_area = np.inf
    for g in range(gt.shape[0]):
        if gvalid[g]:
            min_area = min(min_area, (gt[g, 2] - gt[g, 0] + 1.0) * (gt[g, 3] - gt[g, 1] + 1.0))
    if not min_area > 0.0:
        min_area = 0.0  # a degenerate box: no bound
    xmax = width - 1
    ymax = height - 1
    n_alive = np.int64(0)  # not a literal: a literal would compile _drop twice
    k = 0
    for v in range(_NUM_LEVELS - 1):  # level t = v: the background is val <= t
        while k < n_dep and val[order[k]] == v:
            p = order[k]
            k += 1
            entered[p] = 1
            py = p // stride - 1
            px = p - (py + 1) * stride - 1
            root = -1
            grown = False
            for j in range(4):
                q = p + (-stride if j == 0 else (stride if j == 1 else (-1 if j == 2 else 1)))
                if not entered[q] or q == p:
                    continue
                rb = _find(parent, q)
                if root < 0:
                    root = rb
                    continue
                if rb == root:
                    continue
                lo = min(root, rb)
                hi = max(root, rb)
                _merge(parent, box, lo, hi)
                n_alive = _drop(np.int64(hi), slot, alive, alive_iou, n_alive)
                root = lo
                grown = True
            if root < 0:
                root = p
                _new_root(parent, box, np.int64(p), px, py)
                slot[p] = n_alive
                alive[n_alive] = p
                alive_iou[n_alive, 2] = filled[p]  # the level it joins the outer background
                n_alive += 1
                grown = True
            elif p < root:
                _take_root(parent, box, slot, alive, np.int64(root), np.int64(p), px, py)
                root = p
                grown = True
            else:
                extended = _join(parent, box, np.int64(root), np.int64(p), px, py)
                grown = grown or extended
            if grown:
                alive_iou[slot[root], 0] = _STALE
        if not needed[v] or n_alive == 0:
            continue
        best_hole = -1.0
        best_cover = -1.0
        # a box of area a has IoU and cover <= a / (smallest ground-truth area): smaller boxes
        # cannot beat floor[v] (with a margin for rounding) and are left unscored
        smallest = floor[v] * min_area * 0.999999
        i = 0
        while i < n_alive:
            if alive_iou[i, 2] <= v:  # joined the outer background: gone for good
                n_alive = _drop(np.int64(alive[i]), slot, alive, alive_iou, n_alive)
                continue
            if alive_iou[i, 0] == _STALE:  # the box grew: only its area, for now
                r = alive[i]
                area = float(min(box[r, 2] + 2, xmax) - box[r, 0] + 2) * float(
                    min(box[r, 3] + 2, ymax) - box[r, 1] + 2
                )
                alive_iou[i, 0] = _UNSCORED
                alive_iou[i, 1] = area
            if alive_iou[i, 0] == _UNSCORED:
                if alive_iou[i, 1] < smallest:
                    i += 1
                    continue
                r = alive[i]
                # a hole border runs through the foreground around the hole
                e0 = float(box[r, 0] - 1)
                e1 = float(box[r, 1] - 1)
                e2 = float(min(box[r, 2] + 2, xmax))
                e3 = float(min(box[r, 3] + 2, ymax))
                alive_iou[i, 0] = _best_iou(e0, e1, e2, e3, gt, gvalid)
                alive_iou[i, 1] = _cover(e0, e1, e2, e3, gt, gvalid)
            if alive_iou[i, 0] > best_hole:
                best_hole = alive_iou[i, 0]
            if alive_iou[i, 1] > best_cover:
                best_cover = alive_iou[i, 1]
            i += 1
        lvl_hole[v] = best_hole
        lvl_cover[v] = best_cover



class Kernels:
    """The numba kernels behind :class:`~infocam_exp.metrics._boxes_compiled._Work`'s methods."""

    name = "numba"

    @staticmethod
    def empty_iou(gt, gvalid) -> float:
        return _best_iou(0.0, 0.0, 0.0, 0.0, gt, gvalid)

    @staticmethod
    def sort(w: _Work) -> None:
        _sort_levels(w.val, w.stride, w.height, w.width, w.order, w.count, w.scratch)

    @staticmethod
    def fill(w: _Work) -> int:
        return _fill_holes(
            w.val, w.stride, w.height, w.width, w.filled, w.order, w.count, w.depressions,
            w.scratch, w.parent, w.flags,
        )

    @staticmethod
    def down(w: _Work, track_area, track_any, stop_at_hole, gt, gvalid, empty_iou) -> bool:
        return _sweep_down(
            w.val, w.order, w.count, w.flags, w.offs, w.stride, w.height, w.width, w.needed,
            track_area, track_any, stop_at_hole, gt, gvalid, empty_iou, _RING, w.parent, w.box,
            w.area2, w.slot, w.alive, w.alive_iou, w.levels[0], w.lvl_box, w.levels[1],
        )

    @staticmethod
    def holes(w: _Work, n_dep, gt, gvalid) -> None:
        _sweep_holes(
            w.val, w.filled, w.depressions, n_dep, w.stride, w.height, w.width, w.needed, gt,
            gvalid, w.parent, w.box, w.slot, w.alive, w.alive_iou, w.levels[1], w.levels[2],
            w.levels[3], w.scratch, w.order, w.flags,
        )


    @staticmethod
    def location() -> str:
        return cache_dir()


KERNELS = Kernels()


def cache_dir() -> str:
    """The folder numba caches this module's compiled code in."""
    return str(_sweep_down._cache._cache_path)


def _tiny_work() -> _Work:
    """A workspace holding a 6 x 6 map with a hole, every level needed (compiles the kernels
    for the argument types :func:`_map_ious` passes)."""
    return _Work.tiny(KERNELS)


_TINY_GT = (np.array([[1.0, 1.0, 4.0, 4.0]]), np.ones(1, np.bool_))


def _compile_holes() -> None:
    """Compile (or load) :func:`_sweep_holes`."""
    w = _tiny_work()
    hole = np.flatnonzero(w.val == 50).astype(np.int32)
    w.filled[:] = w.val
    w.filled[hole] = 200
    w.depressions[: hole.size] = hole
    w.holes(hole.size, *_TINY_GT)


def _compile_down() -> None:
    """Compile (or load) :func:`_fill_holes`, :func:`_sort_levels` and :func:`_sweep_down`."""
    w = _tiny_work()
    w.fill()
    w.sort()
    w.down(True, True, False, *_TINY_GT, 0.0)


def _cache_is_warm() -> bool:
    """Whether numba's cache already holds the kernels for this source (best effort)."""
    try:
        return all(
            bool(f._cache._cache_file._load_index()) for f in (_sweep_down, _sweep_holes, _fill_holes)
        )
    except Exception:  # numba internals: when unsure, act as if cold
        return False


@contextlib.contextmanager
def _without_blas_probe():
    """While numba loads its numpy support it probes for SciPy's BLAS, importing
    ``scipy.linalg`` (about 0.2 s); the sweep uses no BLAS, so, where ``scipy.linalg`` is not
    imported yet and no other thread runs (one could be importing it), the probe finds none.
    Afterwards it imports as usual (numba's ``np.dot`` looks for it again when compiled)."""
    blocked = "scipy.linalg" not in sys.modules and threading.active_count() == 1
    if blocked:
        sys.modules["scipy.linalg"] = None  # import scipy.linalg... raises ImportError
    try:
        yield
    finally:
        if blocked and sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]


def warm_up(parallel: bool | None = None) -> float:
    """Compile (or load from the cache) the numba kernels; returns the seconds it took.

    :func:`infocam_exp.metrics._boxes_compiled.warm_up` calls it when these kernels are the ones
    in use (``make setup`` and the evaluate CLI call that). With an empty cache (``parallel`` None: detected) a forked child
    compiles the hole kernels into the cache while this process compiles the falling sweep, then
    the entry point is compiled here, loading both from the cache: numba compiles one function at
    a time per process, so this uses a second core for the first call of a fresh install. Where
    ``os.fork`` is missing or not Linux's, or the child fails, everything compiles here.
    """
    import time

    start = time.perf_counter()
    with _without_blas_probe():
        _warm_up(parallel)
    return time.perf_counter() - start


def _warm_up(parallel: bool | None) -> None:
    if parallel is None:
        parallel = not _cache_is_warm()
    child = 0
    if parallel and sys.platform.startswith("linux") and hasattr(os, "fork"):
        child = os.fork()
        if child == 0:  # the child: compile, write the cache, leave without Python's cleanup
            code = 1
            try:
                _compile_holes()
                code = 0
            finally:
                os._exit(code)
    if child:
        _compile_down()
        os.waitpid(child, 0)  # whatever the child managed is in the cache; the rest compiles here
    else:
        _compile_down()
        _compile_holes()
    # the glue on a map with a hole at a read level: every kernel runs
    _boxes_compiled.exercise(_tiny_work())
