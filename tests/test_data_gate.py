"""The data gate of tests/conftest.py: a test whose data is absent skips (saying how to get it)
outside CI and fails when the environment variable CI is set."""

from types import SimpleNamespace

import pytest

from tests import conftest


def _item(available: bool):
    mark = conftest.needs_data(available, "the X files (apt-get install x-data)").mark
    return SimpleNamespace(iter_markers=lambda name: [mark] if name == "needs_data" else [])


def test_missing_data_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match=r"CI is set.*the X files \(apt-get install x-data\)"):
        conftest.pytest_runtest_setup(_item(False))
    conftest.pytest_runtest_setup(_item(True))  # present: runs


@pytest.mark.parametrize("value", [None, "", "0", "false"])
def test_missing_data_skips_outside_ci(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=r"data missing: the X files \(apt-get install x-data\)"):
        conftest.pytest_runtest_setup(_item(False))
