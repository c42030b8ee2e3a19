"""Tables from the runs a user has: the rows present, the missing jobs listed, exit status only
with --strict, ad-hoc multirun folders (--runs), no figure without data."""

from __future__ import annotations

from pathlib import Path

from infocam_exp.results import write_json_atomic, write_text_atomic
from infocam_exp.tables.__main__ import main, make_table
from infocam_exp.tables.aggregate import grid_from_records, load_records, record_value


def _mi_record(folder: Path, overrides: list[str], estimate: float, *, prior: str = "balanced", dim: int = 1,
               seed: int = 0, task: str = "mi_synthetic", choices: dict | None = None) -> None:
    """A complete record as the entry point writes it, with the resolved config.yaml beside it."""
    write_json_atomic(folder / "metrics.json", {
        "status": "complete", "task_name": task, "seed": seed, "overrides": overrides,
        "choices": choices or {"loss": "ce", "data": "synthetic_gaussian"},
        "metrics": {"test/mi_estimate": estimate, "test/mi_true": 1.0, "test/acc": 0.5},
    })
    write_text_atomic(folder / "config.yaml", f"seed: {seed}\ndata:\n  prior: {prior}\n  dim: {dim}\n")


def _table_md(tmp_path: Path) -> str:
    return (tmp_path / "tables" / "mi_synthetic.md").read_text()


def test_partial_table_sweep_shows_present_rows_and_lists_missing(tmp_path, capsys):
    """As after `+table=mi_synthetic data.dim=1 seed=0`: 4 of the 48 jobs."""
    runs = tmp_path / "tables" / "runs" / "mi_synthetic"
    for prior in ("balanced", "imbalanced"):
        for loss in ("ce", "pc_softmax"):
            ov = [f"data.prior={prior}", "data.dim=1", f"loss={loss}", "seed=0", "+table=mi_synthetic"]
            _mi_record(runs / f"{prior}_{loss}", ov, 0.9, prior=prior, choices={"loss": loss})
    out = [f"paths.output_dir={tmp_path}"]
    assert make_table("mi_synthetic", out) == 44
    text = _table_md(tmp_path)
    rows = [ln for ln in text.splitlines() if ln.startswith("| balanced") or ln.startswith("| imbalanced")]
    assert len(rows) == 4 and all("| 1 |" in r and "| 1/3 |" in r for r in rows)
    assert "Rows with runs: 4 of 16." in text and "Not run (44):" in text
    assert "- data.prior=imbalanced,data.dim=10,loss=pc_softmax,seed=2" in text
    png = tmp_path / "tables" / "mi_synthetic.png"
    assert png.stat().st_size > 1000 and str(png) in capsys.readouterr().out
    # exit status: 0 by default, 1 with --strict (make table-* passes it)
    assert main(["mi_synthetic", *out]) == 0
    assert main(["--strict", "mi_synthetic", *out]) == 1
    # the sweep's own narrowing, repeated: the 4 jobs are the whole grid
    assert make_table("mi_synthetic", [*out, "data.dim=1", "seed=0"]) == 0
    assert main(["--strict", "mi_synthetic", *out, "data.dim=1", "seed=0"]) == 0


def test_runs_folder_of_an_ad_hoc_sweep(tmp_path):
    """`-m data.dim=1,2 loss=ce,pc_softmax`: the records name neither data.prior nor the seed;
    the table reads them from each job's config.yaml and reports 4 present rows, none missing."""
    sweep = tmp_path / "multiruns" / "mi_synthetic" / "2026-01-01_00-00-00"
    for dim in (1, 2):
        for loss in ("ce", "pc_softmax"):
            _mi_record(sweep / f"data.dim={dim},loss={loss}", [f"data.dim={dim}", f"loss={loss}"], 0.8 + dim / 10,
                       dim=dim, choices={"loss": loss, "data": "synthetic_gaussian"})
    # another task's job in the same folder is not part of this table
    _mi_record(sweep / "other", ["data.dim=1", "loss=ce"], 5.0, task="mnist_pc_softmax")
    records = load_records(sweep)
    assert record_value(records[0], "data.prior") == "balanced" and record_value(records[0], "seed") == "0"
    assert grid_from_records(records, ["data.prior", "data.dim", "loss", "seed", "absent.key"]) == {
        "data.prior": "balanced", "data.dim": "1,2", "loss": "ce,pc_softmax", "seed": "0"}
    out = [f"paths.output_dir={tmp_path}"]
    assert main(["--strict", "--runs", str(sweep), "mi_synthetic", *out]) == 0
    text = _table_md(tmp_path)
    assert "Rows with runs: 4 of 4." in text and "Not run" not in text and "job(s) missing" not in text
    assert "5.0000" not in text
    assert "| balanced | 2 | pc_softmax | 1/1 | 1.0000 |" in text
    assert f"--runs {sweep} mi_synthetic" in text  # the command that regenerates it


def test_runs_folder_feeds_a_builder_table(tmp_path):
    """The MI benchmark's own builder reads an ad-hoc folder too (``-m data=mi_paper
    data.num_samples=1000 seed=0,1``): one row, each estimator's numbers from its keys."""
    sweep = tmp_path / "multiruns" / "mi_benchmark" / "t"
    for seed in (0, 1):
        write_json_atomic(sweep / f"seed={seed}" / "metrics.json", {
            "status": "complete", "task_name": "mi_benchmark", "seed": seed, "wall_time_s": 1.0,
            "overrides": ["+experiment=mi_benchmark", "data=mi_paper", "data.num_samples=1000", f"seed={seed}"],
            "choices": {"data": "mi_paper"},
            "metrics": {"test/knn3/mi_estimate": 1.1 + 0.02 * seed, "test/classifier/mi_estimate": 0.9,
                        "test/mi_true": 1.0, "test/mi_true_se": 0.0},
        })
    assert main(["--strict", "--runs", str(sweep), "mi_benchmark", f"paths.output_dir={tmp_path}"]) == 0
    text = (tmp_path / "tables" / "mi_benchmark.md").read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| mi_paper | 1000 |")]
    assert rows, text
    # bias: knn3 +0.11 (1.10 and 1.12 against 1.0), classifier -0.10
    assert any("+0.110" in ln for ln in rows) and any("-0.100" in ln for ln in rows), rows


def test_missing_runs_folder_is_a_user_error(tmp_path, capsys):
    assert main(["--runs", str(tmp_path / "nope"), "mi_synthetic"]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "Traceback" not in err
