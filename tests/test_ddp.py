"""Lightning DDP on CPU (gloo, two processes) gives the metrics of one process.

Two processes with batch B/2 each see, step by step, exactly the samples one process sees with
batch B (``TensorBatchLoader`` shards the shared shuffled order by striding), and DDP averages
their gradients, so training and the summed metric states agree up to float reduction order.
"""

import json
import subprocess
import sys

import pytest

from tests.fixtures_wsol import make_cub

COMMON = [
    "data.samples_per_class=400", "data.eval_fraction=0.2025", "data.eval_batch_size=500", "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "logger=none", "seed=3",
]


def _run(tmp_path, name, *extra, common=COMMON):
    out = tmp_path / name
    proc = subprocess.run(
        [sys.executable, "-m", "infocam_exp", *common, *extra, f"hydra.run.dir={out}"],
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
    # 81 test samples per class: 405, which two processes cannot split evenly
    assert two["test/num_samples"] == one["test/num_samples"] == 405
    for key in ("test/acc", "test/mean_class_acc", "test/mi_estimate", "test/mi_estimate_prior_corrected"):
        assert two[key] == pytest.approx(one[key], abs=2e-4), key


@pytest.mark.slow
def test_ddp_wsol_evaluation_counts_every_image_once(tmp_path):
    """File-based loaders under DDP: an odd test split (5 images) is scored exactly once.

    No training (max_epochs=0), so both runs score the same seeded network; with Lightning's
    padded DistributedSampler one image would be counted twice (num_samples 6).
    """
    make_cub(tmp_path / "CUB_200_2011", num_classes=5, per_class=6, train_per_class=3)
    common = [
        "+experiment=cub_infocam", f"data.root={tmp_path / 'CUB_200_2011'}", "data.image_size=64",
        "data.batch_size=6", "data.eval_batch_size=2", "data.num_workers=0", "model=vgg16_gap",
        "model.pretrained=false", "trainer.max_epochs=0", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "logger=none", "callbacks.checkpoint=null", "seed=5",
    ]
    one = _run(tmp_path, "one", common=common)
    two = _run(tmp_path, "two", "trainer=ddp", "trainer.devices=2", common=common)
    assert one["test/num_samples"] == two["test/num_samples"] == 5
    assert one["test/num_images@infocam"] == two["test/num_images@infocam"] == 5
    keys = [k for k in one if k.startswith("test/") and isinstance(one[k], float)]
    assert any("max_box_acc_v2@infocam" in k for k in keys)
    for key in keys:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key
