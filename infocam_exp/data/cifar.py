"""Long-tailed CIFAR-10 / CIFAR-100 (Cao et al., LDAM-DRW, NeurIPS 2019 protocol; docs/protocol.md,
"CIFAR long-tailed").

Files: the "python version" pickle batches as distributed at https://www.cs.toronto.edu/~kriz/cifar.html
(and as torchvision's downloader extracts them):

- ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5`` (10,000 images each), ``test_batch``,
  ``batches.meta`` (``label_names``);
- ``cifar-100-python/``: ``train`` (50,000), ``test`` (10,000), ``meta`` (``fine_label_names``).

Each batch is a pickled dict with ``data``: uint8 (N, 3072) rows (1024 red, 1024 green, 1024 blue
values, each a 32 x 32 image in row-major order) and ``labels`` (CIFAR-10) or ``fine_labels``
(CIFAR-100). They are unpickled with a restricted unpickler that only builds NumPy arrays.

Splits:

- train: the exponential long-tail profile on the official training set (``imbalance.py``):
  ``n_k = floor(n_max * (1 / ratio) ** (k / (K - 1)))``, images of each class chosen as LDAM-DRW does
  (with seed 0, LDAM-DRW's subset, except for the head class's validation images below).
- val (ours, for model selection and per-epoch logging): ``val_per_class`` images per class, balanced,
  from the training images the long tail leaves unused (the last ones of each class's shuffled order).
  The head class (and every class at ratio 1) uses all its images, so it gives up its last
  ``val_per_class`` training images instead: at ratio 100 CIFAR-10's class 0 trains on 4,950 images
  rather than 5,000 (CIFAR-100's class 0 on 490 rather than 500); every other class keeps exactly
  the standard count. The official test set is never used for selection.
- test: the full official test set (balanced), on which peers report.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from infocam_exp.data.base import (
    DataFormatError,
    DataNotFoundError,
    InMemoryDataModule,
    counts_from_labels,
)
from infocam_exp.data.imbalance import long_tail_counts, split_per_class
from infocam_exp.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CIFARSpec:
    """Where one CIFAR variant keeps what."""

    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR_SPECS = {
    # mean/std: per-channel training-set statistics of pixels in [0, 1], the values LDAM-DRW and
    # most CIFAR-LT code normalise with.
    "cifar10": CIFARSpec(
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
    ),
    "cifar100": CIFARSpec(
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        num_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
    ),
}

#: Default validation images per class (500 for CIFAR-10, 1,000 for CIFAR-100 in total).
DEFAULT_VAL_PER_CLASS = {"cifar10": 50, "cifar100": 10}

IMAGE_SHAPE = (3, 32, 32)

# The only globals a CIFAR pickle needs: NumPy's array reconstruction (old and new module paths)
# and the codec Python 3 uses to pickle bytes.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _str(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def read_cifar_pickle(path: str | Path) -> dict[str, Any]:
    """Unpickle one CIFAR file (Python 2 or 3 pickle) into a dict with ``str`` keys.

    Raises:
        DataFormatError: naming the file, if it is not a pickled dict of arrays and lists.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            # latin1: the official files are Python 2 pickles of byte strings.
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, ImportError, MemoryError) as e:
        raise DataFormatError(
            path, f"not a readable CIFAR pickle ({type(e).__name__}: {e})", fix="re-download and extract it"
        ) from e
    if not isinstance(obj, dict):
        raise DataFormatError(path, f"holds a pickled {type(obj).__name__}, expected a dict")
    return {_str(k): v for k, v in obj.items()}


def read_cifar_batch(path: str | Path, label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one data batch.

    Returns:
        images uint8 (N, 3, 32, 32) and labels int64 (N,).

    Raises:
        DataFormatError: naming the file, for a missing key, data that is not uint8 (N, 3072), a
            label count that differs from N, or a label outside [0, num_classes).
    """
    path = Path(path)
    d = read_cifar_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise DataFormatError(path, f"has no {key!r} entry (keys: {sorted(d)})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFormatError(path, f"'data' is {desc}, expected uint8 (N, 3072)")
    try:
        labels = np.asarray(d[label_key], dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataFormatError(path, f"{label_key!r} is not a list of integers ({e})") from e
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataFormatError(path, f"has {labels.size} {label_key} for {len(data)} images")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise DataFormatError(
            path, f"{label_key}[{bad[0]}] = {labels[bad[0]]} is outside [0, {num_classes}) "
            f"({bad.size} such labels)"
        )
    images = torch.from_numpy(data.reshape(-1, *IMAGE_SHAPE).copy())
    return images, torch.from_numpy(labels)


def read_cifar_meta(path: str | Path, names_key: str, num_classes: int) -> list[str]:
    """Class names from ``batches.meta`` (CIFAR-10) or ``meta`` (CIFAR-100)."""
    path = Path(path)
    d = read_cifar_pickle(path)
    names = d.get(names_key)
    if not isinstance(names, (list, tuple)) or len(names) != num_classes:
        raise DataFormatError(path, f"{names_key!r} should list {num_classes} class names, got {names!r:.80}")
    return [_str(n) for n in names]


def _spec(name: str) -> CIFARSpec:
    if name not in CIFAR_SPECS:
        raise ConfigError(f"data.name={name!r} is not known: use one of {sorted(CIFAR_SPECS)}")
    return CIFAR_SPECS[name]


def find_cifar_dir(root: str | Path, name: str) -> Path:
    """The directory holding all files of ``name``: ``<root>/<folder>/``, else ``<root>/`` itself.

    Raises:
        DataNotFoundError: listing where it looked and which files each place lacked.
    """
    spec = _spec(name)
    files = [*spec.train_files, *spec.test_files, spec.meta_file]
    root = Path(root)
    searched = []
    for d in (root / spec.folder, root):
        missing = [f for f in files if not (d / f).is_file()]
        if not missing:
            return d
        present = len(files) - len(missing)
        searched.append(f"{d} (lacks {', '.join(missing)})" if present else str(d))
    tv = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}[name]
    raise DataNotFoundError(
        what=f"{name} python batches",
        searched=searched,
        layout=f"<root>/{spec.folder}/{{{','.join(files)}}}",
        get_it=f"python -m infocam_exp.fetch {name} --root {root} (or make fetch-{name} ROOT={root}; the {tv} python "
        "version from https://www.cs.toronto.edu/~kriz/cifar.html, md5-checked and extracted), or data.download=true "
        "(the same fetcher, into data.root)",
        override=f"data.root=/path/containing/{spec.folder}",
    )


def load_cifar(root: str | Path, name: str, download: bool = False) -> dict[str, Any]:
    """Read CIFAR-10 or CIFAR-100 into memory.

    Args:
        root: directory containing ``cifar-10-batches-py/`` or ``cifar-100-python/``.
        name: "cifar10" or "cifar100".
        download: if missing, fetch into ``root`` with ``infocam_exp.fetch`` (never otherwise).

    Returns:
        ``train_images`` uint8 (50000, 3, 32, 32), ``train_labels`` int64 (50000,), ``test_images``
        uint8 (10000, 3, 32, 32), ``test_labels`` int64, ``class_names`` list of K str (sizes of the
        real datasets).
    """
    spec = _spec(name)
    try:
        folder = find_cifar_dir(root, name)
    except DataNotFoundError:
        if not download:
            raise
        # the same checked download as `python -m infocam_exp.fetch <name>`
        from infocam_exp import fetch

        log.info("Downloading %s into %s (data.download=true)", name, root)
        fetch.fetch(name, root)
        folder = find_cifar_dir(root, name)
    log.info("Reading %s from %s", name, folder)
    out: dict[str, Any] = {}
    for split, files in (("train", spec.train_files), ("test", spec.test_files)):
        parts = [read_cifar_batch(folder / f, spec.label_key, spec.num_classes) for f in files]
        out[f"{split}_images"] = torch.cat([p[0] for p in parts])
        out[f"{split}_labels"] = torch.cat([p[1] for p in parts])
    out["class_names"] = read_cifar_meta(folder / spec.meta_file, spec.names_key, spec.num_classes)
    return out


def random_crop_flip(x: torch.Tensor, padding: int = 4, flip: bool = True) -> torch.Tensor:
    """Batched standard CIFAR augmentation on x's device, with torch's global RNG.

    Each image is zero-padded by ``padding`` pixels on every side, cropped back to its size at a
    uniformly random offset and, with probability 1/2 (``flip``), mirrored left-right (the
    per-image equivalent of torchvision's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip``).

    Args:
        x: (B, C, H, W) images, any dtype (zero is the padding value, black for uint8 pixels).

    Returns:
        (B, C, H, W) augmented images, same dtype.
    """
    b, _, h, w = x.shape
    dev = x.device
    xp = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b, 1), device=dev)
    ox = torch.randint(0, 2 * padding + 1, (b, 1), device=dev)
    rows = oy + torch.arange(h, device=dev)  # (B, H)
    cols = ox + torch.arange(w, device=dev)  # (B, W)
    if flip:
        # mirroring the crop is reading its columns backwards
        mirror = torch.rand(b, 1, device=dev) < 0.5
        cols = torch.where(mirror, cols.flip(1), cols)
    batch = torch.arange(b, device=dev)[:, None, None]
    # advanced indices around a slice put the indexed dims first: (B, H, W, C)
    out = xp[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


class CIFARLongTailDataModule(InMemoryDataModule):
    """Long-tailed CIFAR training set, balanced validation and test sets, in memory.

    Batches from the loaders: ``[x, y]``, x uint8 (B, 3, 32, 32), y int64 (B,), gathered from
    tensors already on the trainer's device. ``on_after_batch_transfer`` (on that device) applies
    random crop + flip to training batches when ``augment`` and then normalises every batch to
    float32 ``(x / 255 - mean) / std`` per channel.

    Args:
        root: directory containing ``cifar-10-batches-py/`` or ``cifar-100-python/``.
        name: "cifar10" or "cifar100".
        imbalance_ratio: n_max / n_min of the exponential profile (100 and 200 are the standard
            settings); 1 or "none" keeps the training set balanced.
        val_per_class: balanced validation images per class, from training images the long tail
            leaves unused; None = 50 (CIFAR-10) or 10 (CIFAR-100). See the module docstring.
        batch_size, eval_batch_size: per-process batch sizes for training and evaluation.
        augment: random crop (pad 4) + horizontal flip on training batches.
        mean, std: per-channel normalisation; None = the dataset's standard values.
        download: fetch missing files with ``infocam_exp.fetch`` (never otherwise).
        seed: data seed: which images the long tail keeps (0 = LDAM-DRW's choice, see the module
            docstring) and the training shuffle; fixed across training seeds.
    """

    def __init__(
        self,
        root: str = "data",
        name: str = "cifar10",
        imbalance_ratio: float | str = 100,
        val_per_class: int | None = None,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        augment: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        download: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        spec = _spec(name)
        self.root = str(root)
        self.name = name
        self.num_classes = spec.num_classes
        self.input_shape = IMAGE_SHAPE
        if isinstance(imbalance_ratio, str):
            if imbalance_ratio != "none":
                raise ConfigError(f"data.imbalance_ratio={imbalance_ratio!r}: use a number >= 1 or none")
            imbalance_ratio = 1.0
        if imbalance_ratio < 1:
            raise ConfigError(f"data.imbalance_ratio={imbalance_ratio} must be >= 1 (n_max / n_min)")
        self.imbalance_ratio = float(imbalance_ratio)
        self.val_per_class = int(DEFAULT_VAL_PER_CLASS[name] if val_per_class is None else val_per_class)
        if self.val_per_class < 1:
            raise ConfigError(f"data.val_per_class={val_per_class} must be >= 1 (validation selects models)")
        if batch_size < 1 or eval_batch_size < 1:
            raise ConfigError(f"batch sizes must be >= 1, got {batch_size}, {eval_batch_size}")
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.augment = bool(augment)
        self.mean = tuple(float(m) for m in (spec.mean if mean is None else mean))
        self.std = tuple(float(s) for s in (spec.std if std is None else std))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"data.mean / data.std need 3 values (std > 0), got {self.mean}, {self.std}")
        self.download = bool(download)
        self.seed = int(seed)
        self.class_names: list[str] = []
        #: split -> (images uint8 (N, 3, 32, 32), labels int64 (N,)), filled by prepare_facts.
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        #: split -> (N,) int64 indices into the official split it was drawn from.
        self.indices: dict[str, torch.Tensor] = {}

    def prepare_facts(self) -> None:
        """Read the batches once and draw the splits; sets ``class_counts``. Idempotent."""
        if self.splits:
            return
        data = load_cifar(self.root, self.name, download=self.download)
        self.class_names = data["class_names"]
        y = data["train_labels"]
        k = self.num_classes
        available = counts_from_labels(y, k).tolist()
        profile = long_tail_counts(len(y) // k, k, self.imbalance_ratio)
        counts = [min(n, a - self.val_per_class) for n, a in zip(profile, available, strict=True)]
        if min(counts) < 1:
            raise ConfigError(
                f"{self.name}: too few images for val_per_class={self.val_per_class} "
                f"(per-class training counts would be {counts})"
            )
        shrunk = [c for c in range(k) if counts[c] < profile[c]]
        if shrunk:
            log.info(
                "%s: classes %s give up training images to the validation set (%s -> %s)",
                self.name, shrunk, [profile[c] for c in shrunk], [counts[c] for c in shrunk],
            )
        train_idx, val_idx = split_per_class(y, counts, self.seed, self.val_per_class)
        images = data["train_images"]
        self.indices = {
            "train": train_idx,
            "val": val_idx,
            "test": torch.arange(len(data["test_labels"])),
        }
        self.splits = {
            "train": (images[train_idx].contiguous(), y[train_idx].clone()),
            "val": (images[val_idx].contiguous(), y[val_idx].clone()),
            "test": (data["test_images"], data["test_labels"]),
        }
        self.class_counts = counts_from_labels(self.splits["train"][1], k)
        log.info(
            "%s-LT ratio %g: train %d, val %d, test %d images",
            self.name, self.imbalance_ratio, len(train_idx), len(val_idx), len(data["test_labels"]),
        )

    def setup(self, stage: str | None = None) -> None:
        self.prepare_facts()

    def split_tensors(self, split: str) -> list[torch.Tensor]:
        self.prepare_facts()
        return list(self.splits[split])

    def transform_batch(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (B, 3, 32, 32) -> normalised float32 (B, 3, 32, 32), augmented if ``train``."""
        if x.dtype != torch.uint8:
            raise TypeError(f"expected a uint8 image batch, got {x.dtype} (transformed twice?)")
        if train and self.augment:
            x = random_crop_flip(x)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x.to(torch.float32).div_(255.0) - mean).div_(std)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment (training only) and normalise on the device the batch was moved to."""
        x, y, *rest = batch
        train = self.trainer is not None and self.trainer.training
        return [self.transform_batch(x, train), y, *rest]
