"""Contract test: every option of every config group, every experiment and every table composes and
instantiates on CPU (without data on disk: DataModule constructors must not read files)."""

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from infocam_exp.build import _instantiate_group
from infocam_exp.data.base import ClassificationDataModule
from infocam_exp.tables.aggregate import expand_grid
from tests.conftest import CONFIG_DIR, compose_cfg

CONFIGS = Path(CONFIG_DIR)
# Construction-only input shape for every model (no forward pass): large enough for Inception-V3.
CONTRACT_SHAPE = (3, 96, 96)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def _instantiate_components(cfg) -> None:
    dm = instantiate(cfg.data, _convert_="all")
    assert isinstance(dm, ClassificationDataModule)
    # ImageNet weights are not on this machine (test_missing_weights_message covers pretrained=true)
    offline = {"pretrained": False} if "pretrained" in cfg.model else {}
    model = instantiate(cfg.model, num_classes=5, input_shape=CONTRACT_SHAPE, _convert_="all", **offline)
    assert isinstance(model, torch.nn.Module)
    loss = instantiate(cfg.loss, class_prior=torch.full((5,), 0.2))
    assert loss.mi_estimator in ("softmax", "pc")
    opt = instantiate(cfg.optimizer)(model.parameters())
    if cfg.get("scheduler"):
        instantiate(cfg.scheduler)(opt)
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        # every setting but the device is checked by building the same trainer on the CPU
        trainer = instantiate(cfg.trainer, accelerator="cpu", devices=1, logger=False)
        assert isinstance(trainer, pl.Trainer) and trainer.precision == cfg.trainer.precision
    else:
        assert isinstance(instantiate(cfg.trainer, logger=False), pl.Trainer)
    for cb in _instantiate_group(cfg.get("callbacks")):
        assert isinstance(cb, pl.Callback)
    for lg in _instantiate_group(cfg.get("logger")):
        assert isinstance(lg, pl.loggers.Logger)


GROUPS = ["data", "model", "loss", "optimizer", "scheduler", "system", "trainer", "logger", "callbacks", "paths"]


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_every_group_option_instantiates(group, option):
    cfg = compose_cfg(f"{group}={option}")
    OmegaConf.resolve(cfg)
    if group in ("data", "model", "loss", "optimizer", "scheduler", "trainer", "logger", "callbacks"):
        _instantiate_components(cfg)


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_instantiates(name):
    cfg = compose_cfg(f"+experiment={name}")
    OmegaConf.resolve(cfg)
    _instantiate_components(cfg)


@pytest.mark.parametrize("name", options("debug"))
def test_every_debug_overlay_composes(name):
    cfg = compose_cfg(f"debug={name}")
    assert cfg.trainer.fast_dev_run


@pytest.mark.parametrize("name", options("table"))
def test_every_table_composes(name):
    cfg = compose_cfg(f"+table={name}", hydra_cfg=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    params = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True)
    grid = expand_grid(params)
    assert grid, "a table needs a sweep"
    assert set(cfg.table.rows) <= set(params), "rows must be swept keys"
    assert cfg.table.columns and cfg.table.title
    # each job of the grid composes as a run
    job = [f"{k}={v}" for k, v in grid[0].items()]
    run_cfg = compose_cfg(f"+table={name}", *job)
    OmegaConf.resolve(run_cfg)
    _instantiate_components(run_cfg)
    if cfg.table.get("plot"):
        assert callable(instantiate(cfg.table.plot, _partial_=True))


def test_experiment_is_not_in_primary_defaults():
    # `+experiment=NAME` works only when experiment is not in train.yaml's defaults list
    primary = OmegaConf.load(CONFIGS / "train.yaml")
    names = [next(iter(d)) if isinstance(d, dict) else d for d in primary.defaults]
    assert "experiment" not in names and "table" not in names


@pytest.mark.parametrize("name", [o for o in options("model") if "pretrained" in OmegaConf.load(CONFIGS / "model" / f"{o}.yaml")])
def test_missing_weights_message(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = compose_cfg(f"model={name}", "model.pretrained=true")
    with pytest.raises(Exception, match="model.weights_path") as info:
        instantiate(cfg.model, num_classes=5, input_shape=CONTRACT_SHAPE, _convert_="all")
    assert "nothing is downloaded" in str(info.value)


def test_gpu_trainer_is_one_gpu_with_bf16_autocast():
    # an image experiment: the synthetic MI job (the bare default) pins fp32 under every trainer
    cfg = compose_cfg("+experiment=mnist_pc_softmax", "trainer=gpu")
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.devices == 1
    assert cfg.trainer.precision == "bf16-mixed"
    trainer = instantiate(cfg.trainer, accelerator="cpu", devices=1, logger=False)
    assert trainer.precision == "bf16-mixed"  # Lightning accepts it (bf16 autocast on CPU too)
