"""Lightning DDP on CPU (gloo, two processes) gives the metrics of one process.

Two processes with batch B/2 each see, step by step, exactly the samples one process sees with
batch B (``TensorBatchLoader`` shards the shared shuffled order by striding), and DDP averages
their gradients, so training and the summed metric states agree up to float reduction order.
"""

import json
import subprocess
import sys

import pytest

COMMON = [
    "data.samples_per_class=400", "data.eval_batch_size=500", "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "logger=none", "seed=3",
]


def _run(tmp_path, name, *extra):
    out = tmp_path / name
    proc = subprocess.run(
        [sys.executable, "-m", "infocam_exp", *COMMON, *extra, f"hydra.run.dir={out}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["status"] == "complete"
    return rec["metrics"]


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one(tmp_path):
    one = _run(tmp_path, "one", "data.batch_size=400")
    two = _run(tmp_path, "two", "trainer=ddp", "trainer.devices=2", "data.batch_size=200")
    assert two["test/num_samples"] == one["test/num_samples"] == 400
    for key in ("test/acc", "test/mean_class_acc", "test/mi_estimate", "test/mi_estimate_prior_corrected"):
        assert two[key] == pytest.approx(one[key], abs=2e-4), key
