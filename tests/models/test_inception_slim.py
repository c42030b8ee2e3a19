"""Inception-V3 as the authors' TF-slim CUB run builds it: body frozen, its BatchNorm in training
mode with slim's moving-average decay, dropout keep 0.8, weight decay on the logits weights only.
Real Inception3 body with random weights at 75 px (small enough for CPU)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from infocam_exp.models.inception import InceptionV3


@pytest.fixture(scope="module")
def slim_model() -> InceptionV3:
    torch.manual_seed(0)
    return InceptionV3(
        num_classes=5, input_shape=(3, 75, 75), finetune="linear", body_bn="train", bn_momentum=0.0003,
        dropout=0.2, head_init="slim", head_bias_decay=False,
    )


def _batch_norms(model: InceptionV3) -> list[nn.BatchNorm2d]:
    return [m for m in model.body.modules() if isinstance(m, nn.BatchNorm2d)]


def test_frozen_body_has_no_gradient_and_no_optimiser_group(slim_model):
    model = slim_model
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["classifier.weight", "classifier.bias"]
    groups = model.param_groups(0.01, 1.0)
    assert [g["name"] for g in groups] == ["head", "head_bias"]
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(model.classifier.weight), id(model.classifier.bias)}
    assert not grouped & {id(p) for p in model.body.parameters()}
    # slim regularises weights only: the bias group overrides the optimiser's weight decay
    opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9, weight_decay=4e-5)
    assert [g["weight_decay"] for g in opt.param_groups] == [4e-5, 0.0]
    model.train()
    model(torch.randn(4, 3, 75, 75)).sum().backward()
    assert all(p.grad is None for p in model.body.parameters())
    assert model.classifier.weight.grad is not None and model.classifier.bias.grad is not None
    model.zero_grad(set_to_none=True)


def test_body_batchnorm_uses_batch_statistics_and_updates_running_averages(slim_model):
    model = slim_model
    model.train()
    assert model.body.training  # is_training=True in slim, although nothing in the body trains
    bns = _batch_norms(model)
    assert bns and all(bn.momentum == 0.0003 and bn.eps == 1e-3 for bn in bns)  # slim: decay 0.9997, eps 0.001
    first = model.body.Conv2d_1a_3x3
    mean_before = first.bn.running_mean.clone()
    weights_before = {k: v.clone() for k, v in model.body.state_dict().items() if "running" not in k and "num_batches" not in k}
    x = torch.randn(8, 3, 75, 75) * 2 + 0.5
    opt = torch.optim.SGD(model.param_groups(0.01, 1.0), lr=0.01, momentum=0.9, weight_decay=4e-5)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), torch.arange(8) % 5).backward()
    opt.step()
    # running mean moves by momentum x (batch mean - old), computed by hand from the conv output
    with torch.no_grad():
        batch_mean = first.conv(x).mean(dim=(0, 2, 3))
    torch.testing.assert_close(first.bn.running_mean, mean_before + 0.0003 * (batch_mean - mean_before), rtol=1e-4, atol=1e-6)
    assert not torch.equal(first.bn.running_mean, mean_before)
    # no body weight (conv, BN affine) moved
    after = model.body.state_dict()
    for k, v in weights_before.items():
        assert torch.equal(after[k], v), k
    # batch statistics in training: the same image gives another output in another batch
    model.eval()
    with torch.no_grad():
        a = model.forward_features(x[:2])
    model.train()
    with torch.no_grad():
        b = model.forward_features(x[:2])
    assert not torch.allclose(a, b)


def test_default_linear_probe_keeps_the_body_in_eval_mode():
    with torch.device("meta"):
        probe = InceptionV3(num_classes=4, input_shape=(3, 299, 299))
    probe.train()
    assert probe.body_bn == "eval" and not probe.body.training
    assert all(bn.momentum == 0.1 for bn in _batch_norms(probe))  # torchvision's default untouched
    with pytest.raises(ValueError, match="body_bn"):
        InceptionV3(num_classes=4, input_shape=(3, 299, 299), body_bn="frozen")


def test_dropout_and_head_init_follow_slim():
    torch.manual_seed(1)
    fresh = InceptionV3(num_classes=5, input_shape=(3, 75, 75), dropout=0.2, head_init="slim")
    assert fresh.dropout.p == pytest.approx(0.2)  # keep_prob 0.8
    w = fresh.classifier.weight.detach()
    std = math.sqrt(1.3 * 2 / 2048)  # variance_scaling_initializer(factor 2, FAN_IN), truncated at 2 std
    assert float(w.abs().max()) <= 2 * std + 1e-7
    # a normal truncated at 2 std has std 0.88 x the untruncated one (1.3 compensates for that)
    assert float(w.std()) == pytest.approx(0.88 * std, rel=0.05)
    assert float(fresh.classifier.bias.detach().abs().max()) == 0.0


def test_protocol_facts_are_json(slim_model):
    facts = slim_model.protocol_facts()["model"]
    json.dumps(facts)
    assert facts["dropout"] == pytest.approx(0.2)
    assert "frozen" in facts["body"] and "train mode" in facts["body_batchnorm"] and "0.0003" in facts["body_batchnorm"]
    assert facts["head_bias_weight_decay"] is False
