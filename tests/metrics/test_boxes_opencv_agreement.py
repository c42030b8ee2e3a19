"""Both box sweeps (compiled and torch) against a literal per-image OpenCV reference.

The reference is :func:`tests.metrics.opencv_reference.opencv_threshold_ious` (wsolevaluation's
procedure with numpy and OpenCV only): ``cv2.threshold``, ``findContours(RETR_TREE,
CHAIN_APPROX_SIMPLE)``, ``contourArea``, ``boundingRect`` per image and threshold. The metrics must
agree within 0.1 points on a varied set of maps, and the two sweeps must agree with each other
exactly.
"""

import math

import cv2
import numpy as np
import pytest
import torch

from infocam_exp.metrics.boxes import (
    batched_threshold_ious,
    default_thresholds,
    euler_numbers,
    scoremaps_to_uint8,
    threshold_ious,
)
from tests.metrics.conftest import use_box_kernels
from tests.metrics.opencv_reference import opencv_threshold_ious


def _blobs(g: torch.Generator, n: int, size: int, k: int, sigma: tuple[float, float]):
    yy, xx = torch.meshgrid(torch.arange(size * 1.0), torch.arange(size * 1.0), indexing="ij")
    out = torch.zeros(n, size, size)
    for _ in range(k):
        cx = torch.rand(n, 1, 1, generator=g) * size
        cy = torch.rand(n, 1, 1, generator=g) * size
        s = sigma[0] + torch.rand(n, 1, 1, generator=g) * (sigma[1] - sigma[0])
        amp = 0.2 + torch.rand(n, 1, 1, generator=g)
        out += amp * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s**2))
    return out


def _thin(g: torch.Generator, n: int, size: int):
    out = torch.zeros(n, size, size)
    for i in range(n):
        for _ in range(3):
            r, c = torch.randint(0, size, (2,), generator=g).tolist()
            length = int(torch.randint(5, size, (1,), generator=g))
            val = float(torch.rand(1, generator=g)) * 0.8 + 0.2
            if i % 3 == 0:
                out[i, r, c : c + length] = val  # horizontal line
            elif i % 3 == 1:
                out[i, r : r + length, c] = val  # vertical line
            else:
                idx = torch.arange(min(length, size - max(r, c)))
                out[i, r + idx, c + idx] = val  # diagonal (8-connected only)
    return out


def _gt(g: torch.Generator, n: int, size: int, max_boxes: int = 3):
    xy = torch.randint(0, size * 3 // 4, (n, max_boxes, 2), generator=g)
    wh = torch.randint(2, size // 2, (n, max_boxes, 2), generator=g)
    gt = torch.cat([xy, (xy + wh).clamp(max=size - 1)], dim=-1)
    count = torch.randint(1, max_boxes + 1, (n,), generator=g)
    gt[torch.arange(max_boxes)[None, :] >= count[:, None]] = -1
    return gt


def _varied_maps(seed: int = 0, size: int = 56):
    g = torch.Generator().manual_seed(seed)
    noisy = _blobs(g, 40, size, 2, (3, 12))
    noisy = noisy + 0.15 * torch.rand(noisy.shape, generator=g)
    flat = torch.full((4, size, size), 0.3)
    nan = torch.rand(4, size, size, generator=g)
    nan[:, 5, 7] = float("nan")
    parts = [
        _blobs(g, 100, size, 1, (3, 15)),  # smooth single blob
        _blobs(g, 60, size, 4, (2, 8)),  # multi-modal
        noisy,  # noisy blobs (holes, islands, many small regions)
        torch.rand(6, size, size, generator=g),  # pure noise
        flat,
        nan,
        _thin(g, 24, size),  # lines: contour area 0
    ]
    maps = torch.cat(parts)
    return maps, _gt(g, maps.shape[0], size)


def _metrics(iou_largest: torch.Tensor, iou_any: torch.Tensor) -> dict[str, float]:
    out = {"max_box_acc": float((iou_largest >= 0.5).double().mean(0).max() * 100)}
    v2 = [float((iou_any >= t).double().mean(0).max() * 100) for t in (0.3, 0.5, 0.7)]
    out.update({f"v2_{t}": v for t, v in zip((30, 50, 70), v2, strict=True)})
    out["max_box_acc_v2"] = sum(v2) / 3
    out["gt_known@0.2"] = float((iou_largest[:, 10] >= 0.5).double().mean() * 100)  # tau 10/50
    return out


@pytest.fixture(scope="module")
def varied():
    maps, gt = _varied_maps()
    # 50 thresholds (not wsolevaluation's 100 or 1000) keep the per-image OpenCV loop fast.
    taus = default_thresholds(50)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the sweep is latency-bound; see LocalizationMetrics
    try:
        swept = threshold_ious(maps, gt, taus)
    finally:
        torch.set_num_threads(threads)
    ours = {"torch": swept}
    for kernels in ("c", "numba"):  # the compiled sweep's two kernel sets
        with use_box_kernels(kernels):
            ours[f"compiled-{kernels}"] = batched_threshold_ious(maps, gt, taus, backend="compiled")
    ref = opencv_threshold_ious(maps, gt, taus)
    return maps, gt, ours, ref


@pytest.mark.parametrize("kernels", ["c", "numba"])
def test_compiled_and_torch_sweeps_agree_exactly(varied, kernels):
    _, _, ours, _ = varied
    assert torch.equal(ours[f"compiled-{kernels}"][0], ours["torch"][0])
    assert torch.equal(ours[f"compiled-{kernels}"][1], ours["torch"][1])


@pytest.mark.parametrize("backend", ["compiled-c", "compiled-numba", "torch"])
def test_metrics_agree_with_opencv_within_a_tenth_of_a_point(varied, backend):
    _, _, ours, ref = varied
    got, want = _metrics(*ours[backend]), _metrics(*ref)
    for key in want:
        assert math.isclose(got[key], want[key], abs_tol=0.1), (key, got[key], want[key])


@pytest.mark.parametrize("backend", ["compiled-c", "compiled-numba", "torch"])
def test_per_threshold_ious_identical(varied, backend):
    maps, _, ours, (ref_largest, ref_any) = varied
    largest, anyr = ours[backend]
    # Every IoU is exact: all contours (regions and holes) and the largest region, whose
    # contour area covers its holes as OpenCV's does (noisy maps have many holes).
    assert torch.equal(anyr, ref_any)
    assert torch.equal(largest, ref_largest)


@pytest.mark.usefixtures("box_kernels")
def test_large_maps_agree():
    g = torch.Generator().manual_seed(5)
    maps = _blobs(g, 3, 224, 3, (10, 50))
    maps[2] += 0.1 * torch.rand(224, 224, generator=g)
    gt = _gt(g, 3, 224)
    taus = default_thresholds(50)
    ref = opencv_threshold_ious(maps, gt, taus)
    for ours in (threshold_ious(maps, gt, taus), batched_threshold_ious(maps, gt, taus)):
        assert torch.equal(ours[1], ref[1])
        assert torch.equal(ours[0], ref[0])


def test_euler_numbers_match_opencv_hierarchy():
    g = torch.Generator().manual_seed(3)
    maps = torch.cat([torch.rand(4, 20, 20, generator=g), _blobs(g, 4, 20, 3, (1, 3))])
    u8 = scoremaps_to_uint8(maps)
    euler = euler_numbers(u8)
    for b in range(u8.shape[0]):
        for t in (0, 60, 128, 200, 254):
            mask = ((u8[b] > t).numpy() * 255).astype(np.uint8)
            contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
            if not contours:
                assert euler[b, t] == 0
                continue
            outer = int((hierarchy[0][:, 3] < 0).sum())
            assert euler[b, t] == outer - (len(contours) - outer), (b, t)
