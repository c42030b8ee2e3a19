"""Resumable HTTP download of one file into ``<dest>.part``, checked before it is renamed to ``dest``.

An interrupted transfer leaves ``<dest>.part``; the next attempt (in the same call, up to
``retries`` times, or a later call) asks for the rest with an HTTP ``Range`` header and appends
it. A server that ignores ``Range`` (answers 200) is read from the start again. The size the
server announces is checked before any byte is written, the size and checksum of the whole file
after; a wrong checksum deletes the partial file.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from infocam_exp.fetch.sources import Remote

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "infocam-exp-fetch (python urllib)"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class FetchError(RuntimeError):
    """A download or extraction that did not succeed; the message says what, where and what to do."""


class ChecksumError(FetchError):
    """A file whose size or checksum differs from the published one."""

    def __init__(self, name: str, what: str, expected: object, got: object, detail: str = "") -> None:
        self.name, self.what, self.expected, self.got = name, what, expected, got
        msg = f"{name}: {what} mismatch: expected {expected}, got {got}"
        super().__init__(msg + (f". {detail}" if detail else ""))


class _Interrupted(Exception):
    """The connection ended before the whole file arrived (the ``.part`` file is kept)."""


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest (``algorithm``: "md5" or "sha256") of the file at ``path``."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, remote: Remote) -> None:
    """Raise ChecksumError unless ``path`` has ``remote``'s size and checksum."""
    size = path.stat().st_size
    if size != remote.size:
        raise ChecksumError(str(path), "size", f"{remote.size} bytes", f"{size} bytes")
    got = file_digest(path, remote.algorithm)
    if got != remote.digest:
        raise ChecksumError(str(path), remote.algorithm, remote.digest, got)


class _Progress:
    """A tqdm bar when stdout is a terminal, else a plain log line at every 10%."""

    def __init__(self, name: str, total: int, initial: int) -> None:
        self.name, self.total, self.done = name, total, initial
        self.bar = None
        self.t0 = time.monotonic()
        self.start = initial
        self.next_pct = (initial * 10 // max(total, 1) + 1) * 10
        if sys.stdout.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=name, file=sys.stdout, leave=True)
        elif initial:
            log.info("%s: resuming at %s of %s", name, _mb(initial), _mb(total))

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        pct = self.done * 100 // max(self.total, 1)
        if pct >= self.next_pct:
            rate = (self.done - self.start) / max(time.monotonic() - self.t0, 1e-9)
            log.info("%s: %s of %s (%d%%), %s/s", self.name, _mb(self.done), _mb(self.total), pct, _mb(rate))
            self.next_pct = (pct // 10 + 1) * 10

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _open(url: str, start: int, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) URLs from sources.py or the user)


def _transfer(url: str, part: Path, remote: Remote, timeout: float) -> None:
    """Append the rest of ``remote`` from ``url`` to ``part`` (starting over if the server ignores Range).

    Raises:
        urllib.error.URLError / OSError: the server could not be reached or refused (nothing written).
        ChecksumError: the server announces another size (the partial file is deleted).
        _Interrupted: the transfer stopped early (what arrived is kept).
    """
    have = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, have, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # "range not satisfiable": the part file is not a prefix; start over
            log.warning("%s: the server refused to resume at byte %d; downloading again from the start", remote.name, have)
            part.unlink()
            raise _Interrupted("range not satisfiable") from e
        raise
    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        if status == 206:
            m = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                part.unlink()
                raise _Interrupted(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode = "ab"
        else:
            if have:
                log.info("%s: the server does not resume (HTTP %d); downloading again from the start", remote.name, status)
            have, mode = 0, "wb"
            total = int(length) if length is not None else None
        if total is not None and total != remote.size:
            if part.exists():
                part.unlink()
            raise ChecksumError(remote.name, "size", f"{remote.size} bytes", f"{total} bytes announced by {url}",
                                "Nothing was kept; the file at that address is not the published one")
        progress = _Progress(remote.name, remote.size, have)
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (http.client.IncompleteRead, OSError) as e:
                        raise _Interrupted(str(e)) from e
                    if not chunk:
                        break
                    f.write(chunk)
                    progress.update(len(chunk))
                    if progress.done > remote.size:  # no announced length, and more than the published size
                        break
        finally:
            progress.close()
    got = part.stat().st_size
    if got > remote.size:
        part.unlink()
        raise ChecksumError(remote.name, "size", f"{remote.size} bytes", f"more than that from {url}",
                            "Nothing was kept; the file at that address is not the published one")
    if got < remote.size:
        raise _Interrupted(f"connection closed after {got} of {remote.size} bytes")


def download(
    remote: Remote,
    dest: Path,
    urls: Sequence[str],
    retries: int = 3,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
) -> Path:
    """Download ``remote`` to ``dest`` (atomically: ``dest.part`` until it is checked).

    Args:
        remote: the file's name, size and checksum.
        dest: the final path; ``dest.part`` holds the transfer and is resumed if present.
        urls: addresses tried in order; the next one is used when one cannot be reached.
        retries: how often an interrupted transfer is resumed within this call.
        retry_wait: seconds before each resume (times the attempt number).
        timeout: socket timeout in seconds.

    Returns:
        ``dest``, holding exactly ``remote.size`` bytes with ``remote.checksum``.

    Raises:
        ChecksumError: wrong size or checksum (the partial file is deleted).
        FetchError: no address reachable, or still incomplete after ``retries`` resumes (the
            partial file is kept for the next call).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if part.exists() and part.stat().st_size > remote.size:
        part.unlink()
    _check_space(dest.parent, remote.size - (part.stat().st_size if part.exists() else 0), remote.name)
    unreachable: list[str] = []
    for url in urls:
        attempts = 0
        while not (part.exists() and part.stat().st_size == remote.size):
            try:
                log.info("%s <- %s", remote.name, url)
                _transfer(url, part, remote, timeout)
            except _Interrupted as e:
                attempts += 1
                have = part.stat().st_size if part.exists() else 0
                if attempts > retries:
                    raise FetchError(
                        f"{remote.name}: download from {url} interrupted ({e}); {have} of {remote.size} bytes are in "
                        f"{part}. Run the same command again to resume."
                    ) from None
                log.warning("%s: interrupted (%s); resuming at byte %d (attempt %d of %d)", remote.name, e, have,
                            attempts, retries)
                time.sleep(retry_wait * attempts)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                if isinstance(e, urllib.error.HTTPError):
                    reason = f"HTTP {e.code} {e.reason}"
                else:
                    reason = str(getattr(e, "reason", e))
                unreachable.append(f"{url} ({reason})")
                log.warning("%s: %s failed: %s", remote.name, url, reason)
                break
        else:
            break
    else:
        raise FetchError(
            f"{remote.name}: no address could be reached: {'; '.join(unreachable)}. Check the network (or a "
            f"proxy: https_proxy=...), or download the file by hand into {dest.parent} and run the command again "
            "(it checks the file's size and checksum)."
        )
    try:
        verify_file(part, remote)
    except ChecksumError as e:
        part.unlink()
        raise ChecksumError(remote.name, e.what, e.expected, e.got,
                            f"Downloaded from {url}; the partial file {part} was deleted. Run the command again; "
                            "if it fails the same way, the file at that address has changed") from None
    os.replace(part, dest)
    return dest


def _check_space(folder: Path, need: int, name: str) -> None:
    free = shutil.disk_usage(folder).free
    if need > free:
        raise FetchError(f"{name}: needs {_mb(need)} in {folder}, only {_mb(free)} free")
