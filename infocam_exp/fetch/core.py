"""Fetch a dataset or weights into the layout the loaders read; a no-op when it is already there."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infocam_exp.fetch.archive import check_archive, extract, tree_stats
from infocam_exp.fetch.download import ChecksumError, FetchError, download, file_digest, verify_file
from infocam_exp.fetch.sources import BASE_URL_ENV, DATASETS, WEIGHTS, Remote, Source

log = logging.getLogger(__name__)

#: Written into ``<root>/<target>/`` after an extraction: the archive's checksum and the tree's
#: file count and size, checked (with the required files) before a later call does nothing.
MARKER = ".infocam-fetch.json"


@dataclass(frozen=True)
class Result:
    """What a fetch did: ``path`` (the folder the loaders read), ``downloaded`` (file names
    transferred by this call; empty for a no-op) and ``note`` (one line for the user)."""

    path: Path
    downloaded: tuple[str, ...]
    note: str


def default_root() -> Path:
    """``paths.data_dir`` as configs/paths/default.yaml resolves it: ``$INFOCAM_DATA``, else
    ``${INFOCAM_ROOT:-.}/data``."""
    data = os.environ.get("INFOCAM_DATA")
    if data:
        return Path(data)
    return Path(os.environ.get("INFOCAM_ROOT", ".")) / "data"


def weights_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``), where torchvision
    and ``infocam_exp.models.pretrained`` look for weight files."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _urls(remote: Remote, base_url: str | None) -> tuple[str, ...]:
    base = base_url if base_url is not None else os.environ.get(BASE_URL_ENV) or None
    if base:
        return (base.rstrip("/") + "/" + remote.name,)
    return remote.urls


def source(name: str) -> Source:
    """The dataset ``name`` (a key of ``DATASETS``); a clear error listing them otherwise."""
    if name not in DATASETS:
        raise FetchError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} (or 'weights')")
    return DATASETS[name]


def fetch(
    name: str | Source,
    root: str | Path | None = None,
    *,
    base_url: str | None = None,
    force: bool = False,
    keep_archive: bool = False,
    retries: int = 3,
    retry_wait: float = 2.0,
) -> Result:
    """Download dataset ``name`` into ``root`` in the layout its loader reads.

    Args:
        name: "cub", "tiny_imagenet", "cifar10", "cifar100", "mnist", "fashion_mnist", or a
            ``Source`` (e.g. one with other files, for a mirror holding other releases).
        root: the data root (``paths.data_dir``); default ``default_root()``.
        base_url: fetch every file from ``<base_url>/<file name>`` instead of the publishers'
            addresses (default: ``$INFOCAM_FETCH_BASE_URL`` if set).
        force: replace a folder or file that is there but does not check out.
        keep_archive: keep the downloaded archive beside the extracted folder.
        retries, retry_wait: resumes of an interrupted transfer within this call, and the wait.

    Returns:
        A ``Result``; ``downloaded`` is empty when everything was already there and correct.

    Raises:
        ChecksumError: a file's size or checksum differs (the partial file is deleted).
        HostileArchiveError: an archive member would land outside the target (nothing extracted).
        FetchError: anything else, with what to do.
    """
    spec = name if isinstance(name, Source) else source(name)
    root = Path(root).expanduser() if root is not None else default_root()
    root.mkdir(parents=True, exist_ok=True)
    if spec.kind == "files":
        return _fetch_files(spec.title, spec.files, root / spec.target, base_url, force, retries, retry_wait)
    return _fetch_archive(spec, root, base_url, force, keep_archive, retries, retry_wait)


def fetch_weights(
    models: Sequence[str] | None = None,
    dest: str | Path | None = None,
    *,
    base_url: str | None = None,
    force: bool = False,
    retries: int = 3,
    retry_wait: float = 2.0,
    remotes: Sequence[Remote] | None = None,
) -> Result:
    """Download torchvision's ImageNet weights (``models``: keys of ``WEIGHTS``, default all) into
    ``dest`` (default ``weights_dir()``, where torchvision's hub cache keeps them).

    Each file must have the published size and sha256, and its sha256 must start with the hex
    digits after the last ``-`` of its name (torch.hub's own hash-prefix check). ``remotes``
    replaces the catalogue (other files, for a mirror).
    """
    if remotes is None:
        unknown = [m for m in models or () if m not in WEIGHTS]
        if unknown:
            raise FetchError(f"unknown weights {unknown}; choose from {', '.join(WEIGHTS)}")
        remotes = [WEIGHTS[m] for m in (models or WEIGHTS)]
    for r in remotes:
        _check_hash_prefix(r.name, r.digest if r.algorithm == "sha256" else None)
    folder = Path(dest).expanduser() if dest is not None else weights_dir()
    result = _fetch_files("ImageNet weights", tuple(remotes), folder, base_url, force, retries, retry_wait)
    for r in remotes:
        if r.algorithm != "sha256":  # the pinned sha256 was checked against the name above
            _check_hash_prefix(r.name, file_digest(folder / r.name, "sha256"))
    return result


def _check_hash_prefix(filename: str, sha256: str | None) -> None:
    """torch.hub's rule: the hex digits after the last ``-`` of the name start the file's sha256."""
    from torch.hub import HASH_REGEX

    m = HASH_REGEX.search(filename)
    if m is None:
        raise FetchError(f"{filename}: no hash prefix in the name (torch.hub expects <name>-<sha256 prefix>.pth)")
    if sha256 is not None and not sha256.startswith(m.group(1)):
        raise ChecksumError(filename, "sha256 prefix (torch.hub)", m.group(1), sha256[: len(m.group(1))])


# --- plain files (idx, weights) --------------------------------------------------------------


def _fetch_files(
    title: str, remotes: Sequence[Remote], folder: Path, base_url: str | None, force: bool, retries: int, retry_wait: float
) -> Result:
    folder.mkdir(parents=True, exist_ok=True)
    todo: list[Remote] = []
    for r in remotes:
        path = folder / r.name
        if not path.exists():
            todo.append(r)
            continue
        try:
            verify_file(path, r)
        except ChecksumError as e:
            if not force:
                raise FetchError(f"{e}. It is not the published file; delete it or pass --force to replace it") from None
            log.warning("%s; replacing it (--force)", e)
            todo.append(r)
    if not todo:
        note = f"{title}: already in {folder}, sizes and checksums correct; nothing downloaded"
        log.info(note)
        return Result(folder, (), note)
    for r in todo:
        download(r, folder / r.name, _urls(r, base_url), retries=retries, retry_wait=retry_wait)
    note = f"{title}: {', '.join(r.name for r in todo)} downloaded into {folder} and checked"
    log.info(note)
    return Result(folder, tuple(r.name for r in todo), note)


# --- archives (CUB, Tiny-ImageNet, CIFAR) -----------------------------------------------------


def layout_problems(spec: Source, target: Path) -> list[str]:
    """What ``target`` lacks of ``spec.required`` (empty: the layout checks out)."""
    problems = []
    for rel in spec.required:
        p = target / rel.rstrip("/")
        if not (p.is_dir() if rel.endswith("/") else p.is_file()):
            problems.append(f"lacks {rel}")
    return problems


def _state(spec: Source, target: Path) -> tuple[str, str]:
    """("ok" | "foreign" | "bad" | "absent", detail) for an existing or absent target folder."""
    if not target.exists():
        return "absent", ""
    problems = layout_problems(spec, target)
    marker = target / MARKER
    if not marker.is_file():
        if problems:
            return "bad", "; ".join(problems)
        return "foreign", "not fetched by this tool (no marker); its files were not checked against the archive"
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError) as e:
        return "bad", f"unreadable marker {marker} ({e})"
    archive = spec.files[0]
    if meta.get("checksum") != archive.checksum:
        return "bad", f"extracted from another archive ({meta.get('checksum')}, expected {archive.checksum})"
    if problems:
        return "bad", "; ".join(problems)
    files, size = tree_stats(target, skip=MARKER)
    if (files, size) != (meta.get("files"), meta.get("bytes")):
        return "bad", (f"has {files} files / {size} bytes, the archive gave {meta.get('files')} files / "
                       f"{meta.get('bytes')} bytes (files added, removed or changed since)")
    return "ok", ""


def _fetch_archive(
    spec: Source, root: Path, base_url: str | None, force: bool, keep: bool, retries: int, retry_wait: float
) -> Result:
    archive = spec.files[0]
    target = root / spec.target
    state, detail = _state(spec, target)
    if state == "ok":
        note = f"{spec.title}: already in {target} and matches {archive.name} ({archive.checksum}); nothing downloaded"
        log.info(note)
        return Result(target, (), note)
    if state == "foreign" and not force:
        note = f"{spec.title}: {target} is there with the expected files, {detail}; nothing downloaded (--force re-fetches)"
        log.warning(note)
        return Result(target, (), note)
    if state == "bad" and not force:
        raise FetchError(f"{spec.title}: {target} exists but {detail}. Move it away, or pass --force to replace it")
    path = root / archive.name
    downloaded: tuple[str, ...] = ()
    if path.exists():
        try:
            verify_file(path, archive)
            log.info("%s: using the archive already in %s (size and %s correct)", archive.name, root, archive.algorithm)
        except ChecksumError as e:
            log.warning("%s; downloading it again", e)
            path.unlink()
    if not path.exists():
        download(archive, path, _urls(archive, base_url), retries=retries, retry_wait=retry_wait)
        downloaded = (archive.name,)
    _install(spec, path, root, target)
    if not keep:
        path.unlink()
    note = f"{spec.title}: {archive.name} checked ({archive.checksum}) and extracted into {target}"
    log.info(note)
    return Result(target, downloaded, note)


def _install(spec: Source, path: Path, root: Path, target: Path) -> None:
    """Check ``path``'s members, extract it beside ``target``, check the layout, then rename into place."""
    archive = spec.files[0]
    try:
        tops = check_archive(path, root / f".{spec.key}.extracting")  # checked for a folder beside the target
    except Exception:
        path.unlink()  # a hostile or unreadable archive is not kept, even with --keep-archive
        raise
    if spec.target.split("/")[0] not in tops:
        path.unlink()
        raise FetchError(f"{archive.name}: has no {spec.target}/ at its top level (it has {tops[:5]}); not the expected release. Deleted it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.key}.extracting-", dir=root))
    try:
        log.info("%s: extracting into %s", archive.name, tmp)
        extract(path, tmp)
        new = tmp / spec.target
        problems = layout_problems(spec, new)
        if problems:
            raise FetchError(f"{archive.name}: the extracted {spec.target}/ {'; '.join(problems)}; not the expected release")
        files, size = tree_stats(new)
        meta = {"archive": archive.name, "checksum": archive.checksum, "size": archive.size, "files": files,
                "bytes": size, "fetched_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (new / MARKER).write_text(json.dumps(meta, indent=1) + "\n")
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{spec.key}.replaced-", dir=root))
            os.replace(target, old / "old")
        os.replace(new, target)
        if old is not None:
            shutil.rmtree(old)
        for extra in sorted(tmp.iterdir()):  # other top-level entries of the release (CUB: attributes.txt)
            dest = root / extra.name
            if dest.exists():
                log.warning("%s: left out %s (%s already exists)", archive.name, extra.name, dest)
            else:
                os.replace(extra, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
