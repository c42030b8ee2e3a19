"""PxAP (metrics/masks.py, metrics/pxap.py) against hand-computed cases and the numpy reference."""

import numpy as np
import pytest
import torch

from infocam_exp.metrics.masks import (
    PxAPError,
    bin_edges,
    mask_thresholds,
    normalize_scoremaps,
    pxap_curve,
    score_histograms,
)
from infocam_exp.metrics.pxap import PxAPMetric
from tests.metrics.pxap_reference import normalize, reference_pxap


def _pxap(maps, fg, ign, thresholds):
    """The package's numpy/torch path on a list of (H, W) arrays."""
    edges = bin_edges(thresholds)
    fg_total = np.zeros(edges.size - 1, dtype=np.int64)
    bg_total = np.zeros(edges.size - 1, dtype=np.int64)
    for m, f, i in zip(maps, fg, ign, strict=True):
        fh, bh, _ = score_histograms(
            torch.from_numpy(np.asarray(m))[None],
            torch.from_numpy(f)[None],
            torch.from_numpy(i)[None],
            edges,
        )
        fg_total += fh.numpy()
        bg_total += bh.numpy()
    return pxap_curve(fg_total, bg_total, edges)


# --- hand-computed cases -------------------------------------------------------------------
# 4 thresholds: edges [0, .25, .5, .75, 1, 2, 3]; operating points from the top: >= 2, >= 1,
# >= .75, >= .5, >= .25, >= 0.

MAP = np.array([[1.0, 0.5], [0.75, 0.25]])
FG = np.array([[False, True], [False, True]])  # scores 0.5 and 0.25
IGN = np.array([[True, False], [False, False]])  # the 1.0 pixel; 0.75 is background


def test_two_by_two_with_one_ignored_pixel():
    # tp = [0, 0, 0, 1, 2, 2], fp = [0, 0, 1, 1, 1, 1]
    # precision = [-, -, 0, 1/2, 2/3, 2/3], recall = [0, 0, 0, 1/2, 1, 1]
    # area = 0 * 0 + 1/2 * 1/2 + 2/3 * 1/2 + 2/3 * 0 = 7/12
    curve = _pxap([MAP], [FG], [IGN], 4)
    assert curve.tp.tolist() == [0, 0, 0, 1, 2, 2]
    assert curve.fp.tolist() == [0, 0, 1, 1, 1, 1]
    assert curve.thresholds.tolist() == [2.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert np.isnan(curve.precision[:2]).all()
    np.testing.assert_allclose(curve.precision[2:], [0, 1 / 2, 2 / 3, 2 / 3])
    np.testing.assert_allclose(curve.recall, [0, 0, 0, 0.5, 1, 1])
    assert curve.pxap == pytest.approx(100 * 7 / 12, abs=1e-12)
    assert (curve.num_foreground, curve.num_background) == (2, 1)


def test_ignored_pixel_counted_as_background_would_change_the_area():
    # the 1.0 pixel as background: fp = [0, 1, 2, 2, 2, 2]; area = 1/3 * 1/2 + 1/2 * 1/2 = 5/12
    curve = _pxap([MAP], [FG], [np.zeros_like(IGN)], 4)
    assert curve.fp.tolist() == [0, 1, 2, 2, 2, 2]
    assert curve.pxap == pytest.approx(100 * 5 / 12, abs=1e-12)


def test_score_on_a_bin_edge_counts_at_that_threshold():
    # 0.5 lies exactly on an edge: it reaches the >= 0.5 point (left-closed bins). With
    # right-closed bins it would reach only >= 0.25 and the area would be 2/3 instead of 7/12.
    edges = bin_edges(4)
    fh, bh, ignored = score_histograms(
        torch.from_numpy(MAP)[None], torch.from_numpy(FG)[None], torch.from_numpy(IGN)[None], edges
    )
    assert fh.tolist() == [0, 1, 1, 0, 0, 0]  # 0.25 in [.25, .5), 0.5 in [.5, .75)
    assert bh.tolist() == [0, 0, 0, 1, 0, 0]  # 0.75 in [.75, 1)
    assert int(ignored) == 1


def test_score_one_lands_in_the_one_to_two_bin():
    # a perfect map: the foreground scores exactly 1.0 (the [1, 2) bin), the rest 0
    scores = np.array([[1.0, 0.0], [0.0, 0.0]])
    fg = np.array([[True, False], [False, False]])
    curve = _pxap([scores], [fg], [np.zeros_like(fg)], 4)
    assert curve.tp.tolist() == [0, 1, 1, 1, 1, 1]
    assert curve.fp.tolist() == [0, 0, 0, 0, 0, 3]
    assert curve.pxap == 100.0


def test_constant_map_gives_the_foreground_fraction():
    # every pixel in the first bin: one operating point with precision P / (P + N), recall 1
    fg = np.array([[True, False], [False, False]])
    curve = _pxap([np.zeros((2, 2))], [fg], [np.zeros_like(fg)], 10)
    assert curve.pxap == pytest.approx(25.0, abs=1e-12)


def test_foreground_inside_the_ignore_box_is_foreground():
    # The ignore region is the ignore box minus the foreground (wsolevaluation's get_mask), so a
    # pixel in both counts as foreground, not ignored.
    fg = np.array([[True, False], [False, False]])
    box = np.array([[True, True], [False, False]])
    fh, bh, ignored = score_histograms(
        torch.tensor([[[0.9, 0.8], [0.1, 0.2]]], dtype=torch.float64),
        torch.from_numpy(fg)[None],
        torch.from_numpy(box)[None],
        bin_edges(10),
    )
    assert int(fh.sum()) == 1 and int(bh.sum()) == 2 and int(ignored) == 1


@pytest.mark.parametrize("edges", [bin_edges(4), bin_edges([0.0, 0.3, 0.35, 0.9])])
def test_histograms_follow_np_histogram_outside_zero_one(edges):
    # Scores outside [0, 3] are dropped and 3 itself falls in the last, closed bin, in the O(1)
    # form for i / N thresholds and in the binary-search form alike.
    scores = np.array([-0.1, 0.0, 0.3, 0.35, 0.9999, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, np.nan])
    fh, bh, _ = score_histograms(
        torch.from_numpy(scores), torch.ones(scores.shape, dtype=torch.bool), None, edges
    )
    assert fh.tolist() == np.histogram(scores[~np.isnan(scores)], bins=edges)[0].tolist()
    assert int(bh.sum()) == 0


def test_no_foreground_raises():
    fg = np.zeros((2, 2), dtype=bool)
    with pytest.raises(PxAPError, match="no positive ground truth"):
        _pxap([MAP], [fg], [fg], 4)


def test_thresholds_are_wsolevaluations_arange():
    for interval, n in ((0.01, 100), (0.001, 1000)):
        ours = mask_thresholds(n)
        theirs = np.arange(0, 1, interval)
        assert ours.shape == theirs.shape and (ours == theirs).all()
    assert bin_edges(4).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="increasing"):
        mask_thresholds([0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        mask_thresholds([0.0, 1.0])


# --- random data against the reference --------------------------------------------------------


def _random_set(rng, count, thresholds):
    """Maps with ties on bin edges, exact 0s and 1s, float32 and float64; masks with instances
    and ignore regions."""
    taus = mask_thresholds(thresholds)
    maps, fgs, igns = [], [], []
    for k in range(count):
        h, w = rng.integers(3, 40, size=2)
        kind = k % 5
        if kind == 0:  # values exactly on the thresholds (ties at bin edges)
            m = rng.choice(np.concatenate([taus, [1.0]]), size=(h, w))
        elif kind == 1:  # float32 values of thresholds: just above or below the float64 edge
            m = rng.choice(np.concatenate([taus, [1.0]]), size=(h, w)).astype(np.float32)
        elif kind == 2:  # continuous, with exact 0 and 1
            m = rng.random((h, w))
            m.flat[rng.integers(h * w)] = 1.0
            m.flat[rng.integers(h * w)] = 0.0
        elif kind == 3:  # coarse levels: many ties
            m = rng.integers(0, 5, size=(h, w)) / 4.0
        else:  # one ulp either side of the edges
            m = rng.choice(np.concatenate([taus[1:], [1.0]]), size=(h, w))
            m = np.nextafter(m, np.where(rng.random((h, w)) < 0.5, 0.0, 2.0))
            m = np.minimum(m, 1.0)
        fg = np.zeros((h, w), dtype=bool)
        for _ in range(rng.integers(0, 3)):  # instances, possibly none, possibly overlapping
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            fg[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = True
        box = np.zeros((h, w), dtype=bool)
        if rng.random() < 0.6:
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            box[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = True
        maps.append(m)
        fgs.append(fg)
        igns.append(box & ~fg)
    return maps, fgs, igns


@pytest.mark.parametrize("thresholds", [100, 1000, 7])
def test_random_sets_equal_the_reference(thresholds):
    rng = np.random.default_rng(thresholds)
    maps, fgs, igns = _random_set(rng, 300, thresholds)
    ours = _pxap(maps, fgs, igns, thresholds)
    ref = reference_pxap(maps, fgs, igns, thresholds)
    assert ours.tp.tolist() == ref["tp"].tolist()
    assert ours.fp.tolist() == ref["fp"].tolist()
    assert ours.thresholds.tolist() == ref["levels"].tolist()
    np.testing.assert_allclose(ours.recall, ref["recall"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ours.precision, ref["precision"], rtol=0, atol=1e-15)
    assert abs(ours.pxap - ref["pxap"]) < 1e-9
    assert 0 < ours.pxap < 100


def test_explicit_thresholds_equal_the_reference():
    # Non-uniform thresholds take the binary-search form; ties on its edges too.
    rng = np.random.default_rng(5)
    taus = np.unique(np.concatenate([[0.0], rng.random(37)]))
    maps, fgs, igns = _random_set(rng, 60, 10)
    maps = [np.where(rng.random(m.shape) < 0.5, rng.choice(taus, size=m.shape), m) for m in maps]
    ours = _pxap(maps, fgs, igns, taus)
    ref = reference_pxap(maps, fgs, igns, taus)
    assert ours.tp.tolist() == ref["tp"].tolist() and ours.fp.tolist() == ref["fp"].tolist()
    assert abs(ours.pxap - ref["pxap"]) < 1e-9


def test_reference_interval_form_agrees():
    rng = np.random.default_rng(3)
    maps, fgs, igns = _random_set(rng, 40, 100)
    a = reference_pxap(maps, fgs, igns, 0.01)["pxap"]
    assert abs(_pxap(maps, fgs, igns, 100).pxap - a) < 1e-9


# --- the torchmetrics Metric --------------------------------------------------------------


def _batched(rng, batches, size=(12, 10)):
    out = []
    for b in batches:
        maps = rng.random((b, *size)) * 3 - 1  # not normalised
        maps[0, 0, 0] = np.nan if len(out) == 1 else maps[0, 0, 0]  # one NaN map
        fg = rng.random((b, *size)) < 0.3
        box = rng.random((b, *size)) < 0.2
        out.append((maps, fg, box))
    return out


def test_metric_equals_the_numpy_path_and_the_reference():
    rng = np.random.default_rng(0)
    batches = _batched(rng, [3, 4, 2])
    metric = PxAPMetric(thresholds=100)
    for maps, fg, box in batches:
        metric.update(torch.from_numpy(maps).float(), torch.from_numpy(fg), torch.from_numpy(box))
    result = metric.compute()
    flat_maps = [normalize(m.astype(np.float32)) for b in batches for m in b[0]]
    flat_fg = [f for b in batches for f in b[1]]
    flat_ign = [i & ~f for b in batches for i, f in zip(b[2], b[1], strict=True)]
    numpy_path = _pxap(flat_maps, flat_fg, flat_ign, 100)
    assert float(result["pxap"]) == numpy_path.pxap
    ref = reference_pxap(flat_maps, flat_fg, flat_ign, 100)
    assert abs(float(result["pxap"]) - ref["pxap"]) < 1e-9
    assert int(result["num_images"]) == 9
    assert int(result["num_ignored"]) == sum(int(i.sum()) for i in flat_ign)
    assert result["recall"].shape == (102,) and result["thresholds"][0] == 2.0


def test_metric_states_sum_across_processes():
    # DDP reduces each state with its dist_reduce_fx; merge_state applies the same reductions.
    rng = np.random.default_rng(1)
    batches = _batched(rng, [3, 4])
    whole, part_a, part_b = PxAPMetric(10), PxAPMetric(10), PxAPMetric(10)
    for k, (maps, fg, box) in enumerate(batches):
        args = (torch.from_numpy(maps), torch.from_numpy(fg), torch.from_numpy(box))
        whole.update(*args)
        (part_a if k == 0 else part_b).update(*args)
    part_a.merge_state(part_b)
    assert torch.equal(part_a.foreground_hist, whole.foreground_hist)
    assert torch.equal(part_a.background_hist, whole.background_hist)
    assert float(part_a.compute()["pxap"]) == float(whole.compute()["pxap"])


def test_metric_without_normalize_checks_the_range():
    metric = PxAPMetric(10, normalize=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metric.update(torch.full((1, 2, 2), 1.5), torch.ones(1, 2, 2, dtype=torch.bool))
    metric.update(torch.full((1, 2, 2), 0.5), torch.ones(1, 2, 2, dtype=torch.bool))
    assert float(metric.compute()["pxap"]) == 100.0


def test_normalize_matches_the_reference_normalisation():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(4, 7, 9)).astype(np.float32)
    maps[1] = 3.0  # constant -> zeros
    maps[2, 0, 0] = np.nan  # NaN -> zeros
    ours = normalize_scoremaps(torch.from_numpy(maps)).numpy()
    for k in range(4):
        np.testing.assert_array_equal(ours[k], normalize(maps[k]))
