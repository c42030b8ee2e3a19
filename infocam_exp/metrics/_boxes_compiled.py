"""Compiled (numba) CPU form of the level sweep in :mod:`infocam_exp.metrics.boxes`.

Same semantics as the torch sweep there (read that module's docstring), computed differently:

- **One sweep for most maps.** The map's pixels enter in falling uint8 value (a counting sort,
  raster order within a value) and 8-connected regions merge in a union-find whose root is each
  region's raster-first pixel; every root keeps its box and its contour area in half units (the
  2x2-window rule). For each entering pixel one 8-bit mask of already-entered neighbours indexes
  a table (:func:`_ring_table`) that gives the unions to make (one per group of neighbours that
  already touch), the contour-area gain and the change of the Euler number. Regions minus the
  Euler number count the holes at each level, so the sweep knows, level by level, whether its
  answers hold: without a hole at a read level the largest region by window area is OpenCV's
  largest contour, and the regions' boxes are all the contours. (:func:`_sweep_down`)
- **Maps with a hole at a read level** (noisy maps; 1-6% of smooth ones) stop there and take
  three passes. (1) Grey-level hole filling by a priority flood from the border
  (:func:`_fill_holes`): ``filled[p]`` is the lowest level at which p joins the outer
  background. The regions of ``filled > t`` are the outer regions of ``u8 > t`` with their holes
  (and whatever is inside them) filled in, so their window areas are OpenCV's outer-contour
  areas and the largest one is OpenCV's largest contour; their boxes are those regions' boxes.
  (2) The holes at level t are the 4-connected regions of ``u8 <= t < filled``: a rising sweep
  over those pixels alone scores each hole border's box (:func:`_sweep_holes`). (3) Regions
  inside holes (islands) are missing from (1); a hole's border box bounds the IoU of anything
  inside it, so the map itself is swept again only when that bound beats every other contour
  at some read level.
- **Speed.** Per map the kernels release the GIL (``nogil``), so Python threads split a batch;
  a region's IoU is computed only at read levels and only after its box grew, a hole's only
  where its box could beat the regions' best; each thread keeps its work arrays from map to map
  (:class:`_Work`); the glue between kernels is numpy (:func:`_map_ious`). Compiled code is
  cached on disk (``cache=True``, where :func:`fallback_cache_dir` says); with an empty cache
  :func:`warm_up` compiles the kernels in two processes at once.

Everything here works on plain numpy arrays; :func:`infocam_exp.metrics.boxes.batched_threshold_ious`
is the public entry point."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
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
_STALE = -2.0  # a live region's cached IoU after its box grew (IoUs lie in [0, 1])
_UNSCORED = -3.0  # a hole's cached IoU while only its box area is known


def _ring_table() -> np.ndarray:
    """Per 8-bit mask of entered neighbours (ring order NW, N, NE, E, SE, S, SW, W): the number of
    groups of them that are 8-connected among themselves, one ring position in each group, the
    contour-area gain, and the change of 4 x the Euler number of the 8-connected foreground.

    Entered neighbours next to each other on the ring are 8-adjacent, and so are two edge
    neighbours around a corner (N and W, N and E, ...): such neighbours already share a region,
    so one union per group is enough, and two groups found in the same region mean the entering
    pixel closes a loop around background. The four 2x2 windows around a pixel are it plus ring
    positions (7, 0, 1), (1, 2, 3), (3, 4, 5), (5, 6, 7); a window gains half a unit of contour
    area when its third corner enters and half when its fourth does, i.e. when the entering
    pixel finds two or three of the other corners already in.
    """
    links = [(i, (i + 1) % 8) for i in range(8)] + [(1, 3), (3, 5), (5, 7), (7, 1)]
    # the four windows as (top-left, top-right, bottom-left, bottom-right); -1 is the pixel
    windows = ((0, 1, 7, -1), (1, 2, -1, 3), (-1, 3, 5, 4), (7, -1, 6, 5))

    def quad(tl: int, tr: int, bl: int, br: int) -> int:
        # Gray's bit-quad term of one window in 4 x (8-connected Euler number)
        k = tl + tr + bl + br
        if k == 1:
            return 1
        if k == 3:
            return -1
        if k == 2 and tl == br:
            return -2
        return 0

    def top(group: list[int], i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    table = np.zeros((_NUM_LEVELS, 7), np.int32)
    for mask in range(_NUM_LEVELS):
        bits = [(mask >> i) & 1 for i in range(8)]
        group = list(range(8))
        for i, j in links:
            if bits[i] and bits[j]:
                a, b = top(group, i), top(group, j)
                group[max(a, b)] = min(a, b)
        firsts = sorted({top(group, i) for i in range(8) if bits[i]})
        table[mask, 0] = len(firsts)
        table[mask, 1 : 1 + len(firsts)] = firsts
        table[mask, 5] = sum(
            bits[a] + bits[b] + bits[c] >= 2 for a, b, c in ((7, 0, 1), (1, 2, 3), (3, 4, 5), (5, 6, 7))
        )
        for corners in windows:
            before = [0 if c < 0 else bits[c] for c in corners]
            after = [1 if c < 0 else bits[c] for c in corners]
            table[mask, 6] += quad(*after) - quad(*before)
    return table


_RING = _ring_table()


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
    ``entered`` marks them, ``offs`` holds the 8 neighbour offsets in ring order), merging
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
                root = _find(parent, p + offs[ring[mask, 1]])
                for j in range(2, runs + 1):
                    rb = _find(parent, p + offs[ring[mask, j]])
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


class _Work:
    """One map shape's work arrays for the kernels, kept per thread and reused map after map
    (fresh arrays of a few MB per map cost page faults and cache misses). Every kernel writes
    an entry before it reads it, except the frame of ``val`` and ``filled``, which stays zero."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.stride = stride = width + 2
        size = (height + 2) * stride
        n = height * width
        self.val = np.zeros(size, np.uint8)  # the map inside a frame of zeros (never foreground)
        self.inner = self.val.reshape(height + 2, stride)[1:-1, 1:-1]
        self.filled = np.zeros(size, np.uint8)
        self.order = np.empty(n, np.int32)
        self.count = np.zeros(_NUM_LEVELS, np.int64)
        self.depressions = np.empty(n, np.int32)
        self.flags = np.empty(size, np.uint8)  # entered / seen pixels
        self.scratch = np.empty(_NUM_LEVELS + 1, np.int64)  # per-level counters
        self.offs = np.array([-stride - 1, -stride, -stride + 1, 1, stride + 1, stride, stride - 1, -1])
        self.parent = np.empty(size, np.int32)
        self.box = np.empty((size, 4), np.int32)
        self.area2 = np.empty(size, np.int32)
        self.slot = np.empty(size, np.int32)
        self.alive = np.empty(n, np.int32)
        self.alive_iou = np.empty((n, 3), np.float64)
        self.needed = np.zeros(_NUM_LEVELS, np.bool_)
        self.levels = np.empty((4, _NUM_LEVELS), np.float64)  # largest, any, hole, cover
        self.lvl_box = np.zeros((_NUM_LEVELS, 4), np.int64)

    def sort(self) -> None:
        """:func:`_sort_levels` of ``val``."""
        _sort_levels(self.val, self.stride, self.height, self.width, self.order, self.count, self.scratch)

    def fill(self) -> int:
        """:func:`_fill_holes` of ``val`` into ``filled`` (``order`` and ``count`` follow it)."""
        self.count[:] = 0
        return _fill_holes(
            self.val, self.stride, self.height, self.width, self.filled, self.order, self.count,
            self.depressions, self.scratch, self.parent, self.flags,
        )

    def down(self, track_area, track_any, stop_at_hole, gt, gvalid, empty_iou) -> bool:
        """:func:`_sweep_down` in ``order``, into ``levels[0]``, ``lvl_box`` and ``levels[1]``."""
        return _sweep_down(
            self.val, self.order, self.count, self.flags, self.offs, self.stride, self.height,
            self.width, self.needed, track_area, track_any, stop_at_hole, gt, gvalid, empty_iou,
            _RING, self.parent, self.box, self.area2, self.slot, self.alive, self.alive_iou,
            self.levels[0], self.lvl_box, self.levels[1],
        )

    def holes(self, n_dep, gt, gvalid) -> None:
        """:func:`_sweep_holes` over the first ``n_dep`` depressions, above the floor
        ``levels[1]``, into ``levels[2]`` and ``levels[3]``."""
        _sweep_holes(
            self.val, self.filled, self.depressions, n_dep, self.stride, self.height, self.width,
            self.needed, gt, gvalid, self.parent, self.box, self.slot, self.alive, self.alive_iou,
            self.levels[1], self.levels[2], self.levels[3], self.scratch, self.order, self.flags,
        )


_LOCAL = threading.local()


_KEEP_PIXELS = 1 << 20  # larger maps' work arrays (over 60 MB) are not kept


def _workspace(height: int, width: int) -> _Work:
    """This thread's :class:`_Work` for the shape (the last shape's is kept, up to
    ``_KEEP_PIXELS`` pixels)."""
    work = getattr(_LOCAL, "work", None)
    if work is None or work.height != height or work.width != width:
        work = _Work(height, width)
        _LOCAL.work = work if height * width <= _KEEP_PIXELS else None
    return work


def _map_ious(u8, cuts, gt, gvalid, want_any, want_boxes, out_largest, out_any, out_boxes):
    """One map: best IoU of the largest region (and of every contour) at each cut in ``cuts``;
    with ``want_boxes`` also the largest region's box (``[0, 0, 0, 0]`` for an empty mask).

    The largest region by OpenCV's outer-contour area (holes included) is the largest region of
    the hole-filled map (:func:`_fill_holes`), whose contour area needs no holes; the same sweep
    gives the box of every region not inside a hole. Holes come from :func:`_sweep_holes`; the
    regions inside holes (islands) need a sweep of the map itself, run only when a hole's box
    could hold a box that beats every other contour at some level. The glue is numpy in Python
    (tens of microseconds a map): the compiled kernels are what a fresh install compiles, and
    numba compiles a large entry point slowly.
    """
    w = _workspace(*u8.shape)
    w.inner[...] = u8
    w.needed[:] = False
    w.needed[cuts] = True
    empty_iou = _best_iou(0.0, 0.0, 0.0, 0.0, gt, gvalid)
    w.levels[...] = empty_iou
    w.lvl_box[...] = 0
    want_any = bool(want_any)
    # Most maps never have a hole at a needed level: one sweep of the map itself does, stopped
    # at the first level with a hole.
    w.sort()
    n_dep = 0
    if w.down(True, want_any, True, gt, gvalid, empty_iou):
        n_dep = w.fill()
        w.down(True, want_any, False, gt, gvalid, empty_iou)
    if want_any and n_dep > 0:
        w.levels[2:] = -1.0
        # holes scored only where they could beat the regions of the filled map (levels[1])
        w.holes(n_dep, gt, gvalid)
        levels = w.levels
        if (w.needed & (levels[3] > np.maximum(levels[1], levels[2]))).any():
            # a region inside a hole might beat every other contour: sweep the map itself
            w.sort()
            w.down(False, True, False, gt, gvalid, empty_iou)
        np.maximum(levels[1], levels[2], out=levels[1])
    out_largest[:] = w.levels[0, cuts]
    out_any[:] = w.levels[1, cuts]
    if want_boxes:
        out_boxes[:] = w.lvl_box[cuts]


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
    with np.errstate(invalid="ignore"):  # inf - inf
        # max(m - min) is fl(max - min) (rounding is monotone): no shifted copy needed for it
        span = flat.max(axis=1) - lo
    good = np.isfinite(span) & (span > 0)
    if good.all():
        shifted = flat - lo[:, None]
        shifted /= span[:, None]
        shifted *= x.dtype.type(255)
        return shifted.astype(np.uint8).reshape(x.shape)
    for b in np.flatnonzero(good):
        m = ((flat[b] - lo[b]) / span[b]) * x.dtype.type(255)
        out[b] = m.astype(np.uint8).reshape(x.shape[1:])
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
    return str(_sweep_down._cache._cache_path)


def _tiny_work() -> _Work:
    """A workspace holding a 6 x 6 map with a hole, every level needed (compiles the kernels
    for the argument types :func:`_map_ious` passes)."""
    w = _Work(6, 6)
    w.inner[1:5, 1:5] = 200
    w.inner[2:4, 2:4] = 50
    w.needed[:] = True
    return w


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
    """Compile (or load from the cache) the sweep; returns the seconds it took.

    ``make setup`` calls it (``python -m infocam_exp.evaluate --warm-up``), so the first real
    evaluation in a new environment loads the cache instead of compiling; the evaluate CLI calls
    it before reading any map. With an empty cache (``parallel`` None: detected) a forked child
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
    # the entry point on a map with a hole at a read level: every kernel runs
    compiled_threshold_ious(
        _tiny_work().inner[None].copy(),
        np.array([[0, 100, 200]], dtype=np.int64),
        np.array([[[1.0, 1.0, 5.0, 5.0]]]),
        np.ones((1, 1), np.bool_),
        want_any=True,
        want_boxes=True,
    )
