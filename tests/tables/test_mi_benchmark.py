"""The benchmark table: bias, RMSE and wall time on hand-built records; files and missing jobs."""

import math

import pytest

from infocam_exp.results import write_json_atomic
from infocam_exp.tables.__main__ import make_table
from infocam_exp.tables.aggregate import Row
from infocam_exp.tables.mi_benchmark import bias_pivot, summarise

KEYS = {"data": "mi_paper", "data.samples_per_class": "200", "estimator": "knn"}


def _rec(estimate, truth=1.0, wall=2.0, se=0.0):
    return {"status": "complete", "wall_time_s": wall,
            "metrics": {"test/mi_estimate": estimate, "test/mi_true": truth, "test/mi_true_se": se}}


def test_bias_rmse_wall_by_hand():
    row = Row(keys=dict(KEYS), expected=3, records=[_rec(1.1, wall=1.0), _rec(0.8, wall=2.0), _rec(1.2, wall=6.0)])
    c = summarise(row)
    assert c.truth == 1.0 and c.seeds_done == 3
    assert c.mean == pytest.approx(1.0333333333)
    assert c.bias == pytest.approx(0.0333333333)
    # errors 0.1, -0.2, 0.2: RMSE = sqrt((0.01 + 0.04 + 0.04) / 3)
    assert c.rmse == pytest.approx(math.sqrt(0.09 / 3))
    assert c.std == pytest.approx(math.sqrt(((0.1 - 1 / 30) ** 2 + (-0.2 - 1 / 30) ** 2 + (0.2 - 1 / 30) ** 2) / 2))
    assert c.wall_s == pytest.approx(3.0)
    # a diverged seed makes the row non-finite instead of vanishing
    bad = summarise(Row(keys=dict(KEYS), expected=2, records=[_rec(1.0), _rec(float("nan"))]))
    assert math.isnan(bad.rmse)
    header, lines = bias_pivot([c, summarise(Row(keys={**KEYS, "estimator": "mine"}, expected=3, records=[_rec(0.5)]))])
    assert header == ["task", "N/class", "truth", "knn", "mine"]
    assert lines[0][3] == "**+0.033 (0.173)**" and lines[0][4] == "-0.500 (0.500)"


def test_make_table_writes_files_and_counts_missing(tmp_path):
    runs = tmp_path / "tables" / "runs" / "mi_benchmark"
    for seed, est in enumerate([0.9, 1.1, 1.0]):
        write_json_atomic(runs / f"job{seed}" / "metrics.json", {
            **_rec(est, truth=1.0314), "git_sha": "abc",
            "overrides": ["data=mi_paper", "data.samples_per_class=200", "estimator=knn", f"seed={seed}"],
        })
    write_json_atomic(runs / "failed" / "metrics.json", {
        "status": "failed", "error": "boom", "metrics": {},
        "overrides": ["data=mi_paper", "data.samples_per_class=200", "estimator=mine", "seed=0"],
    })
    missing = make_table("mi_benchmark", [f"paths.output_dir={tmp_path}"])
    assert missing == 210 - 3
    md = (tmp_path / "tables" / "mi_benchmark.md").read_text()
    assert "| mi_paper | 200 | knn | 3/3 | 1.0314 | 0.0000 | 1.0000 ± 0.1000 | -0.0314 |" in md
    assert "failed boom" in md
    csv = (tmp_path / "tables" / "mi_benchmark.csv").read_text().splitlines()
    assert csv[0].startswith("task,samples,estimator,seeds_done") and len(csv) == 1 + 70
    assert (tmp_path / "tables" / "mi_benchmark.png").stat().st_size > 10_000
