"""LeNet and ResNet-32: shapes, sizes counted by hand, and the CAM convention."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from infocam_exp.models.lenet import LeNet
from infocam_exp.models.resnet_cifar import PadShortcut, ResNet32, ResNetCIFAR


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_lenet_authors_shapes_and_size() -> None:
    m = LeNet(10, (1, 28, 28))
    assert m(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert m.fc[1].in_features == 800  # 50 channels x 4 x 4
    # conv1 20*1*25+20, conv2 50*20*25+50, fc 800*500+500, classifier 500*10+10
    assert n_params(m) == 520 + 25_050 + 400_500 + 5_010


def test_lenet_infers_channels_and_fc_width() -> None:
    m = LeNet(7, (3, 32, 32))
    assert m.features[0].in_channels == 3
    assert m.fc[1].in_features == 50 * 5 * 5  # 32 -> 28 -> 14 -> 10 -> 5
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(ValueError, match="too small"):
        LeNet(10, (1, 12, 12))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        LeNet(10, (784,))


def test_resnet32_depth_size_and_shapes() -> None:
    m = ResNet32(10, (3, 32, 32))
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    linears = [c for c in m.modules() if isinstance(c, nn.Linear)]
    assert len(convs) + len(linears) == 32  # 1 stem + 3 stages x 5 blocks x 2 + fc
    # stem 432 + BN 32; stage 1: 5 x (2 x 2304 + 64); stage 2: (4608 + 9216 + 128) + 4 x (2 x 9216 + 128);
    # stage 3: (18432 + 36864 + 256) + 4 x (2 x 36864 + 256); fc 64 x 10 + 10  (He et al.: 0.46 M)
    assert n_params(m) == 464 + 23_360 + 13_952 + 74_240 + 55_552 + 295_936 + 650 == 464_154
    x = torch.randn(2, 3, 32, 32)
    feats = m.forward_features(x)
    assert feats.shape == (2, 64, 8, 8)
    assert isinstance(m.classifier, nn.Linear) and m.classifier.in_features == 64
    m.eval()
    torch.testing.assert_close(m(x), m.classifier(m.forward_features(x).mean(dim=(2, 3))))
    assert ResNet32(100, (3, 32, 32))(x).shape == (2, 100)


def test_option_a_shortcut() -> None:
    x = torch.randn(2, 16, 8, 8)
    out = PadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert not out[:, 16:].any()
    # no shortcut parameters: every parameter belongs to a conv, BN or the classifier
    m = ResNetCIFAR(10, (1, 28, 28), blocks_per_stage=1)
    assert not any(True for s in m.modules() if isinstance(s, PadShortcut) and list(s.parameters()))
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_resnet32_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    m = ResNet32(10, (3, 16, 16))  # small inputs keep this fast; any size works (global pooling)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(m.parameters(), lr=0.02)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(m(x), y)
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
