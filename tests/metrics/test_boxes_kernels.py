"""The compiled box sweep's two kernel sets: C (built by the system's compiler, cached) and numba
(the fallback). They must agree bit for bit; building, caching and failing to build are tested
here, with a fake compiler where a failure is needed. Their agreement with OpenCV is tested in
``test_boxes_compiled.py`` and ``test_boxes_opencv_agreement.py`` (each test runs with both)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from infocam_exp.errors import ConfigError
from infocam_exp.metrics import _boxes_compiled, _boxes_native
from tests.conftest import REPO
from tests.metrics.conftest import use_box_kernels


@pytest.fixture
def restore_choice():
    before = _boxes_compiled._KERNELS
    yield
    _boxes_compiled._KERNELS = before


def _random_map(rng: np.random.Generator) -> np.ndarray:
    h, w = (int(v) for v in rng.integers(1, 20, 2))
    kind = rng.integers(4)
    if kind == 0:  # random values
        return rng.integers(0, 256, (h, w)).astype(np.uint8)
    if kind == 1:  # few levels: plateaus, ties
        return (rng.integers(0, 4, (h, w)) * 60).astype(np.uint8)
    if kind == 2:  # binary
        return (rng.random((h, w)) < 0.5).astype(np.uint8) * 200
    m = np.zeros((h, w), np.uint8)  # nested rectangles, high and low in turn
    for k in range(int(rng.integers(1, 6))):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = int(rng.integers(y0, h)) + 1, int(rng.integers(x0, w)) + 1
        m[y0:y1, x0:x1] = (50 * k + 40) if k % 2 == 0 else 10
    return m


def test_c_and_numba_kernels_agree_bit_for_bit_at_every_level():
    rng = np.random.default_rng(11)
    with use_box_kernels("c") as c_set, use_box_kernels("numba") as numba_set:
        pass
    cuts = np.arange(255, dtype=np.int64)
    for i in range(1500):
        u8 = _random_map(rng)
        h, w = u8.shape
        g = int(rng.integers(1, 4))
        lo = rng.integers(0, [w, h], (g, 2))
        gt = np.concatenate([lo, lo + rng.integers(0, 8, (g, 2))], 1).astype(np.float64)
        valid = rng.random(g) < 0.8
        outs = []
        for kernels in (c_set, numba_set):
            out = (np.zeros(255), np.zeros(255), np.zeros((255, 4), np.int64))
            work = _boxes_compiled._Work(h, w, kernels)
            _boxes_compiled._map_ious(u8, cuts, gt, valid, True, True, *out, w=work)
            outs.append(out)
        for a, b in zip(*outs, strict=True):
            assert np.array_equal(a, b), (i, u8, gt, valid)


def test_the_c_library_is_built_once_into_the_cache(tmp_path):
    env = dict(os.environ, INFOCAM_KERNEL_CACHE=str(tmp_path / "cache"))
    first = _boxes_native.build(env=env)
    assert first.parent == tmp_path / "cache"
    assert re.fullmatch(r"_boxes_native-[0-9a-f]{16}\.so", first.name)
    stat = first.stat()
    again = _boxes_native.build(env=env)
    assert again == first and again.stat().st_mtime_ns == stat.st_mtime_ns  # not rebuilt
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]  # no temporary left
    kernels = _boxes_native.load(env=env)
    assert kernels.name == "c" and kernels.location() == str(first)


def test_the_cache_folder_is_the_first_writable_place(tmp_path):
    pkg, home = tmp_path / "pkg", tmp_path / "home"
    env = {"XDG_CACHE_HOME": str(home)}
    folder = _boxes_native.cache_folder
    assert folder({**env, "INFOCAM_KERNEL_CACHE": "/x"}, pkg, writable=lambda _p: False) == Path("/x")
    assert folder(env, pkg, writable=lambda _p: True) == pkg / "__pycache__"  # an editable install
    assert folder(env, pkg, writable=lambda p: "home" in str(p)) == home / "infocam_exp"
    last = folder(env, pkg, writable=lambda _p: False)  # read-only install and home
    assert last.parent == Path(tempfile.gettempdir()) and last.name.startswith("infocam-exp-kernels-")


def test_the_library_name_follows_source_compiler_and_platform():
    name = _boxes_native.library_name
    assert name(["cc"], b"a") == name(["cc"], b"a")
    assert name(["cc"], b"a") != name(["cc"], b"b")  # an edited source builds anew
    assert name(["cc"], b"a") != name(["clang"], b"a")
    assert name(["cc", "-m32"], b"a") != name(["cc"], b"a")


@pytest.fixture
def no_compiler(tmp_path, monkeypatch):
    """No C compiler to be found: an empty PATH, no $CC or $INFOCAM_CC."""
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run there
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("INFOCAM_CC", raising=False)


@pytest.mark.usefixtures("no_compiler")
def test_without_a_compiler_auto_falls_back_to_numba(caplog, restore_choice):
    with pytest.raises(_boxes_native.BuildError) as err:
        _boxes_native.compiler()
    assert err.value.no_compiler
    assert "apt install gcc" in str(err.value) and "INFOCAM_BOX_KERNEL=numba" in str(err.value)
    with caplog.at_level(logging.INFO, logger="infocam_exp.metrics._boxes_native"):
        assert _boxes_compiled.select_kernels("auto").name == "numba"
    assert any("no C compiler found" in r.message and r.levelno == logging.INFO for r in caplog.records)
    with pytest.raises(_boxes_native.BuildError, match="no C compiler found"):
        _boxes_compiled.select_kernels("c")  # asked for explicitly: no fallback


@pytest.mark.usefixtures("no_compiler")
def test_without_a_compiler_or_numba_auto_uses_the_torch_sweep(monkeypatch, caplog, restore_choice):
    import torch

    import infocam_exp.metrics
    from infocam_exp.metrics.boxes import batched_threshold_ious, compiled_sweep_available
    from tests.metrics.opencv_reference import opencv_threshold_ious

    # numba's kernels do not import: no module, and no attribute left by an earlier import
    monkeypatch.setitem(sys.modules, "infocam_exp.metrics._boxes_numba", None)
    monkeypatch.delattr(infocam_exp.metrics, "_boxes_numba", raising=False)
    _boxes_compiled._KERNELS = None
    with pytest.raises(_boxes_compiled.KernelsUnavailable, match="pip install numba"):
        _boxes_compiled.select_kernels("auto")
    assert not compiled_sweep_available()
    maps = torch.zeros(1, 12, 12)
    maps[0, 2:9, 3:8] = 1.0
    gt = torch.tensor([[[3, 2, 7, 8]]])
    taus = torch.tensor([0.5])
    with caplog.at_level(logging.WARNING):
        got = batched_threshold_ious(maps, gt, taus)  # auto
    assert any("using the slower torch sweep" in r.message for r in caplog.records)
    ref = opencv_threshold_ious(maps, gt, taus)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


def test_a_missing_compiler_named_by_the_environment_is_named_back(monkeypatch, restore_choice):
    monkeypatch.setenv("INFOCAM_CC", "/nowhere/cc -O1")
    with pytest.raises(_boxes_native.BuildError, match=r"\$INFOCAM_CC='/nowhere/cc -O1'.*not found"):
        _boxes_compiled.select_kernels("c")


def test_a_failing_compiler_is_reported_and_leaves_nothing(tmp_path, monkeypatch, caplog, restore_choice):
    fake = tmp_path / "fakecc"
    fake.write_text("#!/bin/sh\necho 'fakecc: disk quota exceeded' >&2\nexit 3\n")
    fake.chmod(0o755)
    cache = tmp_path / "cache"
    monkeypatch.setenv("INFOCAM_CC", str(fake))
    monkeypatch.setenv("INFOCAM_KERNEL_CACHE", str(cache))
    with pytest.raises(_boxes_native.BuildError) as err:
        _boxes_native.build()
    message = str(err.value)
    assert "exit 3" in message and "disk quota exceeded" in message and str(fake) in message
    assert not err.value.no_compiler
    assert list(cache.iterdir()) == []  # no half-built library
    with caplog.at_level(logging.INFO, logger="infocam_exp.metrics._boxes_native"):
        assert _boxes_compiled.select_kernels("auto").name == "numba"
    assert any("disk quota exceeded" in r.message and r.levelno == logging.WARNING for r in caplog.records)


def test_an_unloadable_library_says_to_delete_it(tmp_path, monkeypatch):
    env = dict(os.environ, INFOCAM_KERNEL_CACHE=str(tmp_path))
    cmd = _boxes_native.compiler(env)
    target = tmp_path / _boxes_native.library_name(cmd, _boxes_native.SOURCE.read_bytes())
    target.write_bytes(b"not a shared library")
    with pytest.raises(_boxes_native.BuildError, match="delete the file to rebuild it") as err:
        _boxes_native.load(env=env)
    assert str(target) in str(err.value)
    # a shared library, but not ours: no kernels in it
    other = tmp_path / "other.c"
    other.write_text("int unrelated = 1;\n")
    subprocess.run([*cmd, *_boxes_native.FLAGS, "-o", str(target), str(other)], check=True)
    with pytest.raises(_boxes_native.BuildError, match="delete the file to rebuild it"):
        _boxes_native.load(env=env)


def test_an_unknown_kernel_choice_names_the_choices(monkeypatch, restore_choice):
    monkeypatch.setenv("INFOCAM_BOX_KERNEL", "fortran")
    with pytest.raises(ConfigError, match=r"INFOCAM_BOX_KERNEL: unknown box kernel 'fortran'; choose one of auto, c, numba"):
        _boxes_compiled.select_kernels()
    res = subprocess.run(
        [sys.executable, "-m", "infocam_exp.evaluate", "--warm-up"],
        env=dict(os.environ, INFOCAM_BOX_KERNEL="fortran"), capture_output=True, text=True,
    )
    assert res.returncode == 2 and "unknown box kernel 'fortran'" in res.stderr
    assert "Traceback" not in res.stderr


#: A process that gets the kernels ready, scores a 9 x 9 ring around a 5 x 5 hole (GT = the hole)
#: through every kernel, and prints the kernel set, the all-contour IoU and whether numba was
#: imported. The hole's border box [1, 1, 1 + 7, 1 + 7] (64 px) against the hole [2, 2, 6, 6]
#: (25 px): IoU 25 / 64.
_SCORE_A_RING = (
    "import sys\n"
    "import numpy as np\n"
    "from infocam_exp.metrics import _boxes_compiled as g\n"
    "g.warm_up()\n"
    "u8 = np.zeros((1, 9, 9), np.uint8)\n"
    "u8[0, 1:8, 1:8] = 200\n"
    "u8[0, 2:7, 2:7] = 0\n"
    "l, a, _ = g.compiled_threshold_ious(u8, np.array([[100]]), np.array([[[2., 2., 6., 6.]]]),\n"
    "                                    np.ones((1, 1), bool))\n"
    "print(g.describe().split()[0], a[0, 0], 'numba' in sys.modules)\n"
)


def test_the_c_kernels_run_without_numba(tmp_path):
    # A fresh cache: the process builds the C library, scores a map with a hole through every
    # kernel, and never imports numba.
    env = dict(os.environ, INFOCAM_KERNEL_CACHE=str(tmp_path), INFOCAM_BOX_KERNEL="c")
    out = subprocess.run([sys.executable, "-c", _SCORE_A_RING], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["c", str(25 / 64), "False"]
    assert len(list(tmp_path.glob("_boxes_native-*.so"))) == 1


def test_an_installed_wheel_ships_the_c_source_and_builds_it(tmp_path):
    # A non-editable install: the wheel must carry the C source, and the installed package
    # builds its library into its own __pycache__ (writable here) on first use.
    src = tmp_path / "src"
    shutil.copytree(REPO / "infocam_exp", src / "infocam_exp",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "whl"),
                    str(src)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "whl").glob("*.whl")
    assert "infocam_exp/metrics/_boxes_native.c" in zipfile.ZipFile(wheel).namelist()
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    code = "from infocam_exp.metrics import _boxes_compiled as g\ng.warm_up()\nprint(g.describe())\n"
    env = {k: v for k, v in os.environ.items() if k != "INFOCAM_KERNEL_CACHE"}
    env.update(PYTHONPATH=str(site), INFOCAM_BOX_KERNEL="c")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("c kernels, compiled code in " + str(site / "infocam_exp" / "metrics" / "__pycache__"))


def test_processes_building_at_once_share_one_library(tmp_path):
    # DDP ranks starting together on an empty cache: each builds under its own temporary name
    # and renames it into place, so every process loads a whole library and one file remains.
    env = dict(os.environ, INFOCAM_KERNEL_CACHE=str(tmp_path), INFOCAM_BOX_KERNEL="c")
    procs = [subprocess.Popen([sys.executable, "-c", _SCORE_A_RING], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outs]
    assert [out.split() for out, _ in outs] == [["c", str(25 / 64), "False"]] * 4
    assert [p.name for p in tmp_path.iterdir()] == [p.name for p in tmp_path.glob("_boxes_native-*.so")]
    assert len(list(tmp_path.iterdir())) == 1


# --- the numba kernels' cache ---------------------------------------------------------------


def _in_subprocess(code: str, cache) -> list[str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), INFOCAM_BOX_KERNEL="numba")
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return res.stdout.split()


def test_an_empty_numba_cache_is_filled_by_two_processes(tmp_path):
    # The parent compiles the falling sweep while a forked child compiles the hole sweep into
    # the cache; the parent then loads the hole sweep from there instead of compiling it.
    code = (
        "from infocam_exp.metrics import _boxes_compiled as g, _boxes_numba as m\n"
        "print(m._cache_is_warm())\n"
        "g.warm_up(parallel=True)\n"
        "for f in (m._sweep_holes, m._sweep_down):\n"
        "    print(sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()))\n"
    )
    out = _in_subprocess(code, tmp_path)
    assert out[0] == "False"
    holes_hits, holes_misses, down_hits, down_misses = (int(v) for v in out[1:])
    assert (holes_hits, holes_misses) == (1, 0)  # compiled by the child, loaded here
    assert down_misses == 1  # compiled here
    # a later process finds everything in the cache
    assert _in_subprocess(code.replace("parallel=True", "parallel=None"), tmp_path)[:1] == ["True"]


def test_a_failing_numba_compile_child_leaves_the_work_to_the_parent(tmp_path):
    code = (
        "import numpy as np\n"
        "from infocam_exp.metrics import _boxes_compiled as g, _boxes_numba as m\n"
        "def boom():\n"
        "    raise RuntimeError('child failed')\n"
        "m._compile_holes = boom\n"
        "g.warm_up(parallel=True)\n"
        "u8 = np.zeros((1, 9, 9), np.uint8)\n"
        "u8[0, 1:8, 1:8] = 200\n"
        "u8[0, 2:7, 2:7] = 0\n"
        "l, a, _ = g.compiled_threshold_ious(u8, np.array([[100]]), np.array([[[2., 2., 6., 6.]]]),\n"
        "                                    np.ones((1, 1), bool))\n"
        "print(a[0, 0], sum(m._sweep_holes.stats.cache_misses.values()))\n"
    )
    iou, holes_misses = _in_subprocess(code, tmp_path)
    assert float(iou) == 25 / 64
    assert int(holes_misses) == 1  # compiled by the parent


def test_loading_the_numba_kernels_skips_numbas_blas_probe():
    # numba looks for SciPy's BLAS when it loads its numpy support; warm_up keeps scipy.linalg
    # (about 0.2 s of imports) out of the evaluator's process, and it imports fine afterwards.
    code = (
        "import sys\n"
        "from infocam_exp.metrics import _boxes_compiled as g\n"
        "g.warm_up()\n"
        "print(g.describe().split()[0], 'scipy.linalg' in sys.modules)\n"
        "import scipy.linalg\n"
        "print(scipy.linalg.inv([[4.0]])[0, 0])\n"
    )
    env = dict(os.environ, INFOCAM_BOX_KERNEL="numba")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["numba", "False", "0.25"]
    # with another thread running (it might be importing SciPy) numba probes as usual
    busy = "import threading\nthreading.Thread(target=__import__('time').sleep, args=(5,), daemon=True).start()\n"
    res = subprocess.run(
        [sys.executable, "-c", busy + code], env=env, capture_output=True, text=True, check=True
    )
    assert res.stdout.split() == ["numba", "True", "0.25"]
