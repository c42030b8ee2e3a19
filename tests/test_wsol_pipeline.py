"""The WSOL experiments end to end on generated release-layout folders (pretrained=false):
real loaders, transforms, box rescaling, training step, CAM/infoCAM evaluation, picture and curves."""

import json

import pytest
import torch
from torch import nn

from infocam_exp.data.base import DataNotFoundError
from infocam_exp.data.wsol import IMAGENET_MEAN, IMAGENET_STD
from infocam_exp.run import run
from tests.conftest import compose_cfg, needs_fashion_mnist
from tests.fixtures_wsol import CLASS_COLOURS, make_cub, make_tiny_imagenet

FAST = [
    "model.pretrained=false", "trainer.max_epochs=1", "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false", "data.num_workers=0", "data.pin_memory=false",
    "logger=none", "callbacks.checkpoint=null", "callbacks.localization.num_pictures=4",
]
METHODS = ("cam", "infocam", "infocam_least_likely")


def _check_record(run_dir):
    rec = json.loads((run_dir / "metrics.json").read_text())
    assert rec["status"] == "complete"
    m = rec["metrics"]
    for method in METHODS:
        for key in ("top1_loc", "gt_known_loc", "top5_loc", "max_box_acc", "max_box_acc_v2", "max_box_acc_v2_iou50", "top1_loc_val_tau"):
            value = m[f"test/{key}@{method}"]
            assert 0.0 <= value <= 1.0, (key, method, value)
        # Top-1 Loc needs a hit and a correct class: never above either
        assert m[f"test/top1_loc@{method}"] <= min(m[f"test/gt_known_loc@{method}"], m["test/top1_cls"]) + 1e-9
        assert m[f"test/max_box_acc@{method}"] >= m[f"test/gt_known_loc@{method}"] - 1e-9
    assert 0.0 <= m["test/top5_cls"] <= 1.0 and m["test/top5_cls"] >= m["test/top1_cls"]
    assert (run_dir / "pictures" / "test_overlays.png").stat().st_size > 1000
    curves = json.loads((run_dir / "curves" / "test_localization.json").read_text())
    assert len(curves["infocam"]["thresholds"]) == 1000  # the default, as wsolevaluation
    assert (run_dir / "curves" / "val_localization.png").exists()
    return m


def test_cub_infocam_end_to_end(tmp_path):
    make_cub(tmp_path / "CUB_200_2011", num_classes=6, per_class=6, train_per_class=3)
    cfg = compose_cfg(
        "+experiment=cub_infocam", f"data.root={tmp_path / 'CUB_200_2011'}", "data.image_size=64",
        "data.batch_size=6", "data.eval_batch_size=4", "model=vgg16_adl", *FAST,
    )
    metrics = run(cfg, tmp_path / "run")
    _check_record(tmp_path / "run")
    assert 0.0 <= metrics["test/top1_loc@infocam_w4"] <= 1.0  # the authors' 4x4 window, beside no window
    assert metrics["test/num_samples"] == 6  # per class: 3 test images, alternately val, test, val
    assert (metrics["data/num_train"], metrics["data/num_val"], metrics["data/num_test"]) == (18, 12, 6)


class ColourOracle(nn.Module):
    """A GAP model that knows how the fixture images are drawn (a shape in the class colour on
    grey noise): feature map k is how close each pixel's colour is to class k's, the classifier
    is the identity. Its CAM of class k is the class-k shape, so every answer is known."""

    def __init__(self, num_classes: int, input_shape=None, **_unused) -> None:
        super().__init__()
        self.register_buffer("colours", torch.tensor(CLASS_COLOURS[:num_classes], dtype=torch.float32) / 255)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[:, None, None])
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[:, None, None])
        self.classifier = nn.Linear(num_classes, num_classes)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.eye(num_classes))
            self.classifier.bias.zero_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x.float() * self.std + self.mean
        dist2 = (rgb[:, None] - self.colours[None, :, :, None, None]).square().sum(dim=2)
        return torch.exp(-dist2 / (2 * 0.15**2))  # grey noise is > 0.5 away from every colour

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x).mean(dim=(2, 3)))


def test_cub_pipeline_with_a_model_whose_answers_are_known(tmp_path):
    """Loaders, resizing, box rescaling, CAM/infoCAM, thresholds and metric keys together: with the
    colour oracle every image is classified and localised, so every accuracy must be 100%, and
    the localisation must fail when the boxes are moved off the objects."""
    make_cub(tmp_path / "CUB_200_2011", num_classes=4, per_class=6, train_per_class=3)
    common = [
        "+experiment=cub_infocam", f"data.root={tmp_path / 'CUB_200_2011'}", "data.image_size=64",
        "data.batch_size=6", "data.eval_batch_size=4", "model._target_=tests.test_wsol_pipeline.ColourOracle",
        "optimizer.lr=0", "callbacks.localization.window=null", "callbacks.localization.thresholds=20",
        *[o for o in FAST if "num_pictures" not in o], "callbacks.localization.num_pictures=0",
    ]
    m = run(compose_cfg(*common), tmp_path / "run")
    assert m["test/top1_cls"] == 1.0 and m["test/num_samples"] == 4  # per class: val, test, val
    for method in ("cam", "infocam", "infocam_least_likely"):
        for key in ("gt_known_loc", "top1_loc", "top5_loc", "max_box_acc", "top1_loc_val_tau", "max_box_acc_v2_iou50"):
            assert m[f"test/{key}@{method}"] == 1.0, (key, method)
    # the same images with every box shifted by half its size: now no box is found
    cub = tmp_path / "CUB_200_2011" / "CUB_200_2011"
    lines = []
    for line in (cub / "bounding_boxes.txt").read_text().splitlines():
        i, x, y, w, h = line.split()
        lines.append(f"{i} {float(x) + float(w) / 2 + 2:.1f} {y} {w} {h}")
    (cub / "bounding_boxes.txt").write_text("\n".join(lines) + "\n")
    shifted = run(compose_cfg(*common, "seed=1"), tmp_path / "run_shifted")
    assert shifted["test/top1_cls"] == 1.0 and shifted["test/gt_known_loc@cam"] == 0.0


def test_tiny_imagenet_infocam_end_to_end(tmp_path):
    make_tiny_imagenet(tmp_path / "tiny-imagenet-200", num_classes=6, train_per_class=4, val_per_class=4)
    cfg = compose_cfg(
        "+experiment=tiny_imagenet_infocam", f"data.root={tmp_path / 'tiny-imagenet-200'}",
        "data.val_test_split=alternate",
        "data.batch_size=8", "data.eval_batch_size=8", "model=resnet50_adl", *FAST,
    )
    m = run(cfg, tmp_path / "run")
    _check_record(tmp_path / "run")
    assert 0.0 <= m["test/max_box_acc_v2@infocam_w3"] <= 1.0
    assert (m["data/num_train"], m["data/num_val"], m["data/num_test"]) == (24, 12, 12)


def test_missing_cub_fails_fast_with_instructions(tmp_path):
    cfg = compose_cfg("+experiment=cub_infocam", f"data.root={tmp_path / 'nowhere'}", *FAST)
    with pytest.raises(DataNotFoundError, match="data.root=") as info:
        run(cfg, tmp_path / "run")
    assert "nowhere" in str(info.value)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"


@needs_fashion_mnist
def test_embedded_wsol_benchmark_end_to_end(tmp_path):
    cfg = compose_cfg(
        "+experiment=synthetic_wsol_infocam", "data.num_train=256", "data.num_val=64", "data.num_test=64",
        "data.batch_size=64", "data.eval_batch_size=64", "trainer.max_epochs=1", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false", "logger=none", "callbacks.localization.window=[null,3]",
        # the experiment evaluates CAM and infoCAM; the table (and this test) add the third method
        "callbacks.localization.methods=[cam,infocam,infocam_least_likely]",
    )
    m = run(cfg, tmp_path / "run")
    _check_record(tmp_path / "run")
    for method in METHODS:
        assert 0.0 <= m[f"test/top1_loc@{method}_w3"] <= 1.0
    assert m["test/num_samples"] == 64
    assert (m["data/num_train"], m["data/num_val"], m["data/num_test"]) == (256, 64, 64)
