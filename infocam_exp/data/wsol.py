"""Shared pieces of the weakly supervised object localisation (WSOL) data: sample records, the
box-aware transforms of both evaluation protocols, the wsolevaluation metadata reader, the dataset
with its box-padding collate, and the DataModule base that ``cub`` and ``tiny_imagenet`` extend.

Box convention (everywhere in this package): a box is ``(x0, y0, x1, y1)`` in pixel coordinates of
the image it belongs to, x to the right, y down, origin at the top-left pixel. Annotations are
stored as the dataset ships them converted to corners: CUB's ``x y w h`` becomes
``(x, y, x + w, y + h)`` (the conversion wsolevaluation's CUB metadata uses, e.g. image 1:
``60 27 325 304`` -> ``60,27,385,331``); Tiny-ImageNet's ``x0 y0 x1 y1`` are taken as they are.
``x1, y1`` are therefore the *last covered pixel* in the +1-pixel IoU convention that
wsolevaluation uses (area = (x1 - x0 + 1) * (y1 - y0 + 1), both ends inclusive); the metrics of
this project use that convention, so boxes are never converted to half-open form here.

Evaluation protocols (docs/protocol.md, "WSOL: ground-truth boxes"):

- ``"authors"`` (their utils/util_bbox.py, ``load_bbox_size``): the image is resized to R x R and
  centre-cropped to S x S (CUB: R = 256, S = 224; without a crop, as on Tiny-ImageNet, R = S);
  a box coordinate becomes ``x * (R - 1) / w - floor((R - 1 - S) / 2)`` (y likewise with h):
  ``x * 255 / w - 15`` on CUB, ``x * 63 / w + 1`` on Tiny-ImageNet at 64 px. The result stays a
  float, is never clipped to the crop and never truncated (their ``int()`` appears only where
  boxes are drawn), so a box reaching outside the centre crop keeps its full extent (about a
  third of CUB's test boxes do).
- ``"wsolevaluation"`` (its evaluation.py, ``resize_bbox``): the image is resized to S x S; boxes
  are scaled by (S / w, S / h) and truncated to integers (``int()``); no crop, no clipping.

Padding: the evaluation collate pads every image's boxes to G rows with rows of -1
(``BoxPadCollate``); ``valid_box_rows`` tells them apart from real boxes, which may have
negative coordinates under the authors' protocol.

Training (both protocols): resize to R x R, random S x S crop, horizontal flip (boxes not needed),
or, without a crop, resize to S x S and flip. Inputs are normalised with the ImageNet mean/std.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import functional as TF
from torchvision.transforms import v2 as T

from infocam_exp.data.base import (
    ClassificationDataModule,
    DataFormatError,
    DataNotFoundError,
    eval_sampler,
)

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROTOCOLS = ("authors", "wsolevaluation")
SPLITS = ("train", "val", "test")

Box = tuple[float, float, float, float]


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class ImageRecord:
    """One annotated image.

    Attributes:
        image_id: path of the image relative to the dataset's image root, '/'-separated (the image
            id wsolevaluation uses, e.g. ``"001.Black_footed_Albatross/X.jpg"``); unique per dataset,
            and the name under which per-image maps are saved.
        path: absolute path of the image file.
        label: 0-based class index.
        boxes: ground-truth boxes ``(x0, y0, x1, y1)`` in original-image pixels (see the module
            docstring); may be empty for training images.
        size: ``(width, height)`` in pixels when the annotation states it (wsolevaluation's
            ``image_sizes.txt``), else None; checked against the decoded image.
    """

    image_id: str
    path: str
    label: int
    boxes: tuple[Box, ...] = ()
    size: tuple[int, int] | None = None


def alternate_halves(records: Sequence[ImageRecord]) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Split records per class alternately: the 1st, 3rd, 5th, ... image of each class (in the
    given order) go to the first half (val), the 2nd, 4th, ... to the second (test).

    This is the authors' split of the CUB test set in images.txt order (5,794 -> 2,916 val /
    2,878 test). Tiny-ImageNet's authors' halves follow their own file walk instead (shipped lists,
    ``tiny_imagenet.wsol_splits``); alternating its val_annotations.txt order is the fallback.
    """
    seen: dict[int, int] = {}
    first: list[ImageRecord] = []
    second: list[ImageRecord] = []
    for r in records:
        k = seen.get(r.label, 0)
        (first if k % 2 == 0 else second).append(r)
        seen[r.label] = k + 1
    return first, second


# --------------------------------------------------------------------------------------------
# Box geometry (pure; numpy (G, 4) float64 arrays of x0, y0, x1, y1)


def as_box_array(boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """(G, 4) float64 copy of ``boxes`` (G may be 0)."""
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return arr.copy()


def resize_boxes(boxes: np.ndarray, image_size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """Boxes of an image of ``image_size = (w, h)`` after resizing it to ``new_size = (W, H)``:
    x scaled by W / w, y by H / h. (G, 4) -> (G, 4) float64, no rounding."""
    (w, h), (nw, nh) = image_size, new_size
    scale = np.array([nw / w, nh / h, nw / w, nh / h], dtype=np.float64)
    return as_box_array(boxes) * scale


def authors_boxes(boxes: np.ndarray, image_size: tuple[int, int], resize_size: int, crop_size: int) -> np.ndarray:
    """The authors' box transform (utils/util_bbox.py, ``load_bbox_size``) for an image of
    ``image_size = (w, h)`` resized to R x R = ``resize_size`` and centre-cropped to S =
    ``crop_size``: each coordinate x -> x * (R - 1) / w - floor((R - 1 - S) / 2) (y with h).
    Floats; never clipped, never rounded. (G, 4) -> (G, 4) float64.

    Examples: R = 256, S = 224: x * 255 / w - 15; R = S = 64: x * 63 / w + 1.
    """
    w, h = image_size
    r = float(resize_size - 1)
    shift = (r - crop_size) // 2  # their floor division of floats
    scale = np.array([r / w, r / h, r / w, r / h], dtype=np.float64)
    return as_box_array(boxes) * scale - shift


def default_resize_size(image_size: int) -> int:
    """The resize side before a centre/random crop: 256 for 224 (ratio 8/7), 342 for 299."""
    return int(round(image_size * 256 / 224))


# --------------------------------------------------------------------------------------------
# Transforms (picklable callables, so they travel to DataLoader workers)


def _to_normalised_tensor(image: Image.Image) -> torch.Tensor:
    x = TF.to_tensor(image)
    return TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD)


class EvalTransform:
    """Deterministic evaluation transform of an image and its boxes.

    Args:
        protocol: ``"authors"`` or ``"wsolevaluation"`` (module docstring).
        image_size: S, the side of the output image.
        crop: ``"authors"`` only: resize to ``resize_size`` then centre-crop S (CUB) instead of
            resizing to S (Tiny-ImageNet). Ignored by ``"wsolevaluation"``, which never crops.
        resize_size: R, the side before the crop; None -> ``default_resize_size(S)``.

    ``__call__(image, boxes)``: a PIL image of any size and (G, 4) boxes in its pixels ->
    ``((3, S, S) float32 normalised image, (G, 4) float32 boxes in the output image's pixels)``.
    """

    def __init__(self, protocol: str, image_size: int, crop: bool = True, resize_size: int | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.protocol = protocol
        self.image_size = int(image_size)
        self.crop = bool(crop) and protocol == "authors"
        self.resize_size = int(resize_size) if resize_size else default_resize_size(self.image_size)
        if self.crop and self.resize_size < self.image_size:
            raise ValueError(f"resize_size {self.resize_size} < image_size {self.image_size}")

    def boxes(self, boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """(G, 4) boxes of an image of ``image_size = (w, h)`` -> boxes in the output frame."""
        s = self.image_size
        if self.protocol == "wsolevaluation":
            # wsolevaluation's resize_bbox: scale, then int() (truncation toward zero).
            return np.trunc(resize_boxes(boxes, image_size, (s, s)))
        return authors_boxes(boxes, image_size, self.resize_size if self.crop else s, s)

    def protocol_facts(self) -> dict[str, Any]:
        """How this transform maps images and boxes (JSON-serialisable; metrics.json's protocol)."""
        s = self.image_size
        if self.protocol == "wsolevaluation":
            return {
                "image": f"resize {s}x{s}",
                "boxes": f"x * {s}/w, y * {s}/h, truncated to int (wsolevaluation evaluation.py resize_bbox)",
                "boxes_clipped": False,
                "boxes_rounding": "int() (toward zero)",
            }
        r = self.resize_size if self.crop else s
        shift = (float(r - 1) - s) // 2
        sign = "-" if shift >= 0 else "+"
        return {
            "image": f"resize {r}x{r}, centre crop {s}" if self.crop else f"resize {s}x{s}",
            "boxes": (f"x * {r - 1}/w {sign} {abs(shift):g}, y * {r - 1}/h {sign} {abs(shift):g} "
                      "(the authors' utils/util_bbox.py load_bbox_size)"),
            "boxes_clipped": False,
            "boxes_rounding": "none (floats)",
        }

    def image(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (3, S, S) float32 tensor normalised with the ImageNet mean/std."""
        s = self.image_size
        if self.crop:
            r = self.resize_size
            image = TF.center_crop(TF.resize(image, [r, r]), [s, s])
        else:
            image = TF.resize(image, [s, s])
        return _to_normalised_tensor(image)

    def __call__(self, image: Image.Image, boxes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        out_boxes = self.boxes(boxes, image.size)
        return self.image(image), torch.as_tensor(out_boxes, dtype=torch.float32).reshape(-1, 4)


class TrainTransform:
    """Training augmentation: resize to R x R, random S x S crop, horizontal flip (with ``crop``),
    or resize to S x S and flip (without). Output: (3, S, S) float32, ImageNet-normalised.

    Randomness comes from torch's global generator, which the DataLoader seeds per worker.
    """

    def __init__(self, image_size: int, crop: bool = True, resize_size: int | None = None, hflip: bool = True) -> None:
        s = int(image_size)
        r = int(resize_size) if resize_size else default_resize_size(s)
        steps: list[Callable[[Any], Any]] = (
            [T.Resize([r, r]), T.RandomCrop(s)] if crop else [T.Resize([s, s])]
        )
        if hflip:
            steps.append(T.RandomHorizontalFlip())
        self._pil = T.Compose(steps)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return _to_normalised_tensor(self._pil(image))


# --------------------------------------------------------------------------------------------
# Dataset and collate


def load_rgb(path: str, expected_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image file as RGB (grayscale/CMYK images exist in CUB and Tiny-ImageNet).

    Raises DataFormatError naming the file when it does not decode or when its size differs from
    the annotation's ``expected_size = (w, h)``; DataNotFoundError-like FileNotFoundError if gone.
    """
    try:
        with Image.open(path) as im:
            image = im.convert("RGB")
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataFormatError(path, f"cannot decode image ({type(e).__name__}: {e})",
                              fix="the file is corrupt or truncated; re-extract the dataset archive") from e
    if expected_size is not None and tuple(image.size) != tuple(expected_size):
        raise DataFormatError(
            path,
            f"image is {image.size[0]}x{image.size[1]} but the annotation says "
            f"{expected_size[0]}x{expected_size[1]}",
            fix="the metadata does not belong to these images (check data.root / data.metadata_dir)",
        )
    return image


class WSOLImageDataset(Dataset):
    """Images (decoded in the worker that asks for them) with labels and, for evaluation, boxes.

    Items: ``(image (3, S, S) float32, label int)`` with a ``TrainTransform`` (or any callable of
    a PIL image), ``(image, label, boxes (G_i, 4) float32)`` with an ``EvalTransform``.
    """

    def __init__(self, records: Sequence[ImageRecord], transform: Callable[..., Any]) -> None:
        self.records = list(records)
        self.transform = transform
        self.with_boxes = isinstance(transform, EvalTransform)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        r = self.records[index]
        image = load_rgb(r.path, r.size)
        if self.with_boxes:
            x, boxes = self.transform(image, as_box_array(r.boxes))
            return x, r.label, boxes
        return self.transform(image), r.label


class BoxPadCollate:
    """Collate ``(image, label, boxes)`` items into ``(images (B, 3, S, S), labels (B,) int64,
    boxes (B, G, 4) float32)``, padding each image's boxes with rows of -1 up to G.

    Args:
        max_boxes: G; an item with more boxes raises (so no ground truth is silently dropped).
    """

    PAD = -1.0

    def __init__(self, max_boxes: int) -> None:
        if max_boxes < 1:
            raise ValueError(f"max_boxes must be >= 1, got {max_boxes}")
        self.max_boxes = int(max_boxes)

    def __call__(self, items: Sequence[tuple[torch.Tensor, int, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        images = torch.stack([it[0] for it in items])
        labels = torch.as_tensor([int(it[1]) for it in items], dtype=torch.int64)
        boxes = torch.full((len(items), self.max_boxes, 4), self.PAD, dtype=torch.float32)
        for i, it in enumerate(items):
            g = it[2].shape[0]
            if g > self.max_boxes:
                raise ValueError(f"an image has {g} boxes > max_boxes={self.max_boxes}; raise data.max_boxes")
            boxes[i, :g] = it[2]
        return images, labels, boxes


def valid_box_rows(boxes: torch.Tensor) -> torch.Tensor:
    """(..., G, 4) padded boxes -> (..., G) bool, False on ``BoxPadCollate``'s padding rows (all
    four coordinates -1). A real box cannot be such a row (x1 > x0), while it may well have a
    negative coordinate: the authors' boxes are never clipped to the crop."""
    return ~(boxes == BoxPadCollate.PAD).all(dim=-1)


# --------------------------------------------------------------------------------------------
# wsolevaluation metadata


METADATA_LAYOUT = (
    "<metadata_dir>/{train,val,test}/ each with image_ids.txt (path), class_labels.txt "
    "(path,label 0-based), image_sizes.txt (path,w,h; optional), localization.txt "
    "(path,x0,y0,x1,y1, one line per box; required for val/test); paths relative to data.root"
)


def _read_csv(path: Path, n_fields: int, fmt: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each non-empty line of a comma-separated file."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            fields = line.split(",")
            if len(fields) != n_fields:
                raise DataFormatError(path, f"got {line!r}, expected '{fmt}'", line=lineno)
            out.append((lineno, fields))
    return out


def _nums(path: Path, lineno: int, values: Sequence[str], fmt: str, kind: type = int) -> list[Any]:
    """Parse numeric fields; a bad one raises DataFormatError at ``path:lineno``."""
    try:
        return [kind(v) for v in values]
    except ValueError:
        what = "integer" if kind is int else "numeric"
        raise DataFormatError(path, f"non-{what} field in {','.join(values)!r}, expected '{fmt}'", line=lineno) from None


def read_wsol_metadata_split(
    split_dir: str | Path,
    image_roots: Sequence[str | Path],
    need_boxes: bool = True,
    check_files: bool = True,
) -> list[ImageRecord]:
    """Read one split folder of wsolevaluation metadata (Choe et al., CVPR 2020) into records.

    Args:
        split_dir: folder holding image_ids.txt, class_labels.txt, image_sizes.txt (optional) and
            localization.txt (required when ``need_boxes``).
        image_roots: candidate folders the metadata paths are relative to; the first one holding
            the split's first image is used for the whole split.
        need_boxes: every image must have at least one box.
        check_files: check that every image file exists.

    Returns:
        records in image_ids.txt order; labels as written (0-based), boxes as written (ints).
    """
    split_dir = Path(split_dir)
    ids_file = split_dir / "image_ids.txt"
    if not ids_file.is_file():
        raise DataNotFoundError(
            f"wsolevaluation metadata split '{split_dir.name}'",
            [str(ids_file)],
            METADATA_LAYOUT,
            "clone github.com/clovaai/wsolevaluation on an online machine; its metadata/<DATASET>/ "
            "folder is this layout",
            "data.metadata_dir=/path/to/wsolevaluation/metadata/CUB",
        )
    image_ids: list[str] = []
    with open(ids_file, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                image_ids.append(line.strip())
    if len(set(image_ids)) != len(image_ids):
        raise DataFormatError(ids_file, "duplicate image ids")
    known = set(image_ids)

    def _check_known(path: Path, lineno: int, image_id: str) -> None:
        if image_id not in known:
            raise DataFormatError(path, f"image id {image_id!r} is not in image_ids.txt", line=lineno)

    labels_file = split_dir / "class_labels.txt"
    if not labels_file.is_file():
        raise DataFormatError(labels_file, "missing (every metadata split needs class_labels.txt)")
    labels: dict[str, int] = {}
    for lineno, (image_id, lab) in _read_csv(labels_file, 2, "path,label"):
        _check_known(labels_file, lineno, image_id)
        (label,) = _nums(labels_file, lineno, [lab], "path,label")
        if label < 0:
            raise DataFormatError(labels_file, f"label {label} < 0 (labels are 0-based)", line=lineno)
        labels[image_id] = label

    sizes: dict[str, tuple[int, int]] = {}
    sizes_file = split_dir / "image_sizes.txt"
    if sizes_file.is_file():
        for lineno, (image_id, *wh) in _read_csv(sizes_file, 3, "path,w,h"):
            _check_known(sizes_file, lineno, image_id)
            w, h = _nums(sizes_file, lineno, wh, "path,w,h")
            sizes[image_id] = (w, h)

    boxes: dict[str, list[Box]] = {}
    loc_file = split_dir / "localization.txt"
    if loc_file.is_file():
        for lineno, (image_id, *xyxy) in _read_csv(loc_file, 5, "path,x0,y0,x1,y1"):
            _check_known(loc_file, lineno, image_id)
            x0, y0, x1, y1 = _nums(loc_file, lineno, xyxy, "path,x0,y0,x1,y1", float)
            if x1 < x0 or y1 < y0:
                raise DataFormatError(loc_file, f"box {xyxy} has x1 < x0 or y1 < y0 (expected x0,y0,x1,y1)", line=lineno)
            boxes.setdefault(image_id, []).append((x0, y0, x1, y1))
    elif need_boxes:
        raise DataFormatError(loc_file, "missing (val/test splits need boxes)")

    root = _pick_image_root(image_roots, image_ids[0] if image_ids else None)
    records = []
    missing = []
    for image_id in image_ids:
        if image_id not in labels:
            raise DataFormatError(labels_file, f"image id {image_id!r} has no label")
        if need_boxes and image_id not in boxes:
            raise DataFormatError(loc_file, f"image id {image_id!r} has no box")
        path = root / image_id
        if check_files and not path.is_file():
            missing.append(str(path))
        records.append(ImageRecord(image_id, str(path), labels[image_id], tuple(boxes.get(image_id, ())), sizes.get(image_id)))
    if missing:
        raise DataNotFoundError(
            f"{len(missing)} image file(s) listed in {ids_file}",
            missing[:3] + (["..."] if len(missing) > 3 else []),
            "image ids are paths relative to data.root",
            "point data.root at the folder the metadata paths are relative to (for wsolevaluation's "
            "CUB: CUB_200_2011/images; its val split uses the CUBV2 images, looked for in "
            "<root>/CUBV2 and <root>/../CUBV2)",
            "data.root=/path/to/images",
        )
    return records


def _pick_image_root(candidates: Sequence[str | Path], probe: str | None) -> Path:
    """The first candidate folder that holds ``probe`` (else the first candidate)."""
    cands = [Path(c) for c in candidates]
    if probe is None:
        return cands[0]
    for c in cands:
        if (c / probe).is_file():
            return c
    return cands[0]


def class_names_from_records(records: Sequence[ImageRecord], num_classes: int) -> list[str]:
    """Class names from the image ids' parent folder (``"001.Black_footed_Albatross/x.jpg"`` ->
    ``"Black_footed_Albatross"``); a class with no record (or no folder) is named by its index."""
    names = [str(k) for k in range(num_classes)]
    for r in records:
        parts = r.image_id.split("/")
        if len(parts) > 1 and names[r.label] == str(r.label):
            folder = parts[-2]
            names[r.label] = folder.split(".", 1)[1] if "." in folder and folder.split(".", 1)[0].isdigit() else folder
    return names


# --------------------------------------------------------------------------------------------
# DataModule base


@dataclass
class WSOLSplits:
    """What a dataset reader hands the DataModule: records per split and the class names."""

    train: list[ImageRecord]
    val: list[ImageRecord]
    test: list[ImageRecord]
    class_names: list[str]


class WSOLDataModule(ClassificationDataModule):
    """Base of the WSOL DataModules (``CUBWSOLDataModule``, ``TinyImageNetWSOLDataModule``).

    Batches: train ``(images (B, 3, S, S) float32, labels (B,) int64)``; val/test
    ``(images, labels, boxes (B, G, 4) float32)``, boxes in the S x S input's pixels
    (module docstring), padded with -1 rows up to G = ``max_boxes``. The val/test loaders are not
    shuffled: batch b holds ``image_ids(split)[b * eval_batch_size : (b + 1) * eval_batch_size]``.

    Args:
        root: dataset folder (see the subclass).
        protocol: ``"authors"`` or ``"wsolevaluation"`` (evaluation transform and box rounding).
        metadata_dir: a wsolevaluation metadata folder (``<dir>/{train,val,test}/...``); when set,
            splits, labels and boxes come from it and image paths are relative to ``root``.
        image_size: S.
        resize_size: R before the crop (None: round(S * 256 / 224)); unused without a crop.
        crop: train with resize R + random crop S and evaluate (``"authors"``) with resize R +
            centre crop S; False: resize to S everywhere.
        hflip: random horizontal flips in training.
        batch_size / eval_batch_size: per-process batch sizes (eval: None -> batch_size).
        num_workers: DataLoader worker processes that decode the JPEGs (persistent when > 0).
        pin_memory: pin host memory when a CUDA device is present.
        seed: data seed, of any random split choice (the WSOL splits are deterministic; kept so
            every DataModule takes the same arguments).
        max_boxes: G; None -> the largest box count of the val/test images.
        check_files: check that every listed image exists when reading the annotations.
    """

    dataset_name = "wsol"

    def __init__(
        self,
        root: str,
        protocol: str = "authors",
        metadata_dir: str | None = None,
        image_size: int = 224,
        resize_size: int | None = None,
        crop: bool = True,
        hflip: bool = True,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool = True,
        seed: int = 0,
        max_boxes: int | None = None,
        check_files: bool = True,
    ) -> None:
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        self.root = str(root)
        self.protocol = protocol
        self.metadata_dir = str(metadata_dir) if metadata_dir else None
        self.image_size = int(image_size)
        self.resize_size = int(resize_size) if resize_size else default_resize_size(self.image_size)
        self.crop = bool(crop)
        self.hflip = bool(hflip)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size) if eval_batch_size else self.batch_size
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.seed = int(seed)
        self.max_boxes_arg = max_boxes
        self.check_files = bool(check_files)
        self.input_shape = (3, self.image_size, self.image_size)
        self._splits: WSOLSplits | None = None

    # -- subclasses -------------------------------------------------------------------------
    def read_splits(self) -> WSOLSplits:
        """Read the dataset's own annotations into train/val/test records (subclass)."""
        raise NotImplementedError(
            f"{type(self).__name__} reads only wsolevaluation metadata: set data.metadata_dir, or use "
            "CUBWSOLDataModule / TinyImageNetWSOLDataModule for the release layouts"
        )

    def metadata_image_roots(self) -> list[Path]:
        """Candidate folders that wsolevaluation metadata paths are relative to."""
        return [Path(self.root)]

    def metadata_class_names(self, num_classes: int, records: Sequence[ImageRecord]) -> list[str]:
        return class_names_from_records(records, num_classes)

    # -- facts ------------------------------------------------------------------------------
    def _read_metadata(self) -> WSOLSplits:
        md = Path(self.metadata_dir or "")
        roots = self.metadata_image_roots()
        parts = {
            split: read_wsol_metadata_split(md / split, roots, need_boxes=split != "train", check_files=self.check_files)
            for split in SPLITS
        }
        k = 1 + max(r.label for recs in parts.values() for r in recs)
        return WSOLSplits(parts["train"], parts["val"], parts["test"], self.metadata_class_names(k, parts["train"]))

    def prepare_facts(self) -> None:
        if self._splits is not None:
            return
        splits = self._read_metadata() if self.metadata_dir else self.read_splits()
        self.num_classes = len(splits.class_names)
        self.class_names = list(splits.class_names)
        for name in SPLITS:
            recs = getattr(splits, name)
            if not recs:
                raise DataFormatError(self.metadata_dir or self.root, f"the {name} split is empty")
            bad = [r for r in recs if not 0 <= r.label < self.num_classes]
            if bad:
                raise DataFormatError(bad[0].image_id, f"label {bad[0].label} outside [0, {self.num_classes})")
        for name in ("val", "test"):
            empty = [r.image_id for r in getattr(splits, name) if not r.boxes]
            if empty:
                raise DataFormatError(empty[0], f"{name} image without a ground-truth box")
        most = max(len(r.boxes) for r in splits.val + splits.test)
        self.max_boxes = int(self.max_boxes_arg) if self.max_boxes_arg else most
        if most > self.max_boxes:
            raise ValueError(f"an evaluation image has {most} boxes > data.max_boxes={self.max_boxes}")
        self.class_counts = torch.bincount(
            torch.as_tensor([r.label for r in splits.train], dtype=torch.int64), minlength=self.num_classes
        )
        self._splits = splits
        log.info(
            "%s: %d classes, train/val/test = %d/%d/%d images, protocol=%s%s",
            type(self).__name__, self.num_classes, len(splits.train), len(splits.val), len(splits.test),
            self.protocol, f", metadata {self.metadata_dir}" if self.metadata_dir else "",
        )

    def split_rule(self) -> str:
        """How train/val/test were chosen, in words (metrics.json's protocol block)."""
        if self.metadata_dir:
            return "wsolevaluation metadata: train/val/test image_ids.txt as listed"
        return "subclass"

    def split_files(self) -> list[Path]:
        if self.metadata_dir:
            md = Path(self.metadata_dir)
            return [md / split / name for split in SPLITS for name in ("image_ids.txt", "localization.txt")]
        return []

    def protocol_facts(self) -> dict[str, Any]:
        """The base facts plus the evaluation protocol, its box transform (clipped or not), the
        image transforms and the split rule."""
        facts = super().protocol_facts()
        ev = self.eval_transform().protocol_facts()
        r, s = self.resize_size, self.image_size
        train = f"resize {r}x{r}, random crop {s}" if self.crop else f"resize {s}x{s}"
        facts["data"].update(
            protocol=self.protocol,
            split_rule=self.split_rule(),
            box_transform={k: v for k, v in ev.items() if k != "image"},
            transforms={
                "train": train + (", horizontal flip" if self.hflip else "") + ", ImageNet mean/std",
                "eval": ev["image"] + ", ImageNet mean/std",
            },
        )
        return facts

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised inputs -> images in [0, 1] (for pictures)."""
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device)[:, None, None]
        return (x.float() * std + mean).clamp(0.0, 1.0)

    def setup(self, stage: str | None = None) -> None:
        self.prepare_facts()

    # -- access -----------------------------------------------------------------------------
    def records(self, split: str) -> list[ImageRecord]:
        """The records of ``split`` ("train", "val", "test") in loader order (train: unshuffled)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.prepare_facts()
        assert self._splits is not None
        return list(getattr(self._splits, split))

    def split_class_counts(self, split: str) -> torch.Tensor:
        labels = [r.label for r in self.records(split)]
        return torch.bincount(torch.as_tensor(labels, dtype=torch.int64), minlength=self.num_classes)

    def image_ids(self, split: str) -> list[str]:
        """Image ids of ``split`` in loader order (val/test loaders are not shuffled)."""
        return [r.image_id for r in self.records(split)]

    @property
    def test_image_ids(self) -> list[str]:
        return self.image_ids("test")

    def train_transform(self) -> TrainTransform:
        return TrainTransform(self.image_size, crop=self.crop, resize_size=self.resize_size, hflip=self.hflip)

    def eval_transform(self) -> EvalTransform:
        return EvalTransform(self.protocol, self.image_size, crop=self.crop, resize_size=self.resize_size)

    def dataset(self, split: str) -> WSOLImageDataset:
        tf = self.train_transform() if split == "train" else self.eval_transform()
        return WSOLImageDataset(self.records(split), tf)

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        workers = self.num_workers
        dataset = self.dataset(split)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            sampler=None if train else eval_sampler(self.trainer, dataset),
            num_workers=workers,
            # pin only where there is a device to copy to; torch warns otherwise
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=workers > 0,
            collate_fn=None if train else BoxPadCollate(self.max_boxes),
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
