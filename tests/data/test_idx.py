"""idx reading and MNIST file discovery on generated files in the real format."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from infocam_exp.data.base import DataFormatError, DataNotFoundError
from infocam_exp.data.idx import (
    MNIST_FILES,
    find_mnist_files,
    load_mnist_like,
    read_idx,
)
from tests.conftest import needs_fashion_mnist

try:
    from tests.fixtures_formats import (
        cyclic_labels,
        decode_index,
        idx_bytes,
        write_idx,
        write_mnist_like,
    )
except ImportError:  # tests/ on sys.path (pytest rootdir-relative import)
    from fixtures_formats import cyclic_labels, decode_index, idx_bytes, write_idx, write_mnist_like


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_roundtrip_uint8(tmp_path: Path, suffix: str) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    t = read_idx(write_idx(tmp_path / f"a-idx3-ubyte{suffix}", arr))
    assert t.dtype == torch.uint8 and t.shape == (2, 3, 4)
    assert torch.equal(t, torch.from_numpy(arr))


def test_read_idx_header_by_hand(tmp_path: Path) -> None:
    # magic 0x00000801 (uint8, 1 dim), N = 3, then the bytes 7 8 9
    path = tmp_path / "labels"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    assert read_idx(path).tolist() == [7, 8, 9]


@pytest.mark.parametrize("dtype", ["i2", "i4", "f4", "f8"])
def test_read_idx_big_endian_types(tmp_path: Path, dtype: str) -> None:
    arr = (np.arange(6) * 300 - 700).astype(dtype).reshape(2, 3)
    t = read_idx(write_idx(tmp_path / "x", arr))
    assert t.shape == (2, 3)
    np.testing.assert_array_equal(t.numpy(), arr)


def test_truncated_idx_names_file_and_sizes(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data[:1000])
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte.*expected 3936 bytes.*found 1000.*truncated"):
        read_idx(path)


def test_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "lab"
    path.write_bytes(idx_bytes(np.zeros(4, np.uint8)) + b"xx")
    with pytest.raises(DataFormatError, match="lab: expected 12 bytes.*found 14.*trailing"):
        read_idx(path)


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(b"<html>not idx</html>")
    with pytest.raises(DataFormatError, match=r"page.html: bad magic number 0x3c68746d"):
        read_idx(path)


def test_unknown_type_code_and_short_files(tmp_path: Path) -> None:
    bad_code = tmp_path / "code"
    bad_code.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 0]))
    with pytest.raises(DataFormatError, match="code: unknown idx element type code 0x07"):
        read_idx(bad_code)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(DataFormatError, match="tiny: file is 2 bytes"):
        read_idx(tiny)
    short_header = tmp_path / "hdr"
    short_header.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataFormatError, match="hdr: .*16-byte header"):
        read_idx(short_header)


def test_corrupt_and_truncated_gzip(tmp_path: Path) -> None:
    not_gz = tmp_path / "x-idx1-ubyte.gz"
    not_gz.write_bytes(b"plain bytes, not gzip")
    with pytest.raises(DataFormatError, match="x-idx1-ubyte.gz: not a valid gzip file"):
        read_idx(not_gz)
    cut = tmp_path / "y-idx1-ubyte.gz"
    cut.write_bytes(gzip.compress(idx_bytes(np.arange(5000, dtype=np.uint8) % 7))[:40])
    with pytest.raises(DataFormatError, match="y-idx1-ubyte.gz: truncated gzip"):
        read_idx(cut)


@pytest.mark.parametrize("layout", ["torchvision", "flat"])
@pytest.mark.parametrize("gz", [True, False])
def test_find_and_load_layouts(tmp_path: Path, layout: str, gz: bool) -> None:
    directory = write_mnist_like(tmp_path, cyclic_labels(30), cyclic_labels(12), layout=layout, gz=gz)
    files = find_mnist_files(tmp_path, "mnist")
    assert {p.parent for p in files.values()} == {directory}
    assert files["train_images"].name == MNIST_FILES["train_images"] + (".gz" if gz else "")
    data = load_mnist_like(tmp_path, "mnist")
    assert data["train_images"].shape == (30, 28, 28) and data["train_images"].dtype == torch.uint8
    assert data["train_labels"].dtype == torch.int64
    assert data["train_labels"].tolist() == cyclic_labels(30).tolist()
    assert decode_index(data["test_images"].numpy()).tolist() == list(range(12))


def test_torchvision_layout_searched_first_and_raw_beats_gz(tmp_path: Path) -> None:
    write_mnist_like(tmp_path, cyclic_labels(10), layout="flat")
    tv = write_mnist_like(tmp_path, cyclic_labels(20), name="fashion_mnist", gz=True)
    write_mnist_like(tmp_path, cyclic_labels(20), name="fashion_mnist", gz=False)
    files = find_mnist_files(tmp_path, "fashion_mnist", system_dirs=[])
    assert files["train_labels"] == tv / "train-labels-idx1-ubyte"
    assert find_mnist_files(tmp_path, "mnist")["train_labels"].parent == tmp_path


def test_missing_files_message(tmp_path: Path) -> None:
    directory = write_mnist_like(tmp_path, cyclic_labels(10))
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError) as err:
        find_mnist_files(tmp_path, "mnist")
    msg = str(err.value)
    assert "MNIST idx files not found" in msg
    assert f"{directory} (has some files, lacks t10k-labels-idx1-ubyte)" in msg
    assert str(tmp_path) in msg and "data.download=true" in msg and "data.root=" in msg


def test_fashion_message_names_debian_package(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        find_mnist_files(tmp_path, "fashion_mnist", system_dirs=[tmp_path / "nowhere"])


def test_no_download_without_asking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import infocam_exp.data.idx as idx

    def fail(*args: object) -> None:
        raise AssertionError("downloaded without data.download=true")

    monkeypatch.setattr(idx, "_download", fail)
    with pytest.raises(DataNotFoundError):
        load_mnist_like(tmp_path, "mnist")


def test_download_calls_the_fetcher_then_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infocam_exp import fetch

    calls = []

    def fake_fetch(name: str, root: str) -> None:
        calls.append((name, root))
        write_mnist_like(root, cyclic_labels(10))

    monkeypatch.setattr(fetch, "fetch", fake_fetch)
    data = load_mnist_like(tmp_path, "mnist", download=True)
    assert calls == [("mnist", tmp_path)]
    assert len(data["train_labels"]) == 10


def test_bad_contents_name_the_file(tmp_path: Path) -> None:
    directory = write_mnist_like(tmp_path, cyclic_labels(10))
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.array([0, 1, 12, 3, 4, 5, 6, 7, 8, 9], np.uint8))
    with pytest.raises(DataFormatError, match="train-labels-idx1-ubyte.gz: label 12 at index 2"):
        load_mnist_like(tmp_path, "mnist")
    write_idx(directory / "train-labels-idx1-ubyte.gz", cyclic_labels(9))
    with pytest.raises(DataFormatError, match="has 9 labels but train-images-idx3-ubyte.gz has 10"):
        load_mnist_like(tmp_path, "mnist")
    write_idx(directory / "train-images-idx3-ubyte.gz", np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte.gz: .*\(10, 32, 32\)"):
        load_mnist_like(tmp_path, "mnist")


@needs_fashion_mnist
def test_real_fashion_mnist_files() -> None:
    data = load_mnist_like("/nonexistent-root", "fashion_mnist")
    assert data["train_images"].shape == (60000, 28, 28)
    assert data["test_images"].shape == (10000, 28, 28)
    assert torch.bincount(data["train_labels"]).tolist() == [6000] * 10
