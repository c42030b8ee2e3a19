"""C form of the level-sweep kernels (``_boxes_native.c``): built, cached and loaded here.

The kernels are those of :mod:`infocam_exp.metrics._boxes_numba`, written in C: the same
arguments, bit-identical results (the tests compare both with OpenCV and with each other). A C
compiler builds them in a fraction of a second, where numba needs seconds of compilation on a
fresh install, and loading the library needs neither numba nor its start-up.

- **Compiler**: ``$INFOCAM_CC``, else ``$CC``, else the first of ``cc``, ``gcc``, ``clang`` on
  the ``PATH``. Flags: :data:`FLAGS` (``-ffp-contract=off`` keeps float64 operations unfused, so
  IoUs round as numba's and torch's do).
- **Cache**: ``$INFOCAM_KERNEL_CACHE``; else ``__pycache__`` next to this file when writable (an
  editable install); else ``$XDG_CACHE_HOME/infocam_exp`` (``~/.cache/infocam_exp``); else a
  per-user folder in the temp dir. The library's name carries a hash of the source, the compiler
  command, the flags and the platform, so an edited source or another compiler builds anew.
  Builds write a temporary file and rename it, so concurrent processes (DDP ranks) never load a
  half-written library.
- **Failure**: :class:`BuildError` with the command and the compiler's message;
  :func:`infocam_exp.metrics._boxes_compiled.select_kernels` then falls back to numba (unless
  ``INFOCAM_BOX_KERNEL=c`` asked for C).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from infocam_exp.errors import UserError
from infocam_exp.metrics._boxes_compiled import (
    _RING,
    _cache_candidates,
    _temp_cache,
    _Work,
    _writable,
)

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_boxes_native.c")
FLAGS = ("-O2", "-fPIC", "-shared", "-ffp-contract=off")
COMPILER_ENV = "INFOCAM_CC"
CACHE_ENV = "INFOCAM_KERNEL_CACHE"


class BuildError(UserError, RuntimeError):
    """The C kernels could not be built or loaded; ``no_compiler`` when no compiler was found."""

    def __init__(self, message: str, no_compiler: bool = False) -> None:
        super().__init__(message)
        self.no_compiler = no_compiler


def compiler(env: dict[str, str] | None = None) -> list[str]:
    """The compiler command (a list, as ``$CC`` may carry options)."""
    env = os.environ if env is None else env
    for var in (COMPILER_ENV, "CC"):
        raw = env.get(var, "").strip()
        if raw:
            cmd = shlex.split(raw)
            if shutil.which(cmd[0]) is None:
                raise BuildError(
                    f"${var}={raw!r}: compiler {cmd[0]!r} not found; fix ${var} or unset it", True
                )
            return cmd
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    raise BuildError(
        "no C compiler found (cc, gcc or clang on the PATH, or $INFOCAM_CC); install one "
        "(Debian/Ubuntu: apt install gcc) or set INFOCAM_BOX_KERNEL=numba",
        True,
    )


def cache_folder(env: dict[str, str] | None = None, package_dir: Path | None = None,
                 writable=_writable) -> Path:
    """Where the built library goes (see the module docstring for the order)."""
    env = os.environ if env is None else env
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    candidates = _cache_candidates("infocam_exp", env, package_dir)
    return next((folder for folder in candidates if writable(folder)), _temp_cache("infocam-exp-kernels"))


def library_name(cmd: list[str], source: bytes) -> str:
    """``_boxes_native-<hash>.so``: the hash covers the source, the command, the flags and the
    platform."""
    key = hashlib.sha256()
    for part in (source, *(c.encode() for c in cmd), *(f.encode() for f in FLAGS),
                 sys.platform.encode(), platform.machine().encode()):
        key.update(part + b"\0")
    return f"_boxes_native-{key.hexdigest()[:16]}.so"


def build(folder: Path | None = None, env: dict[str, str] | None = None) -> Path:
    """The path of the built library, building it first if the cache lacks it."""
    cmd = compiler(env)
    folder = cache_folder(env) if folder is None else Path(folder)
    source = SOURCE.read_bytes()
    target = folder / library_name(cmd, source)
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise BuildError(f"cannot write to the kernel cache {folder}: {exc}; set ${CACHE_ENV}") from exc
    # a name of its own per build: processes (DDP ranks, hosts sharing a home) may build at once
    os.close(handle)
    tmp = Path(tmp_name)
    full = [*cmd, *FLAGS, "-o", str(tmp), str(SOURCE)]
    try:
        res = subprocess.run(full, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"running the C compiler failed ({shlex.join(full)}): {exc}") from exc
    if res.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        message = (res.stderr or res.stdout).strip().splitlines()[-20:]
        raise BuildError(
            f"building the C box kernels failed (exit {res.returncode}): {shlex.join(full)}\n"
            + "\n".join(message)
        )
    os.replace(tmp, target)  # atomic: another process loads the old name or the whole file
    return target


_P, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
_SIGNATURES = {
    "best_iou": ([_D, _D, _D, _D, _P, _P, _I], _D),
    "sort_levels": ([_P, _I, _I, _I, _P, _P, _P], None),
    "fill_holes": ([_P, _I, _I, _I, _P, _P, _P, _P, _P, _P, _P], _I),
    "sweep_down": ([_P, _P, _P, _P, _I, _I, _I, _P, _I, _I, _I, _P, _P, _I, _D, _P, _P, _P, _P,
                    _P, _P, _P, _P, _P, _P], _I),
    "sweep_holes": ([_P, _P, _P, _I, _I, _I, _I, _P, _P, _P, _I, _P, _P, _P, _P, _P, _P, _P, _P,
                     _P, _P, _P], None),
}


class _Addresses(NamedTuple):
    """A workspace's arguments to each C function, in order, arrays as addresses (the gt
    arguments and flags go between them)."""

    sort: tuple
    fill: tuple
    down_in: tuple
    down_out: tuple
    holes_in: tuple
    holes_shape: tuple
    holes_out: tuple


_ARRAYS = ("val", "filled", "order", "count", "depressions", "flags", "scratch", "offs", "parent",
           "box", "area2", "slot", "alive", "alive_iou", "needed", "lvl_box")


def _ptr(a: np.ndarray) -> int:
    """The address of ``a``'s data (the C code reads it as the dtype its signature says)."""
    return a.__array_interface__["data"][0]


class Kernels:
    """The C kernels behind :class:`~infocam_exp.metrics._boxes_compiled._Work`'s methods."""

    name = "c"

    def __init__(self, lib: ctypes.CDLL, path: Path) -> None:
        self.path = path
        self._lib = lib
        for fn, (args, res) in _SIGNATURES.items():
            f = getattr(lib, fn)
            f.argtypes = args
            f.restype = res
        self._best_iou = lib.best_iou
        self._sort = lib.sort_levels
        self._fill = lib.fill_holes
        self._down = lib.sweep_down
        self._holes = lib.sweep_holes

    def location(self) -> str:
        return str(self.path)

    @staticmethod
    def _args(w: _Work) -> _Addresses:
        """The workspace's array arguments as addresses, computed once per workspace (kept on it)."""
        a = w.__dict__.get("_native")
        if a is None:
            p = {name: _ptr(getattr(w, name)) for name in _ARRAYS}
            shape = (w.stride, w.height, w.width)
            levels = [_ptr(row) for row in w.levels]
            a = w._native = _Addresses(
                sort=(p["val"], *shape, p["order"], p["count"], p["scratch"]),
                fill=(p["val"], *shape, p["filled"], p["order"], p["count"], p["depressions"],
                      p["scratch"], p["parent"], p["flags"]),
                down_in=(p["order"], p["count"], p["flags"], p["offs"], *shape, p["needed"]),
                down_out=(_ptr(_RING), p["parent"], p["box"], p["area2"], p["slot"], p["alive"],
                          p["alive_iou"], levels[0], p["lvl_box"], levels[1]),
                holes_in=(p["val"], p["filled"], p["depressions"]),
                holes_shape=(*shape, p["needed"]),
                holes_out=(p["parent"], p["box"], p["slot"], p["alive"], p["alive_iou"], levels[1],
                           levels[2], levels[3], p["scratch"], p["order"], p["flags"]),
            )
        return a

    @staticmethod
    def _gt(gt, gvalid) -> tuple[np.ndarray, np.ndarray]:
        """``gt`` and ``gvalid`` as the C code reads them (copies where they are not already):
        the caller keeps them alive while the C function runs."""
        gt = np.ascontiguousarray(gt, np.float64)
        gvalid = np.ascontiguousarray(gvalid, np.bool_)
        if gt.ndim != 2 or gt.shape[1] != 4 or gvalid.shape != gt.shape[:1]:
            raise ValueError(f"gt must be (G, 4) with gvalid (G,), got {gt.shape} and {gvalid.shape}")
        return gt, gvalid

    def empty_iou(self, gt, gvalid) -> float:
        gt, gvalid = self._gt(gt, gvalid)
        return self._best_iou(0.0, 0.0, 0.0, 0.0, _ptr(gt), _ptr(gvalid), gt.shape[0])

    def sort(self, w: _Work) -> None:
        self._sort(*self._args(w).sort)

    def fill(self, w: _Work) -> int:
        return self._fill(*self._args(w).fill)

    def down(self, w: _Work, track_area, track_any, stop_at_hole, gt, gvalid, empty_iou) -> bool:
        a = self._args(w)
        gt, gvalid = self._gt(gt, gvalid)
        flags = (bool(track_area), bool(track_any), bool(stop_at_hole))
        gts = (_ptr(gt), _ptr(gvalid), gt.shape[0])
        return bool(self._down(*a.down_in, *flags, *gts, float(empty_iou), *a.down_out))

    def holes(self, w: _Work, n_dep, gt, gvalid) -> None:
        a = self._args(w)
        gt, gvalid = self._gt(gt, gvalid)
        self._holes(*a.holes_in, int(n_dep), *a.holes_shape, _ptr(gt), _ptr(gvalid), gt.shape[0],
                    *a.holes_out)


def load(env: dict[str, str] | None = None) -> Kernels:
    """Build (if needed) and load the C kernels; :class:`BuildError` when that fails."""
    path = build(env=env)
    try:
        return Kernels(ctypes.CDLL(str(path)), path)
    except (OSError, AttributeError) as exc:  # not a library, or one without the kernels
        raise BuildError(f"loading the C box kernels {path} failed: {exc}; delete the file to rebuild it") from exc


def report_fallback(exc: BuildError) -> None:
    """Say why the numba kernels are used instead (a warning when a compiler exists but failed)."""
    level = logging.INFO if exc.no_compiler else logging.WARNING
    log.log(level, "C box kernels unavailable, using numba's (seconds of compilation on a fresh "
            "install; INFOCAM_BOX_KERNEL=numba skips the C build): %s", exc)
