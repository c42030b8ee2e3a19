"""`+experiment=cub_pc_softmax` is the authors' TF-slim run (their cub_experiments/train.sh and
train.py): the composed recipe, the step-based learning rate by hand, and a short run of the real
experiment (Inception-V3 with random weights at 75 px) on a generated CUB folder."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hydra.utils import instantiate

from infocam_exp.build import build_datamodule, build_system
from infocam_exp.data.slim import InceptionEvalTransform, InceptionTrainTransform, PassStreamSampler
from infocam_exp.run import run
from tests.conftest import compose_cfg

QUIET = ["trainer.enable_progress_bar=false", "logger=none", "trainer.accelerator=cpu"]


def test_recipe_values():
    cfg = compose_cfg("+experiment=cub_pc_softmax")
    assert cfg.data.batch_size == 64 and cfg.data.image_size == 299
    assert cfg.data.preprocessing == "inception" and cfg.data.train_order == "stream"
    assert cfg.data.split == "imbalanced_authors" and cfg.data.val_fraction == 0.0
    m = cfg.model
    assert (m.finetune, m.body_bn, m.bn_momentum, m.dropout) == ("linear", "train", 0.0003, 0.2)
    assert (m.head_init, m.head_bias_decay) == ("slim", False)
    o = cfg.optimizer
    assert o._target_ == "torch.optim.SGD"
    assert (o.lr, o.momentum, o.nesterov, o.weight_decay) == (0.01, 0.9, False, 4e-5)
    assert cfg.scheduler._target_ == "torch.optim.lr_scheduler.StepLR"
    assert cfg.scheduler.step_size == int(5994 * 10.0 / 64) == 936 and cfg.scheduler.gamma == 0.1
    assert cfg.system.scheduler_interval == "step"
    assert cfg.trainer.max_steps == 2810 and cfg.trainer.max_epochs == -1
    assert cfg.loss._target_ == "infocam_exp.losses.PCSoftmax"
    # the table sweeps the same recipe and says how the published numbers were scored
    table = compose_cfg("+table=cub_pc")
    assert table.trainer.max_steps == 2810 and table.data.preprocessing == "inception"
    assert "58 batches of 100" in table.table.notes and "1,808" in table.table.notes


def test_learning_rate_by_step_by_hand():
    cfg = compose_cfg("+experiment=cub_pc_softmax")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = instantiate(cfg.optimizer)([param])
    sched = instantiate(cfg.scheduler)(opt)
    lrs = []
    for _ in range(cfg.trainer.max_steps):
        lrs.append(opt.param_groups[0]["lr"])  # the lr optimiser step t uses
        opt.step()
        sched.step()
    # slim: 0.01 * 0.1 ** floor(t / 936), staircase
    hand = {0: 0.01, 935: 0.01, 936: 0.001, 1871: 0.001, 1872: 1e-4, 2807: 1e-4, 2808: 1e-5, 2809: 1e-5}
    for step, lr in hand.items():
        assert lrs[step] == pytest.approx(lr, rel=1e-9), step
    assert len(lrs) == 2810


def _run_cfg(tmp_path, *extra):
    from tests.fixtures_wsol import make_cub

    make_cub(tmp_path / "data", num_classes=4, per_class=6, train_per_class=4)
    return compose_cfg(
        "+experiment=cub_pc_softmax", f"data.root={tmp_path / 'data'}", "data.split=official",
        "model.pretrained=false", "data.image_size=75", "data.batch_size=4", "data.eval_batch_size=5",
        "data.num_workers=0", *QUIET, *extra,
    )


def test_system_steps_the_schedule_per_optimiser_step_and_reports_it(tmp_path):
    cfg = _run_cfg(tmp_path)
    dm = build_datamodule(cfg)
    system = build_system(cfg, dm)
    conf = system.configure_optimizers()
    assert conf["lr_scheduler"]["interval"] == "step"
    # only the fc is optimised: weight with decay, bias without
    groups = conf["optimizer"].param_groups
    assert [g["name"] for g in groups] == ["head", "head_bias"]
    assert [g["weight_decay"] for g in groups] == [4e-5, 0.0]
    assert sum(p.numel() for g in groups for p in g["params"]) == 2048 * 4 + 4

    class _Trainer:  # what protocol_facts reads from an attached trainer
        max_steps, max_epochs = 2810, -1

    system._trainer = _Trainer()
    facts = system.protocol_facts()
    json.dumps(facts)
    schedule = facts["schedule"]["lr_schedule"]
    assert schedule["interval"] == "step" and schedule["total"] == 2810
    assert schedule["boundaries"] == [936, 1872, 2808]
    assert [s[:2] for s in schedule["stretches"]] == [[0, 936], [936, 1872], [1872, 2808], [2808, 2810]]
    assert [s[2] for s in schedule["stretches"]] == pytest.approx([0.01, 1e-3, 1e-4, 1e-5])
    assert facts["optimizer"]["weight_decay_by_group"] == {"head": 4e-5, "head_bias": 0.0}
    assert facts["schedule"]["training_length"] == "2810 optimiser steps"


def test_datamodule_transforms_stream_and_each_test_image_once(tmp_path):
    cfg = _run_cfg(tmp_path)
    dm = build_datamodule(cfg)
    train = dm.train_dataloader()
    assert isinstance(train.dataset.transform, InceptionTrainTransform)
    assert isinstance(train.sampler, PassStreamSampler)
    assert [len(y) for _, y in train] == [4] * math.ceil(16 / 4)  # 16 training images, full batches
    test = dm.test_dataloader()
    assert isinstance(test.dataset.transform, InceptionEvalTransform)
    # every test image exactly once: the loader's indices and the images it yields
    seen = [i for i in test.batch_sampler for i in i]
    assert sorted(seen) == list(range(len(dm.records("test")))) == list(range(8))
    images = [x for x, _ in test]
    assert sum(len(x) for x in images) == 8 and images[0].shape[1:] == (3, 75, 75)
    facts = dm.protocol_facts()["data"]
    json.dumps(facts)
    assert facts["split_sizes"] == {"train": 16, "val": 0, "test": 8}
    assert "central crop 0.875" in facts["test_transform"] and "sample_distorted_bounding_box" in facts["train_transform"]
    assert "exactly once" in facts["test_images_evaluated"]
    assert "every step 4 images" in facts["train_order"]


def test_authors_split_facts_name_the_list_files_and_their_sha256(tmp_path):
    cfg = compose_cfg("+experiment=cub_pc_softmax", f"data.root={tmp_path}")
    dm = instantiate(cfg.data, _convert_="all")
    dm._records = {"train": [], "val": [], "test": []}  # the lists' facts need no images
    facts = dm.protocol_facts()["data"]
    assert set(facts["split_lists"]) == {"cub_imbalanced_train.txt", "cub_imbalanced_test.txt"}
    assert all(len(v["sha256"]) == 64 for v in facts["split_lists"].values())


@pytest.mark.slow
def test_short_run_of_the_experiment(tmp_path):
    # 3 optimiser steps of batch 4 over 16 training images (less than one loader epoch): max_steps, not epochs, ends training
    cfg = _run_cfg(tmp_path, "trainer.max_steps=3")
    m = run(cfg, tmp_path / "run")
    assert m["test/num_samples"] == 8 and (m["data/num_train"], m["data/num_test"]) == (16, 8)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
