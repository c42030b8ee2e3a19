"""Small files in the real on-disk formats of MNIST-style idx files and CIFAR python batches.

Images encode their own index (``encode_index``/``decode_index``), so a test can tell exactly
which source images a split or a batch holds.
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from infocam_exp.data.idx import MNIST_FILES

#: NumPy dtype -> idx element type code.
IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
             np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding of ``array``: magic 0x0000TTNN, big-endian int32 dims, big-endian data."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an idx file, gzip-compressed if ``path`` ends with ``.gz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def encode_index(n: int, shape: Sequence[int], offset: int = 0) -> np.ndarray:
    """uint8 (n, *shape) images; the first two values of image i hold ``(i + offset)`` in base 256,
    the rest a fixed pattern (so pixel statistics are not trivial)."""
    flat = int(np.prod(shape))
    idx = np.arange(n, dtype=np.int64) + offset
    out = ((np.arange(flat)[None, :] * 7 + idx[:, None] * 3) % 256).astype(np.uint8)
    out[:, 0] = idx % 256
    out[:, 1] = idx // 256
    return out.reshape(n, *shape)


def decode_index(images: np.ndarray) -> np.ndarray:
    """Inverse of ``encode_index`` for uint8 images (N, ...): (N,) int64 indices."""
    flat = np.asarray(images).reshape(len(images), -1).astype(np.int64)
    return flat[:, 0] + 256 * flat[:, 1]


def cyclic_labels(n: int, num_classes: int = 10) -> np.ndarray:
    """Labels 0, 1, ..., K-1, 0, 1, ... (so class k's j-th sample is at index j * K + k)."""
    return (np.arange(n) % num_classes).astype(np.uint8)


def write_mnist_like(
    root: str | Path,
    train_labels: np.ndarray,
    test_labels: np.ndarray | None = None,
    name: str = "mnist",
    layout: str = "torchvision",
    gz: bool = True,
) -> Path:
    """The four idx files of an MNIST-like dataset with the given labels; returns their directory.

    ``layout="torchvision"``: ``<root>/<MNIST|FashionMNIST>/raw/``; ``"flat"``: ``<root>/``.
    Training image i encodes i; test image i encodes i too.
    """
    if test_labels is None:
        test_labels = cyclic_labels(20)
    folder = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name]
    directory = Path(root) / folder / "raw" if layout == "torchvision" else Path(root)
    suffix = ".gz" if gz else ""
    arrays = {
        "train_images": encode_index(len(train_labels), (28, 28)),
        "train_labels": np.asarray(train_labels, dtype=np.uint8),
        "test_images": encode_index(len(test_labels), (28, 28)),
        "test_labels": np.asarray(test_labels, dtype=np.uint8),
    }
    for key, array in arrays.items():
        write_idx(directory / f"{MNIST_FILES[key]}{suffix}", array)
    return directory


def _dump(path: Path, obj: dict) -> None:
    # protocol 2 with byte-string keys: what the official (Python 2 cPickle) files contain
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar(
    root: str | Path,
    train_labels: Sequence[int],
    test_labels: Sequence[int],
    name: str = "cifar10",
) -> Path:
    """CIFAR-10 (five training batches) or CIFAR-100 python files; returns their directory.

    Training image i encodes i; test image i encodes i too. Class names are ``"class<k>"``.
    """
    train_labels = [int(v) for v in train_labels]
    test_labels = [int(v) for v in test_labels]
    num_classes = 10 if name == "cifar10" else 100
    names = [f"class{k}".encode() for k in range(num_classes)]
    train_data = encode_index(len(train_labels), (3072,))
    test_data = encode_index(len(test_labels), (3072,))
    if name == "cifar10":
        directory = Path(root) / "cifar-10-batches-py"
        directory.mkdir(parents=True, exist_ok=True)
        bounds = np.linspace(0, len(train_labels), 6).astype(int)
        for b in range(5):
            lo, hi = bounds[b], bounds[b + 1]
            _dump(directory / f"data_batch_{b + 1}", {
                b"batch_label": f"training batch {b + 1} of 5".encode(),
                b"labels": train_labels[lo:hi],
                b"data": train_data[lo:hi],
                b"filenames": [f"img_{i}.png".encode() for i in range(lo, hi)],
            })
        _dump(directory / "test_batch", {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": test_labels,
            b"data": test_data,
            b"filenames": [f"test_{i}.png".encode() for i in range(len(test_labels))],
        })
        _dump(directory / "batches.meta", {
            b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072,
        })
        return directory
    directory = Path(root) / "cifar-100-python"
    directory.mkdir(parents=True, exist_ok=True)
    for split, labels, data in (("train", train_labels, train_data), ("test", test_labels, test_data)):
        _dump(directory / split, {
            b"filenames": [f"{split}_{i}.png".encode() for i in range(len(labels))],
            b"batch_label": f"{split}ing batch 1 of 1".encode(),
            b"fine_labels": labels,
            b"coarse_labels": [v // 5 for v in labels],
            b"data": data,
        })
    _dump(directory / "meta", {
        b"fine_label_names": names, b"coarse_label_names": [f"super{k}".encode() for k in range(20)],
    })
    return directory
