"""WSOL backbones, ADL, the Inception-V3 wrapper and offline ImageNet weight loading.

Inputs are small (32-75 px) to keep the default suite fast on CPU; nothing downloads.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
import torchvision

from infocam_exp.data.base import DataFormatError, DataNotFoundError
from infocam_exp.models.inception import InceptionV3
from infocam_exp.models.pretrained import find_weights_file, load_imagenet_weights, weights_facts
from infocam_exp.models.wsol_backbones import ADL, VGG16GAP, ResNet50GAP


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch, tmp_path):
    """Any download attempt fails the test; the hub cache points into the test's temp dir."""

    def refuse(*args, **kwargs):
        raise AssertionError("attempted a download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return VGG16GAP(num_classes=5, input_shape=(3, 32, 32), adl=True)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return ResNet50GAP(num_classes=5, input_shape=(3, 32, 32), adl=True)


def test_adl_eval_is_identity_and_train_masks():
    torch.manual_seed(0)
    x = torch.rand(2, 4, 3, 3)
    x[0, :, 1, 1] = 5.0  # the peak of sample 0
    adl = ADL(drop_rate=1.0, gamma=0.8).eval()
    assert torch.equal(adl(x), x)
    adl.train()
    out = adl(x)
    attention = x.mean(1, keepdim=True)
    mask = (attention < 0.8 * attention.amax(dim=(2, 3), keepdim=True)).float()
    torch.testing.assert_close(out, x * mask)
    assert (out[0, :, 1, 1] == 0).all()  # the most discriminative location is dropped
    importance = ADL(drop_rate=0.0, gamma=0.8).train()(x)
    torch.testing.assert_close(importance, x * torch.sigmoid(attention))


def test_adl_draws_drop_mask_at_its_rate():
    torch.manual_seed(1)
    x = torch.rand(1, 2, 4, 4) + 0.1
    adl = ADL(drop_rate=0.75, gamma=0.5).train()
    drops = sum(bool((adl(x) == 0).any()) for _ in range(400))
    assert 0.65 < drops / 400 < 0.85


@pytest.mark.parametrize("name", ["vgg", "resnet"])
def test_backbone_shapes_cam_consistency_and_adl_in_training_only(name, request):
    model = request.getfixturevalue(name).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)  # eval: ADL is the identity, so this is deterministic
        channels = 1024 if name == "vgg" else 2048
        assert feats.shape == (2, channels, 2, 2)  # 1/16 of the input: 14 x 14 at 224 px
        assert logits.shape == (2, 5)
        assert isinstance(model.classifier, torch.nn.Linear) and model.classifier.in_features == channels
        torch.testing.assert_close(model.classifier(feats.mean(dim=(2, 3))), logits)
        model.train()
        try:
            assert not torch.allclose(model(x), logits)  # ADL (and BN batch statistics) act
        finally:
            model.eval()


def test_adl_positions_and_defaults(vgg, resnet):
    assert sorted(vgg.adl.keys()) == ["conv5_3", "pool3", "pool4"]
    assert all(m.gamma == 0.8 and m.drop_rate == 0.75 for m in vgg.adl.values())
    assert sorted(resnet.adl.keys()) == ["layer3_0", "layer4_0", "layer4_2"]
    assert all(m.gamma == 0.9 for m in resnet.adl.values())
    # the inserted ADLs follow the intended layers: pool3 is features[16], conv5_3's ReLU is [29]
    assert vgg._adl_after == {16: "pool3", 23: "pool4", 29: "conv5_3"}
    with pytest.raises(ValueError, match="unknown ADL position"):
        ResNet50GAP(5, (3, 32, 32), adl=True, adl_positions=["layer5.0"])
    with torch.device("meta"):
        plain = ResNet50GAP(5, (3, 32, 32))
    assert len(plain.adl) == 0


def test_resnet_layer4_has_stride_one(resnet):
    assert resnet.layer4[0].conv2.stride == (1, 1) and resnet.layer4[0].downsample[0].stride == (1, 1)


# The authors' optimiser groups (info_cam/*/train.py): VGG: every parameter outside `features.`
# at lr x lr_ratio; ResNet: every parameter of `layer4.` and `fc.` (our `classifier.`) at lr x lr_ratio.
VGG_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # indices of the 13 convs in features


@pytest.mark.parametrize("adl", [False, True])
def test_vgg_lr_groups_are_the_authors(adl):
    with torch.device("meta"):
        model = VGG16GAP(5, (3, 32, 32), adl=adl)
    groups = model.param_groups(0.001, 10.0)
    by_id = {id(p): n for n, p in model.named_parameters()}
    got = {g["name"]: (g["lr"], [by_id[id(p)] for p in g["params"]]) for g in groups}
    base = [f"features.{i}.{w}" for i in VGG_CONVS for w in ("weight", "bias")]
    assert got == {
        "base": (0.001, base),
        "scaled": (pytest.approx(0.01), ["conv6.weight", "conv6.bias", "classifier.weight", "classifier.bias"]),
    }


@pytest.mark.parametrize("adl", [False, True])
def test_resnet_lr_groups_are_the_authors(adl):
    with torch.device("meta"):
        model = ResNet50GAP(5, (3, 32, 32), adl=adl)
        tv = torchvision.models.resnet50()
    groups = model.param_groups(0.01, 10.0)
    by_id = {id(p): n for n, p in model.named_parameters()}
    got = {g["name"]: (g["lr"], [by_id[id(p)] for p in g["params"]]) for g in groups}
    tv_names = [n for n, _ in tv.named_parameters()]
    layer4 = [n for n in tv_names if n.startswith("layer4.")]
    base = [n for n in tv_names if not n.startswith(("layer4.", "fc."))]
    # a bottleneck: 3 convs (no bias) + 3 BNs (weight, bias) = 9 tensors; a shortcut: 1 conv + 1 BN = 3
    assert len(layer4) == 3 * 9 + 3 and len(base) == 3 + (3 + 4 + 6) * 9 + 3 * 3
    assert base[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"] and base[-1] == "layer3.5.bn3.bias"
    assert got == {
        "base": (0.01, base),
        "scaled": (pytest.approx(0.1), layer4 + ["classifier.weight", "classifier.bias"]),
    }


def test_body_parameter_names_match_torchvision():
    with torch.device("meta"):
        tv_vgg = torchvision.models.vgg16()
        tv_res = torchvision.models.resnet50()
        ours_vgg = VGG16GAP(5, (3, 32, 32))
        ours_res = ResNet50GAP(5, (3, 32, 32))
        ours_inc = InceptionV3(5, (3, 299, 299), pretrained=False)
    tv_feats = {k for k in tv_vgg.state_dict() if k.startswith("features.")}
    assert tv_feats == {k for k in ours_vgg.state_dict() if k.startswith("features.")}
    assert set(tv_res.state_dict()) - set(ours_res.state_dict()) == {"fc.weight", "fc.bias"}
    with torch.device("meta"):
        tv_inc = torchvision.models.inception_v3(weights=None, init_weights=False)
    extra = {k for k in tv_inc.state_dict() if k.startswith(("fc.", "AuxLogits."))}
    assert set(tv_inc.state_dict()) - extra == set(ours_inc.body.state_dict())


def test_pretrained_weights_load_from_the_hub_cache(tmp_path, vgg):
    ckpt = torch.hub.get_dir()
    assert str(tmp_path) in ckpt  # TORCH_HOME redirected by the autouse fixture
    state = {f"features.{k}": v for k, v in vgg.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's fc layers are ignored
    path = find_weights_file.__globals__["hub_checkpoint_dir"]() / "vgg16-397923af.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    loaded = VGG16GAP(7, (3, 32, 32), pretrained=True)
    for k, v in vgg.features.state_dict().items():
        torch.testing.assert_close(loaded.features.state_dict()[k], v)
    # an explicit path (file or folder) works too
    assert set(load_imagenet_weights("vgg16", str(path))) == set(state)
    assert find_weights_file("vgg16", str(path.parent)) == path
    # the run records which file it read
    weights = loaded.protocol_facts()["model"]["weights"]
    assert weights["file"] == "vgg16-397923af.pth" and weights["path"] == str(path)
    assert weights["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert weights["explicit"] is False and weights["accepted_name"] is True
    assert weights["sha256_matches_name"] is False  # a made-up file, not torchvision's
    assert VGG16GAP(7, (3, 32, 32)).protocol_facts()["model"]["weights"] is None


def test_resnet50_v1_under_either_name_and_never_v2_implicitly(tmp_path):
    ckpt = find_weights_file.__globals__["hub_checkpoint_dir"]()
    ckpt.mkdir(parents=True)
    v2 = ckpt / "resnet50-11ad3fa6.pth"
    v2.write_bytes(b"v2 weights")
    with pytest.raises(DataNotFoundError) as err:
        find_weights_file("resnet50")
    msg = str(err.value)
    for needle in ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth", str(ckpt),
                   "python -m infocam_exp.fetch weights resnet50", "model.weights_path=", str(v2)):
        assert needle in msg, needle
    authors = ckpt / "resnet50-19c8e357.pth"  # the file name the authors' network/resnet.py loads
    authors.write_bytes(b"v1 weights")
    assert find_weights_file("resnet50") == authors
    torchvision_v1 = ckpt / "resnet50-0676ba61.pth"
    torchvision_v1.write_bytes(b"v1 weights")
    assert find_weights_file("resnet50") == torchvision_v1
    # V2 (or any file) only by name, and then recorded as an explicit choice
    assert find_weights_file("resnet50", str(v2)) == v2
    facts = weights_facts("resnet50", v2, explicit=True)
    assert facts == {
        "file": "resnet50-11ad3fa6.pth", "path": str(v2), "sha256": hashlib.sha256(b"v2 weights").hexdigest(),
        "explicit": True, "accepted_name": False, "sha256_matches_name": False,
    }


def test_missing_weights_say_where_and_how():
    with pytest.raises(DataNotFoundError) as err:
        ResNet50GAP(5, (3, 32, 32), pretrained=True)
    msg = str(err.value)
    for needle in ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth", "checkpoints",
                   "python -m infocam_exp.fetch weights resnet50", "model.weights_path="):
        assert needle in msg
    with pytest.raises(DataNotFoundError, match="vgg16-397923af.pth"):
        find_weights_file("vgg16")
    with pytest.raises(DataNotFoundError, match="inception_v3_google-0cc3c7bd.pth"):
        find_weights_file("inception_v3")


def test_wrong_weights_file_is_a_format_error(tmp_path):
    bad = tmp_path / "vgg16-397923af.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="cannot load as a state dict"):
        load_imagenet_weights("vgg16", str(bad))
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(DataFormatError, match="shape mismatch"):
        VGG16GAP(5, (3, 32, 32), pretrained=True, weights_path=str(bad))


def test_inception_linear_probe_and_full_finetune():
    torch.manual_seed(0)
    model = InceptionV3(num_classes=4, input_shape=(3, 75, 75), finetune="linear")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.weight", "classifier.bias"]
    model.train()
    assert not model.body.training and model.classifier.training  # BN statistics stay frozen
    x = torch.randn(2, 3, 75, 75)
    logits = model(x)  # train mode: dropout active, body in eval
    assert logits.shape == (2, 4)
    logits.sum().backward()
    assert model.classifier.weight.grad is not None
    assert [g["name"] for g in model.param_groups(0.01, 1.0)] == ["head"]
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 2048, 1, 1)
        torch.testing.assert_close(model.classifier(feats.mean(dim=(2, 3))), model(x))
    with torch.device("meta"):
        full = InceptionV3(num_classes=4, input_shape=(3, 299, 299), finetune="full")
    assert [g["name"] for g in full.param_groups(0.01, 10.0)] == ["body", "head"]
    full.train()
    assert full.body.training
    with pytest.raises(ValueError, match="at least 75"):
        InceptionV3(num_classes=4, input_shape=(3, 64, 64))


def test_feature_maps_are_14x14_at_224px():
    # shape inference only: meta tensors run no arithmetic
    with torch.device("meta"):
        for cls in (VGG16GAP, ResNet50GAP):
            model = cls(200, (3, 224, 224), adl=True).eval()
            assert model.forward_features(torch.empty(1, 3, 224, 224)).shape[-2:] == (14, 14)
        inc = InceptionV3(200, (3, 299, 299)).eval()
        assert inc.forward_features(torch.empty(1, 3, 299, 299)).shape == (1, 2048, 8, 8)
