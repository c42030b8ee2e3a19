"""Accuracy, per-class accuracy and MI estimates on the validation and test splits."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from infocam_exp.data.imbalance import shot_groups
from infocam_exp.metrics.mi import ClassificationMI, headline_mi


def split_counts(datamodule: Any, split: str) -> torch.Tensor | None:
    """The DataModule's (K,) label counts of ``split``, or None when it cannot say (no DataModule,
    one without ``split_class_counts``, or an empty split)."""
    if datamodule is None or not hasattr(datamodule, "split_class_counts"):
        return None
    try:
        counts = datamodule.split_class_counts(split)
    except NotImplementedError:
        return None
    return counts if int(counts.sum()) > 0 else None


class ClassificationMetrics(pl.Callback):
    """Accumulates ``ClassificationMI`` on the model's device and logs ``<split>/<metric>``.

    Scalars are logged every validation epoch (so the MI estimate can be watched converging) and
    at test time; vectors (``class_acc``) go only to ``results``. Under DDP the metric state is
    summed across processes before ``compute``.

    Args:
        shot_groups: also report ``many_shot_acc`` / ``medium_shot_acc`` / ``few_shot_acc``: the
            mean per-class accuracy over classes with > 100, 20-100, < 20 training images (Liu et
            al., OLTR 2019), from the DataModule's ``class_counts``. NaN for an empty group.
    """

    def __init__(self, shot_groups: bool = False) -> None:
        super().__init__()
        self.shot_groups = shot_groups
        self.metrics: dict[str, ClassificationMI] = {}
        self.results: dict[str, Any] = {}

    def _start(self, split: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the evaluated split's own label distribution, for the MI under it (the whole split as the
        # DataModule built it, also when limit_*_batches evaluates part of it)
        counts = split_counts(getattr(trainer, "datamodule", None), split)
        metric = ClassificationMI(pl_module.loss.log_prior.exp().cpu(), eval_prior=counts).to(pl_module.device)
        self.metrics[split] = metric

    def _update(self, split: str, trainer: pl.Trainer, outputs: Any) -> None:
        if trainer.sanity_checking or split not in self.metrics:
            return
        self.metrics[split].update(outputs["logits"], outputs["target"], outputs["preds"])

    def _finish(self, split: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or split not in self.metrics:
            return
        metric = self.metrics.pop(split)
        if int(metric.n) == 0 and not torch.distributed.is_initialized():
            return
        values = metric.compute()
        values.update(headline_mi(values, pl_module.loss.mi_estimator))
        if self.shot_groups:
            counts = trainer.datamodule.class_counts
            for group, classes in shot_groups(counts).items():
                accs = values["class_acc"][classes] if classes else values["class_acc"].new_tensor([])
                accs = accs[~accs.isnan()]
                values[f"{group}_shot_acc"] = accs.mean() if accs.numel() else accs.new_tensor(float("nan"))
        scalars = {f"{split}/{k}": v.float() for k, v in values.items() if v.ndim == 0}
        pl_module.log_dict(scalars, prog_bar=False, sync_dist=False)
        for key, v in values.items():
            self.results[f"{split}/{key}"] = v.tolist() if v.ndim else float(v)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start("val", trainer, pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update("val", trainer, outputs)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish("val", trainer, pl_module)

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start("test", trainer, pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update("test", trainer, outputs)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish("test", trainer, pl_module)
