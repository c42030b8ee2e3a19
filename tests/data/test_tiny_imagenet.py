"""Tiny-ImageNet reader, splits and DataModule on a generated tiny-imagenet-200 folder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from infocam_exp.data.base import DataFormatError, DataNotFoundError
from infocam_exp.data.tiny_imagenet import (
    TinyImageNetWSOLDataModule,
    read_tiny_imagenet,
    wsol_splits,
)

try:  # tests/ becomes a package once it has an __init__.py; until then pytest puts it on sys.path
    from tests.fixtures_wsol import make_tiny_imagenet
except ModuleNotFoundError:
    from fixtures_wsol import make_tiny_imagenet


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return root, make_tiny_imagenet(root)  # 3 classes, 4 train + 4 val images each


@pytest.fixture()
def tiny_copy(tmp_path):
    truth = make_tiny_imagenet(tmp_path)
    return tmp_path / "tiny-imagenet-200", truth


def test_reader_parses_release_layout(tiny):
    root, truth = tiny
    wnids, names, train, val = read_tiny_imagenet(root)
    assert wnids == truth["wnids"] and names[0] == "thing 0, object 0"
    assert [(r.image_id, r.label) for r in train] == [(t.rel, t.label) for t in truth["train"]]
    assert [(r.image_id, r.label) for r in val] == [(t.rel, t.label) for t in truth["val"]]
    assert all(Path(r.path).is_file() for r in train + val)


def test_boxes_are_corners_not_xywh(tiny):
    root, truth = tiny
    _, _, train, val = read_tiny_imagenet(root / "tiny-imagenet-200")
    # first training box is written "8 10 40 50": corners; as x y w h it would be (8, 10, 48, 60)
    assert train[0].boxes == ((8.0, 10.0, 40.0, 50.0),)
    assert [r.boxes[0] for r in val] == [t.box for t in truth["val"]]


def test_val_split_alternates_per_class(tiny):
    root, truth = tiny
    splits = wsol_splits(root, val_test_split="alternate")
    # val_i has class i % 3; per class the 1st and 3rd images -> val, 2nd and 4th -> test
    assert [r.image_id for r in splits.val] == [f"val/images/val_{i}.JPEG" for i in (0, 1, 2, 6, 7, 8)]
    assert [r.image_id for r in splits.test] == [f"val/images/val_{i}.JPEG" for i in (3, 4, 5, 9, 10, 11)]
    assert len(splits.train) == 12


def test_datamodule_batches(tiny):
    root, truth = tiny
    dm = TinyImageNetWSOLDataModule(str(root), batch_size=5, eval_batch_size=4, num_workers=0, val_test_split="alternate")
    dm.prepare_facts()
    assert dm.num_classes == 3 and dm.input_shape == (3, 64, 64)
    assert dm.class_counts.tolist() == [4, 4, 4]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (5, 3, 64, 64) and y.dtype == torch.int64
    x, y, boxes = next(iter(dm.test_dataloader()))
    assert x.shape == (4, 3, 64, 64) and boxes.shape == (4, 1, 4)
    by_rel = {t.rel: t for t in truth["val"]}
    # 64 px, no crop: the authors' transform with --resize-size 64 --crop-size 64, x * 63 / 64 + 1
    want = [[v * 63 / 64 + 1 for v in by_rel[i].box] for i in dm.test_image_ids[:4]]
    torch.testing.assert_close(boxes[:, 0], torch.tensor(want, dtype=torch.float32))
    assert y.tolist() == [by_rel[i].label for i in dm.test_image_ids[:4]]


def test_missing_root_is_fast_and_says_how_to_fix(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError) as err:
        TinyImageNetWSOLDataModule(str(tmp_path / "nope")).prepare_facts()
    assert time.perf_counter() - start < 2.0
    msg = str(err.value)
    for needle in (str(tmp_path / "nope"), "tiny-imagenet-200", "wnids.txt", "cs231n", "data.root="):
        assert needle in msg


def test_malformed_boxes_line(tiny_copy):
    root, truth = tiny_copy
    w = truth["wnids"][1]
    p = root / "train" / w / f"{w}_boxes.txt"
    lines = p.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("\t", " ", 1).rsplit("\t", 1)[0] + "\n"
    p.write_text("".join(lines))
    with pytest.raises(DataFormatError, match=rf"{w}_boxes.txt:2: got .*expected '<file>"):
        read_tiny_imagenet(root)


def test_swapped_corners_are_rejected(tiny_copy):
    root, _ = tiny_copy
    p = root / "val" / "val_annotations.txt"
    lines = p.read_text().splitlines(keepends=True)
    name, wnid, *_ = lines[2].split("\t")
    lines[2] = f"{name}\t{wnid}\t40\t10\t20\t30\n"
    p.write_text("".join(lines))
    with pytest.raises(DataFormatError, match=r"val_annotations.txt:3: .*x0 y0 x1 y1, not x y w h"):
        read_tiny_imagenet(root)


def test_unknown_wnid_in_val(tiny_copy):
    root, truth = tiny_copy
    p = root / "val" / "val_annotations.txt"
    p.write_text(p.read_text().replace(truth["wnids"][2], "n77777777", 1))
    with pytest.raises(DataFormatError, match=r"val_annotations.txt:3: wnid n77777777 is not in wnids.txt"):
        read_tiny_imagenet(root)


def test_image_absent_from_boxes_file(tiny_copy):
    root, truth = tiny_copy
    w = truth["wnids"][0]
    p = root / "train" / w / f"{w}_boxes.txt"
    p.write_text("".join(p.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(DataFormatError, match=rf"{w}_0.JPEG .* has no line here"):
        read_tiny_imagenet(root)


def test_missing_image_file(tiny_copy):
    root, _ = tiny_copy
    (root / "val" / "images" / "val_5.JPEG").unlink()
    with pytest.raises(DataNotFoundError, match="val_5.JPEG"):
        read_tiny_imagenet(root)


def test_corrupt_image_names_the_file(tiny_copy):
    root, truth = tiny_copy
    (root / truth["val"][0].rel).write_bytes(b"\xff\xd8\xff garbage")
    dm = TinyImageNetWSOLDataModule(str(root), num_workers=0, val_test_split="alternate")
    with pytest.raises(DataFormatError, match=r"val_0.JPEG: cannot decode image"):
        next(iter(dm.val_dataloader()))
