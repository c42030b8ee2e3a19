"""Every run states its protocol: metrics.json's ``protocol`` block (``infocam_exp.protocol``), its
collection contract, and the tables' list of the facts that differ between rows."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch
import torchvision
from hydra.utils import instantiate

from infocam_exp.protocol import collect_protocol, file_fact, merge_facts
from infocam_exp.run import run
from infocam_exp.tables.aggregate import Row, flatten_facts, protocol_differences
from tests.conftest import compose_cfg
from tests.fixtures_wsol import make_cub

FAST = [
    "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
    "data.num_workers=0", "data.pin_memory=false", "logger=none",
    "callbacks.checkpoint=null", "callbacks.localization.num_pictures=0",
]


class _Facts:
    def __init__(self, facts):
        self.facts = facts

    def protocol_facts(self):
        return self.facts


def test_collect_protocol_merges_namespaces_and_skips_components_without_facts():
    got = collect_protocol(
        _Facts({"data": {"split_sizes": {"train": 3}}}), None, object(),
        _Facts({"data": {"protocol": "authors"}, "cam": {"thresholds": 1000}}),
    )
    assert got == {"data": {"split_sizes": {"train": 3}, "protocol": "authors"}, "cam": {"thresholds": 1000}}
    # a later leaf wins (and is logged); nested dicts are copied, not shared
    inner = {"b": 1}
    merged = merge_facts({"a": 0}, {"a": 2, "n": inner}, "test")
    assert merged == {"a": 2, "n": {"b": 1}} and merged["n"] is not inner


def test_facts_must_be_json():
    with pytest.raises(TypeError, match="_Facts.protocol_facts.. is not JSON-serialisable"):
        collect_protocol(_Facts({"model": {"weights": torch.zeros(1)}}))
    with pytest.raises(TypeError, match="must return a dict"):
        collect_protocol(_Facts([1, 2]))


def test_file_fact_hashes_the_file(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("a\n")
    assert file_fact(f) == {"file": "list.txt", "path": str(f), "sha256": hashlib.sha256(b"a\n").hexdigest()}
    assert file_fact(tmp_path / "absent.txt")["sha256"] is None


def _record(seed, protocol):
    return {"seed": seed, "status": "complete", "metrics": {}, "protocol": protocol, "_dir": f"run{seed}"}


def test_protocol_differences_lists_only_what_differs():
    base = {"data": {"protocol": "authors", "split_files": [{"file": "images.txt", "path": "/a/images.txt"}]},
            "model": {"adl": {"threshold": 0.8}}, "cam": {"thresholds": 1000}}
    resnet = json.loads(json.dumps(base))
    resnet["model"]["adl"]["threshold"] = 0.9
    odd_seed = json.loads(json.dumps(resnet))
    odd_seed["data"]["split_files"][0]["path"] = "/elsewhere/images.txt"  # a copy elsewhere: not a protocol fact
    odd_seed["cam"]["thresholds"] = 100
    rows = [
        Row(keys={"model": "vgg16_adl"}, expected=2, records=[_record(0, base), _record(1, base)]),
        Row(keys={"model": "resnet50_adl"}, expected=2, records=[_record(0, resnet), _record(1, odd_seed)]),
    ]
    lines = protocol_differences(rows, ["model"])
    assert lines[0].startswith("\n**Protocol facts that differ between rows**")
    assert lines[1:] == [
        "- `cam.thresholds`:",
        "  - model=vgg16_adl: 1000",
        "  - model=resnet50_adl: 1000 (seed 0); 100 (seed 1)",
        "- `model.adl.threshold`:",
        "  - model=vgg16_adl: 0.8",
        "  - model=resnet50_adl: 0.9",
    ]
    same = [Row(keys={"model": "a"}, expected=1, records=[_record(0, base)]),
            Row(keys={"model": "b"}, expected=1, records=[_record(0, base)])]
    assert protocol_differences(same, ["model"]) == []
    assert flatten_facts({"a": {"b": [1, 2], "c": {}}}) == {"a.b": "[1, 2]", "a.c": "{}"}


@pytest.mark.slow
def test_cub_resnet50_adl_records_the_authors_protocol(tmp_path, monkeypatch):
    """The issue's check: on the release-layout fixture, ``+experiment=cub_infocam
    model=resnet50_adl`` records layer4 + fc at 10x lr, ADL threshold 0.9, the V1 weights file
    with its sha256, unclipped boxes and 1,000 thresholds."""
    root = tmp_path / "CUB_200_2011"
    make_cub(root, num_classes=3, per_class=3, train_per_class=1)
    # a box starting at the image's left and top edge: x' = 0 * 255 / w - 15 = -15 (outside the crop)
    bb = root / "CUB_200_2011" / "bounding_boxes.txt"
    lines = bb.read_text().splitlines()
    i, _, _, w, h = lines[1].split()
    lines[1] = f"{i} 0.0 0.0 {w} {h}"
    bb.write_text("\n".join(lines) + "\n")
    # fake V1 weights under the authors' file name, in a temporary torch hub cache
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    ckpt = tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-19c8e357.pth"
    ckpt.parent.mkdir(parents=True)
    with torch.device("meta"):
        tv = torchvision.models.resnet50()
    # zeros (running variances 1) load like real weights and keep every number finite
    torch.save({k: torch.ones(v.shape) if k.endswith("running_var") else torch.zeros(v.shape, dtype=v.dtype)
                for k, v in tv.state_dict().items()}, ckpt)
    overrides = ["+experiment=cub_infocam", "model=resnet50_adl", f"data.root={root}"]
    # the data facts at the experiment's own 224 px, without running
    dm = instantiate(compose_cfg(*overrides).data, _convert_="all")
    dm.prepare_facts()
    full = dm.protocol_facts()["data"]
    assert full["box_transform"]["boxes"].startswith("x * 255/w - 15, y * 255/h - 15")
    assert full["box_transform"]["boxes_clipped"] is False
    assert full["transforms"]["eval"].startswith("resize 256x256, centre crop 224")
    # the run at 64 px (resize 73, crop 64: x * 72 / w - 4) to keep the test short
    cfg = compose_cfg(*overrides, "data.image_size=64", "data.batch_size=3", "data.eval_batch_size=3", *FAST)
    run(cfg, tmp_path / "run")
    rec = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert rec["status"] == "complete"
    p = rec["protocol"]
    # optimiser groups: the authors' train.py, lr 0.01 (run_resnet.sh) and x10 for layer4 + fc
    tv = dict(tv.named_parameters())
    n_layer4 = sum(v.numel() for k, v in tv.items() if k.startswith("layer4."))
    n_base = sum(v.numel() for k, v in tv.items() if not k.startswith(("layer4.", "fc.")))
    assert p["optimizer"]["groups"] == [
        {"name": "base", "lr": 0.01, "params": n_base, "tensors": 129},
        {"name": "scaled", "lr": pytest.approx(0.1), "params": n_layer4 + 2048 * 3 + 3, "tensors": 30 + 2},
    ]
    assert p["optimizer"]["name"] == "SGD" and p["optimizer"]["nesterov"] is True
    assert p["model"]["adl"] == {"positions": ["layer3.0", "layer4.0", "layer4.2"], "rate": 0.75, "threshold": 0.9}
    weights = p["model"]["weights"]
    assert weights["file"] == "resnet50-19c8e357.pth" and weights["explicit"] is False
    assert weights["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert p["data"]["protocol"] == "authors"
    assert p["data"]["box_transform"]["boxes"].startswith("x * 72/w - 4, y * 72/h - 4")
    assert p["data"]["box_transform"]["boxes_clipped"] is False
    assert p["data"]["split_sizes"] == {"train": 3, "val": 3, "test": 3}
    assert [f["file"] for f in p["data"]["split_files"]] == ["images.txt", "train_test_split.txt", "bounding_boxes.txt"]
    assert p["data"]["split_files"][2]["sha256"] == hashlib.sha256(bb.read_bytes()).hexdigest()
    assert p["cam"]["thresholds"] == 1000 and p["cam"]["fixed_threshold"] == 0.2
    assert set(p["cam"]["variants"]) == {f"{m}{w}" for m in ("cam", "infocam", "infocam_least_likely") for w in ("", "_w4")}
    assert p["trainer"]["precision"] == "32-true"
    assert math.isfinite(rec["metrics"]["test/max_box_acc_v2@cam"])


def test_wsol_cub_table_prints_the_protocol_facts_that_differ(tmp_path):
    from infocam_exp.results import write_json_atomic
    from infocam_exp.tables.__main__ import make_table

    runs = tmp_path / "tables" / "runs" / "wsol_cub"
    for model, thr in (("vgg16_adl", 0.8), ("resnet50_adl", 0.9)):
        for seed in (0, 1, 2):
            write_json_atomic(runs / f"model={model},seed={seed}" / "metrics.json", {
                "status": "complete", "seed": seed, "overrides": [f"model={model}", f"seed={seed}"],
                "metrics": {"test/top1_cls": 0.5},
                "protocol": {"model": {"adl": {"threshold": thr}}, "cam": {"thresholds": 1000},
                             "data": {"split_files": [{"file": "images.txt", "path": f"/copy{seed}/images.txt"}]}},
            })
    make_table("wsol_cub", [f"paths.output_dir={tmp_path}"])
    text = (tmp_path / "tables" / "wsol_cub.md").read_text()
    assert "**Protocol facts that differ between rows**" in text
    assert "- `model.adl.threshold`:\n  - model=vgg16_gap: (no complete run)\n  - model=vgg16_adl: 0.8" in text
    assert "  - model=resnet50_adl: 0.9" in text
    assert "cam.thresholds" not in text and "split_files" not in text  # the same everywhere


def test_every_trained_run_records_data_optimizer_and_precision(tmp_path, tiny_mi_overrides):
    run(compose_cfg(*tiny_mi_overrides), tmp_path / "run")
    p = json.loads((tmp_path / "run" / "metrics.json").read_text())["protocol"]
    assert p["data"]["datamodule"] == "SyntheticGaussianDataModule"
    assert p["data"]["split_sizes"]["train"] == 5 * 200 and p["data"]["split_files"] == []
    # the MLP has no param_groups: one group of all its parameters, at the configured lr
    n = (1 * 100 + 100) + 2 * (100 * 100 + 100) + (100 * 5 + 5)
    assert p["optimizer"]["name"] == "Adam" and p["optimizer"]["lr"] == 0.01
    assert p["optimizer"]["groups"] == [{"name": "group0", "lr": 0.01, "params": n, "tensors": 8}]
    assert p["trainer"]["precision"] == "32-true" and p["loss"] == "CrossEntropy"
