"""``infocam_exp.fetch`` against a loopback HTTP server serving archives generated here in each
release's layout: extraction into the loaders' layout, resume with Range, checksum errors, the
no-op second call, hostile archives, the weights cache, the catalogue and the missing-data
messages. No network."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import re
import stat
import tarfile
import threading
import tokenize
import zipfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import torch

from infocam_exp import fetch as fetch_pkg
from infocam_exp.data.base import DataNotFoundError
from infocam_exp.fetch import (
    DATASETS,
    MARKER,
    WEIGHTS,
    ChecksumError,
    FetchError,
    HostileArchiveError,
    Remote,
    Source,
    fetch,
    fetch_weights,
)
from infocam_exp.fetch.__main__ import main
from tests.fixtures_formats import cyclic_labels, write_cifar, write_mnist_like
from tests.fixtures_wsol import make_cub, make_tiny_imagenet

# --- a loopback server ------------------------------------------------------------------------


class Server:
    """Serves ``files`` (name -> bytes) at ``url``; records (name, Range header) of every request.

    Switches: ``truncate[name] = (offset, times)`` ends the next ``times`` transfers of ``name``
    after byte ``offset`` of the file (the full Content-Length is announced); ``corrupt`` flips
    one byte of the named files; ``ignore_range`` answers 200 with the whole file to Range requests;
    ``omit_length`` sends no Content-Length (the end of the connection ends the file).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.truncate: dict[str, tuple[int, int]] = {}
        self.corrupt: set[str] = set()
        self.ignore_range = False
        self.omit_length = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = unquote(urlparse(self.path).path).lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                if name in server.corrupt:
                    i = len(data) // 2
                    data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                if not server.omit_length:
                    self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                end = len(data)
                if name in server.truncate:
                    offset, times = server.truncate[name]
                    if times > 0:
                        server.truncate[name] = (offset, times - 1)
                        end = max(offset, start)
                self.wfile.write(data[start:end])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def serve(server: Server, spec: Source, data: dict[str, bytes]) -> Source:
    """Put ``data`` on the server and return ``spec`` with those files' sizes and md5s."""
    files = []
    for r in spec.files:
        server.files[r.name] = data[r.name]
        files.append(replace(r, size=len(data[r.name]), checksum="md5:" + hashlib.md5(data[r.name]).hexdigest()))
    return replace(spec, files=tuple(files))


def tar_gz(folder: Path, names: list[str], extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for n in names:
            tar.add(folder / n, arcname=n)
    return buf.getvalue()


def zip_bytes(folder: Path, top: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted((folder / top).rglob("*")):
            zf.write(p, p.relative_to(folder).as_posix())
    return buf.getvalue()


def leftovers(root: Path) -> list[str]:
    """Temporary or partial files left in ``root``."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") or p.name.endswith(".part"))


# --- fixtures in each release layout -------------------------------------------------------------


@pytest.fixture
def cub_served(server: Server, tmp_path: Path) -> Source:
    src = tmp_path / "release"
    make_cub(src, num_classes=2, per_class=3)
    # the real archive also has attributes.txt at its top level, beside CUB_200_2011/
    data = tar_gz(src, ["CUB_200_2011"], extra={"attributes.txt": b"1 has_bill_shape::curved\n"})
    return serve(server, DATASETS["cub"], {"CUB_200_2011.tgz": data})


@pytest.fixture
def cifar_served(server: Server, tmp_path: Path) -> Source:
    src = tmp_path / "release"
    write_cifar(src, cyclic_labels(50), cyclic_labels(20))
    return serve(server, DATASETS["cifar10"], {"cifar-10-python.tar.gz": tar_gz(src, ["cifar-10-batches-py"])})


def test_cub_lands_where_the_loader_reads_and_second_call_is_a_noop(server, cub_served, tmp_path):
    from infocam_exp.data.cub import find_cub_root, read_cub

    root = tmp_path / "data"
    result = fetch(cub_served, root, base_url=server.url, retry_wait=0)
    assert result.downloaded == ("CUB_200_2011.tgz",)
    assert find_cub_root(root / "CUB_200_2011") == root / "CUB_200_2011"
    ann = read_cub(root / "CUB_200_2011")
    assert ann.num_classes == 2 and len(ann.images) == 6
    assert (root / "attributes.txt").read_bytes() == b"1 has_bill_shape::curved\n"
    assert (root / "CUB_200_2011" / MARKER).is_file()
    assert not (root / "CUB_200_2011.tgz").exists() and leftovers(root) == []
    assert server.requests == [("CUB_200_2011.tgz", None)]

    again = fetch(cub_served, root, base_url=server.url, retry_wait=0)
    assert again.downloaded == () and "nothing downloaded" in again.note
    assert len(server.requests) == 1  # no request at all


def test_tiny_imagenet_zip(server, tmp_path):
    from infocam_exp.data.tiny_imagenet import read_tiny_imagenet

    src = tmp_path / "release"
    make_tiny_imagenet(src, num_classes=2, train_per_class=2, val_per_class=2)
    spec = serve(server, DATASETS["tiny_imagenet"], {"tiny-imagenet-200.zip": zip_bytes(src, "tiny-imagenet-200")})
    root = tmp_path / "data"
    fetch(spec, root, base_url=server.url, retry_wait=0)
    wnids, _, train, val = read_tiny_imagenet(root / "tiny-imagenet-200")
    assert len(wnids) == 2 and len(train) == 4 and len(val) == 4
    assert leftovers(root) == []


def test_cifar_tarball(server, cifar_served, tmp_path):
    from infocam_exp.data.cifar import load_cifar

    root = tmp_path / "data"
    fetch(cifar_served, root, base_url=server.url, keep_archive=True, retry_wait=0)
    data = load_cifar(root, "cifar10")
    assert data["train_labels"].tolist() == cyclic_labels(50).tolist()
    assert (root / "cifar-10-python.tar.gz").is_file()  # --keep-archive
    fetch(cifar_served, root, base_url=server.url)
    assert len(server.requests) == 1


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_files(server, tmp_path, name):
    from infocam_exp.data.idx import load_mnist_like

    src = write_mnist_like(tmp_path / "release", cyclic_labels(30), name=name)
    spec = serve(server, DATASETS[name], {r.name: (src / r.name).read_bytes() for r in DATASETS[name].files})
    root = tmp_path / "data"
    result = fetch(spec, root, base_url=server.url, retry_wait=0)
    assert len(result.downloaded) == 4
    data = load_mnist_like(root, name, system_dirs=[])
    assert data["train_labels"].tolist() == cyclic_labels(30).tolist()
    n = len(server.requests)
    assert fetch(spec, root, base_url=server.url).downloaded == () and len(server.requests) == n


def test_base_url_from_the_environment(server, cifar_served, tmp_path, monkeypatch):
    monkeypatch.setenv(fetch_pkg.BASE_URL_ENV, server.url + "/")
    fetch(cifar_served, tmp_path / "data", retry_wait=0)
    assert server.requests == [("cifar-10-python.tar.gz", None)]


# --- interrupted, corrupted --------------------------------------------------------------------


def test_truncated_transfer_resumes_with_range_in_the_same_call(server, cub_served, tmp_path):
    from infocam_exp.data.cub import read_cub

    cut = cub_served.files[0].size // 3
    server.truncate["CUB_200_2011.tgz"] = (cut, 1)
    root = tmp_path / "data"
    fetch(cub_served, root, base_url=server.url, retry_wait=0)
    assert server.requests == [("CUB_200_2011.tgz", None), ("CUB_200_2011.tgz", f"bytes={cut}-")]
    assert len(read_cub(root / "CUB_200_2011").images) == 6


def test_interrupted_call_keeps_the_part_file_and_the_next_call_resumes(server, cub_served, tmp_path):
    from infocam_exp.data.cub import read_cub

    size = cub_served.files[0].size
    cut = size // 2
    server.truncate["CUB_200_2011.tgz"] = (cut, 1)
    root = tmp_path / "data"
    with pytest.raises(FetchError, match="Run the same command again to resume"):
        fetch(cub_served, root, base_url=server.url, retries=0)
    part = root / "CUB_200_2011.tgz.part"
    assert part.stat().st_size == cut and not (root / "CUB_200_2011").exists()
    fetch(cub_served, root, base_url=server.url, retries=0)
    assert server.requests[-1] == ("CUB_200_2011.tgz", f"bytes={cut}-")
    assert len(read_cub(root / "CUB_200_2011").images) == 6 and leftovers(root) == []


def test_server_that_ignores_range_is_read_from_the_start(server, cifar_served, tmp_path):
    from infocam_exp.data.cifar import load_cifar

    server.truncate["cifar-10-python.tar.gz"] = (100, 1)
    server.ignore_range = True
    root = tmp_path / "data"
    fetch(cifar_served, root, base_url=server.url, retry_wait=0)
    assert [r[1] for r in server.requests] == [None, "bytes=100-"]
    assert len(load_cifar(root, "cifar10")["train_labels"]) == 50


def test_corrupted_archive_names_file_expected_and_got_and_leaves_nothing(server, cub_served, tmp_path):
    server.corrupt.add("CUB_200_2011.tgz")
    good = cub_served.files[0].digest
    data = bytearray(server.files["CUB_200_2011.tgz"])
    data[len(data) // 2] ^= 0xFF
    bad = hashlib.md5(bytes(data)).hexdigest()
    root = tmp_path / "data"
    with pytest.raises(ChecksumError) as err:
        fetch(cub_served, root, base_url=server.url, retry_wait=0)
    msg = str(err.value)
    assert "CUB_200_2011.tgz" in msg and f"expected {good}, got {bad}" in msg and "was deleted" in msg
    assert list(root.iterdir()) == []  # no part file, no archive, no folder, no temp folder


def test_unannounced_extra_bytes_are_refused(server, cifar_served, tmp_path):
    server.omit_length = True
    server.files["cifar-10-python.tar.gz"] += b"trailing junk"
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match=f"size mismatch: expected {cifar_served.files[0].size} bytes, got more"):
        fetch(cifar_served, root, base_url=server.url, retry_wait=0)
    assert list(root.iterdir()) == []


def test_cli_wrong_size_from_the_real_catalogue(server, tmp_path, capsys):
    server.files["cifar-10-python.tar.gz"] = b"not the published file"
    root = tmp_path / "data"
    code = main(["cifar10", "--root", str(root), "--base-url", server.url])
    err = capsys.readouterr().err
    assert code == 1
    assert "cifar-10-python.tar.gz: size mismatch: expected 170498071 bytes, got 22 bytes" in err
    assert list(root.iterdir()) == []


# --- hostile archives ------------------------------------------------------------------------------


def _tar_with(members: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ok = tarfile.TarInfo("CUB_200_2011/images.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"x\n"))  # a harmless member first: it must not be written either
        for m in members:
            tar.addfile(m, io.BytesIO(b"evil") if m.isfile() else None)
    return buf.getvalue()


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 4
    return info


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def _zip_with(name: str, content: bytes = b"evil", symlink: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tiny-imagenet-200/wnids.txt", "n0\n")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, content)
    return buf.getvalue()


@pytest.mark.parametrize(
    "kind,payload,why",
    [
        ("cub", lambda out: _tar_with([_file("../x")]), "points outside"),
        ("cub", lambda out: _tar_with([_file(str(out / "x"))]), "points outside"),
        ("cub", lambda out: _tar_with([_link("CUB_200_2011/l", "../../x")]), "points outside"),
        ("cub", lambda out: _tar_with([_link("CUB_200_2011/l", str(out))]), "points outside"),
        ("cub", lambda out: _tar_with([_link("CUB_200_2011/l", "."), _file("CUB_200_2011/l/y")]), "symbolic link"),
        ("tiny_imagenet", lambda out: _zip_with("../x"), "points outside"),
        ("tiny_imagenet", lambda out: _zip_with(str(out / "x")), "points outside"),
        ("tiny_imagenet", lambda out: _zip_with("tiny-imagenet-200/l", b"../../x", symlink=True), "points outside"),
    ],
    ids=["tar-dotdot", "tar-absolute", "tar-symlink-out", "tar-symlink-absolute", "tar-through-symlink",
         "zip-dotdot", "zip-absolute", "zip-symlink-out"],
)
def test_hostile_archive_is_refused_before_anything_is_written(server, tmp_path, kind, payload, why):
    outside = tmp_path / "outside"
    outside.mkdir()
    spec = DATASETS[kind]
    data = payload(outside)
    served = serve(server, spec, {spec.files[0].name: data})
    root = tmp_path / "data"
    with pytest.raises(HostileArchiveError, match=why):
        fetch(served, root, base_url=server.url, keep_archive=True, retry_wait=0)
    assert list(root.iterdir()) == []  # nothing extracted, no temp folder, the archive deleted
    assert list(outside.iterdir()) == [] and not (tmp_path / "x").exists()


# --- existing folders ---------------------------------------------------------------------------


def test_changed_folder_is_not_silently_overwritten(server, cifar_served, tmp_path):
    root = tmp_path / "data"
    fetch(cifar_served, root, base_url=server.url, retry_wait=0)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FetchError, match="lacks data_batch_3.*--force"):
        fetch(cifar_served, root, base_url=server.url)
    assert len(server.requests) == 1
    fetch(cifar_served, root, base_url=server.url, force=True, retry_wait=0)
    assert (root / "cifar-10-batches-py" / "data_batch_3").is_file() and leftovers(root) == []


def test_folder_extracted_by_hand_is_left_alone(server, cifar_served, tmp_path):
    root = tmp_path / "data"
    write_cifar(root, cyclic_labels(10), cyclic_labels(10))
    result = fetch(cifar_served, root, base_url=server.url)
    assert result.downloaded == () and "not fetched by this tool" in result.note and server.requests == []


# --- weights -----------------------------------------------------------------------------------------


def _fake_weights(tmp_path: Path) -> tuple[Remote, bytes]:
    buf = io.BytesIO()
    torch.save({"w": torch.arange(6.0)}, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    return Remote(f"fake-{sha[:8]}.pth", ("http://unused/",), len(data), f"sha256:{sha}", "test"), data


def test_weights_go_to_the_torch_hub_cache(server, tmp_path, monkeypatch):
    from infocam_exp.models.pretrained import hub_checkpoint_dir

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    remote, data = _fake_weights(tmp_path)
    server.files[remote.name] = data
    result = fetch_weights(remotes=[remote], base_url=server.url, retry_wait=0)
    assert result.path == tmp_path / "torch" / "hub" / "checkpoints" == hub_checkpoint_dir()
    assert torch.load(result.path / remote.name, weights_only=True)["w"].tolist() == [0, 1, 2, 3, 4, 5]
    assert fetch_weights(remotes=[remote], base_url=server.url).downloaded == () and len(server.requests) == 1


def test_weights_name_must_carry_the_sha256_prefix(server, tmp_path):
    remote, data = _fake_weights(tmp_path)
    wrong = replace(remote, name="fake-00000000.pth")
    server.files[wrong.name] = data
    with pytest.raises(ChecksumError, match="sha256 prefix"):
        fetch_weights(remotes=[wrong], dest=tmp_path / "w", base_url=server.url)
    assert server.requests == []


def test_existing_wrong_weights_file_is_named_not_replaced(server, tmp_path):
    remote, data = _fake_weights(tmp_path)
    server.files[remote.name] = data
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / remote.name).write_bytes(b"junk")
    with pytest.raises(FetchError, match=f"{remote.name}: size mismatch: expected {len(data)} bytes, got 4 bytes.*--force"):
        fetch_weights(remotes=[remote], dest=tmp_path / "w", base_url=server.url)
    fetch_weights(remotes=[remote], dest=tmp_path / "w", base_url=server.url, force=True)
    assert (tmp_path / "w" / remote.name).read_bytes() == data


# --- the catalogue ------------------------------------------------------------------------------


def test_catalogue_agrees_with_torchvision_and_the_loaders():
    from torchvision import datasets, models

    from infocam_exp.data import idx
    from infocam_exp.data.cifar import CIFAR_SPECS
    from infocam_exp.data.cub import CUB_DIRNAME
    from infocam_exp.data.tiny_imagenet import TINY_DIRNAME

    for key, tv in (("cifar10", datasets.CIFAR10), ("cifar100", datasets.CIFAR100)):
        r = DATASETS[key].files[0]
        assert (r.urls[0], r.name, r.checksum) == (tv.url, tv.filename, "md5:" + tv.tgz_md5)
        assert DATASETS[key].target == tv.base_folder == CIFAR_SPECS[key].folder
        spec = CIFAR_SPECS[key]
        assert set(DATASETS[key].required) == {*spec.train_files, *spec.test_files, spec.meta_file}
    for key, tv in (("mnist", datasets.MNIST), ("fashion_mnist", datasets.FashionMNIST)):
        assert [(r.name, r.checksum) for r in DATASETS[key].files] == [(n, "md5:" + m) for n, m in tv.resources]
        assert DATASETS[key].target == f"{idx.TORCHVISION_FOLDERS[key]}/raw"
        assert {r.name for r in DATASETS[key].files} == {f"{n}.gz" for n in idx.MNIST_FILES.values()}
        assert all(any(u == m + r.name for m in tv.mirrors) for r in DATASETS[key].files for u in r.urls[1:] or r.urls)
    assert DATASETS["cub"].target == CUB_DIRNAME and DATASETS["tiny_imagenet"].target == TINY_DIRNAME
    tv_weights = {
        "vgg16": models.VGG16_Weights.IMAGENET1K_V1,
        "resnet50": models.ResNet50_Weights.IMAGENET1K_V1,
        "inception_v3": models.Inception_V3_Weights.IMAGENET1K_V1,
    }
    for key, r in WEIGHTS.items():
        w = tv_weights[key]
        assert r.urls == (w.url,) and r.name == w.url.rsplit("/", 1)[1]
        assert r.digest.startswith(r.name.rsplit("-", 1)[1].split(".")[0])  # torch.hub's prefix
        assert abs(r.size / 2**20 - w.meta["_file_size"]) < 6e-4  # torchvision's MiB, 3 decimals
    for spec in DATASETS.values():
        for r in spec.files:
            assert len(r.digest) == {"md5": 32, "sha256": 64}[r.algorithm] and int(r.digest, 16) >= 0


def test_default_root_is_paths_data_dir(cfg_factory, tmp_path, monkeypatch):
    assert fetch_pkg.default_root() == Path(cfg_factory().paths.data_dir) == tmp_path / "data"
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path / "elsewhere"))
    assert fetch_pkg.default_root() == Path(cfg_factory().paths.data_dir) == tmp_path / "elsewhere"


# --- the missing-data messages name the command -------------------------------------------------


def test_missing_data_messages_name_the_fetch_command(tmp_path):
    from infocam_exp.data.cifar import find_cifar_dir
    from infocam_exp.data.cub import find_cub_root
    from infocam_exp.data.idx import find_mnist_files
    from infocam_exp.data.tiny_imagenet import find_tiny_root

    cases = [
        (lambda: find_cub_root(tmp_path), "python -m infocam_exp.fetch cub --root", "make fetch-cub"),
        (lambda: find_tiny_root(tmp_path), "python -m infocam_exp.fetch tiny_imagenet --root", "make fetch-tiny-imagenet"),
        (lambda: find_cifar_dir(tmp_path, "cifar100"), f"python -m infocam_exp.fetch cifar100 --root {tmp_path}",
         "make fetch-cifar100"),
        (lambda: find_mnist_files(tmp_path, "mnist"), f"python -m infocam_exp.fetch mnist --root {tmp_path}",
         "make fetch-mnist"),
        (lambda: find_mnist_files(tmp_path, "fashion_mnist", system_dirs=[]),
         f"python -m infocam_exp.fetch fashion_mnist --root {tmp_path}", "make fetch-fashion-mnist"),
    ]
    for call, command, target in cases:
        with pytest.raises(DataNotFoundError) as err:
            call()
        assert command in str(err.value) and target in str(err.value)


def test_makefile_has_a_fetch_target_for_every_source():
    text = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    for key in [*DATASETS, "weights"]:
        assert f"\nfetch-{key.replace('_', '-')}:" in text


def test_gz_fixture_files_are_gzip(tmp_path):
    # the idx fixture must be served as the published .gz files are (gzip streams)
    src = write_mnist_like(tmp_path, cyclic_labels(3))
    assert gzip.decompress((src / "t10k-labels-idx1-ubyte.gz").read_bytes())[:4] == np.array([0, 0, 8, 1], np.uint8).tobytes()


# --- nothing else downloads ----------------------------------------------------------------------

_DOWNLOAD_CALLS = re.compile(
    r"urlopen|urlretrieve|urllib\.request|requests\.(get|post)|http\.client|download_url|load_state_dict_from_url"
    r"|hub\.load\b|get_state_dict\(|hf_hub_download|snapshot_download|download=True"
    r"|weights=([\w.]*_Weights\.|['\"](IMAGENET|DEFAULT))"  # a torchvision constructor given weights downloads
)
_WEIGHTS_NAME = re.compile(r"""^['"](IMAGENET1K_V\d|DEFAULT)['"]$""")


def _code_without_strings(path: Path) -> str:
    """The tokens of ``path`` joined without spaces; comments and string literals removed, except
    a weights name ("IMAGENET1K_V1", "DEFAULT") as torchvision's constructors take it."""
    out = []
    with open(path, "rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type == tokenize.STRING and not _WEIGHTS_NAME.match(tok.string):
                continue
            if tok.type not in (tokenize.COMMENT, tokenize.ENCODING):
                out.append(tok.string)
    return "".join(out)


def test_no_code_path_outside_the_fetcher_downloads():
    repo = Path(__file__).resolve().parent.parent
    offenders = []
    for path in sorted([*(repo / "infocam_exp").rglob("*.py"), *(repo / "scripts").rglob("*.py")]):
        if "fetch" in path.relative_to(repo).parts[:2]:
            continue
        for m in _DOWNLOAD_CALLS.finditer(_code_without_strings(path)):
            offenders.append(f"{path.relative_to(repo)}: {m.group(0)}")
    assert offenders == []
    # the check itself sees such calls
    probe = repo / "infocam_exp" / "fetch" / "download.py"
    assert _DOWNLOAD_CALLS.search(_code_without_strings(probe))


def test_progress_is_plain_log_lines_when_stdout_is_not_a_terminal(server, tmp_path, caplog):
    data = bytes(range(256)) * (3 * 2**20 // 256)  # 3 MiB: three 1 MiB reads
    remote = Remote("blob.bin", ("http://unused/",), len(data), "md5:" + hashlib.md5(data).hexdigest(), "test")
    server.files["blob.bin"] = data
    spec = Source("blob", "a blob", "files", "blob", (remote,))
    with caplog.at_level("INFO", logger="infocam_exp.fetch"):
        fetch(spec, tmp_path / "data", base_url=server.url)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("blob.bin: ")]
    assert [line.split("(")[1].split(")")[0] for line in lines] == ["33%", "66%", "100%"]
