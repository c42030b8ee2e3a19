"""What a user sees: summaries that fit each experiment, errors without tracebacks, the end of a
sweep, progress lines in logs, readable files."""

from __future__ import annotations

import itertools
import json
import logging
import os
import stat
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from infocam_exp import console
from infocam_exp.console import format_summary, one_line_summary, progress
from infocam_exp.errors import ConfigError, UserError
from infocam_exp.results import write_json_atomic, write_text_atomic
from infocam_exp.run import run
from tests.conftest import REPO, compose_cfg, needs_fashion_mnist

QUIET = ["trainer.accelerator=cpu", "logger=none"]
EXPERIMENTS = sorted(p.stem for p in (REPO / "configs" / "experiment").glob("*.yaml"))


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "infocam_exp", *args], cwd=cwd, capture_output=True,
        timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    # bytes, decoded without text mode's newline translation, which would turn "\r" into "\n"
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


# --- summaries -------------------------------------------------------------------------------------


def missing_summary_keys(summary, metrics: dict) -> list[str]:
    """Summary keys (or patterns) that match nothing in ``metrics``."""
    missing = []
    for item in summary:
        key = item["key"]
        if "*" in key:
            if not any(fnmatch(k, key) for k in metrics):
                missing.append(key)
        elif key not in metrics:
            missing.append(key)
    return missing


@pytest.mark.parametrize("experiment", [None, *EXPERIMENTS])
def test_every_experiment_declares_a_summary(experiment):
    cfg = compose_cfg(*([f"+experiment={experiment}"] if experiment else []))
    items = console.summary_items(cfg.summary)
    assert items and all(i["label"] != i["key"] for i in items), experiment
    keys = {i["key"] for i in items}
    if experiment is None or experiment.startswith("mi_"):
        assert {"test/mi_true"} <= keys and any("mi_gap" in k for k in keys)
    elif "infocam" in experiment:  # WSOL: per map variant
        assert {"test/top1_cls", "test/top1_loc@*", "test/gt_known_loc@*", "test/max_box_acc_v2@*"} <= keys
    else:  # imbalanced classification: MI under the test labels' distribution, not the paper's
        assert {"test/acc", "test/mean_class_acc", "test/mi_estimate@split_prior"} <= keys
        assert "test/mi_estimate" not in keys
        if "lt" in experiment or "cub" in experiment:
            assert {"test/many_shot_acc", "test/medium_shot_acc", "test/few_shot_acc"} <= keys


TINY_MI = ["data.samples_per_class=200", "data.batch_size=200", "trainer.max_epochs=1", *QUIET]
TINY_BENCH = ["data=mi_paper", "data.num_samples=300", *QUIET]
#: the MI benchmark's trained estimators, briefly: the test checks the summary, not convergence
FAST_TRAINING = ["+estimator_options.all.max_steps=40", "+estimator_options.all.lrs=[0.01]", "+estimator_options.all.eval_every=20"]


@pytest.mark.parametrize(
    "overrides",
    [
        TINY_MI,
        ["+experiment=mi_synthetic", *TINY_MI],
        ["+experiment=mi_benchmark", "estimator=knn3", *TINY_BENCH],
        ["+experiment=mi_benchmark", "estimators=[knn3,gaussian_lda,classifier,infonce]", *TINY_BENCH, *FAST_TRAINING],
    ],
    ids=["default", "mi_synthetic", "bench_knn", "bench_list"],
)
def test_summary_keys_are_recorded_mi(overrides, tmp_path):
    cfg = compose_cfg(*overrides)
    metrics = run(cfg, tmp_path)
    assert not missing_summary_keys(cfg.summary, metrics)
    text = format_summary(metrics, tmp_path, cfg.summary)
    if cfg.get("estimators") is None:
        assert text.count("\n") == len(cfg.summary) + 1  # "Summary:", one line per entry, the record
    else:  # the benchmark: the truth, a header, one row per estimator with estimate and gap
        names = [cfg.estimator] if cfg.get("estimator") else list(cfg.estimators)
        rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[3:-1]}
        assert sorted(rows) == sorted(names) and all(len(v) == 2 for v in rows.values())


@pytest.mark.slow
@needs_fashion_mnist
def test_summary_keys_are_recorded_classification_and_wsol(tmp_path):
    """The fast experiments run briefly; the others share their callbacks (long_tail: CIFAR-LT,
    CUB PC-softmax; wsol: CUB and Tiny-ImageNet WSOL), so their summaries are checked against
    the same records."""
    short = ["trainer.max_epochs=1", "+trainer.limit_train_batches=3", *QUIET]
    mnist = run(compose_cfg("+experiment=mnist_pc_softmax", "data=fashion_mnist", "callbacks=long_tail",
                            "callbacks.checkpoint=null", *short), tmp_path / "mnist")
    wsol = run(compose_cfg("+experiment=synthetic_wsol_infocam", "data.num_train=128", "data.num_val=64",
                           "data.num_test=64", "callbacks.localization.thresholds=10",
                           "callbacks.localization.num_pictures=0", *short), tmp_path / "wsol")
    for experiment in EXPERIMENTS:
        if experiment.startswith("mi_"):
            continue
        metrics = wsol if "infocam" in experiment else mnist
        summary = compose_cfg(f"+experiment={experiment}").summary
        assert not missing_summary_keys(summary, metrics), experiment
    text = format_summary(wsol, tmp_path, compose_cfg("+experiment=synthetic_wsol_infocam").summary)
    header = next(line for line in text.splitlines() if line.strip().startswith("map"))
    assert "Top-1 Loc %" in header and "GT-known Loc %" in header and "MaxBoxAccV2 %" in header
    assert any(line.strip().startswith("cam ") for line in text.splitlines())
    assert any(line.strip().startswith("infocam ") for line in text.splitlines())


def test_summary_format_hand_built():
    spec = [
        {"key": "test/top1_cls", "label": "Top-1 Cls (%)", "scale": 100},
        {"key": "test/top1_loc@*", "label": "Top-1 Loc %", "scale": 100},
        {"key": "*/mi_estimate", "label": "MI (nats)"},
        {"key": "test/absent", "label": "never shown"},
    ]
    metrics = {"test/top1_cls": 0.5, "test/top1_loc@cam": 0.25, "test/top1_loc@infocam": 0.3,
               "test/top1_loc_val_tau@cam": 0.9, "train/mi_estimate": 1.23456, "test/nan": float("nan")}
    text = format_summary(metrics, "/r", spec)
    w = len("MI (nats) [train/mi_estimate]")  # labels are padded to the longest
    assert text.splitlines() == [
        "Summary:",
        f"  {'Top-1 Cls (%)':<{w}}  50.00",
        f"  {'MI (nats) [train/mi_estimate]':<{w}}  1.2346",
        "  map      Top-1 Loc %",  # one row per map variant, right-aligned under the label
        "  cam            25.00",
        "  infocam        30.00",
        "Record: /r/metrics.json",
    ]
    assert one_line_summary(metrics, spec) == "Top-1 Cls (%) 50.00, MI (nats) [train/mi_estimate] 1.2346, Top-1 Loc %@cam 25.00"


# --- errors ----------------------------------------------------------------------------------------


def test_project_errors_share_a_base():
    from infocam_exp.cam.api import GAPLinearError
    from infocam_exp.data.base import DataFormatError, DataNotFoundError
    from infocam_exp.evaluate import MetadataError
    from infocam_exp.systems import DivergenceError

    for cls in (DataNotFoundError, DataFormatError, MetadataError, DivergenceError, GAPLinearError, ConfigError):
        assert issubclass(cls, UserError), cls
    # the old bases stay, so `except FileNotFoundError / ValueError` still catches them
    assert issubclass(DataNotFoundError, FileNotFoundError) and issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["seed=abc"], "seed must be an int"),
        (["+experiment=mnist_pc_softmax", "paths.data_dir=MISSING_DIR"], "MNIST idx files not found"),
    ],
    ids=["seed_abc", "missing_dataset"],
)
def test_user_errors_print_the_message_alone(args, expected, tmp_path, monkeypatch, capsys):
    """The entry point in-process (as `python -m infocam_exp ARGS`); Hydra's logging is left
    unconfigured so that it does not hold on to the captured streams."""
    from infocam_exp.__main__ import main

    args = [a.replace("MISSING_DIR", str(tmp_path / "nowhere")) for a in args]
    monkeypatch.setattr(sys, "argv", ["infocam_exp", *args, f"paths.output_dir={tmp_path}",
                                      "hydra/job_logging=none", "hydra/hydra_logging=none"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert expected in captured.err and "Traceback" not in captured.err + captured.out
    assert captured.err.strip().splitlines()[-1] == "(Set HYDRA_FULL_ERROR=1 to see the traceback.)"


@pytest.mark.slow
def test_full_error_shows_the_traceback(tmp_path):
    """The real command line (the exit status 2 without it: the sweep test below)."""
    proc = _cli("seed=abc", f"paths.output_dir={tmp_path}", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ConfigError: seed must be an int" in proc.stderr


def test_tables_cli_unknown_table_exits_2(capsys):
    from infocam_exp.tables.__main__ import main

    assert main(["no_such_table"]) == 2
    assert "no_such_table" in capsys.readouterr().err


# --- sweeps ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sweep_ends_with_one_line_per_job(tmp_path):
    """Two jobs, one failing on its config: the sweep still runs both, then lists them; exit 2."""
    proc = _cli("-m", f"paths.output_dir={tmp_path}", "seed=0,abc", "data.samples_per_class=200",
                "data.batch_size=200", "trainer.max_epochs=1", cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 2, proc.stderr
    assert "\r" not in out + proc.stderr and "Traceback" not in out + proc.stderr
    tail = out[out.index("Sweep summary: 2 job(s), 1 complete, 1 failed"):].splitlines()
    assert tail[1].startswith("  [complete] seed=0: MI estimate (nats) ")
    assert tail[2].startswith("  [failed] seed=abc: seed must be an int")
    assert "Summary:" not in out  # one line per job, not a block each


# --- progress lines -------------------------------------------------------------------------------


def test_progress_lines_every_tenth_and_30_s(monkeypatch, caplog):
    clock = itertools.count(0.0, 10.0)  # each step takes 10 s
    monkeypatch.setattr(console.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(console, "stdout_is_terminal", lambda: False)
    caplog.set_level(logging.INFO, logger="infocam_exp")
    assert list(progress(range(40), desc="maps")) == list(range(40))
    lines = [r.message for r in caplog.records]
    # 30 s pass every 3 steps, 10% is 4 steps: a line every 4 steps, i.e. 10 lines at most
    assert 5 <= len(lines) <= 10 and lines[0].startswith("maps: 4/40 (10%)")
    caplog.clear()
    list(progress(range(1000), desc="fast"))  # 10% of 1,000 steps is passed long before 30 s
    assert len(caplog.records) <= 10


# --- files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_files_get_the_umask_mode(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "metrics.json", {"a": 1})
        write_text_atomic(tmp_path / "fig.png", b"\x89PNG")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    for name in ("metrics.json", "fig.png", "plain.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1}


def test_bad_data_option_prints_one_line_and_exits_2(tmp_path):
    """A DataModule's own config check (here an unknown data.transform) is a ConfigError: the CLI
    prints its message alone, without Hydra's wrapper or a traceback, and exits 2."""
    proc = _cli(f"paths.output_dir={tmp_path}", "data=mi_paper", "data.transform=nope", cwd=tmp_path)
    err = proc.stdout + proc.stderr
    assert proc.returncode == 2, err
    assert "data.transform='nope' is not known: use one of none" in err
    assert "Traceback" not in err and "Error in call to target" not in err
