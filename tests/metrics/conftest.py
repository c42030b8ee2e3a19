"""Fixtures shared by the metric tests."""

from __future__ import annotations

import contextlib

import pytest

from tests.conftest import in_ci


@contextlib.contextmanager
def use_box_kernels(name: str):
    """Choose the compiled box sweep's kernel set (``"c"`` or ``"numba"``) as
    ``INFOCAM_BOX_KERNEL`` would, and restore the previous choice afterwards. Without a C compiler
    the C set skips the test (and fails it when CI is set: CI installs gcc)."""
    from infocam_exp.metrics import _boxes_compiled, _boxes_native

    before = _boxes_compiled._KERNELS
    try:
        kernels = _boxes_compiled.select_kernels(name)
    except _boxes_native.BuildError as exc:
        if in_ci():
            pytest.fail(f"CI is set, but the C box kernels did not build: {exc}", pytrace=False)
        pytest.skip(f"C box kernels unavailable (install a C compiler, e.g. apt install gcc): {exc}")
    try:
        yield kernels
    finally:
        _boxes_compiled._KERNELS = before


@pytest.fixture(params=["c", "numba"])
def box_kernels(request):
    """Run the test once with each kernel set of the compiled box sweep (C, then numba)."""
    with use_box_kernels(request.param) as kernels:
        yield kernels
