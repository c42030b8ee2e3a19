"""The compiled CPU sweep: hand-computed cases, hard maps against the torch sweep and OpenCV.

Hard maps: ties in area, holes and islands inside holes, flat plateaus (quantised values), NaN and
constant maps, many small 8-connected regions. Both sweeps must give identical IoUs to each other,
and the all-contour IoUs (MaxBoxAccV2) must equal the independent OpenCV reference's.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from infocam_exp.metrics.boxes import (
    batched_threshold_ious,
    default_thresholds,
    threshold_ious,
)
from tests.metrics.opencv_reference import normalize_to_uint8, opencv_threshold_ious

# every test runs with both kernel sets of the compiled sweep (C and numba)
pytestmark = pytest.mark.usefixtures("box_kernels")


def _one(maps: torch.Tensor, gt: list[list[int]], taus, backend: str = "compiled"):
    box = torch.tensor([[gt]] * maps.shape[0], dtype=torch.int64)
    return batched_threshold_ious(maps, box, torch.as_tensor(taus), backend=backend)


def test_equal_areas_pick_the_region_starting_last_in_raster_order():
    # Two 4 x 4 squares, identical contour areas (3 x 3 = 9). OpenCV lists contours in reverse
    # raster order of their first pixel and max() keeps the first maximum: the lower square.
    m = torch.zeros(1, 20, 20)
    m[0, 2:6, 2:6] = 1.0
    m[0, 12:16, 10:14] = 1.0
    lower = [10, 12, 13, 15]
    for backend in ("compiled", "torch"):
        largest, anyr = _one(m, lower, [0.5], backend)
        # box of the lower square: [10, 12, 10 + 4, 12 + 4] = 5 x 5 = 25 pixels vs 16: 16 / 25
        assert float(largest[0, 0]) == 16 / 25
        assert float(anyr[0, 0]) == 16 / 25


def test_line_loses_to_a_small_square_by_contour_area():
    # A 1 x 15 line has contour area 0, a 2 x 2 square area 1: the square is the largest.
    m = torch.zeros(1, 20, 20)
    m[0, 1, 2:17] = 1.0
    m[0, 10:12, 10:12] = 1.0
    largest, _ = _one(m, [10, 10, 11, 11], [0.5])
    # square box [10, 10, 12, 12] (9 px) vs GT 4 px: 4 / 9
    assert float(largest[0, 0]) == 4 / 9


def test_hole_border_box_and_island_inside_the_hole():
    # A ring (value 1) around a hole (value 0) that holds an island (value 1).
    m = torch.zeros(1, 24, 24)
    m[0, 2:22, 2:22] = 1.0
    m[0, 6:18, 6:18] = 0.0
    m[0, 10:14, 10:14] = 1.0
    # GT = the hole's pixels 6..17 (12 x 12 = 144 px). The hole border runs through pixels 5..18,
    # written [5, 5, 5 + 14, 5 + 14] (15 x 15 = 225 px): IoU 144 / 225. The ring's box
    # [2, 2, 22, 22] (441 px): 144 / 441; the island's [10, 10, 14, 14]: 25 / 144.
    for backend in ("compiled", "torch"):
        largest, anyr = _one(m, [6, 6, 17, 17], [0.5], backend)
        assert float(anyr[0, 0]) == 144 / 225
        assert float(largest[0, 0]) == 144 / 441


def test_nan_and_constant_maps_score_the_empty_box():
    maps = torch.stack([torch.full((8, 8), 0.4), torch.rand(8, 8)])
    maps[1, 3, 3] = float("nan")
    # No region: box [0, 0, 0, 0] (1 px); GT [0, 0, 1, 1] (4 px): IoU 1 / 4 at every threshold.
    largest, anyr = _one(maps, [0, 0, 1, 1], [0.0, 0.5, 0.9])
    assert torch.equal(largest, torch.full((2, 3), 0.25, dtype=torch.float64))
    assert torch.equal(anyr, largest)


def _hard_maps(size: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size * 1.0), torch.arange(size * 1.0), indexing="ij")
    parts = []
    # flat plateaus: a few levels only (ties everywhere, holes, islands)
    parts.append(torch.randint(0, 4, (12, size, size), generator=g).float() / 3)
    # many small regions: sparse binary noise (diagonal-only contacts included)
    parts.append((torch.rand(8, size, size, generator=g) < 0.3).float())
    # concentric rings: nested holes and islands
    for k in range(6):
        cx, cy = (torch.rand(2, generator=g) * size).tolist()
        r = torch.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        parts.append(((r / (2 + k)).floor() % 2 + 0.1 * (r / size))[None])
    # equal twin blobs (ties between regions of equal area)
    twin = torch.zeros(4, size, size)
    for i in range(4):
        w = 3 + i
        twin[i, 5 : 5 + w, 5 : 5 + w] = 1.0
        twin[i, 25 : 25 + w, 20 : 20 + w] = 1.0
    parts.append(twin)
    # smooth blobs with a little noise, NaN and constant maps
    cx, cy = torch.rand(2, 6, 1, 1, generator=g) * size
    parts.append(
        torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 60)
        + 0.05 * torch.rand(6, size, size, generator=g)
    )
    nan = torch.rand(2, size, size, generator=g)
    nan[:, 0, 0] = float("nan")
    parts += [nan, torch.full((2, size, size), 0.7)]
    maps = torch.cat(parts)
    n = maps.shape[0]
    xy = torch.randint(0, size * 3 // 4, (n, 2, 2), generator=g)
    wh = torch.randint(2, size // 2, (n, 2, 2), generator=g)
    gt = torch.cat([xy, (xy + wh).clamp(max=size - 1)], dim=-1)
    gt[::3, 1] = -1  # one box on a third of the maps
    return maps, gt


@pytest.fixture(scope="module")
def hard():
    maps, gt = _hard_maps()
    taus = default_thresholds(40)
    return (
        maps,
        gt,
        taus,
        batched_threshold_ious(maps, gt, taus, backend="compiled"),
        threshold_ious(maps, gt, taus),
    )


def test_compiled_equals_torch_sweep_on_hard_maps(hard):
    _, _, _, compiled, swept = hard
    assert torch.equal(compiled[0], swept[0])
    assert torch.equal(compiled[1], swept[1])


def test_hard_maps_against_opencv(hard):
    maps, gt, taus, compiled, _ = hard
    ref = opencv_threshold_ious(maps, gt, taus)
    # Every (map, threshold) IoU agrees exactly, for every contour's box (MaxBoxAccV2, hole
    # borders included) and for the largest region, whose area covers its holes as OpenCV's does.
    assert torch.equal(compiled[1], ref[1])
    assert torch.equal(compiled[0], ref[0])
    # The maps do exercise holes: OpenCV finds hole contours on most of the noisy ones.
    with_holes = 0
    for b in range(12, 20):  # sparse binary noise
        u8 = normalize_to_uint8(maps[b].numpy())
        _, mask = cv2.threshold(u8, 127, 255, cv2.THRESH_BINARY)
        _, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        with_holes += int((hierarchy[0][:, 3] >= 0).any())
    assert with_holes >= 4


def test_largest_region_counts_its_holes_like_opencv():
    # A 9 x 9 frame one pixel thick (hole 7 x 7) against a solid 5 x 5 square. Windows of
    # region pixels alone give the frame 2 (its four corner windows hold three pixels each: half
    # a unit) and the square 4 x 4 = 16; OpenCV's outer contour covers the frame's hole, area
    # 8 x 8 = 64, so the frame is the largest region.
    m = torch.zeros(1, 24, 24)
    m[0, 2:11, 2:11] = 1.0
    m[0, 3:10, 3:10] = 0.0
    m[0, 14:19, 14:19] = 1.0
    frame = [2, 2, 10, 10]
    for backend in ("compiled", "torch"):
        largest, _ = _one(m, frame, [0.5], backend)
        # frame box [2, 2, 11, 11] (100 px) vs GT 81 px: 81 / 100
        assert float(largest[0, 0]) == 81 / 100, backend
    ref, _ = opencv_threshold_ious(m, torch.tensor([[frame]]), torch.tensor([0.5]))
    assert float(ref[0, 0]) == 81 / 100


def test_thread_count_does_not_change_results(hard):
    maps, gt, taus, compiled, _ = hard
    for workers in (1, 3):
        got = batched_threshold_ious(maps, gt, taus, workers=workers)
        assert torch.equal(got[0], compiled[0])
        assert torch.equal(got[1], compiled[1])


def test_backend_errors_name_the_fix():
    maps = torch.rand(1, 8, 8)
    gt = torch.tensor([[[0, 0, 3, 3]]])
    with pytest.raises(ValueError, match="backend must be one of"):
        batched_threshold_ious(maps, gt, default_thresholds(10), backend="opencv")
    with pytest.raises(ValueError, match="runs on CPU maps"):
        batched_threshold_ious(maps.to("meta"), gt, default_thresholds(10), backend="compiled")
    with pytest.raises(ValueError, match="gt_boxes must have shape"):
        batched_threshold_ious(maps, gt[0], default_thresholds(10))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_uint8_conversion_is_byte_identical(dtype):
    from infocam_exp.metrics._boxes_compiled import maps_to_uint8
    from infocam_exp.metrics.boxes import scoremaps_to_uint8

    g = torch.Generator().manual_seed(7)
    maps = torch.randn(12, 33, 29, generator=g, dtype=torch.float64).to(dtype)
    maps[:4] *= 1e4  # wide ranges
    maps[4:6] = maps[4:6] * 1e-6 + 3.0  # narrow ranges far from zero
    maps[6, 2, 3] = float("nan")
    maps[7] = -2.5  # constant
    got = maps_to_uint8(maps.numpy())
    assert torch.equal(torch.from_numpy(got), scoremaps_to_uint8(maps))
    want = [normalize_to_uint8(m) for m in maps.numpy()]  # the independent numpy reference
    assert all((got[i] == want[i]).all() for i in range(len(want)))
    assert got[6].max() == 0 and got[7].max() == 0 and got[0].max() == 255


def test_region_inside_a_hole_can_be_the_best_contour():
    # A ring (200) around a moat (0) holding a one-pixel island (150); the ground truth is the
    # island. Normalised, the ring is 255 and the island 191. Below 191 the contours are the
    # ring, the moat's border and the island, whose box
    # [4, 4, 4 + 1, 4 + 1] (4 px) against the 1-px ground truth gives IoU 1 / 4; the ring's box
    # and the moat's border box are both [1, 1, 1 + 7, 1 + 7] (64 px): 1 / 64. Above 191 the
    # island is gone and 1 / 64 is the best. (The compiled sweep scores islands with a separate pass, run
    # only when a hole's box could hold a better box than every other contour.)
    m = torch.zeros(1, 9, 9, dtype=torch.float64)
    m[0, 1:8, 1:8] = 200
    m[0, 2:7, 2:7] = 0
    m[0, 4, 4] = 150
    taus = torch.tensor([0.1, 0.5, 0.8])  # cuts 25, 127 and 204 of the peak 255
    got_l, got_a = _one(m, [4, 4, 4, 4], taus)
    assert got_a[0].tolist() == [1 / 4, 1 / 4, 1 / 64]
    ref_l, ref_a = opencv_threshold_ious(m, torch.tensor([[[4, 4, 4, 4]]]), taus)
    assert torch.equal(got_a, ref_a) and torch.equal(got_l, ref_l)


def _nested_rectangles(num: int, seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Small maps of nested rectangles, high and low in turn (rings, holes, islands in holes,
    holes in islands), with sparse noise; the ground truth is often a few pixels inside the
    innermost rectangle, where an island's box or a hole's border can be the best contour."""
    g = np.random.default_rng(seed)
    maps, boxes = [], []
    for i in range(num):
        h, w = (int(v) for v in g.integers(3, 20, size=2))
        m = np.zeros((h, w))
        y0, x0, y1, x1 = 0, 0, h, w
        for k in range(int(g.integers(1, 6))):
            y0, x0 = y0 + int(g.integers(0, 3)), x0 + int(g.integers(0, 3))
            y1, x1 = max(y0 + 1, y1 - int(g.integers(0, 3))), max(x0 + 1, x1 - int(g.integers(0, 3)))
            m[y0:y1, x0:x1] = g.integers(128, 256) if k % 2 == 0 else g.integers(0, 128)
        m = np.maximum(m, (g.random((h, w)) < 0.05) * g.integers(0, 256))
        if i % 2:
            gx, gy = min(x0, w - 1), min(y0, h - 1)
            size = int(g.integers(0, 3))
        else:
            gx, gy = int(g.integers(0, w)), int(g.integers(0, h))
            size = int(g.integers(1, max(w, h)))
        maps.append(torch.from_numpy(m))
        boxes.append([gx, gy, min(gx + size, w - 1), min(gy + size, h - 1)])
    return maps, torch.tensor(boxes)[:, None, :]


@pytest.fixture(scope="module")
def nested():
    """240 nested-rectangle maps, their GT and OpenCV's IoUs at 1,000 thresholds (computed once
    for both kernel sets)."""
    maps, gt = _nested_rectangles(240, seed=3)
    taus = default_thresholds(1000)
    refs = [opencv_threshold_ious(m[None], box[None], taus) for m, box in zip(maps, gt, strict=True)]
    return maps, gt, taus, refs


def test_nested_rectangles_against_opencv(nested):
    maps, gt, taus, refs = nested
    for m, box, ref in zip(maps, gt, refs, strict=True):
        got = batched_threshold_ious(m[None], box[None], taus, backend="compiled")
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1]), m


def test_reused_work_arrays_leave_nothing_behind(hard):
    # Each thread keeps one map shape's work arrays; a map must score the same after any other
    # map of that shape as in fresh arrays. Score the hard maps in one call, then each again after
    # dropping the kept arrays, and in reverse order.
    from infocam_exp.metrics import _boxes_compiled as m

    maps, gt, taus, _, _ = hard
    u8 = normalize_to_uint8(maps.numpy())
    cuts = np.floor(taus.numpy()[None, :] * u8.reshape(len(u8), -1).max(1)[:, None]).astype(np.int64)
    gtn = gt.numpy().astype(np.float64)
    valid = (gt >= 0).all(-1).numpy()
    together = m.compiled_threshold_ious(u8, cuts, gtn, valid, want_boxes=True)
    rev = slice(None, None, -1)
    backwards = m.compiled_threshold_ious(u8[rev], cuts[rev], gtn[rev], valid[rev], want_boxes=True)
    for b in range(len(u8)):
        m._LOCAL.work = None
        alone = m.compiled_threshold_ious(
            u8[b : b + 1], cuts[b : b + 1], gtn[b : b + 1], valid[b : b + 1], want_boxes=True
        )
        for x, y, z in zip(together, alone, backwards, strict=True):
            assert np.array_equal(x[b], y[0]) and np.array_equal(z[len(u8) - 1 - b], y[0]), b


def test_small_holes_below_the_regions_best_are_not_scored():
    # A 12 x 12 square full of one-pixel pits; its box (x1 = 15 + 1, the +1 of OpenCV's width)
    # is the GT, IoU 1, so no hole border box (4 x 4 = 16 px, IoU 16 / 169 at most) can beat it
    # and none is scored; a hole as large as the GT still is. The answers are OpenCV's.
    from infocam_exp.metrics import _boxes_compiled as m

    u8 = np.zeros((1, 20, 20), np.uint8)
    u8[0, 4:16, 4:16] = 200
    u8[0, 6:14:3, 6:14:3] = 10  # pits
    gt = np.array([[[4.0, 4.0, 16.0, 16.0]]])
    valid = np.ones((1, 1), bool)
    cuts = np.array([[100]])
    largest, best_any, _ = m.compiled_threshold_ious(u8, cuts, gt, valid)
    assert largest[0, 0] == 1.0 and best_any[0, 0] == 1.0
    w = m._LOCAL.work
    assert w.levels[2, 100] == -1.0  # no hole scored at this level
    ref = opencv_threshold_ious(torch.from_numpy(u8 / 200.0), torch.from_numpy(gt), torch.tensor([0.5]))
    assert float(ref[1][0, 0]) == 1.0
    # a ring: the hole's border box is the ring's box, as good as the region's; it is scored
    ring = np.zeros((1, 20, 20), np.uint8)
    ring[0, 4:16, 4:16] = 200
    ring[0, 5:15, 5:15] = 10
    m.compiled_threshold_ious(ring, cuts, gt, valid)
    assert m._LOCAL.work.levels[2, 100] == 1.0
