"""Divergence is a failure, not a result: a non-finite training loss (or non-finite logits at
evaluation) stops the run in the epoch it happens, the record says failed with where and why, the
command exits non-zero, and a table counts the job as failed."""

import json
import math
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from infocam_exp.data.base import TensorBatchLoader
from infocam_exp.losses.pc_softmax import CrossEntropy
from infocam_exp.run import run
from infocam_exp.systems import ClassifierSystem, DivergenceError
from infocam_exp.tables.aggregate import Column, collect_rows, load_records, table_cells
from tests.conftest import compose_cfg

# Adam at lr 1e30: the loss is NaN from the second step on, whatever the seed (10 steps an epoch
# at this size). lr 1e8 diverges too, but for some seeds only to huge *finite* values.
DIVERGING = [
    "data.samples_per_class=200", "data.batch_size=100", "trainer.max_epochs=3",
    "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "logger=none",
    "optimizer.lr=1e30",
]


def test_diverging_run_stops_in_its_epoch_and_records_failure(tmp_path):
    cfg = compose_cfg(*DIVERGING, "+system.finite_check_every=1")
    with pytest.raises(DivergenceError) as info:
        run(cfg, tmp_path, overrides=["optimizer.lr=1e30"])
    msg = str(info.value)
    assert "epoch 0" in msg and "step" in msg and "optimizer.lr=" in msg
    rec = json.loads((tmp_path / "metrics.json").read_text())
    assert rec["status"] == "failed" and rec["metrics"] == {}
    assert rec["error"].startswith("DivergenceError: training diverged")
    d = rec["divergence"]
    assert d["epoch"] == 0 and not math.isfinite(d["loss"])
    # checked every step: it stopped at the first non-finite step, long before the epoch's end
    assert d["step"] == d["global_step"] == 1, d
    assert f"step {d['step']} of the epoch" in msg


def test_default_check_interval_still_stops_within_the_epoch(tmp_path):
    # 10 steps an epoch, checked every 20 steps and at the last step: epoch 0 never completes
    with pytest.raises(DivergenceError, match="epoch 0"):
        run(compose_cfg(*DIVERGING), tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text())["divergence"]["epoch"] == 0


class _NanWhenEvaluating(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x)
        if not self.training:  # only the first sample of each evaluation batch
            out = out.clone()
            out[0, 1] = float("nan")
        return out


@pytest.mark.filterwarnings("ignore:Encountered `nan` values in tensor:UserWarning")
def test_nonfinite_logits_at_evaluation_fail_the_run(tmp_path):
    torch.manual_seed(0)
    system = ClassifierSystem(
        _NanWhenEvaluating(), CrossEntropy(torch.tensor([0.5, 0.5])),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
    )
    x, y = torch.randn(12, 2), torch.arange(12) % 2
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )
    with pytest.raises(DivergenceError, match=r"test evaluation .*: 3 sample\(s\) have non-finite logits"):
        trainer.test(system, dataloaders=TensorBatchLoader([x, y], batch_size=4))


def test_cli_exits_nonzero_and_names_the_fix(tmp_path):
    # the command (seed 0: the loss is inf at step 1; it used to end "complete")
    proc = subprocess.run(
        [sys.executable, "-m", "infocam_exp", "optimizer.lr=1e8", "trainer.max_epochs=3",
         "trainer.enable_progress_bar=false", f"paths.output_dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "training diverged" in proc.stderr and "optimizer.lr=" in proc.stderr, proc.stderr[-2000:]
    (record,) = tmp_path.glob("runs/mi_synthetic/*/metrics.json")
    assert json.loads(record.read_text())["status"] == "failed"


def test_table_counts_a_diverged_run_as_failed(tmp_path):
    runs = tmp_path / "runs"
    fast = [o for o in DIVERGING if not o.startswith("optimizer.lr")] + ["trainer.max_epochs=1"]
    for seed in (0, 1):
        run(compose_cfg(*fast, f"seed={seed}"), runs / f"seed={seed}", overrides=[f"seed={seed}"])
    with pytest.raises(DivergenceError):
        run(compose_cfg(*DIVERGING, "seed=2"), runs / "seed=2", overrides=["seed=2"])
    rows = collect_rows(load_records(runs), {"seed": "0,1,2"}, [], ["test/mi_estimate"])
    (row,) = rows
    assert len(row.records) == 2 and len(row.failed) == 1 and "DivergenceError" in row.failed[0]
    _, cells, raw = table_cells(rows, [Column(metric="test/mi_estimate", label="MI")], [])
    assert cells[0][0] == "2/3"
    finite = [r["metrics"]["test/mi_estimate"] for r in row.records]
    assert raw[0]["test/mi_estimate:mean"] == pytest.approx(sum(finite) / 2)
