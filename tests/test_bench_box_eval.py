"""The benchmark's reference: its transcription of wsolevaluation's V1 procedure scores like the
evaluator, so the speed ratios compare the same computation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from infocam_exp.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_box_eval", ROOT / "scripts/bench_box_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_transcription_hits_equal_the_evaluators(bench, tmp_path):
    # 24 mixed 64 x 64 maps (smooth, shifted, multi-modal, noisy), float64 so both normalise
    # alike; every threshold's V1 hit count must equal GT-known Loc's curve times the map count.
    maps, gt = bench.mixed_maps(24, 64, seed=3)
    meta, heat = bench.write_split(tmp_path, maps.astype(np.float64), gt, seed=3)
    rate, hits = bench.wsolevaluation_v1_rate(meta, heat, 24, 100)
    report = evaluate(meta, heat, thresholds=100, progress=False)
    curve = np.array(report["curves"]["gt_known_loc"]) * 24 / 100
    assert rate > 0
    assert hits.sum() > 0 and hits.min() < 24  # the maps do separate hits from misses
    np.testing.assert_array_equal(hits, np.round(curve).astype(np.int64))
