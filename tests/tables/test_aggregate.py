import json

import pytest

from infocam_exp.results import write_json_atomic
from infocam_exp.tables.__main__ import make_table
from infocam_exp.tables.aggregate import (
    Column,
    collect_rows,
    expand_grid,
    parse_overrides,
    table_cells,
)

PARAMS = {"loss": "ce,pc_softmax", "seed": "0,1"}


def _record(tmp_path, loss, seed, value, status="complete"):
    d = tmp_path / f"loss={loss},seed={seed}"
    write_json_atomic(d / "metrics.json", {
        "status": status, "overrides": [f"loss={loss}", f"seed={seed}", "+table=x"],
        "metrics": {"test/acc": value} if status == "complete" else {}, "error": "boom" if status != "complete" else None,
    })
    return {"_dir": str(d), **json.loads((d / "metrics.json").read_text())}


def test_grid_and_overrides():
    assert expand_grid(PARAMS) == [
        {"loss": "ce", "seed": "0"}, {"loss": "ce", "seed": "1"},
        {"loss": "pc_softmax", "seed": "0"}, {"loss": "pc_softmax", "seed": "1"},
    ]
    assert parse_overrides(["+table=x", "data.dim=1", "~foo=2"]) == {"table": "x", "data.dim": "1", "foo": "2"}


def test_mean_std_missing_failed_and_paper(tmp_path):
    records = [
        _record(tmp_path, "ce", 0, 0.5), _record(tmp_path, "ce", 1, 0.7),
        _record(tmp_path, "pc_softmax", 0, 0.9), _record(tmp_path, "pc_softmax", 1, 0.0, status="failed"),
    ]
    rows = collect_rows(records, PARAMS, ["loss"])
    assert [len(r.records) for r in rows] == [2, 1] and rows[1].failed
    col = Column(metric="test/acc", label="acc", scale=100, digits=1, paper={"loss=pc_softmax": 89.73})
    header, cells, raw = table_cells(rows, [col], ["loss"])
    assert header == ["loss", "seeds", "acc (paper)", "acc"]
    # ce: mean 60, sample std sqrt(((50-60)^2 + (70-60)^2) / 1) = 14.142
    assert cells[0] == ["ce", "2/2", "–", "60.0 ± 14.1"]
    assert cells[1] == ["pc_softmax", "1/2", "89.7", "90.0"]
    assert raw[0]["test/acc:std"] == pytest.approx(14.1421356, rel=1e-6)


def test_make_table_without_runs_writes_nothing(tmp_path, capsys):
    # no runs at all: every job missing, no table and no (empty) figure written
    missing = make_table("mi_synthetic", [f"paths.output_dir={tmp_path}"])
    assert missing == 48
    assert not (tmp_path / "tables").exists()
    assert "No runs of table mi_synthetic" in capsys.readouterr().out


def test_plots_write_pngs(tmp_path):
    from infocam_exp.tables.aggregate import Row
    from infocam_exp.tables.plots import mi_vs_dim, per_class_accuracy

    def rec(**metrics):
        return {"metrics": metrics}

    rows = [
        Row({"data": "mnist", "loss": loss}, 2, [rec(**{"test/class_acc": [0.5, 0.9, float("nan")]}) for _ in range(2)])
        for loss in ("ce", "pc_softmax")
    ]
    per_class_accuracy(rows, tmp_path / "pc.png")
    mi_rows = [
        Row({"data.prior": "balanced", "data.dim": d, "loss": loss}, 1,
            [rec(**{"test/mi_true": 1.0, "test/mi_estimate": 0.9, "test/mi_estimate_prior_corrected": 0.95})])
        for d in ("1", "2") for loss in ("ce", "pc_softmax")
    ]
    mi_vs_dim(mi_rows, tmp_path / "mi.png")
    for name in ("pc.png", "mi.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
