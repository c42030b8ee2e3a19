"""Tiny-ImageNet (tiny-imagenet-200, CS231n) as released, for WSOL.

Release layout (``tiny-imagenet-200/``)::

    wnids.txt                               one wnid per line; line order = class index
    words.txt                               <wnid>\\t<names>   (all of WordNet; names looked up)
    train/<wnid>/images/<wnid>_<n>.JPEG
    train/<wnid>/<wnid>_boxes.txt           <file>\\t<x0>\\t<y0>\\t<x1>\\t<y1>
    val/images/val_<n>.JPEG
    val/val_annotations.txt                 <file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>
    test/images/                            unlabelled (unused)

Boxes are corners ``x0 y0 x1 y1`` in the 64 x 64 images, NOT ``x y w h`` (the authors' code reads
them as x y w h, which breaks 31% of the test boxes; Qin et al. section 6).

Splits: train = train/ (500 images per class, in boxes-file order). The labelled val set (50 per
class) is halved into WSOL val and test (5,000 / 5,000 on the full set):

- ``val_test_split="authors_lists"`` (default): exactly the authors' halves, shipped as lists
  (``infocam_exp/data/splits/tiny_imagenet_{val,test}.txt``, 25 images per class each, in the
  lists' order). They follow the authors' own file walk, not val_annotations.txt. Each entry is
  mapped by its file name to ``val/images/<file>`` and its wnid must match val_annotations.txt
  (their numeric ids and label indices are their own numbering and are not used); an entry absent
  from the user's copy is an error naming the entry and the list file.
- ``val_test_split="alternate"``: per class alternately in val_annotations.txt order, 1st, 3rd, ...
  -> val, 2nd, 4th, ... -> test (for copies or subsets the lists do not fit).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from infocam_exp.data.author_lists import (
    TINY_TEST,
    TINY_VAL,
    ListEntry,
    list_path,
    read_tiny_list,
    select_entries,
)
from infocam_exp.data.base import DataFormatError, DataNotFoundError
from infocam_exp.data.wsol import ImageRecord, WSOLDataModule, WSOLSplits, alternate_halves

log = logging.getLogger(__name__)

TINY_DIRNAME = "tiny-imagenet-200"
TINY_LAYOUT = (
    "tiny-imagenet-200/ with wnids.txt, words.txt, train/<wnid>/images/*.JPEG, "
    "train/<wnid>/<wnid>_boxes.txt, val/images/*.JPEG, val/val_annotations.txt"
)
TINY_GET_IT = (
    "python -m infocam_exp.fetch tiny_imagenet --root DATA_ROOT (or make fetch-tiny-imagenet ROOT=DATA_ROOT; "
    "DATA_ROOT is the folder that holds tiny-imagenet-200/, by default paths.data_dir) downloads "
    "tiny-imagenet-200.zip from CS231n (Stanford), checks its md5 and extracts it; or download "
    "http://cs231n.stanford.edu/tiny-imagenet-200.zip by hand and unzip it"
)
TINY_OVERRIDE = "data.root=/path/to/tiny-imagenet-200 (or its parent folder)"
VAL_TEST_SPLITS = ("authors_lists", "alternate")


def find_tiny_root(root: str | Path) -> Path:
    """The tiny-imagenet-200 folder: ``root`` or ``root/tiny-imagenet-200``; else DataNotFoundError."""
    root = Path(root).expanduser()
    candidates = [root, root / TINY_DIRNAME]
    for c in candidates:
        if (c / "wnids.txt").is_file():
            return c
    raise DataNotFoundError("Tiny-ImageNet (tiny-imagenet-200)", [str(c) for c in candidates], TINY_LAYOUT, TINY_GET_IT, TINY_OVERRIDE)


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataNotFoundError(f"Tiny-ImageNet {path.name}", [str(path)], TINY_LAYOUT, TINY_GET_IT, TINY_OVERRIDE)
    return path


def _box(path: Path, lineno: int, fields: list[str], fmt: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in fields)
    except ValueError:
        raise DataFormatError(path, f"non-numeric box {fields}, expected '{fmt}'", line=lineno) from None
    if x1 < x0 or y1 < y0:
        raise DataFormatError(path, f"box {fields} has x1 < x0 or y1 < y0 (the format is x0 y0 x1 y1, not x y w h)", line=lineno)
    return (x0, y0, x1, y1)


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, tab/whitespace-separated fields) of each non-empty line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                out.append((lineno, line.split()))
    return out


def read_tiny_imagenet(root: str | Path, check_files: bool = True) -> tuple[list[str], list[str], list[ImageRecord], list[ImageRecord]]:
    """Parse tiny-imagenet-200 into ``(wnids, class_names, train records, val records)``.

    Image ids are paths relative to the tiny-imagenet-200 folder
    (``train/<wnid>/images/<file>``, ``val/images/<file>``); boxes as in the files (x0 y0 x1 y1).

    Raises:
        DataNotFoundError: missing folder, annotation file, class folder or image file.
        DataFormatError: malformed lines (file:line), a wnid of val_annotations.txt not in
            wnids.txt, a wnid without a words.txt entry, a training image absent from its boxes
            file, duplicate entries.
    """
    root = find_tiny_root(root)
    wnids_file = root / "wnids.txt"
    wnids = []
    for lineno, fields in _lines(wnids_file):
        if len(fields) != 1:
            raise DataFormatError(wnids_file, f"got {' '.join(fields)!r}, expected '<wnid>'", line=lineno)
        wnids.append(fields[0])
    if len(set(wnids)) != len(wnids):
        raise DataFormatError(wnids_file, "duplicate wnids")
    if not wnids:
        raise DataFormatError(wnids_file, "no classes")
    index = {w: i for i, w in enumerate(wnids)}

    words_file = _need(root / "words.txt")
    names: dict[str, str] = {}
    with open(words_file, encoding="utf-8") as f:
        for line in f:
            wnid, _, text = line.rstrip("\n").partition("\t")
            if wnid in index:
                names[wnid] = text.strip()
    absent = [w for w in wnids if w not in names]
    if absent:
        raise DataFormatError(words_file, f"no entry for wnid(s) {absent[:5]} of wnids.txt (expected '<wnid>\\t<names>')")
    class_names = [names[w] for w in wnids]

    train: list[ImageRecord] = []
    missing: list[str] = []
    fmt = "<file>\\t<x0>\\t<y0>\\t<x1>\\t<y1>"
    for wnid in wnids:
        cdir = _need(root / "train" / wnid)
        boxes_file = _need(cdir / f"{wnid}_boxes.txt")
        listed: set[str] = set()
        for lineno, fields in _lines(boxes_file):
            if len(fields) != 5:
                raise DataFormatError(boxes_file, f"got {' '.join(fields)!r}, expected '{fmt}'", line=lineno)
            name = fields[0]
            if name in listed:
                raise DataFormatError(boxes_file, f"{name} appears twice", line=lineno)
            listed.add(name)
            rel = f"train/{wnid}/images/{name}"
            train.append(ImageRecord(rel, str(root / rel), index[wnid], (_box(boxes_file, lineno, fields[1:], fmt),)))
            if check_files and not (root / rel).is_file():
                missing.append(str(root / rel))
        if check_files:
            on_disk = set(os.listdir(_need(cdir / "images")))
            extra = sorted(on_disk - listed)
            if extra:
                raise DataFormatError(boxes_file, f"image {extra[0]} of {cdir / 'images'} has no line here ({len(extra)} such)")

    ann_file = _need(root / "val" / "val_annotations.txt")
    val: list[ImageRecord] = []
    seen: set[str] = set()
    vfmt = "<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>"
    for lineno, fields in _lines(ann_file):
        if len(fields) != 6:
            raise DataFormatError(ann_file, f"got {' '.join(fields)!r}, expected '{vfmt}'", line=lineno)
        name, wnid = fields[0], fields[1]
        if wnid not in index:
            raise DataFormatError(ann_file, f"wnid {wnid} is not in wnids.txt (label outside the {len(wnids)} classes)", line=lineno)
        if name in seen:
            raise DataFormatError(ann_file, f"{name} appears twice", line=lineno)
        seen.add(name)
        rel = f"val/images/{name}"
        val.append(ImageRecord(rel, str(root / rel), index[wnid], (_box(ann_file, lineno, fields[2:], vfmt),)))
        if check_files and not (root / rel).is_file():
            missing.append(str(root / rel))
    if missing:
        raise DataNotFoundError(
            f"{len(missing)} Tiny-ImageNet image file(s) listed in the annotations",
            missing[:3] + (["..."] if len(missing) > 3 else []),
            TINY_LAYOUT,
            "the extracted archive is incomplete; " + TINY_GET_IT,
            TINY_OVERRIDE,
        )
    return wnids, class_names, train, val


def select_listed(val: list[ImageRecord], wnids: list[str], entries: list[ListEntry], list_file: str, ann_file: Path) -> list[ImageRecord]:
    """The val records a Tiny-ImageNet list names, in the list's order.

    Raises:
        DataNotFoundError: an entry whose file is not in val_annotations.txt (the first is named,
            with the list file and line, and the number of such entries).
        DataFormatError: an entry whose wnid differs from val_annotations.txt, or a duplicate.
    """
    def absent(e: ListEntry, count: int) -> DataNotFoundError:
        return DataNotFoundError(
            f"image 'val/images/{e.key}' ({e.wnid}) listed at {e.where} (the authors' split list "
            f"{list_file}; {count} of its {len(entries)} entries are absent)",
            [str(ann_file)],
            TINY_LAYOUT,
            "the authors' split needs the complete Tiny-ImageNet val set; " + TINY_GET_IT,
            "data.val_test_split=alternate (alternate halves of your val_annotations.txt) for "
            "another copy or a subset; " + TINY_OVERRIDE,
        )

    def same_wnid(e: ListEntry, r: ImageRecord) -> None:
        if wnids[r.label] != e.wnid:
            raise DataFormatError(
                e.where, f"{e.key} is class {e.wnid} here but {wnids[r.label]} in {ann_file}"
            )

    by_file = {r.image_id.rsplit("/", 1)[-1]: r for r in val}
    return select_entries(entries, by_file, absent, same_wnid, lambda e: e.key)


def wsol_splits(root: str | Path, check_files: bool = True, val_test_split: str = "authors_lists") -> WSOLSplits:
    """WSOL splits: train/; val/ halved into val and test by the authors' lists or alternately."""
    if val_test_split not in VAL_TEST_SPLITS:
        raise ValueError(f"val_test_split must be one of {VAL_TEST_SPLITS}, got {val_test_split!r}")
    wnids, class_names, train, val = read_tiny_imagenet(root, check_files=check_files)
    if val_test_split == "alternate":
        val_half, test_half = alternate_halves(val)
    else:
        ann_file = find_tiny_root(root) / "val" / "val_annotations.txt"
        val_half = select_listed(val, wnids, read_tiny_list(TINY_VAL), TINY_VAL, ann_file)
        test_half = select_listed(val, wnids, read_tiny_list(TINY_TEST), TINY_TEST, ann_file)
        overlap = {r.image_id for r in val_half} & {r.image_id for r in test_half}
        if overlap:
            raise DataFormatError(TINY_TEST, f"{len(overlap)} image(s) are in both halves, e.g. {min(overlap)}")
        unused = len(val) - len(val_half) - len(test_half)
        if unused:
            log.info("Tiny-ImageNet: %d val image(s) are in neither of the authors' lists (unused)", unused)
    return WSOLSplits(train, val_half, test_half, class_names)


class TinyImageNetWSOLDataModule(WSOLDataModule):
    """Tiny-ImageNet for WSOL (Qin et al. section 4): 64 px, no crop (resize to ``image_size``,
    a no-op at 64), horizontal flips in training. Arguments and batches: ``WSOLDataModule``;
    ``root`` is the tiny-imagenet-200 folder or its parent; ``val_test_split`` is
    ``"authors_lists"`` (the authors' halves, default) or ``"alternate"`` (module docstring).
    """

    dataset_name = "tiny_imagenet"

    def __init__(
        self,
        root: str,
        protocol: str = "authors",
        metadata_dir: str | None = None,
        image_size: int = 64,
        resize_size: int | None = None,
        crop: bool = False,
        hflip: bool = True,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool = True,
        seed: int = 0,
        max_boxes: int | None = None,
        check_files: bool = True,
        val_test_split: str = "authors_lists",
    ) -> None:
        if val_test_split not in VAL_TEST_SPLITS:
            raise ValueError(f"val_test_split must be one of {VAL_TEST_SPLITS}, got {val_test_split!r}")
        self.val_test_split = val_test_split
        super().__init__(
            root=root, protocol=protocol, metadata_dir=metadata_dir, image_size=image_size,
            resize_size=resize_size, crop=crop, hflip=hflip, batch_size=batch_size,
            eval_batch_size=eval_batch_size, num_workers=num_workers, pin_memory=pin_memory,
            seed=seed, max_boxes=max_boxes, check_files=check_files,
        )

    def read_splits(self) -> WSOLSplits:
        return wsol_splits(self.root, check_files=self.check_files, val_test_split=self.val_test_split)

    def split_rule(self) -> str:
        if self.metadata_dir:
            return super().split_rule()
        if self.val_test_split == "authors_lists":
            return "train: train/; val / test: the authors' halves of val/ (shipped lists, in list order)"
        return "train: train/; val / test: val_annotations.txt per class alternately (1st, 3rd, ... -> val)"

    def split_files(self) -> list[Path]:
        if self.metadata_dir:
            return super().split_files()
        ann = find_tiny_root(self.root) / "val" / "val_annotations.txt"
        if self.val_test_split == "authors_lists":
            return [list_path(TINY_VAL), list_path(TINY_TEST), ann]
        return [ann]

    def metadata_image_roots(self) -> list[Path]:
        r = Path(self.root).expanduser()
        return [r, r / TINY_DIRNAME]
