"""End to end: compose the real configs, run, check the record."""

import json
import math
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError

from infocam_exp.errors import ConfigError
from infocam_exp.run import run
from tests.conftest import compose_cfg

REQUIRED = [
    "test/mi_true", "test/mi_true_mc", "test/mi_true_mc_se", "test/mi_estimate",
    "test/mi_estimate_prior_corrected", "test/acc", "test/mean_class_acc", "test/mi_gap",
]


def test_run_writes_complete_record(tmp_path, tiny_mi_overrides):
    cfg = compose_cfg("+experiment=mi_synthetic", "data.prior=imbalanced", "loss=pc_softmax", "seed=0", *tiny_mi_overrides)
    metrics = run(cfg, tmp_path / "run", choices={"loss": "pc_softmax"}, overrides=["loss=pc_softmax"])
    rec = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert rec["status"] == "complete"
    assert rec["seed"] == 0 and rec["choices"] == {"loss": "pc_softmax"}
    for key in ("git_sha", "versions", "device", "wall_time_s", "config_hash", "data_seed"):
        assert key in rec
    for key in REQUIRED:
        assert math.isfinite(rec["metrics"][key]), key
    assert metrics["test/mi_estimate"] == rec["metrics"]["test/mi_estimate@pc"]
    assert metrics["test/mi_gap"] == pytest.approx(metrics["test/mi_estimate"] - metrics["test/mi_true"])
    assert len(rec["metrics"]["test/class_acc"]) == 5
    # the splits as built: imbalanced counts [100, 200, 300, 400, 500] (data.samples_per_class=200
    # scales 1:2:...:5), val and test one fifth of each
    sizes = {k: rec["metrics"][k] for k in ("data/num_train", "data/num_val", "data/num_test")}
    assert sizes == {"data/num_train": 1500, "data/num_val": 300, "data/num_test": 300}
    # the test split has the training proportions, so the MI under its own label distribution is
    # the PC estimate itself
    assert rec["metrics"]["test/mi_estimate@split_prior"] == pytest.approx(metrics["test/mi_estimate"], abs=1e-5)
    # validation values are logged every epoch
    csv_rows = (tmp_path / "run" / "csv" / "metrics.csv").read_text().splitlines()
    header = csv_rows[0].split(",")
    assert "val/mi_estimate" in header
    col = header.index("val/mi_estimate")
    assert sum(1 for r in csv_rows[1:] if r.split(",")[col]) == 2  # two epochs


def test_split_sizes_ignore_limit_batches(tmp_path, tiny_mi_overrides):
    cfg = compose_cfg(
        *tiny_mi_overrides, "data.eval_batch_size=50", "+trainer.limit_train_batches=1",
        "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1", "logger=none",
    )
    m = run(cfg, tmp_path)
    assert m["test/num_samples"] == 50  # one test batch ran ...
    # ... but the record states the splits the DataModule built
    assert (m["data/num_train"], m["data/num_val"], m["data/num_test"]) == (1000, 200, 200)


def test_ce_estimators_differ_by_log_k_minus_entropy(tmp_path, tiny_mi_overrides):
    cfg = compose_cfg("data.prior=imbalanced", "loss=ce", *tiny_mi_overrides, "logger=none")
    m = run(cfg, tmp_path)
    expected = math.log(5) - m["test/entropy_y"]
    assert m["test/mi_estimate"] - m["test/mi_estimate_prior_corrected"] == pytest.approx(expected, abs=1e-5)


def test_completed_run_is_skipped_and_changed_config_reruns(tmp_path, tiny_mi_overrides, monkeypatch):
    cfg = compose_cfg(*tiny_mi_overrides, "logger=none")
    first = run(cfg, tmp_path)
    import infocam_exp.run as run_mod

    def boom(*a, **k):
        raise AssertionError("a complete run must not be rebuilt")

    monkeypatch.setattr(run_mod, "build_datamodule", boom)
    assert run(cfg, tmp_path) == first
    changed = compose_cfg(*tiny_mi_overrides, "logger=none", "seed=1")
    with pytest.raises(AssertionError, match="must not be rebuilt"):
        run(changed, tmp_path)


def test_failure_is_recorded(tmp_path, tiny_mi_overrides):
    cfg = compose_cfg(*tiny_mi_overrides, "logger=none", "data.prior=[1,2]")
    with pytest.raises(ConfigError, match="data.prior"):  # unwrapped from Hydra's error
        run(cfg, tmp_path)
    rec = json.loads((tmp_path / "metrics.json").read_text())
    assert rec["status"] == "failed" and "data.prior" in rec["error"]


def test_seed_must_be_int(tmp_path, tiny_mi_overrides):
    with pytest.raises(ValueError, match="seed must be an int"):
        run(compose_cfg(*tiny_mi_overrides, "seed=null"), tmp_path)


def test_unknown_option_fails_clearly():
    with pytest.raises(ConfigCompositionException, match="loss"):
        compose_cfg("loss=softmaxx")
    with pytest.raises((ConfigCompositionException, ConfigAttributeError)):
        compose_cfg("data.dimm=3")


def test_wandb_logger_offline(tmp_path, tiny_mi_overrides):
    cfg = compose_cfg(*tiny_mi_overrides, "logger=wandb", "trainer.max_epochs=1")
    run(cfg, tmp_path)
    assert list((tmp_path / "wandb").glob("offline-run-*")), "wandb should write an offline run"


@pytest.mark.slow
def test_default_job_log_reads_well(tmp_path):
    """The default job with stdout piped (a log file): no carriage-return bars, one line per epoch,
    no Lightning test table or litlogger tip, no warning, one summary; under 40 lines."""
    proc = subprocess.run(
        # the default job (20 epochs) on 2,000 samples per class: 5 batches per epoch
        [sys.executable, "-m", "infocam_exp", "data.samples_per_class=2000", f"paths.output_dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, timeout=300,
    )
    # bytes, decoded without text mode's newline translation, which would turn "\r" into "\n"
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) < 40, out
    assert sum(" epoch " in f" {line}" and "train/loss" in line for line in lines) == 20, out
    for unwanted in ("litlogger", "Warning", "WARNING", "Test metric", "it/s"):
        assert unwanted not in out, (unwanted, out)
    assert out.count("Summary:") == 1
    for label in ("MI estimate (nats)", "exact I(X;Y) (nats)", "gap: estimate - exact (nats)"):
        assert label in proc.stdout
    (record,) = tmp_path.glob("runs/mi_synthetic/*/metrics.json")
    assert f"Record: {record}" in proc.stdout
