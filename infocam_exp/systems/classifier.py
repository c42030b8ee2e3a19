"""The classification system every experiment trains: model + loss + optimiser.

Evaluation steps return the logits, targets and predictions (and the rest of the batch, e.g. boxes)
so that callbacks compute the metrics on the model's device; the system itself logs only losses.

Divergence is a failure, not a result: a non-finite training loss stops the run (at the latest at
the end of the epoch in which it happened) with a ``DivergenceError`` naming the epoch, the step,
the loss value and the usual cure; so do non-finite logits at evaluation. The first non-finite
step is recorded on the model's device, so watching costs no device synchronisation per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric

from infocam_exp.errors import UserError
from infocam_exp.losses.pc_softmax import _PriorLoss
from infocam_exp.systems.schedule import schedule_summary


class DivergenceError(UserError, RuntimeError):
    """Training or evaluation produced non-finite values; ``details`` holds where and what."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class ClassifierSystem(pl.LightningModule):
    """Trains ``model`` with ``loss``.

    Args:
        model: ``nn.Module`` mapping (B, ...) inputs to (B, K) logits. If it has
            ``param_groups(lr, head_lr_mult)``, the optimiser gets those groups (e.g. the WSOL
            backbones' authors' groups: some parameters at ``lr * head_lr_mult``); if it has ``forward_features`` and ``classifier``, evaluation
            can return feature maps for CAMs.
        loss: a prior-aware loss (``infocam_exp.losses``); its ``predict`` gives the decision.
        optimizer: partial optimiser, called with the parameters (e.g. ``torch.optim.SGD``, lr=...).
        scheduler: optional partial LR scheduler, called with the optimiser.
        scheduler_interval: ``"epoch"`` (step the scheduler after each epoch) or ``"step"``
            (after each optimiser step: step-based schedules such as TF-slim's).
        head_lr_mult: the ``lr_ratio`` of the models with ``param_groups``: the multiplier of the
            groups they scale (WSOL: VGG conv6 + fc, ResNet layer4 + fc; docs/protocol.md, "WSOL
            training recipes").
        channels_last: use the channels-last memory format (faster convolutions on GPUs).
        finite_check_every: look at the recorded training-loss check every this many steps (and
            always at the last step of an epoch); 1 stops at the very step that diverged.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: _PriorLoss,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        head_lr_mult: float = 1.0,
        channels_last: bool = False,
        finite_check_every: int = 20,
        scheduler_interval: str = "epoch",
    ) -> None:
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"system.scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.scheduler_interval = scheduler_interval
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
        if finite_check_every < 1:
            raise ValueError(f"finite_check_every must be >= 1, got {finite_check_every}")
        self.finite_check_every = int(finite_check_every)
        # Device-side watch state (plain tensors, not buffers: checkpoints stay unchanged).
        self._loss_watch: dict[str, torch.Tensor] | None = None
        self._nonfinite_logits: dict[str, torch.Tensor] = {}

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
        self._watch_loss(loss)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    # --- divergence ----------------------------------------------------------------------------
    def _watch_loss(self, loss: torch.Tensor) -> None:
        """Remember (on the loss's device) the first step of this epoch whose loss is not finite."""
        value = loss.detach().double()
        w = self._loss_watch
        if w is None or w["seen"].device != value.device:
            zero = torch.zeros((), dtype=torch.int64, device=value.device)
            w = self._loss_watch = {"seen": zero, "first": zero - 1, "value": value * 0}
        new = ~torch.isfinite(value) & (w["first"] < 0)
        w["first"] = torch.where(new, w["seen"], w["first"])
        w["value"] = torch.where(new, value, w["value"])
        w["seen"] = w["seen"] + 1

    def _lr_hint(self) -> str:
        try:
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        except (AttributeError, IndexError, RuntimeError):
            return "usual cause: a learning rate too high for this model; lower optimizer.lr="
        return (
            f"usual cause: a learning rate too high for this model (now {lr:g}); "
            f"try e.g. optimizer.lr={lr / 10:g}"
        )

    def _check_training_loss(self) -> None:
        w = self._loss_watch
        if w is None:
            return
        bad = (w["first"] >= 0).float()
        # every DDP process must agree to stop, or the others would wait forever
        if float(self.trainer.strategy.reduce(bad, reduce_op="sum")) == 0:
            return
        epoch = self.current_epoch
        first = int(w["first"])
        if first >= 0:
            value = float(w["value"])
            global_step = self.global_step - int(w["seen"]) + first  # both counted from 0
            where = f"epoch {epoch}, step {first} of the epoch (global step {global_step})"
        else:
            value, global_step = float("nan"), None
            where = f"epoch {epoch}, on another process"
        raise DivergenceError(
            f"training diverged: the loss is {value} at {where}. The run stops here (status "
            f"failed); {self._lr_hint()}, or check the inputs for NaN/inf.",
            epoch=epoch,
            step=first,
            global_step=global_step,
            loss=value,
        )

    def on_train_epoch_start(self) -> None:
        self._loss_watch = None
        # Shuffle by epoch number, so a run resumed at epoch k sees the order an uninterrupted
        # run sees at epoch k (the loader alone counts only its own iterations).
        loader = self.trainer.train_dataloader
        if callable(getattr(loader, "set_epoch", None)):
            loader.set_epoch(self.current_epoch)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if (batch_idx + 1) % self.finite_check_every == 0 or self.trainer.is_last_batch:
            self._check_training_loss()

    def _watch_logits(self, split: str, logits: torch.Tensor) -> None:
        bad = (~torch.isfinite(logits.detach())).flatten(1).any(dim=1).sum()
        prev = self._nonfinite_logits.get(split)
        self._nonfinite_logits[split] = bad if prev is None else prev + bad

    def _check_logits(self, split: str) -> None:
        count = self._nonfinite_logits.pop(split, None)
        if count is None:
            return
        total = int(self.trainer.strategy.reduce(count.float(), reduce_op="sum"))
        if total:
            raise DivergenceError(
                f"{split} evaluation at epoch {self.current_epoch}: {total} sample(s) have "
                f"non-finite logits. The model has diverged; the run stops here (status failed); "
                f"{self._lr_hint()}, or check the inputs for NaN/inf.",
                epoch=self.current_epoch,
                split=split,
                nonfinite_samples=total,
            )

    def on_validation_epoch_start(self) -> None:
        self._nonfinite_logits.pop("val", None)

    def on_validation_epoch_end(self) -> None:
        self._check_logits("val")

    def on_test_epoch_start(self) -> None:
        self._nonfinite_logits.pop("test", None)

    def on_test_epoch_end(self) -> None:
        self._check_logits("test")

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
        self._watch_logits(split, logits)
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

    def protocol_facts(self) -> dict[str, Any]:
        """Optimiser (class, settings, and each parameter group's name, lr and parameter count),
        scheduler, loss and the trainer's precision, for metrics.json's protocol block."""

        def plain(v: Any) -> Any:
            return v if isinstance(v, str | int | float | bool) or v is None else repr(v)

        def partial_facts(factory: Any) -> dict[str, Any]:
            func = getattr(factory, "func", factory)
            return {"name": getattr(func, "__name__", repr(func)),
                    **{k: plain(v) for k, v in getattr(factory, "keywords", {}).items()}}

        lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        groups = self._param_groups(lr) if lr is not None else [{"params": list(self.model.parameters())}]
        groups = groups if isinstance(groups, list) and groups and isinstance(groups[0], dict) else [{"params": list(groups)}]
        optimizer = partial_facts(self.optimizer_factory)
        optimizer["head_lr_mult"] = self.head_lr_mult
        optimizer["groups"] = [
            {"name": g.get("name", f"group{i}"), "lr": g.get("lr", lr),
             "params": int(sum(p.numel() for p in g["params"] if p.requires_grad)),
             "tensors": sum(1 for p in g["params"] if p.requires_grad)}
            for i, g in enumerate(groups)
        ]
        facts: dict[str, Any] = {
            "optimizer": optimizer,
            "scheduler": partial_facts(self.scheduler_factory) if self.scheduler_factory is not None else None,
            "loss": type(self.loss).__name__,
        }
        schedule = self._schedule_facts()
        optimizer["weight_decay_by_group"] = schedule.pop("weight_decay_by_group")
        facts["schedule"] = schedule
        trainer = self._trainer  # None outside a Trainer (no exception, unlike self.trainer)
        if trainer is not None and hasattr(trainer, "precision"):
            facts["trainer"] = {"precision": str(trainer.precision)}
        return facts

    def configure_optimizers(self) -> Any:
        lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        optimizer = self.optimizer_factory(self._param_groups(lr) if lr is not None else self.model.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    def _schedule_facts(self) -> dict[str, Any]:
        """The learning-rate schedule (JSON-serialisable): per-group weight decay, the training
        length and the lr of each stretch of steps (or epochs) up to the trainer's ``max_steps``
        (or ``max_epochs``), replayed on a throwaway optimiser with the scheduler."""
        factory = self.optimizer_factory
        keywords = dict(getattr(factory, "keywords", {}) or {})
        optimizer = factory(self._param_groups(keywords["lr"]) if "lr" in keywords else self.model.parameters())
        facts: dict[str, Any] = {
            "weight_decay_by_group": {
                str(g.get("name", i)): float(g.get("weight_decay", 0.0)) for i, g in enumerate(optimizer.param_groups)
            },
        }
        trainer = self._trainer
        if trainer is not None:
            facts["training_length"] = (
                f"{trainer.max_steps} optimiser steps" if trainer.max_steps and trainer.max_steps > 0
                else f"{trainer.max_epochs} epochs"
            )
        if self.scheduler_factory is None:
            return facts
        total = None
        if trainer is not None:
            total = trainer.max_steps if self.scheduler_interval == "step" and trainer.max_steps > 0 else trainer.max_epochs
        facts["lr_schedule"] = schedule_summary(
            self.scheduler_factory, optimizer, self.scheduler_interval, total if total and total > 0 else None
        )
        return facts
