"""Which sweep ran: each backend is tested with the other one made to fail.

The compiled sweep (numba) and the torch sweep must each give the OpenCV reference's IoUs on their
own. The torch sweep borrows the compiled code for the largest region of maps with holes, so the
two are compared on maps checked to be hole-free at every threshold, with the compiled code made
to raise while the torch sweep runs and the torch sweep made to raise while the compiled one runs.
"""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import infocam_exp.metrics._boxes_compiled as compiled_mod
import infocam_exp.metrics.boxes as boxes_mod
from infocam_exp.metrics.boxes import batched_threshold_ious, default_thresholds
from infocam_exp.metrics.localization import LocalizationMetrics
from tests.metrics.opencv_reference import normalize_to_uint8, opencv_threshold_ious

TAUS = default_thresholds(50)


def _blob_maps(num: int, size: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of 1-3 Gaussian blobs (several regions at many levels) and GT boxes."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)),
                            indexing="ij")
    maps = torch.zeros(num, size, size, dtype=torch.float64)
    for k in range(3):
        cx, cy = (torch.rand(2, num, generator=g, dtype=torch.float64) * size).unbind(0)
        sigma = size * (0.05 + 0.15 * torch.rand(num, generator=g, dtype=torch.float64))
        amp = (torch.rand(num, generator=g, dtype=torch.float64) < (1.0 if k == 0 else 0.6)) * (
            0.3 + torch.rand(num, generator=g, dtype=torch.float64)
        )
        maps += amp[:, None, None] * torch.exp(
            -((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2)
            / (2 * sigma[:, None, None] ** 2)
        )
    lo = torch.randint(0, size // 2, (num, 2), generator=g)
    hi = lo + torch.randint(4, size // 2, (num, 2), generator=g)
    return maps, torch.cat((lo, hi.clamp(max=size - 1)), 1)[:, None, :]


def _has_hole(m: torch.Tensor) -> bool:
    """Any hole (a child contour under RETR_CCOMP) at any of the test's thresholds (OpenCV)."""
    u8 = normalize_to_uint8(m.numpy())
    for tau in TAUS.tolist():
        _, mask = cv2.threshold(u8, int(tau * np.max(u8)), 255, cv2.THRESH_BINARY)
        _, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if hierarchy is not None and (hierarchy[0, :, 3] >= 0).any():
            return True
    return False


@pytest.fixture(scope="module")
def hole_free():
    maps, gt = _blob_maps(48)
    keep = [i for i in range(len(maps)) if not _has_hole(maps[i])]
    assert len(keep) >= 30, "the generator should give mostly hole-free maps"
    maps, gt = maps[keep], gt[keep]
    # several regions at some threshold: the largest-region choice is exercised
    u8 = normalize_to_uint8(maps[0].numpy())
    assert u8.max() > 0
    return maps, gt


def _torch_sweep_raises(monkeypatch):
    def boom(*_args, **_kwargs):
        raise AssertionError("the torch sweep ran")

    for name in ("sweep_levels", "threshold_ious", "largest_region_boxes", "_hole_ious"):
        monkeypatch.setattr(boxes_mod, name, boom)


def _compiled_raises(monkeypatch):
    def boom(*_args, **_kwargs):
        raise AssertionError("the compiled sweep ran")

    monkeypatch.setattr(compiled_mod, "compiled_threshold_ious", boom)
    monkeypatch.setattr(compiled_mod, "_map_ious", boom)


def test_the_maps_are_hole_free_and_have_several_regions(hole_free):
    maps, _ = hole_free
    regions = 0
    for m in maps:
        u8 = normalize_to_uint8(m.numpy())
        for tau in TAUS.tolist():
            _, mask = cv2.threshold(u8, int(tau * np.max(u8)), 255, cv2.THRESH_BINARY)
            regions = max(regions, len(cv2.findContours(mask, cv2.RETR_TREE,
                                                        cv2.CHAIN_APPROX_SIMPLE)[0]))
    assert regions >= 2


@pytest.mark.parametrize("backend", ["compiled", "auto"])
def test_compiled_and_auto_run_without_the_torch_sweep(hole_free, monkeypatch, backend):
    maps, gt = hole_free
    ref_l, ref_a = opencv_threshold_ious(maps, gt, TAUS)
    _torch_sweep_raises(monkeypatch)
    largest, anyr = batched_threshold_ious(maps, gt, TAUS, backend=backend, workers=2)
    assert torch.equal(largest, ref_l) and torch.equal(anyr, ref_a)
    metric = LocalizationMetrics(thresholds=TAUS, backend=backend)
    metric.update(maps, gt)
    hits = (ref_l >= 0.5).sum(0)
    assert torch.equal(metric.gt_known_hits, hits)


def test_compiled_on_maps_with_holes_runs_without_the_torch_sweep(monkeypatch):
    # A ring with an island: the compiled sweep's own hole-filled areas and hole borders.
    m = torch.zeros(1, 24, 24, dtype=torch.float64)
    m[0, 2:22, 2:22] = 1.0
    m[0, 6:18, 6:18] = 0.0
    m[0, 10:14, 10:14] = 1.0
    m[0, 20:23, 0:3] = 0.5
    gt = torch.tensor([[[6, 6, 17, 17]]])
    ref = opencv_threshold_ious(m, gt, TAUS)
    _torch_sweep_raises(monkeypatch)
    got = batched_threshold_ious(m, gt, TAUS, backend="compiled")
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


def test_torch_sweep_on_hole_free_maps_never_calls_the_compiled_code(hole_free, monkeypatch):
    maps, gt = hole_free
    ref_l, ref_a = opencv_threshold_ious(maps, gt, TAUS)
    _compiled_raises(monkeypatch)
    largest, anyr = batched_threshold_ious(maps, gt, TAUS, backend="torch", workers=2)
    assert torch.equal(largest, ref_l) and torch.equal(anyr, ref_a)


def test_compiled_equals_torch_where_neither_borrows(hole_free, monkeypatch):
    maps, gt = hole_free
    with monkeypatch.context() as patch:
        _compiled_raises(patch)
        torch_result = batched_threshold_ious(maps, gt, TAUS, backend="torch")
    with monkeypatch.context() as patch:
        _torch_sweep_raises(patch)
        compiled_result = batched_threshold_ious(maps, gt, TAUS, backend="compiled")
    assert torch.equal(torch_result[0], compiled_result[0])
    assert torch.equal(torch_result[1], compiled_result[1])


def test_evaluate_cli_path_imports_neither_torch_nor_torchmetrics():
    code = (
        "import sys, infocam_exp.evaluate\n"
        "bad = [m for m in ('torch', 'torchmetrics', 'torchvision') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fallback_cache_dir_only_when_numba_has_nowhere_to_write(tmp_path):
    pkg = tmp_path / "pkg"
    from infocam_exp.metrics._boxes_numba import fallback_cache_dir as fallback

    env = {"XDG_CACHE_HOME": str(tmp_path / "home_cache")}
    assert fallback(env, pkg, writable=lambda _p: True) is None
    assert fallback({"NUMBA_CACHE_DIR": "/x"}, pkg, writable=lambda _p: False) is None
    # read-only package, writable user cache: numba's own user-wide locator takes it
    assert fallback(env, pkg, writable=lambda p: "home_cache" in str(p)) is None
    # neither: a per-user folder under the temp dir, which we then hand to numba
    out = fallback(env, pkg, writable=lambda _p: False)
    assert out is not None and out.name.startswith("numba-cache-")
