"""The one place that instantiates configs.

Dataset facts flow explicitly from the DataModule to the model and the loss:
``num_classes`` and ``input_shape`` to the model, the training-split ``class_prior`` to the loss
(whose buffer the MI metrics read). Nothing else is shared.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint

from infocam_exp.console import EpochLines, quiet_lightning, stdout_is_terminal
from infocam_exp.data.base import ClassificationDataModule
from infocam_exp.errors import UserError
from infocam_exp.systems import ClassifierSystem

log = logging.getLogger(__name__)


def _instantiate(cfg: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, except that the project's own errors (a bad ``data.*`` value,
    a missing file) come out as themselves, not wrapped in Hydra's ``InstantiationException``:
    ``python -m infocam_exp`` then prints their message alone and exits 2."""
    try:
        return instantiate(cfg, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, UserError):
            raise err.__cause__ from None
        raise


def build_datamodule(cfg: DictConfig) -> ClassificationDataModule:
    """Instantiate ``cfg.data`` and let it learn its facts (may read files; fails fast if absent)."""
    dm = _instantiate(cfg.data, _convert_="all")
    if not isinstance(dm, ClassificationDataModule):
        raise TypeError(f"data._target_ must build a ClassificationDataModule, got {type(dm).__name__}")
    dm.prepare_facts()
    return dm


def build_system(cfg: DictConfig, dm: ClassificationDataModule) -> ClassifierSystem:
    """Model, loss and optimiser, given the DataModule's facts."""
    model = instantiate(cfg.model, num_classes=dm.num_classes, input_shape=tuple(dm.input_shape), _convert_="all")
    loss = instantiate(cfg.loss, class_prior=dm.class_prior)
    return instantiate(
        cfg.system,
        model=model,
        loss=loss,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        _recursive_=False,
    )


def _instantiate_group(group: DictConfig | None, **kwargs: Any) -> list[Any]:
    """Instantiate each entry of a dict-of-configs group (callbacks, loggers); nulls are skipped."""
    if not group:
        return []
    return [instantiate(c, **kwargs) for c in group.values() if c is not None and "_target_" in c]


def has_val_split(dm: ClassificationDataModule) -> bool | None:
    """Whether the DataModule built a validation split (None: it does not say)."""
    try:
        return int(dm.split_class_counts("val").sum()) > 0
    except NotImplementedError:
        return None


def build_trainer(cfg: DictConfig, has_val: bool | None = None) -> pl.Trainer:
    """The Trainer, with callbacks from ``cfg.callbacks`` and loggers from ``cfg.logger``.

    Everything a run writes goes under ``cfg.paths.run_dir`` (set by ``infocam_exp.run``).
    Lightning's progress bar is shown only when stdout is a terminal (and
    ``trainer.enable_progress_bar``); otherwise ``console.EpochLines`` writes one line per epoch.
    ``has_val=False`` (no validation split, e.g. the authors' CUB protocol) turns the validation
    loop off, instead of handing Lightning an empty loader that it warns about."""
    quiet_lightning()
    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    # Derived, not configured: Lightning refuses a ModelCheckpoint when checkpointing is off and
    # adds a default one when it is on.
    checkpointing = any(isinstance(cb, ModelCheckpoint) for cb in callbacks)
    bar = bool(cfg.trainer.get("enable_progress_bar", True)) and stdout_is_terminal()
    if not bar:
        objective = str(cfg.get("objective") or "")
        callbacks.append(EpochLines(key_metric=objective.replace("test/", "val/", 1) if objective.startswith("test/") else None))
    extra = {"limit_val_batches": 0} if has_val is False else {}
    return instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        enable_checkpointing=checkpointing,
        enable_progress_bar=bar,
        **extra,
    )
