"""The sweep's shortcuts give the same numbers as the plain sweep.

* reading only the needed levels (pixels between two cuts merged in one union step);
* splitting a batch into chunks swept by parallel CPU threads (torch sweep), or over numba's
  threads (compiled sweep).
"""

from __future__ import annotations

import torch

from infocam_exp.metrics.boxes import (
    NUM_LEVELS,
    batched_threshold_ious,
    default_thresholds,
    scoremaps_to_uint8,
    sweep_levels,
    threshold_cuts,
    threshold_ious,
)
from tests.metrics.test_boxes_opencv_agreement import _varied_maps


def test_reading_only_needed_levels_matches_the_full_sweep():
    maps, gt = _varied_maps(seed=3, size=40)
    valid = (gt >= 0).all(dim=-1)
    u8 = scoremaps_to_uint8(maps)
    full_largest, full_any = sweep_levels(u8, gt, valid)
    # Sparse and irregular level sets, with gaps of one and of many levels.
    for taus in (default_thresholds(7), default_thresholds(100), torch.tensor([0.0, 0.5, 0.51])):
        levels = threshold_cuts(u8, taus).unique()
        assert 1 < levels.numel() < NUM_LEVELS - 1
        largest, best_any = sweep_levels(u8, gt, valid, levels=levels)
        assert torch.equal(largest[:, levels], full_largest[:, levels])
        assert torch.equal(best_any[:, levels], full_any[:, levels])


def test_needed_levels_include_hole_levels():
    # A ring: the hole exists only for cuts between the ring's value and the centre's. The
    # single needed level sits inside that band, far from where the hole appears.
    m = torch.zeros(1, 20, 20)
    m[0, 4:16, 4:16] = 1.0
    m[0, 8:12, 8:12] = 0.3
    gt = torch.tensor([[[8, 8, 11, 11]]])
    valid = torch.ones(1, 1, dtype=torch.bool)
    u8 = scoremaps_to_uint8(m)
    level = torch.tensor([200])
    _, best_any = sweep_levels(u8, gt, valid, levels=level)
    _, full_any = sweep_levels(u8, gt, valid)
    assert best_any[0, 200] == full_any[0, 200]
    # Boxes are [x0, y0, x0 + w, y0 + h] with inclusive pixel areas (wsolevaluation). The hole
    # (pixels 8..11) has the border box [7, 7, 13, 13], 7 x 7 = 49 pixels, containing the 4 x 4
    # ground truth: IoU 16 / 49. The ring's own box [4, 4, 16, 16] scores only 16 / 169.
    assert float(best_any[0, 200]) == 16 / 49


def test_parallel_chunks_match_one_sweep():
    maps, gt = _varied_maps(seed=4, size=32)
    taus = default_thresholds(30)
    want = threshold_ious(maps, gt, taus)
    threads = torch.get_num_threads()
    for workers, chunk in ((1, 32 * 32 * 7), (2, 32 * 32 * 7), (3, None), (2, 10**9)):
        got = batched_threshold_ious(
            maps, gt, taus, max_pixels_per_chunk=chunk, workers=workers, backend="torch"
        )
        assert torch.equal(got[0], want[0]), (workers, chunk)
        assert torch.equal(got[1], want[1]), (workers, chunk)
        assert torch.get_num_threads() == threads  # restored after the parallel sweep
    for workers in (1, 2, 3):
        got = batched_threshold_ious(maps, gt, taus, workers=workers, backend="compiled")
        assert torch.equal(got[0], want[0]), workers
        assert torch.equal(got[1], want[1]), workers


def test_empty_batch():
    taus = default_thresholds(10)
    for backend in ("compiled", "torch"):
        largest, anyr = batched_threshold_ious(
            torch.zeros(0, 8, 8),
            torch.zeros(0, 1, 4, dtype=torch.int64),
            taus,
            workers=2,
            backend=backend,
        )
        assert largest.shape == anyr.shape == (0, 10)
