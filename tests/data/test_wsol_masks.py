"""The OpenImages-layout mask metadata reader and mask reading (data/wsol_masks.py)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infocam_exp.data.wsol_masks import (
    MaskAnnotation,
    MaskMetadataError,
    ground_truth,
    localization_kind,
    read_mask,
    read_mask_metadata,
)
from tests.metrics.pxap_reference import gt_labels, nearest_resize


def _meta(root: Path, ids, lines) -> Path:
    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "localization.txt").write_text("".join(f"{li}\n" for li in lines))
    return meta


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path) if mode != "1" else Image.fromarray(arr).convert(
        "1"
    ).save(path)


def test_reads_instances_and_one_ignore_path(tmp_path):
    meta = _meta(
        tmp_path,
        ["a.jpg", "b.jpg"],
        ["a.jpg,a_m1.png,a_ignore.png", "b.jpg,b_m1.png,", "a.jpg,a_m2.png,"],
    )
    parsed = read_mask_metadata(meta)
    assert parsed.image_ids == ["a.jpg", "b.jpg"]
    assert parsed.annotations["a.jpg"] == MaskAnnotation(
        ("a_m1.png", "a_m2.png"), "a_ignore.png", 1
    )
    assert parsed.annotations["b.jpg"] == MaskAnnotation(("b_m1.png",), "", 2)
    assert localization_kind(meta) == "masks"


def test_kind_of_box_metadata(tmp_path):
    meta = _meta(tmp_path, ["a.jpg"], ["a.jpg,1,2,3,4"])
    assert localization_kind(meta) == "boxes"


@pytest.mark.parametrize(
    "lines, where, words",
    [
        (["a.jpg,a_m1.png"], "localization.txt:1:", "<mask_path>"),
        (["a.jpg,,a_ignore.png"], "localization.txt:1:", "<mask_path>"),
        (["a.jpg,a_m1.png,i.png", "a.jpg,a_m2.png,j.png"], "localization.txt:2:", "first line, 1"),
        (["b.jpg,b_m1.png,"], "localization.txt", "no mask for image id 'a.jpg'"),
    ],
)
def test_malformed_metadata_names_file_and_line(tmp_path, lines, where, words):
    meta = _meta(tmp_path, ["a.jpg"], lines)
    with pytest.raises(MaskMetadataError) as info:
        read_mask_metadata(meta)
    assert where in str(info.value) and words in str(info.value)


def test_duplicate_id_and_missing_files(tmp_path):
    meta = _meta(tmp_path, ["a.jpg", "a.jpg"], ["a.jpg,m.png,"])
    with pytest.raises(MaskMetadataError, match=r"image_ids.txt:2: duplicate"):
        read_mask_metadata(meta)
    (meta / "image_ids.txt").write_text("a.jpg\n")
    (meta / "localization.txt").unlink()
    with pytest.raises(MaskMetadataError, match="localization.txt: metadata file not found"):
        read_mask_metadata(meta)


def test_missing_and_unreadable_mask_files_are_named(tmp_path):
    where = "meta/localization.txt:3"
    with pytest.raises(MaskMetadataError) as info:
        read_mask(tmp_path / "absent.png", (4, 4), where)
    assert "absent.png" in str(info.value) and where in str(info.value)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(MaskMetadataError) as info:
        read_mask(tmp_path / "broken.png", (4, 4), where)
    assert "broken.png: not a readable image" in str(info.value) and where in str(info.value)


def test_any_nonzero_grey_is_foreground_in_every_png_mode(tmp_path):
    binary = np.zeros((5, 6), dtype=bool)
    binary[1:3, 2:5] = True
    grey = np.where(binary, 1, 0).astype(np.uint8)  # grey 1 > 0.5: foreground (no / 255)
    _png(tmp_path / "grey1.png", grey, "L")
    _png(tmp_path / "bit.png", binary, "1")
    _png(tmp_path / "rgb.png", np.repeat(binary[..., None].astype(np.uint8) * 255, 3, 2), "RGB")
    for name in ("grey1.png", "bit.png", "rgb.png"):
        assert ((read_mask(tmp_path / name, (5, 6)) > 0.5) == binary).all(), name


@pytest.mark.parametrize(
    "src, dst",
    [((632, 459), (224, 224)), ((36, 204), (224, 224)), ((7, 9), (20, 30)), ((50, 50), (50, 50))],
)
def test_resize_is_opencv_nearest_neighbour(tmp_path, src, dst):
    # the reference's written-out index rule (with OpenCV's reciprocal scale) picks the same
    # pixels as cv2.resize(INTER_NEAREST); ((36, 204) -> 224 is a size where x * w // 224 does not)
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=src).astype(np.uint8)
    _png(tmp_path / "m.png", grey, "L")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", dst), nearest_resize(grey, dst))


def test_ground_truth_unions_instances_and_subtracts_them_from_the_ignore_box(tmp_path):
    rng = np.random.default_rng(1)
    masks = [(rng.random((30, 40)) < 0.2) for _ in range(2)]
    box = np.zeros((30, 40), dtype=bool)
    box[5:25, 5:35] = True
    for k, m in enumerate(masks):
        _png(tmp_path / f"m{k}.png", m.astype(np.uint8) * 255, "L")
    _png(tmp_path / "ign.png", box.astype(np.uint8) * 255, "L")
    ann = MaskAnnotation(("m0.png", "m1.png"), "ign.png", 1)
    fg, ign = ground_truth(tmp_path, ann, (17, 23))
    ref_fg, ref_ign = gt_labels([m * 255 for m in masks], box * 255, (17, 23))
    np.testing.assert_array_equal(fg, ref_fg)
    np.testing.assert_array_equal(ign, ref_ign)
    assert fg.any() and ign.any() and not (fg & ign).any()
    # grey value 1 (> 0.5; masks are not divided by 255) is foreground, 0 is not
    _png(tmp_path / "faint.png", np.where(masks[0], 1, 0).astype(np.uint8), "L")
    faint, _ = ground_truth(tmp_path, MaskAnnotation(("faint.png",), "", 1), (30, 40))
    np.testing.assert_array_equal(faint, masks[0])
    fg2, ign2 = ground_truth(tmp_path, MaskAnnotation(("m0.png",), "", 1), (17, 23))
    assert not ign2.any() and fg2.any()
