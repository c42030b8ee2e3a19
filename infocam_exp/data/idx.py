"""Reading MNIST-style idx files (MNIST, Fashion-MNIST), raw or gzip-compressed.

The idx format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
``0x00 0x00 TT NN`` (TT: element type code, NN: number of dimensions), then NN big-endian int32
dimension sizes, then the elements in C order, big-endian. MNIST's image files are
``(N, 28, 28)`` uint8 and its label files ``(N,)`` uint8.

The four files are looked for in torchvision's layout (``<root>/MNIST/raw/``,
``<root>/FashionMNIST/raw/``), then directly in ``<root>/``, then (Fashion-MNIST only) where the
Debian package ``dataset-fashion-mnist`` installs them. Nothing is downloaded unless asked.
"""

from __future__ import annotations

import gzip
import logging
import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from infocam_exp.data.base import DataFormatError, DataNotFoundError
from infocam_exp.errors import ConfigError

log = logging.getLogger(__name__)

#: idx element type code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: Our dataset names -> torchvision's folder (class) names.
TORCHVISION_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}

#: Where ``apt-get install dataset-fashion-mnist`` puts the four gzip files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: The four files of a split pair (key -> file name without ``.gz``).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

IMAGE_SIZE = 28


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except EOFError as e:
            raise DataFormatError(path, f"truncated gzip stream ({e})", fix="re-download the file") from e
        except (OSError, zlib.error) as e:
            raise DataFormatError(path, f"not a valid gzip file ({e})", fix="re-download the file") from e
    return path.read_bytes()


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one idx file (``.gz`` is decompressed) into a tensor of its stored shape.

    Returns:
        Tensor with the file's dimensions, dtype from the type code (uint8 for MNIST files),
        native byte order.

    Raises:
        DataFormatError: naming the file, for a bad magic number, an unknown type code, a short
            header, or a data section of the wrong length (truncated or trailing bytes).
    """
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise DataFormatError(path, f"file is {len(buf)} bytes, shorter than the 4-byte idx magic number")
    magic = int.from_bytes(buf[:4], "big")
    if buf[0] != 0 or buf[1] != 0:
        raise DataFormatError(
            path, f"bad magic number 0x{magic:08x}: not an idx file (expected 0x0000TTNN)",
            fix="is it an HTML error page or a differently packed file?",
        )
    code, ndim = buf[2], buf[3]
    if code not in IDX_DTYPES:
        raise DataFormatError(
            path, f"unknown idx element type code 0x{code:02x} in magic number 0x{magic:08x} "
            f"(known: {', '.join(f'0x{c:02x}' for c in IDX_DTYPES)})"
        )
    if ndim == 0:
        raise DataFormatError(path, f"magic number 0x{magic:08x} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataFormatError(
            path, f"file is {len(buf)} bytes, shorter than its {header}-byte header ({ndim} dimensions)"
        )
    shape = tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = header + math.prod(shape) * dtype.itemsize
    if len(buf) != expected:
        kind = "truncated" if len(buf) < expected else "has trailing bytes"
        dims = "x".join(str(s) for s in shape)
        raise DataFormatError(
            path,
            f"expected {expected} bytes ({header}-byte header + {dims} {dtype.name} data), "
            f"found {len(buf)}: the file {kind}",
            fix="re-download the file",
        )
    arr = np.frombuffer(buf, dtype=dtype, offset=header).reshape(shape)
    # astype makes a native-endian, writable copy, which torch.from_numpy needs.
    return torch.from_numpy(arr.astype(dtype.newbyteorder("="), copy=True))


def _find_in(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """(files found, names missing) in ``directory``; an uncompressed file beats its ``.gz``."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, name in MNIST_FILES.items():
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def _check_name(name: str) -> str:
    if name not in TORCHVISION_FOLDERS:
        raise ConfigError(f"data.name={name!r} is not an idx dataset: use one of {sorted(TORCHVISION_FOLDERS)}")
    return TORCHVISION_FOLDERS[name]


def search_dirs(root: str | Path, name: str, system_dirs: Sequence[str | Path] | None = None) -> list[Path]:
    """Directories searched, in order, for dataset ``name`` ("mnist" or "fashion_mnist")."""
    folder = _check_name(name)
    if system_dirs is None:
        system_dirs = [DEBIAN_FASHION_MNIST] if name == "fashion_mnist" else []
    root = Path(root)
    return [root / folder / "raw", root, *(Path(d) for d in system_dirs)]


def _not_found(name: str, dirs: Sequence[Path], partial: dict[Path, list[str]]) -> DataNotFoundError:
    folder = TORCHVISION_FOLDERS[name]
    searched = [str(d) + (f" (has some files, lacks {', '.join(partial[d])})" if d in partial else "") for d in dirs]
    fetch_name = "fashion-mnist" if name == "fashion_mnist" else "mnist"
    get_it = (
        f"python -m infocam_exp.fetch {name} --root {dirs[1]} (or make fetch-{fetch_name} ROOT={dirs[1]}; "
        f"the idx files from the publisher, md5-checked, into {dirs[0]}), or data.download=true (the same fetcher, "
        "into data.root)"
    )
    if name == "fashion_mnist":
        get_it += ", or `apt-get install dataset-fashion-mnist` (installs into /usr/share/datasets/fashion-mnist)"
    return DataNotFoundError(
        what=f"{folder} idx files",
        searched=searched,
        layout=f"<root>/{folder}/raw/{{{','.join(MNIST_FILES.values())}}}[.gz]",
        get_it=get_it,
        override="data.root=/path/containing/" + folder,
    )


def find_mnist_files(
    root: str | Path, name: str, system_dirs: Sequence[str | Path] | None = None
) -> dict[str, Path]:
    """Locate the four idx files of ``name`` ("mnist" or "fashion_mnist").

    Searches, in order, ``<root>/<MNIST|FashionMNIST>/raw/``, ``<root>/`` and ``system_dirs``
    (default: the Debian path for Fashion-MNIST, nothing for MNIST); the first directory that holds
    all four (each raw or ``.gz``) wins.

    Returns:
        ``{"train_images", "train_labels", "test_images", "test_labels"} -> Path``.

    Raises:
        DataNotFoundError: listing the directories searched and what each lacked.
    """
    dirs = search_dirs(root, name, system_dirs)
    partial: dict[Path, list[str]] = {}
    for d in dirs:
        found, missing = _find_in(d)
        if not missing:
            return found
        if found:
            partial[d] = missing
    raise _not_found(name, dirs, partial)


def _download(root: str | Path, name: str) -> None:
    # data.download=true: the same checked download as `python -m infocam_exp.fetch <name>`.
    from infocam_exp import fetch

    log.info("Downloading %s into %s (data.download=true)", name, root)
    fetch.fetch(name, root)


def load_mnist_like(
    root: str | Path,
    name: str,
    download: bool = False,
    system_dirs: Sequence[str | Path] | None = None,
) -> dict[str, torch.Tensor]:
    """Read MNIST or Fashion-MNIST (both official splits) into memory.

    Args:
        root: data root (see ``find_mnist_files`` for the search order).
        name: "mnist" or "fashion_mnist".
        download: if the files are missing, fetch them into ``root`` with ``infocam_exp.fetch``
            (never otherwise).
        system_dirs: extra directories searched last (default: Debian's, for Fashion-MNIST).

    Returns:
        ``train_images`` uint8 (60000, 28, 28), ``train_labels`` int64 (60000,), ``test_images``
        uint8 (10000, 28, 28), ``test_labels`` int64 (10000,) (sizes of the real datasets).

    Raises:
        DataNotFoundError: files missing and ``download`` false.
        DataFormatError: a file that does not parse or does not hold 28x28 uint8 images / labels
            0..9 of matching count.
    """
    try:
        files = find_mnist_files(root, name, system_dirs)
    except DataNotFoundError:
        if not download:
            raise
        _download(root, name)
        files = find_mnist_files(root, name, system_dirs)
    log.info("Reading %s from %s", name, files["train_images"].parent)
    out: dict[str, torch.Tensor] = {}
    for split in ("train", "test"):
        img_path, lab_path = files[f"{split}_images"], files[f"{split}_labels"]
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.dtype != torch.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or images.ndim != 3:
            raise DataFormatError(
                img_path, f"holds {images.dtype} data of shape {tuple(images.shape)}, expected uint8 (N, 28, 28)"
            )
        if labels.dtype != torch.uint8 or labels.ndim != 1:
            raise DataFormatError(
                lab_path, f"holds {labels.dtype} data of shape {tuple(labels.shape)}, expected uint8 (N,)"
            )
        if labels.shape[0] != images.shape[0]:
            raise DataFormatError(
                lab_path, f"has {labels.shape[0]} labels but {img_path.name} has {images.shape[0]} images"
            )
        if labels.numel() and int(labels.max()) > 9:
            bad = int(torch.nonzero(labels > 9)[0])
            raise DataFormatError(lab_path, f"label {int(labels[bad])} at index {bad} is outside 0..9")
        out[f"{split}_images"] = images
        out[f"{split}_labels"] = labels.to(torch.int64)
    return out
