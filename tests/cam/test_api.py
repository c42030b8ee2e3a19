"""CAMExtractor on tiny torchvision models and on our forward_features/classifier layout."""

import pytest
import torch
import torchvision
from torch import nn

from infocam_exp.cam import CAMExtractor, CAMResult, GAPLinearError, class_maps


class TinyNet(nn.Module):
    """Our models' layout: forward_features -> (B, C, H, W), classifier: nn.Linear."""

    def __init__(self, num_classes: int = 5, channels: int = 6) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.ReLU())
        self.classifier = nn.Linear(channels, num_classes)

    def forward_features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.classifier(self.forward_features(x).mean(dim=(2, 3)))


class MaxPoolNet(TinyNet):
    """Same parameters, but max pooling: CAM does not apply and the check must say so."""

    def forward(self, x):
        return self.classifier(self.forward_features(x).amax(dim=(2, 3)))


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _assert_cam_means_match_logits(res: CAMResult, head: nn.Linear):
    """CAM averaged over locations is the logit minus its bias."""
    expected = res.logits.gather(1, res.classes) - head.bias[res.classes]
    torch.testing.assert_close(res.maps["cam"].mean(dim=(-2, -1)), expected, rtol=1e-4, atol=1e-4)


def test_resnet18_detected_and_consistent(images):
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    ext = CAMExtractor(model)
    res = ext(images, topk=3, method=("cam", "infocam", "infocam_least_likely"))
    assert res.logits.shape == (2, 10)
    assert res.classes.shape == (2, 3)
    assert res.features.shape == (2, 512, 1, 1)
    for m in ("cam", "infocam", "infocam_least_likely"):
        assert res.maps[m].shape == (2, 3, 1, 1)
    _assert_cam_means_match_logits(res, model.fc)
    torch.testing.assert_close(res.logits, model(images))
    # naming the modules explicitly gives the same result
    named = CAMExtractor(model, feature_module="layer4", classifier="fc")(
        images, topk=3, method="cam"
    )
    torch.testing.assert_close(named.maps["cam"], res.maps["cam"])


def test_custom_forward_features_model(images):
    torch.manual_seed(0)
    model = TinyNet().eval()
    res = CAMExtractor(model)(images, classes=torch.tensor([1, 4]), method=["cam", "infocam"])
    assert res.classes.tolist() == [1, 4]
    assert res.maps["infocam"].shape == (2, 16, 16)
    feats = model.forward_features(images)
    torch.testing.assert_close(
        res.maps["infocam"], class_maps(feats, model.classifier.weight, res.classes, "infocam")
    )
    _assert_cam_means_match_logits(
        CAMResult(res.logits, res.classes[:, None], {"cam": res.maps["cam"][:, None]}, feats),
        model.classifier,
    )


def test_window_and_upsampling(images):
    model = TinyNet().eval()
    ext = CAMExtractor(model, verify="always")
    res = ext(images, method="infocam", window=3)
    assert res.classes.shape == (2,)
    assert res.maps["infocam"].shape == (2, 18, 18)
    up = ext(images, method="infocam", window=3, size="input")
    assert up.maps["infocam"].shape == (2, 32, 32)
    assert ext(images, size=(40, 50)).maps["infocam"].shape == (2, 40, 50)


@pytest.mark.parametrize(
    "factory",
    [torchvision.models.mobilenet_v2, torchvision.models.efficientnet_b0],
    ids=["mobilenet_v2", "efficientnet_b0"],
)
def test_torchvision_sequential_heads(factory, images):
    model = factory(weights=None, num_classes=4).eval()
    res = CAMExtractor(model)(images, classes=2, method="cam")
    assert res.classes.tolist() == [2, 2]
    assert res.maps["cam"].shape == (2, 1, 1)
    _assert_cam_means_match_logits(
        CAMResult(
            res.logits, res.classes[:, None], {"cam": res.maps["cam"][:, None]}, res.features
        ),
        model.classifier[-1],
    )


def test_efficientnet_lite0_layout_detected(images):
    from infocam_exp.models.efficientnet_lite import EfficientNetLite0

    model = EfficientNetLite0(num_classes=3).eval()
    ext = CAMExtractor(model)
    assert ext.classifier is model._fc
    res = ext(images, method="infocam")
    assert res.features.shape == (2, 1280, 1, 1)


def test_non_linear_head_rejected_at_construction():
    model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=4)
    with pytest.raises(GAPLinearError, match="Hardswish"):
        CAMExtractor(model)


def test_undetectable_layout_says_what_it_looked_for():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    with pytest.raises(GAPLinearError, match="forward_features.*feature_module="):
        CAMExtractor(model)
    # naming the pieces works for any layout
    res = CAMExtractor(model, feature_module="0", classifier="3")(torch.rand(1, 3, 8, 8))
    assert res.maps["infocam"].shape == (1, 6, 6)
    with pytest.raises(GAPLinearError, match="not found"):
        CAMExtractor(model, feature_module="layer4", classifier="3")


def test_non_gap_model_fails_the_check(images):
    with pytest.raises(GAPLinearError, match="global average pooling"):
        CAMExtractor(MaxPoolNet().eval())(images)


def test_training_mode_dropout_hint(images):
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=4)
    model.classifier[0].p = 0.9
    model.train()
    with pytest.raises(GAPLinearError, match=r"model\.eval\(\)"):
        CAMExtractor(model)(images)


def test_feature_module_running_twice_is_an_error(images):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(self.conv(self.conv(x)).mean(dim=(2, 3)))

    with pytest.raises(GAPLinearError, match="ran 2 times"):
        CAMExtractor(Twice().eval(), feature_module="conv")(images)


def test_verify_first_checks_once(images, monkeypatch):
    model = TinyNet().eval()
    ext = CAMExtractor(model)
    calls = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda x: calls.append(1) or original(x))
    ext(images)
    ext(images)
    assert len(calls) == 1
