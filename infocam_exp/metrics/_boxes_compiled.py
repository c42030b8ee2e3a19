"""Compiled CPU form of the level sweep in :mod:`infocam_exp.metrics.boxes`: the glue, and the
choice of kernels.

The kernels exist twice, with the same arguments and bit-identical results: in C
(:mod:`infocam_exp.metrics._boxes_native`, built by the system's C compiler on first use in a
fraction of a second) and in numba (:mod:`infocam_exp.metrics._boxes_numba`, seconds of
compilation on a fresh install; the fallback where no C compiler builds the C form).
:func:`select_kernels` chooses (``INFOCAM_BOX_KERNEL``: ``auto``, ``c`` or ``numba``). The names
``sort_levels``, ``fill_holes``, ``sweep_down`` and ``sweep_holes`` below are those kernels.

Same semantics as the torch sweep there (read that module's docstring), computed differently:

- **One sweep for most maps.** The map's pixels enter in falling uint8 value (a counting sort,
  raster order within a value) and 8-connected regions merge in a union-find whose root is each
  region's raster-first pixel; every root keeps its box and its contour area in half units (the
  2x2-window rule). For each entering pixel one 8-bit mask of already-entered neighbours indexes
  a table (:func:`_ring_table`) that gives the unions to make (one per group of neighbours that
  already touch), the contour-area gain and the change of the Euler number. Regions minus the
  Euler number count the holes at each level, so the sweep knows, level by level, whether its
  answers hold: without a hole at a read level the largest region by window area is OpenCV's
  largest contour, and the regions' boxes are all the contours. (``sweep_down``)
- **Maps with a hole at a read level** (noisy maps; 1-6% of smooth ones) stop there and take
  three passes. (1) Grey-level hole filling by a priority flood from the border
  (``fill_holes``): ``filled[p]`` is the lowest level at which p joins the outer
  background. The regions of ``filled > t`` are the outer regions of ``u8 > t`` with their holes
  (and whatever is inside them) filled in, so their window areas are OpenCV's outer-contour
  areas and the largest one is OpenCV's largest contour; their boxes are those regions' boxes.
  (2) The holes at level t are the 4-connected regions of ``u8 <= t < filled``: a rising sweep
  over those pixels alone scores each hole border's box (``sweep_holes``). (3) Regions
  inside holes (islands) are missing from (1); a hole's border box bounds the IoU of anything
  inside it, so the map itself is swept again only when that bound beats every other contour
  at some read level.
- **Speed.** Per map the kernels release the GIL, so Python threads split a batch;
  a region's IoU is computed only at read levels and only after its box grew, a hole's only
  where its box could beat the regions' best; each thread keeps its work arrays from map to map
  (:class:`_Work`); the glue between kernels is numpy (:func:`_map_ious`). Compiled code is
  cached on disk; :func:`warm_up` gets it ready.

Everything here works on plain numpy arrays; :func:`infocam_exp.metrics.boxes.batched_threshold_ious`
is the public entry point."""

from __future__ import annotations

import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def _writable(folder: Path) -> bool:
    """Whether ``folder`` exists (or can be made) and takes a new file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _cache_candidates(name: str, env, package_dir: Path | None = None) -> list[Path]:
    """Where compiled code is cached, in order of preference: ``__pycache__`` next to these
    modules (an editable install, or a site-packages the user may write), then the user cache
    dir (``$XDG_CACHE_HOME``, else ``~/.cache``) under ``name``."""
    here = Path(__file__).resolve().parent if package_dir is None else package_dir
    home = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [here / "__pycache__", Path(home) / name]


def _temp_cache(prefix: str) -> Path:
    """The last resort where no candidate is writable: a per-user folder in the temp dir."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"{prefix}-{uid}"


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


class _Work:
    """One map shape's work arrays for the kernels, kept per thread and reused map after map
    (fresh arrays of a few MB per map cost page faults and cache misses). Every kernel writes
    an entry before it reads it, except the frame of ``val`` and ``filled``, which stays zero.
    ``kernels`` is the kernel set (:func:`kernels`) the methods call."""

    def __init__(self, height: int, width: int, kernels=None) -> None:
        self.kernels = kernels if kernels is not None else _kernels()
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
        ring_offs = np.array([-stride - 1, -stride, -stride + 1, 1, stride + 1, stride, stride - 1, -1])
        # per neighbour mask, the offsets of its groups' first neighbours (_RING[:, 1:5])
        self.offs = np.ascontiguousarray(ring_offs[_RING[:, 1:5]])
        self.parent = np.empty(size, np.int32)
        self.box = np.empty((size, 4), np.int32)
        self.area2 = np.empty(size, np.int32)
        self.slot = np.empty(size, np.int32)
        self.alive = np.empty(n, np.int32)
        self.alive_iou = np.empty((n, 3), np.float64)
        self.needed = np.zeros(_NUM_LEVELS, np.bool_)
        self.levels = np.empty((4, _NUM_LEVELS), np.float64)  # largest, any, hole, cover
        self.lvl_box = np.zeros((_NUM_LEVELS, 4), np.int64)

    @classmethod
    def tiny(cls, kernels=None) -> _Work:
        """A 6 x 6 map with a hole, every level needed: it runs every kernel, with the argument
        types the glue passes."""
        w = cls(6, 6, kernels)
        w.inner[1:5, 1:5] = 200
        w.inner[2:4, 2:4] = 50
        w.needed[:] = True
        return w

    def sort(self) -> None:
        """``sort_levels``: the pixels of ``val`` into ``order``, falling, ``count`` per level."""
        self.kernels.sort(self)

    def fill(self) -> int:
        """``fill_holes`` of ``val`` into ``filled`` (``order`` and ``count`` follow it);
        returns the number of depressions."""
        self.count[:] = 0
        return self.kernels.fill(self)

    def down(self, track_area, track_any, stop_at_hole, gt, gvalid, empty_iou) -> bool:
        """``sweep_down`` in ``order``, into ``levels[0]``, ``lvl_box`` and ``levels[1]``;
        True where it stopped at a hole."""
        return self.kernels.down(self, track_area, track_any, stop_at_hole, gt, gvalid, empty_iou)

    def holes(self, n_dep, gt, gvalid) -> None:
        """``sweep_holes`` over the first ``n_dep`` depressions, above the floor
        ``levels[1]``, into ``levels[2]`` and ``levels[3]``."""
        self.kernels.holes(self, n_dep, gt, gvalid)


_LOCAL = threading.local()


_KEEP_PIXELS = 1 << 20  # larger maps' work arrays (over 60 MB) are not kept


def _workspace(height: int, width: int) -> _Work:
    """This thread's :class:`_Work` for the shape and the current kernel set (the last shape's
    is kept, up to ``_KEEP_PIXELS`` pixels)."""
    work = getattr(_LOCAL, "work", None)
    kernels = _kernels()
    if work is None or work.height != height or work.width != width or work.kernels is not kernels:
        work = _Work(height, width, kernels)
        _LOCAL.work = work if height * width <= _KEEP_PIXELS else None
    return work


def _map_ious(u8, cuts, gt, gvalid, want_any, want_boxes, out_largest, out_any, out_boxes, w=None):
    """One map: best IoU of the largest region (and of every contour) at each cut in ``cuts``;
    with ``want_boxes`` also the largest region's box (``[0, 0, 0, 0]`` for an empty mask).

    The largest region by OpenCV's outer-contour area (holes included) is the largest region of
    the hole-filled map (``fill_holes``), whose contour area needs no holes; the same sweep
    gives the box of every region not inside a hole. Holes come from ``sweep_holes``; the
    regions inside holes (islands) need a sweep of the map itself, run only when a hole's box
    could hold a box that beats every other contour at some level. The glue is numpy in Python
    (tens of microseconds a map), shared by both kernel sets. ``w``: a workspace of the map's
    shape to use instead of this thread's.
    """
    w = _workspace(*u8.shape) if w is None else w
    w.inner[...] = u8
    w.needed[:] = False
    w.needed[cuts] = True
    empty_iou = w.kernels.empty_iou(gt, gvalid)
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


class KernelsUnavailable(ImportError):
    """Neither kernel set can run: the C kernels did not build and numba does not import."""


KERNEL_ENV = "INFOCAM_BOX_KERNEL"
_CHOICES = ("auto", "c", "numba")
_KERNELS = None  # the kernel set in use, once chosen
_CHOOSING = threading.Lock()


def _kernels():
    """The kernel set in use (chosen, and built or loaded, on first need)."""
    kernels = _KERNELS
    return kernels if kernels is not None else select_kernels()


def select_kernels(choice: str | None = None):
    """Choose the kernel set every later call uses, and return it.

    ``choice`` (default: the environment variable ``INFOCAM_BOX_KERNEL``, else ``"auto"``):
    ``"c"`` is :mod:`infocam_exp.metrics._boxes_native`, built with the system's C compiler into
    a cache on first use (a fraction of a second) and failing with the compiler's message when it
    cannot be; ``"numba"`` is :mod:`infocam_exp.metrics._boxes_numba` (seconds of compilation on a
    fresh install, then cached); ``"auto"`` is C where it builds, else numba (with a log line
    saying why). Both give bit-identical results.
    """
    global _KERNELS
    raw = choice if choice is not None else os.environ.get(KERNEL_ENV, "")
    name = raw.strip().lower() or "auto"
    if name not in _CHOICES:
        source = "select_kernels" if choice is not None else KERNEL_ENV
        from infocam_exp.errors import ConfigError

        raise ConfigError(f"{source}: unknown box kernel {raw!r}; choose one of {', '.join(_CHOICES)}")
    with _CHOOSING:
        kernels = None
        if name in ("auto", "c"):
            from infocam_exp.metrics import _boxes_native

            try:
                kernels = _boxes_native.load()
            except _boxes_native.BuildError as exc:
                if name == "c":
                    raise
                _boxes_native.report_fallback(exc)
        if kernels is None:
            try:
                from infocam_exp.metrics import _boxes_numba
            except ImportError as exc:
                raise KernelsUnavailable(
                    f"no compiled box sweep: the C kernels are unavailable and numba does not "
                    f"import ({exc}); install a C compiler (apt install gcc) or numba (pip install "
                    "numba), or use the torch sweep (backend='torch')"
                ) from exc
            kernels = _boxes_numba.KERNELS
        _KERNELS = kernels
    return kernels


NO_COMPILED_SWEEP = (
    "no compiled box sweep (no C compiler built its C kernels and numba is not installed): using "
    "the slower torch sweep (apt install gcc, or pip install numba)"
)
"""What ``backend="auto"`` logs when :func:`kernels_available` is False."""


def kernels_available() -> bool:
    """Whether the compiled sweep can run here (choosing its kernels if so): False only when the
    C kernels are unavailable and numba does not import. An invalid ``INFOCAM_BOX_KERNEL``, or
    C asked for and not built, still raises."""
    try:
        _kernels()
    except KernelsUnavailable:
        return False
    return True


def exercise(w: _Work) -> None:
    """Score the map in ``w`` (:meth:`_Work.tiny`: a hole at a read level) through the glue, so
    every kernel runs once."""
    cuts = np.array([0, 100, 200], dtype=np.int64)
    gt = np.array([[1.0, 1.0, 5.0, 5.0]])
    outs = (np.zeros(3), np.zeros(3), np.zeros((3, 4), np.int64))
    _map_ious(w.inner.copy(), cuts, gt, np.ones(1, np.bool_), True, True, *outs, w=w)


def warm_up(parallel: bool | None = None) -> float:
    """Get the kernels ready (build or load the C library, or compile or load numba's code);
    returns the seconds it took.

    ``make setup`` calls it (``python -m infocam_exp.evaluate --warm-up``), so the first real
    evaluation in a new environment finds everything built; the evaluate CLI calls it before
    reading any map. ``parallel`` is passed to :func:`infocam_exp.metrics._boxes_numba.warm_up`
    when the numba kernels are in use.
    """
    import time

    start = time.perf_counter()
    kernels = _kernels()
    if kernels.name == "numba":
        from infocam_exp.metrics import _boxes_numba

        _boxes_numba.warm_up(parallel)
    else:
        exercise(_Work.tiny(kernels))
    return time.perf_counter() - start


def describe() -> str:
    """Which kernels are in use and where their compiled code lives (for log lines)."""
    kernels = _kernels()
    return f"{kernels.name} kernels, compiled code in {kernels.location()}"
