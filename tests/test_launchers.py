"""Hydra launchers for clusters: the submitit configs compose; submitit_local runs a real sweep."""

import json
import subprocess
import sys

import pytest

from tests.conftest import compose_cfg


@pytest.mark.parametrize("launcher", ["slurm", "submitit_slurm", "submitit_local"])
def test_launcher_configs_compose(launcher):
    cfg = compose_cfg(f"hydra/launcher={launcher}", hydra_cfg=True)
    assert "submitit" in cfg.hydra.launcher._target_
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min == 720


@pytest.mark.slow
def test_submitit_local_sweep_runs(tmp_path):
    cmd = [
        sys.executable, "-m", "infocam_exp", "-m", "hydra/launcher=submitit_local", "seed=0,1",
        "data.samples_per_class=100", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "logger=none", f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.launcher.timeout_min=10",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert len(records) == 2
    assert {json.loads(p.read_text())["seed"] for p in records} == {0, 1}
    assert all(json.loads(p.read_text())["status"] == "complete" for p in records)
