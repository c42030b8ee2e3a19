"""Atomic file writes and a fast ``.npy`` reader (no heavy imports: the evaluate CLI uses them)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np


def _current_umask() -> int:
    """The process umask: Linux states it in /proc/self/status; elsewhere os.umask can only be
    read by setting it, so it is set straight back."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str | bytes) -> None:
    """Write ``path`` via a temporary file in the same folder and ``os.replace``: readers see the
    old file or the new one, never a half-written one. The file gets the mode a plain ``open()``
    would give it (0666 less the umask: 0644 under umask 022), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (see ``write_text_atomic``)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")


_NPY_HEADERS: list[tuple[bytes, np.dtype, tuple[int, ...]]] = []
"""``.npy`` headers seen so far (all bytes up to the data), with their dtype and shape."""
_NPY_PARSE = threading.Lock()
"""numpy parses ``.npy`` headers with ``ast.literal_eval``, which CPython 3.11 can break when two
threads run it at once (``SystemError: AST constructor recursion depth mismatch``)."""


def read_npy(path: str | Path) -> np.ndarray:
    """``np.load(path, allow_pickle=False)``, faster for a folder of same-shaped maps and safe in
    threads: numpy's parser reads each distinct header once (one thread at a time), later files
    with the same header bytes are read straight into an array. Anything else (Fortran order,
    object dtype, a short file) goes through ``np.load``."""
    with open(path, "rb") as f:
        head = f.read(256)
        for header, dtype, shape in _NPY_HEADERS:
            if head.startswith(header):
                arr = np.empty(shape, dtype)
                f.seek(len(header))
                if f.readinto(memoryview(arr).cast("B")) == arr.nbytes and not f.read(1):
                    return arr
                break
        else:
            f.seek(0)
            try:
                version = np.lib.format.read_magic(f)
                read = {
                    (1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0,
                }.get(version)
                if read is not None:
                    with _NPY_PARSE:
                        shape, fortran, dtype = read(f)
                    if not fortran and not dtype.hasobject and f.tell() <= len(head):
                        _NPY_HEADERS.append((head[: f.tell()], dtype, shape))
            except ValueError:
                pass  # np.load below names the problem
    with _NPY_PARSE:  # rare: the first file of each header, and unusual files
        return np.load(path, allow_pickle=False)
