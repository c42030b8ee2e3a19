"""Which records a table counts: duplicates of a cell (the newest complete one wins and the table
names it), a NaN metric in one seed (that job failed; never averaged), a missing seed (2/3)."""

import math
import os

import pytest

from infocam_exp.results import write_json_atomic
from infocam_exp.tables.__main__ import make_table
from infocam_exp.tables.aggregate import Column, collect_rows, load_records, table_cells

PARAMS = {"loss": "ce", "seed": "0,1,2"}
COL = Column(metric="test/acc", label="acc", scale=100, digits=1)


def _write(folder, seed, acc, status="complete", mtime=1_000_000.0, loss="ce", extra=None):
    path = folder / "metrics.json"
    write_json_atomic(path, {
        "status": status, "overrides": [f"loss={loss}", f"seed={seed}", *(extra or [])],
        "metrics": {"test/acc": acc} if status == "complete" else {},
        **({} if status == "complete" else {"error": "RuntimeError: boom"}),
    })
    os.utime(path, (mtime, mtime))


def _table(tmp_path, metrics=("test/acc",)):
    rows = collect_rows(load_records(tmp_path), PARAMS, ["loss"], list(metrics))
    _, cells, raw = table_cells(rows, [COL], ["loss"])
    return rows[0], cells[0], raw[0]


def test_newest_complete_duplicate_wins_and_is_named(tmp_path):
    _write(tmp_path / "old" / "seed=0", 0, 0.10, mtime=1_000)
    _write(tmp_path / "new" / "seed=0", 0, 0.30, mtime=2_000)  # a rerun in another folder
    _write(tmp_path / "newer_failed" / "seed=0", 0, None, status="failed", mtime=3_000)
    _write(tmp_path / "seed=1", 1, 0.50)
    _write(tmp_path / "seed=2", 2, 0.70)
    row, cells, raw = _table(tmp_path)
    assert [r["_dir"].endswith("new/seed=0") for r in row.records] == [True, False, False]
    assert raw["test/acc:mean"] == pytest.approx(50.0)  # (30 + 50 + 70) / 3, not with 10
    assert cells == ["ce", "3/3", "50.0 ± 20.0"]
    (note,) = row.notes
    assert "loss=ce,seed=0: 3 records" in note and "new/seed=0 (newest complete)" in note
    assert "old/seed=0 (complete)" in note and "newer_failed/seed=0 (failed)" in note
    assert not row.failed


def test_duplicate_without_a_complete_record_uses_the_newest(tmp_path):
    _write(tmp_path / "a" / "seed=0", 0, None, status="interrupted", mtime=1_000)
    _write(tmp_path / "b" / "seed=0", 0, None, status="failed", mtime=2_000)
    row, cells, _ = _table(tmp_path)
    assert cells[:2] == ["ce", "0/3"] and cells[2] == "missing"
    (failed,) = row.failed
    assert "b/seed=0: failed RuntimeError: boom" in failed
    assert "(newest, none complete)" in row.notes[0]


def test_nan_in_one_seed_fails_that_job_and_is_not_averaged(tmp_path):
    _write(tmp_path / "seed=0", 0, 0.40)
    _write(tmp_path / "seed=1", 1, float("nan"))
    _write(tmp_path / "seed=2", 2, 0.60)
    row, cells, raw = _table(tmp_path)
    assert cells == ["ce", "2/3", "50.0 ± 14.1"]
    assert raw["test/acc:mean"] == pytest.approx(50.0) and raw["seeds_done"] == 2
    (failed,) = row.failed
    assert "seed=1: complete, but test/acc = nan while other seeds are finite" in failed
    # an infinite value is never a result, even alone
    _write(tmp_path / "seed=1", 1, float("inf"))
    row, cells, _ = _table(tmp_path)
    assert cells[1] == "2/3" and "test/acc = inf" in row.failed[0]


def test_metric_nan_in_every_seed_is_not_applicable(tmp_path):
    # e.g. few-shot accuracy when no class has few training images: NaN by definition
    for seed in range(3):
        _write(tmp_path / f"seed={seed}", seed, float("nan"))
    row, cells, raw = _table(tmp_path)
    assert cells == ["ce", "3/3", "n/a"] and not row.failed and math.isnan(raw["test/acc:mean"])


def test_missing_seed_shows_two_of_three(tmp_path):
    _write(tmp_path / "seed=0", 0, 0.40)
    _write(tmp_path / "seed=2", 2, 0.60)
    row, cells, _ = _table(tmp_path)
    assert cells == ["ce", "2/3", "50.0 ± 14.1"] and not row.failed


def test_table_file_reports_duplicates_and_failures(tmp_path):
    runs = tmp_path / "tables" / "runs" / "mi_synthetic"
    cell = ["data.prior=balanced", "data.dim=1", "+table=mi_synthetic"]

    def rec(folder, seed, value, mtime):
        path = runs / folder / "metrics.json"
        write_json_atomic(path, {"status": "complete", "overrides": [*cell, "loss=ce", f"seed={seed}"],
                                 "metrics": {"test/mi_estimate": value, "test/mi_true": 1.0}})
        os.utime(path, (mtime, mtime))

    rec("stale", 0, 0.5, 1_000)
    rec("fresh", 0, 0.9, 2_000)
    rec("s1", 1, float("nan"), 2_000)
    rec("s2", 2, 1.1, 2_000)
    missing = make_table("mi_synthetic", [f"paths.output_dir={tmp_path}"])
    assert missing == 48 - 2  # seed 1 failed (NaN), every other cell absent
    text = (tmp_path / "tables" / "mi_synthetic.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("| balanced | 1 | ce |"))
    assert "| 2/3 |" in line and "1.0000 ± 0.1414" in line  # fresh 0.9 and 1.1, not stale 0.5
    assert "1 job(s) with more than one record" in text and "fresh (newest complete)" in text
    assert "s1: complete, but test/mi_estimate = nan" in text
