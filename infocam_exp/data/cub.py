"""CUB-200-2011 (Wah et al., 2011) as released: the reader, its splits, and two DataModules.

Release layout (``CUB_200_2011/``)::

    classes.txt               <class_id> <NNN.Name>            class ids 1..K, one per line
    images.txt                <image_id> <NNN.Name>/<file>.jpg
    image_class_labels.txt    <image_id> <class_id>
    train_test_split.txt      <image_id> <is_train 0|1>
    bounding_boxes.txt        <image_id> <x> <y> <width> <height>   floats, pixels
    images/<NNN.Name>/<file>.jpg

``num_classes`` is the number of lines of classes.txt, so a subset (fewer classes) works as long
as its class ids are 1..K. Boxes become ``(x, y, x + w, y + h)`` (``infocam_exp.data.wsol``).

Splits:

- ``official``: train_test_split.txt (5,994 / 5,794 on the full set), images.txt order.
- ``imbalanced_authors`` (PC-softmax experiment, Qin et al. section 3; the default): exactly the
  authors' lists shipped in ``infocam_exp/data/splits/`` (3,997 training images: 10 per odd-id
  class, 30 per even-id class, fewer where a class has fewer; 1,996 test images: 5 / 15), in the
  lists' order. Every entry must be in the user's images.txt (else an error naming the entry and
  the list file) and carry the same class.
- ``imbalanced_rule``: the same rule on images.txt order with configurable caps, for other copies
  or subsets of CUB: odd class ids (folder 001, 003, ..., 199) keep their first ``train_keep_odd``
  training and ``test_keep_odd`` test images, even ids ``train_keep_even`` / ``test_keep_even``
  (None keeps all). With the default caps on the released images.txt it reproduces the authors'
  lists exactly, same images in the same order: their lists are these caps applied to the
  official splits in images.txt order (docs/protocol.md, "CUB-200-2011 classification").
- WSOL ``val``/``test``: the official test images of each class alternately, 1st, 3rd, ... -> val,
  2nd, 4th, ... -> test (``wsol.alternate_halves``; 2,916 / 2,878 on the full set); the official
  training set is the WSOL training set.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from infocam_exp.data.author_lists import (
    CUB_IMBALANCED_TEST,
    CUB_IMBALANCED_TRAIN,
    ListEntry,
    list_path,
    read_cub_list,
    select_entries,
)
from infocam_exp.data.base import (
    ClassificationDataModule,
    DataFormatError,
    DataNotFoundError,
    eval_sampler,
)
from infocam_exp.data.slim import InceptionEvalTransform, InceptionTrainTransform, PassStreamSampler
from infocam_exp.data.wsol import (
    EvalTransform,
    ImageRecord,
    TrainTransform,
    WSOLDataModule,
    WSOLImageDataset,
    WSOLSplits,
    alternate_halves,
)
from infocam_exp.errors import ConfigError
from infocam_exp.protocol import file_fact

log = logging.getLogger(__name__)

CUB_DIRNAME = "CUB_200_2011"
CUB_LAYOUT = (
    "CUB_200_2011/ with classes.txt, images.txt, image_class_labels.txt, train_test_split.txt, "
    "bounding_boxes.txt and images/<NNN.Name>/<file>.jpg"
)
CUB_GET_IT = (
    "python -m infocam_exp.fetch cub --root DATA_ROOT (or make fetch-cub ROOT=DATA_ROOT; DATA_ROOT is the "
    "folder that holds CUB_200_2011/, by default paths.data_dir) downloads CUB_200_2011.tgz from Caltech "
    "(data.caltech.edu), checks its md5 and extracts it; or download it by hand from "
    "https://www.vision.caltech.edu/datasets/cub_200_2011/ and extract it (tar xzf CUB_200_2011.tgz)"
)
CUB_OVERRIDE = "data.root=/path/to/CUB_200_2011 (or its parent folder)"
CUB_SPLITS = ("imbalanced_authors", "imbalanced_rule", "official")
CUB_PREPROCESSING = ("resize_crop", "inception")
CUB_TRAIN_ORDERS = ("epochs", "stream")


@dataclass(frozen=True)
class CUBImage:
    """One line of the CUB annotations, joined across files.

    Attributes:
        cub_id: CUB's 1-based image id (images.txt).
        rel_path: path relative to ``images/`` (also the wsolevaluation image id).
        label: 0-based class index (class id - 1).
        is_train: the official split.
        box: ``(x, y, x + w, y + h)`` in original-image pixels.
    """

    cub_id: int
    rel_path: str
    label: int
    is_train: bool
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class CUBAnnotations:
    """The parsed release: ``root`` (the CUB_200_2011 folder), class names (K, without the
    ``NNN.`` prefix), class ids (K, 1-based) and images in images.txt order."""

    root: Path
    class_names: list[str]
    class_ids: list[int]
    images: list[CUBImage]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def record(self, im: CUBImage) -> ImageRecord:
        return ImageRecord(im.rel_path, str(self.root / "images" / im.rel_path), im.label, (im.box,))


def find_cub_root(root: str | Path) -> Path:
    """The CUB_200_2011 folder: ``root`` itself or ``root/CUB_200_2011``; else DataNotFoundError."""
    root = Path(root).expanduser()
    candidates = [root, root / CUB_DIRNAME]
    for c in candidates:
        if (c / "images.txt").is_file():
            return c
    raise DataNotFoundError("CUB-200-2011", [str(c) for c in candidates], CUB_LAYOUT, CUB_GET_IT, CUB_OVERRIDE)


def _read_table(path: Path, types: Sequence[type], fmt: str) -> list[tuple[int, list]]:
    """(line number, typed fields) of each non-empty whitespace-separated line of ``path``."""
    if not path.is_file():
        raise DataNotFoundError(f"CUB-200-2011 annotation file {path.name}", [str(path)], CUB_LAYOUT, CUB_GET_IT, CUB_OVERRIDE)
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            fields = text.split()
            if len(fields) != len(types):
                raise DataFormatError(path, f"got {text!r}, expected '{fmt}'", line=lineno)
            try:
                rows.append((lineno, [t(v) for t, v in zip(types, fields, strict=True)]))
            except ValueError:
                raise DataFormatError(path, f"got {text!r}, expected '{fmt}'", line=lineno) from None
    return rows


def _by_image_id(path: Path, rows: list[tuple[int, list]], known: dict[int, str]) -> dict[int, tuple[int, list]]:
    out: dict[int, tuple[int, list]] = {}
    for lineno, fields in rows:
        image_id = fields[0]
        if image_id not in known:
            raise DataFormatError(path, f"image id {image_id} is not in images.txt", line=lineno)
        if image_id in out:
            raise DataFormatError(path, f"image id {image_id} appears twice (first on line {out[image_id][0]})", line=lineno)
        out[image_id] = (lineno, fields[1:])
    return out


def read_cub(root: str | Path, check_files: bool = True) -> CUBAnnotations:
    """Parse a CUB_200_2011 folder (or its parent) and check it.

    Raises:
        DataNotFoundError: no CUB folder, a missing annotation file, or missing image files
            (``check_files``).
        DataFormatError: a malformed line (file:line, content, expected format), an image id
            missing from a per-image file (e.g. no box), a label outside 1..K, class ids that are
            not 1..K in order, a box with negative width or height.
    """
    root = find_cub_root(root)
    cls_file = root / "classes.txt"
    classes = _read_table(cls_file, (int, str), "<class_id> <NNN.Name>")
    class_ids = [f[0] for _, f in classes]
    if class_ids != list(range(1, len(class_ids) + 1)):
        raise DataFormatError(cls_file, f"class ids must be 1..K in order, got {class_ids[:5]}...")
    if not class_ids:
        raise DataFormatError(cls_file, "no classes")
    folder_names = [f[1] for _, f in classes]
    class_names = [n.split(".", 1)[1] if "." in n and n.split(".", 1)[0].isdigit() else n for n in folder_names]
    k = len(class_ids)

    img_file = root / "images.txt"
    paths: dict[int, str] = {}
    path_line: dict[int, int] = {}
    for lineno, (image_id, rel) in _read_table(img_file, (int, str), "<image_id> <NNN.Name>/<file>.jpg"):
        if image_id in paths:
            raise DataFormatError(img_file, f"image id {image_id} appears twice", line=lineno)
        paths[image_id] = rel
        path_line[image_id] = lineno

    lab_file = root / "image_class_labels.txt"
    labels = _by_image_id(lab_file, _read_table(lab_file, (int, int), "<image_id> <class_id>"), paths)
    split_file = root / "train_test_split.txt"
    splits = _by_image_id(split_file, _read_table(split_file, (int, int), "<image_id> <is_train 0|1>"), paths)
    box_file = root / "bounding_boxes.txt"
    boxes = _by_image_id(
        box_file, _read_table(box_file, (int, float, float, float, float), "<image_id> <x> <y> <width> <height>"), paths
    )

    images: list[CUBImage] = []
    missing: list[str] = []
    for image_id, rel in paths.items():
        for name, table in ((lab_file, labels), (split_file, splits), (box_file, boxes)):
            if image_id not in table:
                raise DataFormatError(
                    name, f"image id {image_id} ({rel}, images.txt:{path_line[image_id]}) has no line here"
                )
        lab_line, (class_id,) = labels[image_id]
        if not 1 <= class_id <= k:
            raise DataFormatError(lab_file, f"label {class_id} of image id {image_id} outside 1..{k} (classes.txt)", line=lab_line)
        sp_line, (is_train,) = splits[image_id]
        if is_train not in (0, 1):
            raise DataFormatError(split_file, f"is_train must be 0 or 1, got {is_train}", line=sp_line)
        box_line, (x, y, w, h) = boxes[image_id]
        if w < 0 or h < 0:
            raise DataFormatError(box_file, f"negative width/height {w} {h} (expected <x> <y> <width> <height>)", line=box_line)
        if check_files and not (root / "images" / rel).is_file():
            missing.append(str(root / "images" / rel))
        images.append(CUBImage(image_id, rel, class_id - 1, bool(is_train), (x, y, x + w, y + h)))
    if missing:
        raise DataNotFoundError(
            f"{len(missing)} CUB-200-2011 image file(s) listed in images.txt",
            missing[:3] + (["..."] if len(missing) > 3 else []),
            CUB_LAYOUT,
            "the extracted archive is incomplete; " + CUB_GET_IT,
            CUB_OVERRIDE,
        )
    return CUBAnnotations(root, class_names, class_ids, images)


def split_official(ann: CUBAnnotations) -> tuple[list[CUBImage], list[CUBImage]]:
    """(train, test) by train_test_split.txt, each in images.txt order."""
    return [im for im in ann.images if im.is_train], [im for im in ann.images if not im.is_train]


def cap_classes(
    images: Sequence[CUBImage], ann: CUBAnnotations, keep_odd: int | None, keep_even: int | None
) -> list[CUBImage]:
    """Keep the first ``keep_odd`` images (in the given order) of each class with an odd 1-based
    class id and the first ``keep_even`` of the others; None keeps all of them."""
    taken: dict[int, int] = {}
    out = []
    for im in images:
        keep = keep_odd if ann.class_ids[im.label] % 2 == 1 else keep_even
        n = taken.get(im.label, 0)
        if keep is not None and n >= keep:
            continue
        taken[im.label] = n + 1
        out.append(im)
    return out


def split_imbalanced_rule(
    ann: CUBAnnotations,
    train_keep_odd: int | None = 10,
    train_keep_even: int | None = 30,
    test_keep_odd: int | None = 5,
    test_keep_even: int | None = 15,
) -> tuple[list[CUBImage], list[CUBImage]]:
    """(train, test) of the rule-based imbalanced split: per class, the first images of the
    official training and test sets in images.txt order, capped as the arguments say."""
    train, test = split_official(ann)
    return (
        cap_classes(train, ann, train_keep_odd, train_keep_even),
        cap_classes(test, ann, test_keep_odd, test_keep_even),
    )


def select_listed(ann: CUBAnnotations, entries: Sequence[ListEntry], list_file: str) -> list[CUBImage]:
    """The images named by a list's entries, in the list's order.

    Raises:
        DataNotFoundError: an entry that is not in images.txt (the first one is named, with the
            list file and line, and the number of such entries).
        DataFormatError: an entry whose label differs from image_class_labels.txt, or a duplicate.
    """
    def absent(e: ListEntry, count: int) -> DataNotFoundError:
        return DataNotFoundError(
            f"image 'images/{e.key}' listed at {e.where} (the authors' split list {list_file}; "
            f"{count} of its {len(entries)} entries are absent)",
            [str(ann.root / "images.txt")],
            CUB_LAYOUT,
            "the authors' split needs the complete CUB-200-2011 release; " + CUB_GET_IT,
            "data.split=imbalanced_rule (the same caps on your images.txt order) for another copy "
            "or a subset of CUB; " + CUB_OVERRIDE,
        )

    def same_label(e: ListEntry, im: CUBImage) -> None:
        if e.label != im.label:
            raise DataFormatError(
                e.where,
                f"images/{e.key} has label {e.label} here but class {im.label + 1} (label {im.label}) "
                "in image_class_labels.txt",
                fix="is classes.txt the release's 200 classes in order?",
            )

    by_path = {im.rel_path: im for im in ann.images}
    return select_entries(entries, by_path, absent, same_label, lambda e: f"images/{e.key}")


def split_imbalanced_authors(ann: CUBAnnotations) -> tuple[list[CUBImage], list[CUBImage]]:
    """(train, test) of the authors' imbalanced split: exactly their shipped lists, in their order
    (3,997 / 1,996 on the full set)."""
    train = select_listed(ann, read_cub_list(CUB_IMBALANCED_TRAIN), CUB_IMBALANCED_TRAIN)
    test = select_listed(ann, read_cub_list(CUB_IMBALANCED_TEST), CUB_IMBALANCED_TEST)
    off_split = [im.rel_path for im in train if not im.is_train] + [im.rel_path for im in test if im.is_train]
    if off_split:
        log.warning(
            "%d image(s) of the authors' CUB lists are on the other side of train_test_split.txt "
            "(e.g. %s); the lists are used as they are", len(off_split), off_split[0],
        )
    return train, test


def wsol_splits(ann: CUBAnnotations) -> WSOLSplits:
    """WSOL splits: official train; official test halved per class alternately into val/test."""
    train, test = split_official(ann)
    val_half, test_half = alternate_halves([ann.record(im) for im in test])
    return WSOLSplits([ann.record(im) for im in train], val_half, test_half, list(ann.class_names))


class CUBWSOLDataModule(WSOLDataModule):
    """CUB-200-2011 for WSOL (Qin et al. section 4). Arguments and batches: ``WSOLDataModule``.

    ``root``: the CUB_200_2011 folder or its parent. Defaults: 224 px, resize 256 + crop.
    With ``metadata_dir`` (wsolevaluation's ``metadata/CUB``), each split's image paths are
    resolved under the first of ``root``, ``root/images``, ``root/CUB_200_2011/images``,
    ``root/CUBV2``, ``root/../CUBV2`` that holds the split's first image (wsolevaluation's val
    split uses its CUBV2 images).
    """

    dataset_name = "cub"

    def read_splits(self) -> WSOLSplits:
        return wsol_splits(read_cub(self.root, check_files=self.check_files))

    def split_rule(self) -> str:
        if self.metadata_dir:
            return super().split_rule()
        return ("train: train_test_split.txt = 1; val / test: the official test images of each class "
                "alternately in images.txt order (1st, 3rd, ... -> val)")

    def split_files(self) -> list[Path]:
        if self.metadata_dir:
            return super().split_files()
        root = find_cub_root(self.root)
        return [root / n for n in ("images.txt", "train_test_split.txt", "bounding_boxes.txt")]

    def metadata_image_roots(self) -> list[Path]:
        r = Path(self.root).expanduser()
        # wsolevaluation's CUB val split lists CUBV2 images (same class folders, other files),
        # which its setup keeps in a sibling folder; each split picks the first root that fits
        return [r, r / "images", r / CUB_DIRNAME / "images", r / "CUBV2", r.parent / "CUBV2"]

    def metadata_class_names(self, num_classes: int, records: Sequence[ImageRecord]) -> list[str]:
        try:
            ann_names = read_cub_class_names(self.root)
        except (DataNotFoundError, DataFormatError):
            ann_names = None
        if ann_names is not None and len(ann_names) == num_classes:
            return ann_names
        return super().metadata_class_names(num_classes, records)


def read_cub_class_names(root: str | Path) -> list[str] | None:
    """Class names from classes.txt next to ``root`` (or above an ``images`` root), else None."""
    r = Path(root).expanduser()
    for c in (r, r / CUB_DIRNAME, r.parent):
        if (c / "classes.txt").is_file():
            rows = _read_table(c / "classes.txt", (int, str), "<class_id> <NNN.Name>")
            return [n.split(".", 1)[1] if "." in n else n for _, (_, n) in rows]
    return None


class CUBClassificationDataModule(ClassificationDataModule):
    """CUB-200-2011 classification for the PC-softmax experiment (Qin et al. section 3).

    Batches (all splits): ``(images (B, 3, S, S) float32 ImageNet-normalised, labels (B,) int64)``.
    Training: resize R x R, random S crop, flip; evaluation: resize R x R, centre crop S
    (R = round(S * 256 / 224) = 342 at S = 299).

    Splits: ``test`` is the reported split. ``split`` chooses the training and test images
    (module docstring): ``"imbalanced_authors"`` (the authors' shipped lists, the default),
    ``"imbalanced_rule"`` (caps on images.txt order) or ``"official"``. The authors hold nothing out
    for validation, so by default (``val_fraction=0``) the training set is exactly theirs and
    ``val`` is empty (no val loader). ``val_fraction > 0`` is an explicit hold-out: per class,
    ``round(val_fraction * n)`` of the chosen training images (at least 1 when the class has 2+),
    drawn with ``seed`` (the data seed) *after* the lists or caps, so the training set shrinks.

    Args:
        root: the CUB_200_2011 folder or its parent.
        split: ``"imbalanced_authors"``, ``"imbalanced_rule"`` or ``"official"``.
        image_size: S (299 for Inception-V3).
        resize_size: R (None: round(S * 256 / 224)).
        train_keep_odd / train_keep_even / test_keep_odd / test_keep_even: per-class caps of
            ``"imbalanced_rule"`` for odd / even 1-based class ids (None: keep all); ignored by
            the other splits.
        val_fraction: fraction of each class's training images held out for validation.
        batch_size, eval_batch_size, num_workers, pin_memory: loaders (as ``WSOLDataModule``).
        seed: data seed; it draws the validation hold-out.
        check_files: check that every image exists when reading the annotations.
        preprocessing: ``"resize_crop"`` (above) or ``"inception"``: TF-slim's Inception
            preprocessing, as the authors' TF run (``infocam_exp.data.slim``: distorted crop,
            flip, colour at training; central crop 0.875 at evaluation; ``resize_size`` unused).
        train_order: ``"epochs"`` (a reshuffle per epoch, the last batch may be short) or
            ``"stream"`` (shuffled passes run into each other and every batch is full, as slim's
            queue; ``PassStreamSampler``, seeded with the training seed).

    Every evaluation image is scored exactly once: sequential loaders, unpadded shards under DDP.
    """

    def __init__(
        self,
        root: str,
        split: str = "imbalanced_authors",
        image_size: int = 299,
        resize_size: int | None = None,
        train_keep_odd: int | None = 10,
        train_keep_even: int | None = 30,
        test_keep_odd: int | None = 5,
        test_keep_even: int | None = 15,
        val_fraction: float = 0.0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool = True,
        seed: int = 0,
        check_files: bool = True,
        preprocessing: str = "resize_crop",
        train_order: str = "epochs",
    ) -> None:
        super().__init__()
        if split not in CUB_SPLITS:
            raise ConfigError(f"split must be one of {CUB_SPLITS}, got {split!r}")
        if preprocessing not in CUB_PREPROCESSING:
            raise ConfigError(f"data.preprocessing must be one of {CUB_PREPROCESSING}, got {preprocessing!r}")
        if train_order not in CUB_TRAIN_ORDERS:
            raise ConfigError(f"data.train_order must be one of {CUB_TRAIN_ORDERS}, got {train_order!r}")
        self.preprocessing = preprocessing
        self.train_order = train_order
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        caps = {"train_keep_odd": train_keep_odd, "train_keep_even": train_keep_even,
                "test_keep_odd": test_keep_odd, "test_keep_even": test_keep_even}
        for name, cap in caps.items():
            if cap is not None and int(cap) < 1:
                raise ConfigError(f"{name} must be >= 1 or null (keep all), got {cap}")
        self.root = str(root)
        self.split = split
        self.image_size = int(image_size)
        self.resize_size = int(resize_size) if resize_size else int(round(self.image_size * 256 / 224))
        self.caps = {k: None if v is None else int(v) for k, v in caps.items()}
        self.val_fraction = float(val_fraction)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size) if eval_batch_size else self.batch_size
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.seed = int(seed)
        self.check_files = bool(check_files)
        self.input_shape = (3, self.image_size, self.image_size)
        self._records: dict[str, list[ImageRecord]] | None = None

    def _hold_out(self, train: list[CUBImage]) -> tuple[list[CUBImage], list[CUBImage]]:
        if self.val_fraction <= 0:
            return train, []
        rng = np.random.default_rng(self.seed)
        per_class: dict[int, list[int]] = {}
        for i, im in enumerate(train):
            per_class.setdefault(im.label, []).append(i)
        val_idx: set[int] = set()
        for label in sorted(per_class):
            idx = per_class[label]
            n_val = max(1, int(round(self.val_fraction * len(idx)))) if len(idx) >= 2 else 0
            val_idx.update(int(i) for i in rng.choice(idx, size=n_val, replace=False))
        keep = [im for i, im in enumerate(train) if i not in val_idx]
        val = [im for i, im in enumerate(train) if i in val_idx]
        return keep, val

    def prepare_facts(self) -> None:
        if self._records is not None:
            return
        ann = read_cub(self.root, check_files=self.check_files)
        if self.split == "imbalanced_authors":
            train, test = split_imbalanced_authors(ann)
        elif self.split == "imbalanced_rule":
            train, test = split_imbalanced_rule(ann, **self.caps)
        else:
            train, test = split_official(ann)
        train, val = self._hold_out(train)
        self.num_classes = ann.num_classes
        self.class_names = list(ann.class_names)
        self._records = {name: [ann.record(im) for im in ims] for name, ims in (("train", train), ("val", val), ("test", test))}
        self.class_counts = torch.bincount(
            torch.as_tensor([r.label for r in self._records["train"]], dtype=torch.int64), minlength=self.num_classes
        )
        log.info(
            "CUB classification (%s): %d classes, train/val/test = %d/%d/%d images",
            self.split, self.num_classes, len(train), len(val), len(test),
        )

    def setup(self, stage: str | None = None) -> None:
        self.prepare_facts()

    def records(self, split: str) -> list[ImageRecord]:
        """Records of ``split`` ("train", "val", "test") in loader order (train: unshuffled)."""
        self.prepare_facts()
        assert self._records is not None
        return list(self._records[split])

    def split_class_counts(self, split: str) -> torch.Tensor:
        labels = [r.label for r in self.records(split)]
        return torch.bincount(torch.as_tensor(labels, dtype=torch.int64), minlength=self.num_classes)

    def transform(self, split: str) -> Any:
        """The image transform of ``split``: PIL image -> (3, S, S) ImageNet-normalised tensor."""
        if self.preprocessing == "inception":
            if split == "train":
                return InceptionTrainTransform(self.image_size)
            return InceptionEvalTransform(self.image_size)
        if split == "train":
            return TrainTransform(self.image_size, crop=True, resize_size=self.resize_size)
        # the image half of the authors' eval transform (resize R, centre crop S); as a
        # non-EvalTransform callable the dataset yields (image, label) without boxes
        return EvalTransform("authors", self.image_size, crop=True, resize_size=self.resize_size).image

    def split_files(self) -> list[Path]:
        if self.split == "imbalanced_authors":
            return [list_path(CUB_IMBALANCED_TRAIN), list_path(CUB_IMBALANCED_TEST)]
        return [find_cub_root(self.root) / n for n in ("images.txt", "train_test_split.txt")]

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        dataset = WSOLImageDataset(self.records(split), self.transform(split))
        if train and self.train_order == "stream":
            # the training seed (seed_everything), so each seed sees its own order
            sampler = PassStreamSampler(len(dataset), self.batch_size, seed=torch.initial_seed())
        else:
            sampler = None if train else eval_sampler(self.trainer, dataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def _describe_transform(self, split: str) -> str:
        if self.preprocessing == "inception":
            return self.transform(split).describe()
        r, s = self.resize_size, self.image_size
        if split == "train":
            return f"resize {r}x{r}, random crop {s}, flip p=0.5, ImageNet mean/std"
        return f"resize {r}x{r}, centre crop {s}, ImageNet mean/std"

    def protocol_facts(self) -> dict[str, Any]:
        """``{"data": {...}}``: the base facts (split files with sha256, sizes) plus the split,
        list files, transforms, training order, and how the test split is scored."""
        facts: dict[str, Any] = {
            "description": f"CUB-200-2011 classification, split {self.split}",
            "split_sizes": {k: len(self.records(k)) for k in ("train", "val", "test")},
            "train_transform": self._describe_transform("train"),
            "test_transform": self._describe_transform("test"),
            "batch_size": self.batch_size,
            "train_order": (
                f"stream of shuffled passes, every step {self.batch_size} images (PassStreamSampler)"
                if self.train_order == "stream" else "reshuffled each epoch, last batch may be short"
            ),
            "test_images_evaluated": "each exactly once (sequential loader; unpadded shards under DDP)",
        }
        if self.split == "imbalanced_authors":
            facts["split_lists"] = {
                name: {"sha256": hashlib.sha256(list_path(name).read_bytes()).hexdigest()}
                for name in (CUB_IMBALANCED_TRAIN, CUB_IMBALANCED_TEST)
            }
        elif self.split == "imbalanced_rule":
            facts["split_caps"] = dict(self.caps)
        # the base facts, with the sizes computed here (they need only the records)
        return {"data": {"datamodule": type(self).__name__,
                         "split_files": [file_fact(p) for p in self.split_files()], **facts}}

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader | list:
        # Lightning skips validation for an empty list (val_fraction=0)
        return self._loader("val") if self.records("val") else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
