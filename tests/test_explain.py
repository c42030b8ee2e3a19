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
FOOTBALL_HELMET = 560


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


@pytest.mark.slow
def test_explain_skimage_photos(tmp_path):
    """EfficientNet-Lite0 with its ImageNet weights classifies and localises bundled photos.

    Boxes are in the 224 x 224 centre-crop frame and were drawn by looking at the written PNGs.
    """
    skdata = pytest.importorskip("skimage.data")
    clf = E.load_classifier()
    cat, coffee, astro = (
        Image.fromarray(a) for a in (skdata.chelsea(), skdata.coffee(), skdata.astronaut())
    )
    # the cat alone, pasted small into a plain canvas: the object location is known exactly
    canvas = Image.new("RGB", (448, 448), (124, 116, 104))
    canvas.paste(cat.resize((180, 120), Image.Resampling.BICUBIC), (240, 250))
    exps = E.explain_images(
        [cat, coffee, astro, canvas],
        clf,
        topk=3,
        methods=("cam", "infocam", "infocam_least_likely"),
    )
    top1 = [int(e.classes[0]) for e in exps]
    assert top1[0] in CAT_IDS and top1[3] in CAT_IDS
    assert top1[1] in COFFEE_IDS
    for e in exps:
        for m in e.maps.values():
            assert m.shape == (3, 224, 224)

    # chelsea fills the crop; its face (eyes, muzzle, cheeks) below the forehead strip
    assert _inside(_peak_yx(exps[0].maps["infocam"][0]), (0, 40, 224, 224))
    # the cup's rim and contents, not the saucer or spoon
    assert _inside(_peak_yx(exps[1].maps["infocam"][0]), (30, 0, 195, 140))
    # pasted cat: canvas crop is 392 px from offset 28, scale 224/392; box (240,250)-(420,370)
    # -> (121, 127)-(224, 195), grown by one 32 px feature cell for the 7 x 7 map resolution
    assert _inside(_peak_yx(exps[3].maps["infocam"][0]), (121 - 32, 127 - 32, 224, 195 + 32))
    mask = torch.zeros(224, 224, dtype=torch.bool)
    mask[127:196, 121:] = True
    pasted = exps[3].maps["infocam"][0]
    assert pasted[mask].mean() > pasted[~mask].mean()
    # astronaut: whatever the label, the football-helmet map peaks on the helmet (bottom right)
    helmet = E.CAMExtractor(clf.model)(
        clf.normalize(clf.to_pixels(astro)[None]), classes=FOOTBALL_HELMET, size="input"
    ).maps["infocam"][0]
    assert _inside(_peak_yx(helmet), (125, 160, 224, 224))

    for name, e in zip(("chelsea", "coffee", "astronaut", "cat_on_canvas"), exps, strict=True):
        path = E.save_explanation(tmp_path / f"{name}.png", e, clf.categories)
        assert path.is_file() and path.stat().st_size > 10_000


@pytest.mark.slow
def test_cli_default_model_writes_png(tmp_path):
    skdata = pytest.importorskip("skimage.data")
    img = _png(tmp_path / "chelsea.png", skdata.chelsea())
    assert E.main([img, "--topk", "1", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "chelsea.png").is_file()
