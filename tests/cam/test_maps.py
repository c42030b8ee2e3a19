"""Hand-computed and identity tests for CAM / infoCAM maps."""

import pytest
import torch

from infocam_exp.cam.maps import (
    METHODS,
    class_maps,
    method_weights,
    select_classes,
    upsample_maps,
    window_sum,
)


@pytest.fixture
def tiny():
    """B=1, C=2, 1x2 map; K=3 classes with zero bias.

    F(0,0) = (1, 2), F(0,1) = (3, -1); w_0 = (1, 0), w_1 = (0, 1), w_2 = (1, 1).
    Pooled = (2, 0.5) -> logits (2, 0.5, 2.5): class 1 is least likely.
    """
    features = torch.tensor([[1.0, 3.0], [2.0, -1.0]]).reshape(1, 2, 1, 2)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    logits = torch.tensor([[2.0, 0.5, 2.5]])
    return features, weight, logits


def test_cam_by_hand(tiny):
    features, weight, _ = tiny
    expected = {0: [1.0, 3.0], 1: [2.0, -1.0], 2: [3.0, 2.0]}
    for k, row in expected.items():
        got = class_maps(features, weight, torch.tensor([k]), "cam")
        assert got.shape == (1, 1, 2)
        torch.testing.assert_close(got, torch.tensor([[row]]))


def test_infocam_by_hand(tiny):
    features, weight, logits = tiny
    # class 0: w_0 - (w_1 + w_2)/2 = (0.5, -1) -> (0.5*1 - 1*2, 0.5*3 + 1) = (-1.5, 2.5)
    got = class_maps(features, weight, torch.tensor([0]), "infocam")
    torch.testing.assert_close(got, torch.tensor([[[-1.5, 2.5]]]))
    # least likely is class 1: w_0 - w_1 = (1, -1) -> (1 - 2, 3 + 1) = (-1, 4)
    got = class_maps(features, weight, torch.tensor([0]), "infocam_least_likely", logits)
    torch.testing.assert_close(got, torch.tensor([[[-1.0, 4.0]]]))
    # the least likely class against itself has nothing left
    got = class_maps(features, weight, torch.tensor([1]), "infocam_least_likely", logits)
    torch.testing.assert_close(got, torch.zeros(1, 1, 2))


def test_several_classes_per_image_stack_single_maps():
    torch.manual_seed(0)
    features, weight = torch.randn(3, 5, 4, 6), torch.randn(7, 5)
    logits = torch.randn(3, 7)
    classes = torch.tensor([[0, 6], [3, 3], [5, 1]])
    for method in METHODS:
        many = class_maps(features, weight, classes, method, logits)
        assert many.shape == (3, 2, 4, 6)
        for m in range(2):
            one = class_maps(features, weight, classes[:, m], method, logits)
            torch.testing.assert_close(many[:, m], one)


def test_variants_relate_to_cam_as_defined():
    torch.manual_seed(1)
    b, c, k = 2, 4, 5
    features, weight, logits = torch.randn(b, c, 3, 3), torch.randn(k, c), torch.randn(b, k)
    all_cams = class_maps(features, weight, torch.arange(k).repeat(b, 1), "cam")  # (B, K, H, W)
    y = torch.tensor([2, 4])
    cam_y = all_cams[torch.arange(b), y]
    others = torch.stack(
        [torch.cat([all_cams[i, :j], all_cams[i, j + 1 :]]) for i, j in enumerate(y.tolist())]
    )
    info = class_maps(features, weight, y, "infocam")
    torch.testing.assert_close(info, cam_y - others.mean(dim=1))
    least = logits.argmin(dim=1)
    ll = class_maps(features, weight, y, "infocam_least_likely", logits)
    torch.testing.assert_close(ll, cam_y - all_cams[torch.arange(b), least])
    assert not torch.allclose(info, ll)
    assert not torch.allclose(info, cam_y)


def test_spatial_mean_is_pmi_difference():
    """mean_ij infoCAM_y = PMI(x, y) - mean_{k != y} PMI(x, k) up to the bias difference.

    With a uniform prior PMI(x, k) = log softmax_k + log K, so the normaliser and the prior cancel
    in the difference, which must equal the logit difference.
    """
    torch.manual_seed(2)
    b, c, k = 4, 6, 5
    features = torch.randn(b, c, 7, 7).double()
    linear = torch.nn.Linear(c, k).double()
    logits = linear(features.mean(dim=(2, 3))).detach()
    w, bias = linear.weight.detach(), linear.bias.detach()
    y = torch.tensor([0, 1, 4, 2])
    others = torch.ones(b, k, dtype=torch.bool)
    others[torch.arange(b), y] = False

    pmi = logits.log_softmax(dim=1) + torch.log(torch.tensor(float(k)))
    pmi_diff = pmi[torch.arange(b), y] - pmi[others].reshape(b, k - 1).mean(dim=1)
    bias_diff = bias[y] - bias[others.nonzero()[:, 1]].reshape(b, k - 1).mean(dim=1)
    info_mean = class_maps(features, w, y, "infocam").mean(dim=(1, 2))
    torch.testing.assert_close(info_mean, pmi_diff - bias_diff)
    logit_diff = logits[torch.arange(b), y] - logits[others].reshape(b, k - 1).mean(dim=1)
    torch.testing.assert_close(info_mean, logit_diff - bias_diff)
    # and CAM averages to the logit without its bias
    cam_mean = class_maps(features, w, y, "cam").mean(dim=(1, 2))
    torch.testing.assert_close(cam_mean, logits[torch.arange(b), y] - bias[y])


def test_window_sum_by_hand():
    maps = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    expected = torch.tensor([[1.0, 3.0, 2.0], [4.0, 10.0, 6.0], [3.0, 7.0, 4.0]])
    torch.testing.assert_close(window_sum(maps, 2), expected)
    assert window_sum(maps, None) is maps and window_sum(maps, 1) is maps
    with pytest.raises(ValueError):
        window_sum(maps, 0)


def test_window_sum_equals_explicit_sum_and_channelwise_window():
    torch.manual_seed(3)
    k = 4
    features, weight = torch.randn(2, 3, 5, 6).double(), torch.randn(4, 3).double()
    y = torch.tensor([1, 3])
    plain = class_maps(features, weight, y, "infocam")
    win = class_maps(features, weight, y, "infocam", window=k)
    assert win.shape == (2, 5 + k - 1, 6 + k - 1)
    padded = torch.nn.functional.pad(plain, (k - 1, k - 1, k - 1, k - 1))
    explicit = torch.empty_like(win)
    for i in range(win.shape[1]):
        for j in range(win.shape[2]):
            explicit[:, i, j] = padded[:, i : i + k, j : j + k].sum(dim=(1, 2))
    torch.testing.assert_close(win, explicit)
    # windowing each channel before weighting (the authors' order) gives the same maps
    w_eff = method_weights(weight, y[:, None], "infocam")[:, 0]  # (B, C)
    per_channel = window_sum(features, k)
    torch.testing.assert_close(win, torch.einsum("bc,bchw->bhw", w_eff, per_channel))
    # each location lands in exactly k*k windows
    torch.testing.assert_close(win.sum(dim=(1, 2)), k * k * plain.sum(dim=(1, 2)))


def test_method_and_shape_errors(tiny):
    features, weight, _ = tiny
    with pytest.raises(ValueError, match="unknown CAM method"):
        class_maps(features, weight, torch.tensor([0]), "gradcam")
    with pytest.raises(ValueError, match="needs the logits"):
        class_maps(features, weight, torch.tensor([0]), "infocam_least_likely")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        class_maps(features, weight, torch.tensor([3]), "cam")
    with pytest.raises(ValueError, match="batch size"):
        class_maps(features, weight, torch.tensor([0, 1]), "cam")
    with pytest.raises(TypeError):
        class_maps(features, weight, torch.tensor([0.0]), "cam")
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        class_maps(features, weight.T, torch.tensor([0]), "cam")


def test_select_classes():
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0], [5.0, 0.0, 1.0, 2.0]])
    assert select_classes(logits).tolist() == [1, 0]
    assert select_classes(logits, "pred").tolist() == [1, 0]
    assert select_classes(logits, topk=2).tolist() == [[1, 2], [0, 3]]
    assert select_classes(logits, 3).tolist() == [3, 3]
    assert select_classes(logits, [2, 1]).tolist() == [2, 1]
    assert select_classes(logits, torch.tensor([[0, 1], [2, 3]])).shape == (2, 2)
    with pytest.raises(ValueError, match="topk"):
        select_classes(logits, torch.tensor([0, 1]), topk=2)
    with pytest.raises(ValueError):
        select_classes(logits, "gt")
    with pytest.raises(ValueError):
        select_classes(logits, topk=5)


def test_upsample_maps_shapes_and_constants():
    maps = torch.full((2, 3, 7, 7), 2.5)
    up = upsample_maps(maps, 224)
    assert up.shape == (2, 3, 224, 224)
    torch.testing.assert_close(up, torch.full_like(up, 2.5))
    assert upsample_maps(torch.randn(4, 5).half(), (8, 10)).dtype == torch.float16
