"""LocalizationEvaluation (the Lightning adapter) on hand-made models and boxes whose right answer
is known by construction: the threshold chosen on validation is the one applied to test, the maps
are the ground-truth class's (GT-known) and Top-1 Loc also needs the right prediction, and maps are
upsampled to the input frame of the boxes.

The model is a GAP network whose feature map is the input itself (average-pooled by ``stride``)
and whose classifier is the identity: channel k *is* the CAM of class k, and the logits are the
channels' means, so each image's prediction is set by its channel amplitudes.
"""

import json

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from infocam_exp.callbacks import LocalizationEvaluation
from infocam_exp.data.base import TensorBatchLoader
from infocam_exp.losses.pc_softmax import CrossEntropy
from infocam_exp.systems import ClassifierSystem


class IdentityGAP(nn.Module):
    def __init__(self, num_classes: int = 2, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.classifier = nn.Linear(num_classes, num_classes)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.eye(num_classes))
            self.classifier.bias.zero_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.stride) if self.stride > 1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x).mean(dim=(2, 3)))


def _evaluate(tmp_path, val, test, stride=1, methods=("cam",)):
    """Fit for one epoch at lr 0 (the weights stay as built), validating on ``val``, then test."""
    callback = LocalizationEvaluation(methods=methods, thresholds=100, num_pictures=0)
    system = ClassifierSystem(
        IdentityGAP(stride=stride), CrossEntropy(torch.tensor([0.5, 0.5])),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.0),
    )
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[callback], default_root_dir=tmp_path,
    )
    train = TensorBatchLoader(list(val[:2]), batch_size=len(val[0]))
    trainer.fit(system, train_dataloaders=train, val_dataloaders=TensorBatchLoader(list(val), batch_size=2))
    trainer.test(system, dataloaders=TensorBatchLoader(list(test), batch_size=2))
    return callback.results


def _boxes(*boxes):
    """(B, 1, 4) inclusive x0, y0, x1, y1 boxes in input pixels."""
    return torch.tensor([[list(b)] for b in boxes], dtype=torch.float32)


def _plateau_on_skirt(n: int) -> torch.Tensor:
    """n images (2 x 16 x 16): class-0 channel = 1.0 on rows/cols 4..7 (box A), 0.5 on the rest of
    rows/cols 2..9 (box B), 0 elsewhere; class-1 channel empty, so class 0 is predicted.
    After min-max normalisation and x255: A = 255, the skirt = 127. The skirt is kept while
    int(tau * 255) < 127, i.e. for tau <= 0.49; from tau = 0.50 on only A is."""
    x = torch.zeros(n, 2, 16, 16)
    x[:, 0, 2:10, 2:10] = 0.5
    x[:, 0, 4:8, 4:8] = 1.0
    return x


def test_threshold_chosen_on_validation_is_applied_to_test(tmp_path):
    box_a, box_b = (4, 4, 7, 7), (2, 2, 9, 9)
    x = _plateau_on_skirt(4)
    y = torch.zeros(4, dtype=torch.long)
    # validation annotates the plateau: only tau >= 0.50 hits (IoU 1; below, IoU 16/64)
    val = (x, y, _boxes(*[box_a] * 4))
    # test annotates plateau + skirt: only tau <= 0.49 hits; test alone would choose tau = 0
    test = (x, y, _boxes(*[box_b] * 4))
    r = _evaluate(tmp_path, val, test)
    assert r["val/max_box_acc_threshold@cam"] == pytest.approx(0.50)
    assert r["val/max_box_acc@cam"] == 1.0 and r["val/gt_known_loc@cam"] == 0.0  # fixed tau 0.2
    assert r["test/val_tau@cam"] == pytest.approx(0.50)
    # at the validation tau every test box is A: all miss. Chosen on test it would be 100%.
    assert r["test/gt_known_loc_val_tau@cam"] == 0.0 and r["test/top1_loc_val_tau@cam"] == 0.0
    assert r["test/max_box_acc@cam"] == 1.0 and r["test/max_box_acc_threshold@cam"] == 0.0
    assert r["test/gt_known_loc@cam"] == 1.0  # tau = 0.2 keeps the skirt
    curves = json.loads((tmp_path / "curves" / "test_localization.json").read_text())["cam"]
    assert curves["gt_known_loc_curve"][49] == 1.0 and curves["gt_known_loc_curve"][50] == 0.0


def test_ground_truth_class_maps_and_top1_needs_the_right_prediction(tmp_path):
    r0, r1 = (2, 2, 5, 5), (9, 10, 13, 13)  # the class-0 and class-1 blobs (x0, y0, x1, y1)

    def image(a0: float, a1: float) -> torch.Tensor:
        x = torch.zeros(2, 16, 16)
        x[0, 2:6, 2:6] = a0  # 16 pixels
        x[1, 10:14, 9:14] = a1  # 20 pixels
        return x

    x = torch.stack([
        image(1.0, 0.5),  # y=0, predicted 0 (16 > 10): GT map -> r0, hit; Top-1 hit
        image(0.2, 1.0),  # y=0, predicted 1: the GT map still finds r0 (GT-known hit), Top-1 miss
        image(1.0, 0.1),  # y=1, predicted 0: the class-1 map finds r1 (GT-known hit), Top-1 miss
        image(0.3, 1.0),  # y=1, predicted 1, but annotated at r0: the class-1 map misses
    ])
    y = torch.tensor([0, 0, 1, 1])
    boxes = _boxes(r0, r0, r1, r0)
    r = _evaluate(tmp_path, (x, y, boxes), (x, y, boxes))
    assert r["test/top1_cls"] == 0.5
    # predicted-class maps would give 2/4 (images 2 and 3 would look at the other blob)
    assert r["test/gt_known_loc@cam"] == 0.75
    assert r["test/top1_loc@cam"] == 0.25
    assert r["test/top5_loc@cam"] == 0.75  # K = 2: the label is always in the top 2


def test_maps_are_upsampled_to_the_input_frame(tmp_path):
    # 32 x 48 input, stride 4: an 8 x 12 feature map. Blob on feature rows 1..4, cols 6..10,
    # i.e. input rows 4..19, cols 24..43: the box is annotated in the input frame. Without
    # upsampling, or stretched to another frame, the predicted box would not overlap it enough.
    x = torch.zeros(2, 2, 32, 48)
    x[:, 0, 4:20, 24:44] = 1.0
    y = torch.zeros(2, dtype=torch.long)
    boxes = _boxes((24, 4, 43, 19), (24, 4, 43, 19))
    r = _evaluate(tmp_path, (x, y, boxes), (x, y, boxes), stride=4)
    assert r["test/gt_known_loc@cam"] == 1.0 and r["test/top1_loc@cam"] == 1.0
    # and the box is tight: at tau = 0.5 too (bicubic blur spreads the blob by < 2 px there)
    curves = json.loads((tmp_path / "curves" / "test_localization.json").read_text())["cam"]
    assert curves["gt_known_loc_curve"][50] == 1.0


def test_boxes_reaching_outside_the_input_are_scored_unclipped(tmp_path):
    # The authors' ground-truth boxes are never clipped to the crop, so they may start at a
    # negative coordinate. The map's blob fills input rows/cols 0..7: predicted box (0, 0, 7, 7).
    x = torch.zeros(2, 2, 16, 16)
    x[:, 0, 0:8, 0:8] = 1.0
    y = torch.zeros(2, dtype=torch.long)
    # (-4, -4, 7, 7): IoU 64 / 144 = 0.44, a miss (clipped to the input it would be 1.0, a hit);
    # (-1, 0, 7, 7): IoU 64 / 72 = 0.89, a hit (read as padding it would be dropped, a miss)
    boxes = _boxes((-4, -4, 7, 7), (-1, 0, 7, 7))
    r = _evaluate(tmp_path, (x, y, boxes), (x, y, boxes))
    assert r["test/gt_known_loc@cam"] == 0.5
    # the second image's box counts in MaxBoxAccV2 at IoU 0.5 and 0.7 (0.89), the first at 0.3 only
    assert r["test/max_box_acc_v2_iou50@cam"] == 0.5 and r["test/max_box_acc_v2_iou30@cam"] == 1.0
