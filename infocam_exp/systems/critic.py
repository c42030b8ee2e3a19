"""A critic T(x, y) = g(x)_y trained by maximising a variational MI bound (InfoNCE, NWJ, MINE).

The network g is the same plain model the classifier uses (K outputs); only the objective
differs (``infocam_exp.estimators.bounds``). Validation and test report all three bounds of the
trained critic over the whole split, ``<split>/mi_estimate@{infonce,nwj,dv}``, and
``<split>/mi_estimate``, the bound that was trained; ``<split>/loss`` is minus that bound, so the
checkpoint callback (``monitor: val/loss``) selects the critic with the highest validation bound.
Single process only (the split statistics are not reduced across DDP processes).
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from infocam_exp.estimators.bounds import BOUNDS, MINELoss, SplitBounds, bound_from_logits
from infocam_exp.systems.classifier import OptimizerFactory, SchedulerFactory

#: the bound each estimator reports as ``mi_estimate`` (MINE trains and reports DV)
HEADLINE = {"infonce": "infonce", "nwj": "nwj", "mine": "dv"}


class CriticSystem(pl.LightningModule):
    """Trains ``model`` as a critic with ``bound``.

    Args:
        model: ``nn.Module`` mapping (B, ...) inputs to (B, K) outputs g(x); T(x, y) = g(x)_y.
        bound: "infonce", "nwj" or "mine" (DV bound with MINE's moving-average gradient).
        optimizer, scheduler: partial optimiser / LR scheduler, as ``ClassifierSystem``.
        negatives: InfoNCE negatives per chunk at evaluation; None: the training batch size
            (the DataModule's ``batch_size``).
        ema_rate: MINE's moving-average rate.
        loss: the data's prior-aware loss that ``build.build_system`` passes to every system;
            unused, the bound is the objective.
    """

    def __init__(
        self,
        model: nn.Module,
        bound: str,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        negatives: int | None = None,
        ema_rate: float = 0.01,
        loss: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if bound not in HEADLINE:
            raise ValueError(f"system.bound={bound!r} is not known: use one of {', '.join(HEADLINE)}")
        self.model = model
        self.bound = bound
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.negatives = negatives
        self.mine = MINELoss(ema_rate) if bound == "mine" else None
        self._splits: dict[str, SplitBounds] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def setup(self, stage: str) -> None:
        if self.trainer is not None and self.trainer.world_size > 1:
            raise ValueError(
                "the MI critics (estimator=infonce|nwj|mine) evaluate whole splits in one process; "
                "run them with trainer=default or trainer=gpu, not trainer=ddp"
            )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        x, y = batch[0], batch[1]
        if len(y) < 2:  # a last batch of one sample has no marginal pair: skipped
            return None
        logits = self.model(x)
        if self.mine is not None:
            loss, value = self.mine(logits, y)
        else:
            value = bound_from_logits(self.bound, logits, y)
            loss = -value
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log("train/bound", value.detach(), on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def _eval_step(self, split: str, batch: Any) -> None:
        x, y = batch[0], batch[1]
        logits = self.model(x)
        if split not in self._splits:
            self._splits[split] = SplitBounds(self._negatives())
        self._splits[split].update(logits, y)

    def _negatives(self) -> int:
        if self.negatives is not None:
            return int(self.negatives)
        return int(self.trainer.datamodule.batch_size)

    def _eval_end(self, split: str) -> None:
        stats = self._splits.pop(split, None)
        if stats is None:
            return
        values = stats.compute()
        headline = values[HEADLINE[self.bound]]
        logged = {f"{split}/mi_estimate@{name}": values[name] for name in BOUNDS}
        logged[f"{split}/mi_estimate"] = headline
        logged[f"{split}/loss"] = -headline if math.isfinite(headline) else math.inf
        self.log_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in logged.items()}, prog_bar=False)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._eval_end("val")
        self._splits.pop("val", None)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.model.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}
