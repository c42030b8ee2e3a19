"""GAPCNN: shapes, the GAP + linear identity CAM relies on, and that it can fit a tiny batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infocam_exp.cam.api import CAMExtractor
from infocam_exp.models.gap_cnn import GAPCNN


def test_shapes_and_feature_map_size() -> None:
    model = GAPCNN(num_classes=10, input_shape=(3, 64, 64), width=8).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 10)
    assert model.forward_features(x).shape == (2, 32, 16, 16)  # two pools: 64 -> 16; 8 * 2 ** 2
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == model.num_features
    # other sizes and depths
    deep = GAPCNN(5, (1, 32, 32), width=4, depths=(1, 2, 2, 1)).eval()
    assert deep.forward_features(torch.randn(1, 1, 32, 32)).shape == (1, 32, 4, 4)
    assert sum(isinstance(m, nn.Conv2d) for m in deep.modules()) == 6


@pytest.mark.parametrize("train_mode", [False, True])
def test_logits_are_classifier_of_pooled_features(train_mode: bool) -> None:
    torch.manual_seed(0)
    model = GAPCNN(7, (3, 48, 48), width=8, dropout=0.0).train(train_mode)
    x = torch.randn(4, 3, 48, 48)
    logits = model(x)
    # in training BatchNorm uses the batch's statistics: the same batch gives the same features
    features = model.forward_features(x)
    torch.testing.assert_close(logits, model.classifier(features.mean(dim=(2, 3))))
    # CAM: the spatial mean of w_k . F_ij plus b_k is logit k
    cam = torch.einsum("kc,bchw->bkhw", model.classifier.weight, features)
    torch.testing.assert_close(cam.mean(dim=(2, 3)) + model.classifier.bias, logits, atol=1e-5, rtol=1e-5)


def test_dropout_only_touches_pooled_vector() -> None:
    torch.manual_seed(0)
    model = GAPCNN(3, (3, 16, 16), width=4, dropout=0.5).train()
    x = torch.randn(4, 3, 16, 16)
    # training mode: the feature map (what CAM uses) has no dropout: the same twice
    features = model.forward_features(x)
    torch.testing.assert_close(model.forward_features(x), features)
    pooled = features.mean(dim=(2, 3))
    torch.manual_seed(1)
    logits = model(x)
    torch.manual_seed(1)  # the same dropout mask, applied to the pooled vector by hand
    torch.testing.assert_close(logits, model.classifier(F.dropout(pooled, p=0.5, training=True)))
    assert not torch.allclose(logits, model.classifier(pooled))  # dropout is active in training
    # evaluation mode: no dropout at all
    model.eval()
    eval_pooled = model.forward_features(x).mean(dim=(2, 3))
    torch.testing.assert_close(model(x), model.classifier(eval_pooled))


def test_project_cam_extractor_accepts_it() -> None:
    model = GAPCNN(4, (3, 32, 32), width=4).eval()
    extractor = CAMExtractor(model, verify="always")
    assert extractor.classifier is model.classifier


def test_fits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = GAPCNN(4, (3, 16, 16), width=8, depths=(1, 1))
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8) % 4
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = F.cross_entropy(model(x), y).item()
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="image inputs"):
        GAPCNN(10, (784,))
    with pytest.raises(ValueError, match="depths"):
        GAPCNN(10, (3, 64, 64), depths=())
