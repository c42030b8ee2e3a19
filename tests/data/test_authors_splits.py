"""The authors' shipped split lists drive the real CUB and Tiny-ImageNet loaders.

The folders are generated in the release layouts and hold exactly the images the lists name
(8 x 8 JPEGs; about 3 s to write both, once per module).
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
import torch

from infocam_exp.data.author_lists import (
    CUB_IMBALANCED_TEST,
    CUB_IMBALANCED_TRAIN,
    TINY_TEST,
    TINY_VAL,
    ListEntry,
    list_path,
    read_cub_list,
    read_tiny_list,
)
from infocam_exp.data.base import DataFormatError, DataNotFoundError
from infocam_exp.data.cub import CUBClassificationDataModule, read_cub, select_listed
from infocam_exp.data.tiny_imagenet import TinyImageNetWSOLDataModule, wsol_splits
from tests.fixtures_wsol import (
    make_cub,
    make_cub_from_lists,
    make_tiny_from_lists,
    make_tiny_imagenet,
)

SHA256 = {
    CUB_IMBALANCED_TEST: "f72a82203c6c98e5d7e2bed32771a411215b49a72d921035f24ba686209c7960",
    CUB_IMBALANCED_TRAIN: "a9ed50633db2c0c8e92963bb45d68d6f81ed5f433e9aaca7234b17c86d02b1da",
    TINY_TEST: "8c7e92ffd6a771ecff69d4a3884a48894525cd6c75ec9de74a38f9372f6d50b7",
    TINY_VAL: "c318627f01a2bcd0b945b6ddb727ff8adbad6a8e17cc8f25bdd7a224670f69a1",
}


@pytest.mark.parametrize("name", sorted(SHA256))
def test_shipped_lists_are_the_authors_files(name):
    path = list_path(name)
    assert "infocam_exp" in str(path) and (path.parent / "README.md").is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[name]


@pytest.fixture(scope="module")
def cub_lists(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub_lists")
    listed = make_cub_from_lists(root, list_path(CUB_IMBALANCED_TRAIN), list_path(CUB_IMBALANCED_TEST))
    return root, listed


@pytest.fixture(scope="module")
def tiny_lists(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_lists")
    return root, make_tiny_from_lists(root, list_path(TINY_VAL), list_path(TINY_TEST))


def _per_class(records, odd: bool) -> Counter:
    # CUB labels are 0-based, class ids 1-based: an odd class id has an even label
    return Counter(c for c in Counter(r.label for r in records if (r.label % 2 == 0) == odd).values())


def test_cub_imbalanced_authors_is_exactly_the_lists(cub_lists):
    root, listed = cub_lists
    dm = CUBClassificationDataModule(str(root), image_size=16, batch_size=7, eval_batch_size=5, num_workers=0)
    assert dm.split == "imbalanced_authors" and dm.val_fraction == 0.0  # the defaults
    assert dm.split_sizes() == {"data/num_train": 3997, "data/num_val": 0, "data/num_test": 1996}
    train, test = dm.records("train"), dm.records("test")
    # the chosen images are the listed ones, in the lists' order
    assert [r.image_id for r in train] == listed["train"]
    assert [r.image_id for r in test] == listed["test"]
    # caps: odd class ids 10 train / 5 test; even ids 30 / 15 (fewer where the class has fewer)
    assert _per_class(train, odd=True) == {10: 100}
    assert _per_class(train, odd=False) == {30: 97, 29: 3}
    assert _per_class(test, odd=True) == {5: 100}
    assert _per_class(test, odd=False) == {15: 99, 11: 1}
    assert dm.class_counts.sum() == 3997 and dm.num_classes == 200
    # the real loaders serve them: no hold-out, no val loader
    assert dm.val_dataloader() == []
    assert len(dm.train_dataloader().dataset) == 3997 and len(dm.test_dataloader().dataset) == 1996
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (5, 3, 16, 16) and y.tolist() == [r.label for r in test[:5]]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (7, 3, 16, 16) and y.dtype == torch.int64


def test_cub_rule_split_and_hold_out_on_the_listed_folder(cub_lists):
    root, listed = cub_lists
    rule = CUBClassificationDataModule(str(root), split="imbalanced_rule", num_workers=0)
    # the folder holds only the listed images, so the rule picks the same sets, in images.txt order
    assert sorted(r.image_id for r in rule.records("train")) == sorted(listed["train"])
    assert [r.image_id for r in rule.records("train")] != listed["train"]
    official = CUBClassificationDataModule(str(root), split="official", num_workers=0)
    assert official.split_sizes() == {"data/num_train": 3997, "data/num_val": 0, "data/num_test": 1996}
    held = CUBClassificationDataModule(str(root), val_fraction=0.1, num_workers=0)
    sizes = held.split_sizes()
    # per class round(0.1 * n): 1 of 10 (odd ids), 3 of 30 or 29 (even ids)
    assert sizes == {"data/num_train": 3997 - 400, "data/num_val": 400, "data/num_test": 1996}
    assert {r.image_id for r in held.records("val")} <= set(listed["train"])


def test_cub_imbalanced_rule_on_images_txt_order_reproduces_the_authors_lists(tmp_path):
    """The authors' lists are the first 10 / 30 training and 5 / 15 test images of each odd / even
    class id in images.txt order (their data_tool.py applies these caps to a list in that order;
    docs/protocol.md, "CUB-200-2011 classification"). On a release-layout folder whose images.txt
    holds the listed images first within each class (train and test interleaved, as released) and
    further unlisted images after them, ``imbalanced_rule`` picks the same images in the same order."""
    train_list, test_list = list_path(CUB_IMBALANCED_TRAIN), list_path(CUB_IMBALANCED_TEST)
    listed = make_cub_from_lists(tmp_path, train_list, test_list, order="lists", extra_per_class=2, write_images=False)
    ann = read_cub(tmp_path, check_files=False)
    assert len(ann.images) > 3997 + 1996  # the caps have images to leave out
    rule = CUBClassificationDataModule(str(tmp_path), split="imbalanced_rule", num_workers=0, check_files=False)
    assert [r.image_id for r in rule.records("train")] == listed["train"]
    assert [r.image_id for r in rule.records("test")] == listed["test"]


def test_cub_list_entry_missing_from_the_folder_is_named(tmp_path):
    make_cub(tmp_path)  # 3 made-up classes: none of the listed images
    dm = CUBClassificationDataModule(str(tmp_path), num_workers=0)
    with pytest.raises(DataNotFoundError) as err:
        dm.prepare_facts()
    msg = str(err.value)
    assert "images/001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg" in msg
    assert f"{CUB_IMBALANCED_TRAIN}:1" in msg and "3997 of its 3997 entries" in msg
    assert "data.split=imbalanced_rule" in msg


def test_cub_list_label_mismatch_and_duplicates(tmp_path):
    truth = make_cub(tmp_path)
    ann = read_cub(tmp_path)
    ok = ListEntry(truth[0].rel, truth[0].label, None, "list.txt:1")
    assert select_listed(ann, [ok], "list.txt") == [ann.images[0]]
    wrong = ListEntry(truth[0].rel, truth[0].label + 1, None, "list.txt:2")
    with pytest.raises(DataFormatError, match=r"list.txt:2: .*has label 1 here but class 1 \(label 0\)"):
        select_listed(ann, [wrong], "list.txt")
    with pytest.raises(DataFormatError, match="listed twice"):
        select_listed(ann, [ok, ok], "list.txt")


def test_list_readers_reject_malformed_lines(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("images/001.A/a.jpg: 0\n001.A/b.jpg 0\n")
    with pytest.raises(DataFormatError, match=r"bad.txt:2: got '001.A/b.jpg 0'"):
        read_cub_list("bad.txt", bad)
    bad.write_text("1 n01/val_1.JPEG 0\n2 val_2.JPEG 0\n")
    with pytest.raises(DataFormatError, match=r"bad.txt:2"):
        read_tiny_list("bad.txt", bad)


def test_tiny_authors_halves_are_exactly_the_lists(tiny_lists):
    root, listed = tiny_lists
    dm = TinyImageNetWSOLDataModule(str(root), image_size=16, batch_size=4, eval_batch_size=6, num_workers=0)
    assert dm.val_test_split == "authors_lists"  # the default
    assert dm.split_sizes() == {"data/num_train": 200, "data/num_val": 5000, "data/num_test": 5000}
    wnids = listed["wnids"]
    for split in ("val", "test"):
        recs = dm.records(split)
        assert [r.image_id for r in recs] == [f"val/images/{f}" for _, f in listed[split]]
        # classes come from the wnid (wnids.txt is reverse-sorted, unlike the lists' numbering)
        assert [wnids[r.label] for r in recs] == [w for w, _ in listed[split]]
        assert set(Counter(r.label for r in recs).values()) == {25}
        assert len(Counter(r.label for r in recs)) == 200
    assert len(dm.val_dataloader().dataset) == 5000 and len(dm.test_dataloader().dataset) == 5000
    x, y, boxes = next(iter(dm.test_dataloader()))
    assert x.shape == (6, 3, 16, 16) and y.tolist() == [r.label for r in dm.records("test")[:6]]
    assert boxes.shape == (6, 1, 4)
    # the alternate rule on val_annotations.txt order is a different 5,000 / 5,000
    alt = wsol_splits(root, val_test_split="alternate")
    assert len(alt.val) == len(alt.test) == 5000
    assert {r.image_id for r in alt.test} != {r.image_id for r in dm.records("test")}


def test_tiny_list_entry_missing_from_the_folder_is_named(tmp_path):
    make_tiny_imagenet(tmp_path)  # val_0 .. val_11 only
    dm = TinyImageNetWSOLDataModule(str(tmp_path), num_workers=0)
    with pytest.raises(DataNotFoundError) as err:
        dm.prepare_facts()
    msg = str(err.value)
    assert "val/images/val_7790.JPEG" in msg and f"{TINY_VAL}:1" in msg
    assert "data.val_test_split=alternate" in msg


def test_tiny_list_wnid_mismatch_is_an_error(tmp_path):
    make_tiny_imagenet(tmp_path)
    listed = tmp_path / "val.txt"
    # val_0 is class 0 in the generated val_annotations.txt; this list says another wnid
    listed.write_text("7 n99999999/val_0.JPEG 0\n")
    from infocam_exp.data.tiny_imagenet import read_tiny_imagenet
    from infocam_exp.data.tiny_imagenet import select_listed as select_tiny

    wnids, _, _, val = read_tiny_imagenet(tmp_path)
    with pytest.raises(DataFormatError, match=r"val.txt:1: val_0.JPEG is class n99999999 here but n01000000"):
        select_tiny(val, wnids, read_tiny_list("val.txt", listed), "val.txt", tmp_path / "ann")


def test_lists_are_declared_package_data():
    import tomllib

    from tests.conftest import REPO

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["infocam_exp.data"]
    assert "splits/*.txt" in patterns and "splits/README.md" in patterns
