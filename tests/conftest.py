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


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists() and not os.environ.get("CI"),
    reason="real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist; CI installs it)",
)
