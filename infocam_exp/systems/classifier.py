"""The classification system every experiment trains: model + loss + optimiser.

Evaluation steps return the logits, targets and predictions (and the rest of the batch, e.g. boxes)
so that callbacks compute the metrics on the model's device; the system itself logs only losses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric

from infocam_exp.losses.pc_softmax import _PriorLoss

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class ClassifierSystem(pl.LightningModule):
    """Trains ``model`` with ``loss``.

    Args:
        model: ``nn.Module`` mapping (B, ...) inputs to (B, K) logits. If it has
            ``param_groups(lr, head_lr_mult)``, the optimiser gets those groups (new head at a
            higher learning rate); if it has ``forward_features`` and ``classifier``, evaluation
            can return feature maps for CAMs.
        loss: a prior-aware loss (``infocam_exp.losses``); its ``predict`` gives the decision.
        optimizer: partial optimiser, called with the parameters (e.g. ``torch.optim.SGD``, lr=...).
        scheduler: optional partial LR scheduler, called with the optimiser; stepped per epoch.
        head_lr_mult: learning-rate multiplier of the model's new head (models with ``param_groups``).
        channels_last: use the channels-last memory format (faster convolutions on GPUs).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: _PriorLoss,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        head_lr_mult: float = 1.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.head_lr_mult = float(head_lr_mult)
        self.channels_last = channels_last
        #: set by callbacks that need the feature maps of evaluation batches (CAM metrics).
        self.return_features = False
        #: mean evaluation loss per split (summed over DDP processes, weighted by batch size)
        self.eval_loss = nn.ModuleDict({split: MeanMetric() for split in ("val", "test")})
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        logits = self.model(self._inputs(x))
        loss = self.loss(logits, y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def _eval_step(self, split: str, batch: Any) -> dict[str, Any]:
        x, y = batch[0], batch[1]
        x = self._inputs(x)
        out: dict[str, Any] = {"target": y, "inputs": x, "extra": batch[2:]}
        if self.return_features:
            features = self.model.forward_features(x)
            out["features"] = features
            logits = self.model.classifier(features.mean(dim=(2, 3)))
        else:
            logits = self.model(x)
        loss = self.loss(logits, y)
        # A metric object, not a tensor: Lightning then reports the sample-weighted mean over all
        # processes (their shards may differ in size), not a mean of per-process means.
        mean_loss = self.eval_loss[split]
        mean_loss.update(loss.detach().float(), weight=len(y))
        self.log(f"{split}/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=split == "val", batch_size=len(y))
        out.update(logits=logits.detach(), preds=self.loss.predict(logits.detach()))
        return out

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return self._eval_step("val", batch)

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return self._eval_step("test", batch)

    def _param_groups(self, lr: float) -> Iterable[Any]:
        groups = getattr(self.model, "param_groups", None)
        if callable(groups):
            return groups(lr, self.head_lr_mult)
        return self.model.parameters()

    def configure_optimizers(self) -> Any:
        lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        optimizer = self.optimizer_factory(self._param_groups(lr) if lr is not None else self.model.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}
