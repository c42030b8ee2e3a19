"""CUB-200-2011 reader, splits and DataModules on a generated release-layout folder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from infocam_exp.data.base import DataFormatError, DataNotFoundError
from infocam_exp.data.cub import (
    CUBClassificationDataModule,
    CUBWSOLDataModule,
    read_cub,
    split_imbalanced_rule,
    split_official,
    wsol_splits,
)
from infocam_exp.data.wsol import EvalTransform

try:  # tests/ becomes a package once it has an __init__.py; until then pytest puts it on sys.path
    from tests.fixtures_wsol import make_cub, make_wsol_metadata
except ModuleNotFoundError:
    from fixtures_wsol import make_cub, make_wsol_metadata


@pytest.fixture(scope="module")
def cub(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub")
    truth = make_cub(root)  # 3 classes x 5 images: 2 train, 3 test each
    return root, truth


def _edit(root: Path, name: str, old: str, new: str) -> None:
    p = root / "CUB_200_2011" / name
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))


@pytest.fixture()
def cub_copy(tmp_path):
    make_cub(tmp_path)
    return tmp_path


def test_read_cub_parses_release_layout(cub):
    root, truth = cub
    ann = read_cub(root)  # the parent of CUB_200_2011 works as root
    assert ann.root == root / "CUB_200_2011"
    assert read_cub(root / "CUB_200_2011").root == ann.root
    assert ann.num_classes == 3 and ann.class_names == ["Bird_A", "Bird_B", "Bird_C"]
    assert [im.rel_path for im in ann.images] == [t.rel for t in truth]
    assert [im.label for im in ann.images] == [t.label for t in truth]
    # x y w h -> x0 y0 x1 y1 = (x, y, x + w, y + h)
    assert [im.box for im in ann.images] == [t.box for t in truth]
    train, test = split_official(ann)
    assert len(train) == 6 and len(test) == 9


def test_imbalanced_rule_split_keeps_first_images_in_images_txt_order(cub):
    root, truth = cub
    ann = read_cub(root)
    train, test = split_imbalanced_rule(ann, train_keep_odd=1, train_keep_even=None, test_keep_odd=2, test_keep_even=None)
    # class ids 1 and 3 (labels 0, 2) are odd: 1 train / 2 test, the first in images.txt order
    for label in (0, 2):
        t_train = [t.rel for t in truth if t.label == label and t.is_train]
        t_test = [t.rel for t in truth if t.label == label and not t.is_train]
        assert [im.rel_path for im in train if im.label == label] == t_train[:1]
        assert [im.rel_path for im in test if im.label == label] == t_test[:2]
    assert sum(im.label == 1 for im in train) == 2 and sum(im.label == 1 for im in test) == 3
    # even caps apply to the even class id 2 (label 1)
    train, test = split_imbalanced_rule(ann, train_keep_odd=None, train_keep_even=1, test_keep_odd=None, test_keep_even=2)
    assert [im.label for im in train] == [0, 0, 1, 2, 2] and [im.label for im in test].count(1) == 2


def test_wsol_splits_halve_the_official_test_set_alternately(cub):
    root, truth = cub
    splits = wsol_splits(read_cub(root))
    test_truth = [t.rel for t in truth if not t.is_train]
    # each class has 3 test images: 1st and 3rd -> val, 2nd -> test
    assert [r.image_id for r in splits.val] == [test_truth[i] for i in (0, 2, 3, 5, 6, 8)]
    assert [r.image_id for r in splits.test] == [test_truth[i] for i in (1, 4, 7)]
    assert len(splits.train) == 6


def test_wsol_datamodule_batches(cub):
    root, truth = cub
    dm = CUBWSOLDataModule(str(root), image_size=64, batch_size=4, eval_batch_size=4, num_workers=0)
    dm.prepare_facts()
    assert dm.num_classes == 3 and dm.input_shape == (3, 64, 64)
    assert dm.class_counts.tolist() == [2, 2, 2] and dm.max_boxes == 1
    torch.testing.assert_close(dm.class_prior, torch.full((3,), 1 / 3))
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32 and y.dtype == torch.int64
    x, y, boxes = next(iter(dm.test_dataloader()))
    assert x.shape == (3, 3, 64, 64) and boxes.shape == (3, 1, 4) and boxes.dtype == torch.float32
    ids = dm.test_image_ids
    by_rel = {t.rel: t for t in truth}
    assert y.tolist() == [by_rel[i].label for i in ids]
    tf = EvalTransform("authors", 64)  # resize 73 (= round(64 * 256 / 224)), centre crop 64
    expected = np.concatenate([tf.boxes(np.array([by_rel[i].box]), by_rel[i].size) for i in ids])
    np.testing.assert_allclose(boxes[:, 0].numpy(), expected, rtol=1e-6)
    assert len(dm.image_ids("val")) == 6


def test_wsol_datamodule_with_workers(cub):
    root, _ = cub
    dm = CUBWSOLDataModule(str(root), image_size=32, batch_size=6, num_workers=1)
    x, y, boxes = next(iter(dm.val_dataloader()))
    assert x.shape == (6, 3, 32, 32) and boxes.shape == (6, 1, 4)


def test_wsolevaluation_metadata_gives_the_same_records(cub, tmp_path):
    root, truth = cub
    ours = wsol_splits(read_cub(root))
    by_rel = {t.rel: t for t in truth}
    md = make_wsol_metadata(
        tmp_path / "metadata" / "CUB",
        {name: [by_rel[r.image_id] for r in getattr(ours, name)] for name in ("train", "val", "test")},
    )
    for data_root in (root, root / "CUB_200_2011" / "images"):
        dm = CUBWSOLDataModule(str(data_root), protocol="wsolevaluation", metadata_dir=str(md), image_size=64, num_workers=0)
        dm.prepare_facts()
        for name in ("train", "val", "test"):
            got = dm.records(name)
            want = getattr(ours, name)
            assert [(r.image_id, r.label, r.boxes) for r in got] == [(r.image_id, r.label, r.boxes) for r in want]
            assert all(Path(r.path).is_file() for r in got)
            assert [r.size for r in got] == [by_rel[r.image_id].size for r in got]
        assert dm.num_classes == 3 and dm.class_names == ["Bird_A", "Bird_B", "Bird_C"]
    x, y, boxes = next(iter(dm.test_dataloader()))
    t = by_rel[dm.test_image_ids[0]]
    w, h = t.size
    assert boxes[0, 0].tolist() == [int(t.box[0] * 64 / w), int(t.box[1] * 64 / h), int(t.box[2] * 64 / w), int(t.box[3] * 64 / h)]


def test_metadata_errors(cub, tmp_path):
    root, truth = cub
    md = make_wsol_metadata(tmp_path / "md", {s: truth[:3] for s in ("train", "val", "test")})
    (md / "val" / "localization.txt").write_text(f"{truth[0].rel},1,2,3\n")
    with pytest.raises(DataFormatError, match=r"localization.txt:1: .*path,x0,y0,x1,y1"):
        CUBWSOLDataModule(str(root), metadata_dir=str(md)).prepare_facts()
    with pytest.raises(DataNotFoundError, match="wsolevaluation metadata"):
        CUBWSOLDataModule(str(root), metadata_dir=str(tmp_path / "nowhere")).prepare_facts()


def test_missing_root_is_fast_and_says_how_to_fix(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError) as err:
        CUBWSOLDataModule(str(tmp_path / "absent")).prepare_facts()
    assert time.perf_counter() - start < 2.0
    msg = str(err.value)
    for needle in (str(tmp_path / "absent"), "CUB_200_2011", "bounding_boxes.txt", "caltech", "data.root="):
        assert needle in msg


@pytest.mark.parametrize(
    ("name", "old", "new", "match"),
    [
        ("bounding_boxes.txt", "1 ", "1 x ", r"bounding_boxes.txt:1: got '1 x .*expected '<image_id> <x> <y> <width> <height>'"),
        ("images.txt", "2 ", "2 extra ", r"images.txt:2: got .*expected '<image_id> <NNN.Name>/<file>.jpg'"),
        ("image_class_labels.txt", "4 1\n", "4 7\n", r"image_class_labels.txt:4: label 7 of image id 4 outside 1..3"),
        ("image_class_labels.txt", "4 1\n", "4 0\n", r"label 0 of image id 4 outside 1..3"),
        ("bounding_boxes.txt", "\n3 ", "\n333 ", r"bounding_boxes.txt:3: image id 333 is not in images.txt"),
        ("train_test_split.txt", "5 0\n", "", r"train_test_split.txt: image id 5 \(.*images.txt:5\) has no line here"),
    ],
)
def test_malformed_annotations(cub_copy, name, old, new, match):
    _edit(cub_copy, name, old, new)
    with pytest.raises(DataFormatError, match=match):
        read_cub(cub_copy)


def test_image_absent_from_boxes_file(cub_copy):
    p = cub_copy / "CUB_200_2011" / "bounding_boxes.txt"
    p.write_text("".join(line for line in p.read_text().splitlines(keepends=True) if not line.startswith("7 ")))
    with pytest.raises(DataFormatError, match=r"bounding_boxes.txt: image id 7 .* has no line here"):
        read_cub(cub_copy)


def test_missing_image_file(cub_copy, cub):
    _, truth = cub
    (cub_copy / "CUB_200_2011" / "images" / truth[3].rel).unlink()
    with pytest.raises(DataNotFoundError, match=truth[3].rel.split("/")[1]):
        read_cub(cub_copy)
    assert len(read_cub(cub_copy, check_files=False).images) == len(truth)


def test_corrupt_image_names_the_file(cub_copy, cub):
    _, truth = cub
    bad = cub_copy / "CUB_200_2011" / "images" / truth[0].rel
    bad.write_bytes(b"not a jpeg")
    dm = CUBWSOLDataModule(str(cub_copy), image_size=32, num_workers=0)
    ds = dm.dataset("train")
    with pytest.raises(DataFormatError, match=rf"{bad.name}: cannot decode image"):
        ds[0]


def test_classification_datamodule_imbalanced(cub):
    root, truth = cub
    dm = CUBClassificationDataModule(str(root), split="imbalanced_rule", image_size=32, train_keep_odd=1, test_keep_odd=1,
                                     train_keep_even=None, test_keep_even=None, batch_size=8, num_workers=0)
    dm.prepare_facts()
    assert dm.num_classes == 3 and dm.input_shape == (3, 32, 32)
    assert dm.class_counts.tolist() == [1, 2, 1]
    assert [r.label for r in dm.records("test")] == [0, 1, 1, 1, 2]
    assert dm.val_dataloader() == []
    assert dm.split_sizes() == {"data/num_train": 4, "data/num_val": 0, "data/num_test": 5}
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (5, 3, 32, 32) and y.tolist() == [0, 1, 1, 1, 2]


def test_classification_datamodule_holds_out_val_from_train(cub):
    root, truth = cub
    dm = CUBClassificationDataModule(str(root), split="official", image_size=32, val_fraction=0.4, batch_size=8, num_workers=0, seed=3)
    train, val, test = (dm.records(s) for s in ("train", "val", "test"))
    train_truth = {t.rel for t in truth if t.is_train}
    assert {r.image_id for r in train} | {r.image_id for r in val} == train_truth
    assert not {r.image_id for r in train} & {r.image_id for r in val}
    assert [r.label for r in val] == [0, 1, 2]  # round(0.4 * 2) = 1 per class
    assert dm.class_counts.tolist() == [1, 1, 1]
    assert {r.image_id for r in test} == {t.rel for t in truth if not t.is_train}
    again = CUBClassificationDataModule(str(root), split="official", val_fraction=0.4, seed=3)
    assert [r.image_id for r in again.records("val")] == [r.image_id for r in val]
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (3, 3, 32, 32) and y.dtype == torch.int64



def test_metadata_val_images_may_live_in_a_cubv2_sibling(cub, tmp_path):
    root, truth = cub
    # wsolevaluation's CUB val split lists CUBV2 images, kept beside the CUB images
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "CUB").symlink_to(root / "CUB_200_2011" / "images", target_is_directory=True)
    v2 = truth[2].rel.replace(".jpg", "_v2.jpg")
    (data / "CUBV2" / v2).parent.mkdir(parents=True)
    (data / "CUBV2" / v2).write_bytes((root / "CUB_200_2011" / "images" / truth[2].rel).read_bytes())
    val = [truth[2].__class__(v2, truth[2].label, truth[2].box, truth[2].size)]
    md = make_wsol_metadata(tmp_path / "md", {"train": truth[:2], "val": val, "test": truth[3:5]})
    dm = CUBWSOLDataModule(str(data / "CUB"), metadata_dir=str(md), num_workers=0)
    assert dm.records("val")[0].path == str(data / "CUBV2" / v2)
    assert dm.records("test")[0].path == str(data / "CUB" / truth[3].rel)
