"""Hand-computed cases pinning the box metrics (wsolevaluation semantics, Choe et al. 2020)."""

import numpy as np
import pytest
import torch

from infocam_exp.metrics.boxes import (
    box_iou,
    default_thresholds,
    euler_numbers,
    largest_region_boxes,
    scoremaps_to_uint8,
    threshold_cuts,
    threshold_ious,
)
from infocam_exp.metrics.localization import LocalizationMetrics, scalar_metrics


def _two_regions() -> torch.Tensor:
    """20x20: a 3x3 block of 1.0 (rows/cols 2-4) and an 8x8 block of 0.9 (rows 10-17, cols 8-15)."""
    m = torch.zeros(1, 20, 20)
    m[0, 2:5, 2:5] = 1.0
    m[0, 10:18, 8:16] = 0.9
    return m


# --- IoU ---------------------------------------------------------------------------------------


def test_iou_plus_one_convention():
    a = torch.tensor([0, 0, 9, 9])  # 10 x 10 pixels
    b = torch.tensor([5, 5, 14, 14])
    assert box_iou(a, b).item() == pytest.approx(25 / 175)
    assert box_iou(a, a).item() == 1.0
    # Sharing one pixel column: intersection 1 x 5.
    assert box_iou(torch.tensor([0, 0, 4, 4]), torch.tensor([4, 0, 8, 4])).item() == pytest.approx(
        5 / 45
    )
    # A single-pixel box has area 1.
    assert box_iou(torch.tensor([3, 3, 3, 3]), torch.tensor([3, 3, 3, 3])).item() == 1.0


def test_iou_disjoint_boxes_score_zero():
    # Without clamping, (-5) * (-5) = 25 "overlapping" pixels: the authors' bug.
    a, b = torch.tensor([0, 0, 4, 4]), torch.tensor([10, 10, 14, 14])
    assert box_iou(a, b).item() == 0.0
    assert box_iou(torch.tensor([0, 0, 4, 4]), torch.tensor([10, 0, 14, 4])).item() == 0.0


def test_iou_broadcasts():
    a = torch.tensor([[0, 0, 9, 9], [0, 0, 4, 4]])
    out = box_iou(a[:, None], a[None, :])
    assert out.shape == (2, 2) and out.dtype == torch.float64
    assert out[0, 1].item() == pytest.approx(25 / 100)


# --- thresholds and normalisation ---------------------------------------------------------------


def test_default_thresholds_match_numpy_arange():
    for n in (10, 100, 1000):
        expected = np.arange(0, 1, 1 / n)
        assert np.array_equal(default_thresholds(n).numpy(), expected)


def test_cut_keeps_pixels_strictly_above_int_tau_max():
    # tau = 0.2 -> cut int(0.2 * 255) = 51: a pixel at uint8 51 is out, 52 is in.
    m = torch.zeros(1, 5, 5)
    m[0, 0, 0] = 1.0
    m[0, 2, 2] = 51.5 / 255
    m[0, 4, 4] = 52.5 / 255
    u8 = scoremaps_to_uint8(m)
    assert u8[0, 2, 2] == 51 and u8[0, 4, 4] == 52 and u8[0, 0, 0] == 255
    assert threshold_cuts(u8, torch.tensor([0.2])).item() == 51
    boxes = largest_region_boxes(m, torch.tensor([0.2]))
    # Regions {(0,0)} and {(4,4)}, both of contour area 0: the tie goes to the region starting
    # last in raster order, as max() over OpenCV's contour list does. (2,2) is not kept.
    assert boxes[0, 0].tolist() == [4, 4, 4, 4]


def test_min_max_normalisation_and_uint8_truncation():
    m = torch.tensor([[[2.0, 4.0], [3.0, 6.0]]])
    u8 = scoremaps_to_uint8(m)
    # (x - 2) / 4 * 255 truncated: 0, 127.5 -> 127, 63.75 -> 63, 255.
    assert u8.tolist() == [[[0, 127], [63, 255]]]


@pytest.mark.parametrize("fill", [0.0, 3.5, float("nan")])
def test_constant_and_nan_maps_give_no_region(fill):
    m = torch.full((1, 8, 8), fill)
    if fill != fill:  # NaN somewhere in an otherwise valid map also zeroes it
        m = torch.rand(1, 8, 8)
        m[0, 3, 3] = float("nan")
    assert scoremaps_to_uint8(m).sum().item() == 0
    boxes = largest_region_boxes(m, default_thresholds(10))
    assert (boxes == 0).all()
    gt = torch.tensor([[[2, 2, 5, 5]]])
    iou_largest, iou_any = threshold_ious(m, gt, default_thresholds(10))
    assert (iou_largest == 0).all() and (iou_any == 0).all()


# --- regions ------------------------------------------------------------------------------------


def test_two_regions_largest_wins_and_high_tau_keeps_the_peak():
    boxes = largest_region_boxes(_two_regions(), torch.tensor([0.5, 0.95]))
    # tau 0.5: both blocks kept, the 8x8 one (contour area 49) beats the 3x3 (area 4).
    # Box is [x, y, x + w, y + h]: x1 = 15 + 1, y1 = 17 + 1.
    assert boxes[0, 0].tolist() == [8, 10, 16, 18]
    # tau 0.95: cut int(0.95 * 255) = 242 > 229 = uint8(0.9): only the 3x3 peak remains.
    assert boxes[0, 1].tolist() == [2, 2, 5, 5]


def test_largest_is_by_contour_area_not_pixel_count():
    # A 1 x 30 line (30 pixels, contour area 0) against a 3 x 3 block (9 pixels, area 4).
    m = torch.zeros(1, 40, 40)
    m[0, 5, 2:32] = 1.0
    m[0, 20:23, 20:23] = 1.0
    assert largest_region_boxes(m, torch.tensor([0.5]))[0, 0].tolist() == [20, 20, 23, 23]


def test_eight_connectivity_joins_diagonal_pixels():
    m = torch.zeros(1, 10, 10)
    for i in range(2, 7):
        m[0, i, i] = 1.0
    m[0, 2:4, 2:4] = 1.0  # give it some area
    assert largest_region_boxes(m, torch.tensor([0.0]))[0, 0].tolist() == [2, 2, 7, 7]


def test_box_clipped_at_the_last_pixel_like_wsolevaluation():
    m = torch.zeros(1, 10, 12)
    m[0, 6:10, 8:12] = 1.0  # touches the right and bottom border
    assert largest_region_boxes(m, torch.tensor([0.5]))[0, 0].tolist() == [8, 6, 11, 9]
    m = torch.zeros(1, 10, 12)
    m[0, 6:9, 7:11] = 1.0  # ends one pixel before: x1 = 10 + 1 = 11 (clipped to 11 anyway)
    assert largest_region_boxes(m, torch.tensor([0.5]))[0, 0].tolist() == [7, 6, 11, 9]


def test_euler_numbers_count_regions_minus_holes():
    m = torch.zeros(1, 12, 12)
    m[0, 1:11, 1:11] = 1.0
    m[0, 4:8, 4:8] = 0.0  # one hole
    m[0, 5, 5] = 0.6  # an island inside the hole, at a lower level
    e = euler_numbers(scoremaps_to_uint8(m))
    assert e[0, 200].item() == 0  # ring: 1 region - 1 hole
    assert e[0, 100].item() == 1  # ring + island: 2 regions - 1 hole
    assert e[0, 255].item() == 0  # empty mask


# --- ground truth and V2 ------------------------------------------------------------------------


def test_multiple_gt_boxes_take_the_best():
    m = _two_regions()
    far = [0, 0, 1, 1]
    gt = torch.tensor([[far, [8, 10, 16, 18], [-1, -1, -1, -1]]])
    iou_largest, _ = threshold_ious(m, gt, torch.tensor([0.5]))
    assert iou_largest.item() == 1.0


def test_v2_scores_every_region_and_averages_ious():
    # Big block (value 1.0, 8x8) and small block (0.5, 4x4 -> box [2, 2, 6, 6]).
    m = torch.zeros(1, 24, 24)
    m[0, 10:18, 10:18] = 1.0
    m[0, 2:6, 2:6] = 0.5
    gt = torch.tensor([[[2, 2, 7, 7]]])  # IoU with [2, 2, 6, 6] = 25 / 36 = 0.694
    metric = LocalizationMetrics(thresholds=100)
    metric.update(m, gt)
    out = scalar_metrics(metric.compute())
    # The small block is kept while int(tau * 255) < 127, i.e. tau <= 0.49; its box hits at
    # IoU 0.3 and 0.5, not 0.7. The largest region never matches.
    assert out["max_box_acc_v2_iou30"] == 100.0
    assert out["max_box_acc_v2_iou50"] == 100.0
    assert out["max_box_acc_v2_iou70"] == 0.0
    assert out["max_box_acc_v2"] == pytest.approx(200 / 3)
    assert out["max_box_acc"] == 0.0
    curve = metric.compute()["max_box_acc_v2_iou50_curve"]
    assert curve[:50].eq(100).all() and curve[50:].eq(0).all()


def test_v2_scores_hole_contours_like_retr_tree():
    # A thick ring: outer box [1, 1, 11, 11], hole rows/cols 4-7 -> hole contour box [3, 3, 9, 9].
    m = torch.zeros(1, 14, 14)
    m[0, 1:11, 1:11] = 1.0
    m[0, 4:8, 4:8] = 0.0
    gt = torch.tensor([[[3, 3, 9, 9]]])
    iou_largest, iou_any = threshold_ious(m, gt, torch.tensor([0.5]))
    assert iou_largest.item() == pytest.approx(49 / 121)
    assert iou_any.item() == 1.0


# --- the Metric ---------------------------------------------------------------------------------


def _batch(seed: int, n: int):
    g = torch.Generator().manual_seed(seed)
    maps = torch.zeros(n, 32, 32)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    for i in range(n):
        cx, cy = torch.randint(6, 26, (2,), generator=g).tolist()
        maps[i] = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 30)
    xy = torch.randint(0, 20, (n, 2, 2), generator=g)
    gt = torch.cat([xy, xy + torch.randint(4, 12, (n, 2, 2), generator=g)], dim=-1)
    gt[::2, 1] = -1  # padding rows
    top1 = torch.rand(n, generator=g) > 0.5
    top5 = top1 | (torch.rand(n, generator=g) > 0.5)
    return maps, gt, top1, top5


def test_fixed_tau_metrics_by_hand():
    m = _two_regions().repeat(4, 1, 1)
    hit = [8, 10, 16, 18]
    miss = [0, 0, 1, 1]
    gt = torch.tensor([[hit], [hit], [hit], [miss]])
    top1 = torch.tensor([True, False, False, True])
    top5 = torch.tensor([True, True, False, True])
    metric = LocalizationMetrics(thresholds=10, fixed_threshold=0.2)
    metric.update(m, gt, top1_correct=top1, top5_correct=top5)
    out = scalar_metrics(metric.compute())
    assert out["gt_known_loc"] == 75.0
    assert out["top1_loc"] == 25.0
    assert out["top5_loc"] == 50.0
    assert out["threshold"] == pytest.approx(0.2)
    assert out["num_images"] == 4


def test_accuracy_is_hits_over_images_not_mean_of_batch_ratios():
    m = _two_regions()
    hit, miss = torch.tensor([[[8, 10, 16, 18]]]), torch.tensor([[[0, 0, 1, 1]]])
    metric = LocalizationMetrics(thresholds=10)
    metric.update(m, hit)  # batch 1: 1/1
    metric.update(m.repeat(3, 1, 1), miss.repeat(3, 1, 1))  # batch 2: 0/3
    assert scalar_metrics(metric.compute())["gt_known_loc"] == 25.0  # not (100 + 0) / 2


def test_two_batches_equal_one_batch():
    maps, gt, top1, top5 = _batch(0, 12)
    one = LocalizationMetrics(thresholds=50)
    one.update(maps, gt, top1_correct=top1, top5_correct=top5)
    two = LocalizationMetrics(thresholds=50)
    two.update(maps[:5], gt[:5], top1_correct=top1[:5], top5_correct=top5[:5])
    two.update(maps[5:], gt[5:], top1_correct=top1[5:], top5_correct=top5[5:])
    a, b = one.compute(), two.compute()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_chunking_does_not_change_results():
    maps, gt, _, _ = _batch(1, 9)
    whole = LocalizationMetrics(thresholds=20)
    whole.update(maps, gt)
    chunked = LocalizationMetrics(thresholds=20, max_pixels_per_chunk=2 * 32 * 32, backend="torch")
    chunked.update(maps, gt)
    assert torch.equal(whole.gt_known_hits, chunked.gt_known_hits)
    assert torch.equal(whole.v2_hits, chunked.v2_hits)


def test_max_box_acc_and_compute_at_external_threshold():
    maps, gt, top1, top5 = _batch(2, 10)
    metric = LocalizationMetrics(thresholds=20)
    metric.update(maps, gt, top1_correct=top1, top5_correct=top5)
    res = metric.compute()
    curve = res["gt_known_loc_curve"]
    assert res["max_box_acc"] == curve.max()
    best = int(torch.argmax(curve))
    assert res["max_box_acc_threshold"].item() == pytest.approx(best / 20)
    at = metric.compute_at(best / 20)
    assert at["gt_known_loc"] == res["max_box_acc"]
    assert at["top1_loc"] == res["top1_loc_curve"][best]
    with pytest.raises(ValueError, match="not one of"):
        metric.compute_at(0.123)


def test_without_class_flags_top_k_loc_is_nan():
    maps, gt, _, _ = _batch(3, 4)
    metric = LocalizationMetrics(thresholds=10)
    metric.update(maps, gt)
    out = scalar_metrics(metric.compute())
    assert np.isnan(out["top1_loc"]) and np.isnan(out["top5_loc"])
    assert not np.isnan(out["gt_known_loc"])


def test_fixed_threshold_must_be_on_the_grid():
    with pytest.raises(ValueError, match="not one of"):
        LocalizationMetrics(thresholds=7, fixed_threshold=0.2)


def test_states_are_sum_reduced():
    metric = LocalizationMetrics(thresholds=10)
    for name in ("gt_known_hits", "top1_hits", "top5_hits", "v2_hits", "total"):
        assert metric._reductions[name] is not None
