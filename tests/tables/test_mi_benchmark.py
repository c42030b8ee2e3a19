"""The benchmark table: bias, RMSE and their paired bootstrap intervals on hand-built records, the
bold rule, the truth-se flag, failed estimators, files and missing jobs."""

import math

import numpy as np
import pytest

from infocam_exp.results import write_json_atomic
from infocam_exp.tables.__main__ import make_table
from infocam_exp.tables.aggregate import Row
from infocam_exp.tables.mi_benchmark import BOOTSTRAP, bootstrap_indices, pivot, row_cells

KEYS = {"data": "mi_paper", "data.num_samples": "1000"}


def _rec(seed, truth=1.0, se=0.0, **estimates):
    m = {"test/mi_true": truth, "test/mi_true_se": se}
    for e, v in estimates.items():
        m[f"test/{e}/mi_estimate"] = v
        m[f"test/{e}/steps"] = 100.0
        m[f"test/{e}/protocol"] = "crossfit"
    return {"status": "complete", "seed": seed, "metrics": m}


def test_bias_rmse_and_intervals_by_hand():
    errs = [0.1, -0.2, 0.2]
    row = Row(keys=dict(KEYS), expected=3, records=[_rec(s, a=1.0 + e) for s, e in enumerate(errs)])
    (c,) = row_cells(row, ["a"])
    assert c.bias == pytest.approx(0.1 / 3) and c.rmse == pytest.approx(math.sqrt(0.09 / 3))
    assert c.steps == 100.0 and c.protocol == "crossfit" and c.truth == 1.0
    # the interval is the percentile bootstrap over the seeds, resampled with the fixed rng
    idx = bootstrap_indices(3)
    assert idx.shape == (BOOTSTRAP, 3)
    boot = np.array(errs)[idx]
    assert c.bias_ci == pytest.approx((np.percentile(boot.mean(1), 2.5), np.percentile(boot.mean(1), 97.5)))
    assert c.rmse_ci[0] <= c.rmse <= c.rmse_ci[1] and c.rmse_ci[1] <= 0.2 + 1e-12


def test_bold_only_when_the_best_separates_from_the_second():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(10)
    # a: errors ~0.01; b: ~0.2 -> a separates; c: a's errors + 0.002 -> a and c do not separate
    recs = [_rec(s, a=1.0 + 0.01 * noise[s], b=1.2 + 0.01 * noise[s], c=1.002 + 0.01 * noise[s] * 1.05) for s in range(10)]
    cells = row_cells(Row(keys=dict(KEYS), expected=10, records=recs), ["a", "b"])
    assert cells[0].bold and not cells[1].bold
    cells = row_cells(Row(keys=dict(KEYS), expected=10, records=recs), ["a", "b", "c"])
    assert not any(c.bold for c in cells)
    header, lines = pivot([cells], ["a", "b", "c"], {"a": "lower", "b": "none", "c": "upper"}, "rmse")
    assert header == ["task", "N", "truth (se)", "a (≤)", "b", "c (≥)"]
    assert "**" not in " ".join(lines[0])


def test_truth_se_flag_and_failed_estimators():
    recs = [_rec(s, truth=1.0, se=0.01, a=1.0 + 0.02 * (-1) ** s) for s in range(4)]
    recs[1]["metrics"]["test/b/mi_estimate"] = float("nan")
    recs[1]["metrics"]["test/b/error"] = "RuntimeError: diverged"
    cells = row_cells(Row(keys=dict(KEYS), expected=4, records=recs), ["a", "b"])
    _, lines = pivot([cells], ["a", "b"], {}, "bias")
    assert "truth se!" in lines[0][2]  # se 0.01 >= best RMSE 0.02 / 5
    assert cells[1].failed == ["seed 0: not run", "seed 1: RuntimeError: diverged", "seed 2: not run", "seed 3: not run"]
    assert lines[0][4] == "missing"


def test_make_table_writes_files_and_counts_missing(tmp_path):
    runs = tmp_path / "tables" / "runs" / "mi_benchmark"
    for seed in range(10):
        write_json_atomic(runs / f"job{seed}" / "metrics.json", {
            **_rec(seed, truth=1.0314, knn3=1.0314 + 0.01 * (seed - 4.5), classifier=0.9), "git_sha": "abc",
            "overrides": ["data=mi_paper", "data.num_samples=1000", f"seed={seed}"],
        })
    write_json_atomic(runs / "failed" / "metrics.json", {
        "status": "failed", "error": "boom", "metrics": {}, "seed": 0,
        "overrides": ["data=mi_hetero", "data.num_samples=1000", "seed=0"],
    })
    missing = make_table("mi_benchmark", [f"paths.output_dir={tmp_path}"])
    assert missing == 140 - 10
    md = (tmp_path / "tables" / "mi_benchmark.md").read_text()
    assert "| mi_paper | 1000 | 1.0314 (0.0000) |" in md and "failed boom" in md
    assert "| mi_paper | 1000 | knn3 | 10/10 | 1.0314 |" in md
    assert "classifier (≤)" in md  # the classifier's mean log PC_y is a lower bound in expectation
    csv = (tmp_path / "tables" / "mi_benchmark.csv").read_text().splitlines()
    assert csv[0].startswith("task,n,estimator,seeds_done") and len(csv) == 1 + 14 * 8
    for fig in ("heatmap", "scaling"):
        assert (tmp_path / "tables" / f"mi_benchmark_{fig}.png").stat().st_size > 10_000
