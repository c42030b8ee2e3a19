"""The explain CLI, the EfficientNet-Lite0 port and the overlay figures (offline)."""

import logging

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from infocam_exp import explain as E
from infocam_exp.plots.overlays import save_overlay_grid

# ImageNet-1k ids
CAT_IDS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_IDS = (967, 968)  # espresso, cup


def _png(path, array) -> str:
    Image.fromarray(array).save(path)
    return str(path)


# --------------------------------------------------------------------------- overlays
def test_overlay_grid_writes_png_atomically(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 3, 40, 60), dtype=np.uint8)
    maps = {"cam": torch.rand(2, 5, 7), "infocam": torch.rand(2, 40, 60)}
    out = save_overlay_grid(
        tmp_path / "sub" / "grid.png",
        images,
        maps,
        gt_boxes=[np.array([[5, 5, 30, 20]]), np.array([[0, 0, 10, 10], [20, 10, 50, 35]])],
        pred_boxes={"infocam": torch.tensor([[4, 6, 28, 22], [1, 1, 9, 9]])},
        titles=["a (0.9)", "b (0.1)"],
    )
    assert out == tmp_path / "sub" / "grid.png"
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 0
    assert [p.name for p in out.parent.iterdir()] == ["grid.png"]  # no temp file left


def test_overlay_grid_accepts_float_images_and_constant_maps(tmp_path):
    out = save_overlay_grid(
        tmp_path / "g.png",
        torch.rand(1, 3, 16, 16),
        {"cam": torch.zeros(1, 4, 4), "x": torch.full((1, 4, 4), float("nan"))},
    )
    assert out.is_file()


def test_overlay_grid_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="maps must have shape"):
        save_overlay_grid(tmp_path / "g.png", torch.rand(2, 3, 8, 8), {"cam": torch.rand(3, 4, 4)})
    with pytest.raises(ValueError, match="images must have shape"):
        save_overlay_grid(tmp_path / "g.png", torch.rand(3, 8, 8), {"cam": torch.rand(3, 4, 4)})
    with pytest.raises(ValueError, match="without maps"):
        save_overlay_grid(
            tmp_path / "g.png",
            torch.rand(1, 3, 8, 8),
            {"cam": torch.rand(1, 4, 4)},
            pred_boxes={"infocam": torch.zeros(1, 4)},
        )
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- model + CLI errors
def test_lite0_package_weights_load_strictly():
    model = E.load_efficientnet_lite0()
    assert not model.training
    with torch.no_grad():
        feats = model.extract_features(torch.zeros(1, 3, 224, 224))
    assert feats.shape == (1, 1280, 7, 7)


def test_missing_and_non_image_files_are_named(tmp_path, caplog):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png"):
        E.load_image(bad)
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        E.load_image(tmp_path / "nope.jpg")
    with caplog.at_level(logging.ERROR, logger="infocam_exp.explain"):
        assert E.main([str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "out")]) == 2
    assert "nope.jpg" in caplog.text
    assert not (tmp_path / "out").exists()


def test_torchvision_model_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(FileNotFoundError, match=r"resnet18-.*\.pth.*--weights"):
        E.load_classifier("resnet18")
    with pytest.raises(ValueError, match="unknown model"):
        E.load_classifier("not_a_model")
    # a file already in the hub cache is used
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(
        torchvision.models.resnet18(weights=None).state_dict(), cache / "resnet18-f37072fd.pth"
    )
    clf = E.load_classifier("resnet18")
    assert len(clf.categories) == 1000
    assert clf.to_pixels(Image.new("RGB", (90, 60))).shape == (3, 224, 224)


def test_cli_rejects_model_without_gap_linear_head(tmp_path, caplog):
    weights = tmp_path / "mnv3.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), weights)
    img = _png(tmp_path / "grey.png", np.full((40, 40, 3), 128, dtype=np.uint8))
    argv = [img, "--model", "mobilenet_v3_small", "--weights", str(weights), "--out", str(tmp_path)]
    with caplog.at_level(logging.ERROR, logger="infocam_exp.explain"):
        assert E.main(argv) == 2
    assert "Hardswish" in caplog.text


def test_cli_with_torchvision_weights_file(tmp_path, capsys):
    """Full CLI path on a random resnet18 whose weights come from --weights."""
    weights = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    img = _png(
        tmp_path / "noise.png",
        np.random.default_rng(0).integers(0, 256, size=(50, 70, 3), dtype=np.uint8),
    )
    code = E.main(
        [
            img,
            img,
            "--model",
            "resnet18",
            "--weights",
            str(weights),
            "--topk",
            "2",
            "--method",
            "cam",
            "infocam_least_likely",
            "--window",
            "3",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["noise.png", "noise_1.png"]  # same stem twice -> no overwrite
    assert "wrote" in capsys.readouterr().out


# --------------------------------------------------------------------------- real photos
def _peak_yx(m: torch.Tensor) -> tuple[int, int]:
    return divmod(int(m.argmax()), m.shape[-1])


def _inside(yx, box) -> bool:
    """box = (x0, y0, x1, y1) in the 224 x 224 model frame."""
    y, x = yx
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def _mass_inside(m: torch.Tensor, box) -> tuple[float, float]:
    """(share of the map's positive mass inside box, share of the frame's area inside box)."""
    mask = torch.zeros(m.shape, dtype=torch.bool)
    mask[box[1] : box[3] + 1, box[0] : box[2] + 1] = True
    pos = m.clamp_min(0)
    return float(pos[mask].sum() / pos.sum()), float(mask.float().mean())


@pytest.mark.slow
def test_explain_skimage_photos(tmp_path):
    """EfficientNet-Lite0 with its ImageNet weights classifies bundled photos, and localises objects
    pasted at known places on a plain canvas: the boxes come from the pasting, not from our maps.
    """
    import skimage.data as skdata

    clf = E.load_classifier()
    cat, coffee = (Image.fromarray(a) for a in (skdata.chelsea(), skdata.coffee()))
    canvas = Image.new("RGB", (448, 448), (124, 116, 104))
    canvas.paste(cat.resize((180, 120), Image.Resampling.BICUBIC), (240, 250))
    canvas.paste(coffee.resize((150, 100), Image.Resampling.BICUBIC), (40, 60))

    def frame(box):  # canvas pixels -> the 224 x 224 centre crop (392 px from offset 28)
        return tuple(round((v - 28) * 224 / 392) for v in box)

    cat_box, cup_box = frame((240, 250, 420, 370)), frame((40, 60, 190, 160))
    exps = E.explain_images([cat, coffee, canvas], clf, topk=3, methods=("cam", "infocam", "infocam_least_likely"))
    top1 = [int(e.classes[0]) for e in exps]
    assert top1[0] in CAT_IDS and top1[1] in COFFEE_IDS and top1[2] in CAT_IDS
    for e in exps:
        for m in e.maps.values():
            assert m.shape == (3, 224, 224)

    # the top (cat) class: half of the map's positive mass on the cat, which covers 14% of the
    # frame (measured 0.50 share: 3.5x its area), none on the cup (measured 0.000)
    cat_map = exps[2].maps["infocam"][0]
    share, area = _mass_inside(cat_map, cat_box)
    assert share > 2.5 * area, (share, area)
    assert _mass_inside(cat_map, cup_box)[0] < 0.02
    # its peak in the cat's box, grown by one 32 px feature cell for the 7 x 7 map resolution
    assert _inside(_peak_yx(cat_map), (cat_box[0] - 32, cat_box[1] - 32, cat_box[2] + 32, cat_box[3] + 32))
    # the espresso map of the same canvas lands on the cup (measured 0.45 share, 4.4x its area)
    espresso = E.CAMExtractor(clf.model)(
        clf.normalize(clf.to_pixels(canvas)[None]), classes=COFFEE_IDS[0], size="input"
    ).maps["infocam"][0]
    share, area = _mass_inside(espresso, cup_box)
    assert share > 2.5 * area, (share, area)

    for name, e in zip(("chelsea", "coffee", "two_objects_on_canvas"), exps, strict=True):
        path = E.save_explanation(tmp_path / f"{name}.png", e, clf.categories)
        assert path.is_file() and path.stat().st_size > 10_000


@pytest.mark.slow
def test_cli_default_model_writes_png(tmp_path):
    import skimage.data as skdata

    img = _png(tmp_path / "chelsea.png", skdata.chelsea())
    assert E.main([img, "--topk", "1", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "chelsea.png").is_file()
