"""CAM / infoCAM localisation metrics on the validation and test splits, on the model's device.

For each map method (``cam``, ``infocam``, ``infocam_least_likely``) the maps of the ground-truth
class are computed from the evaluation batch's feature maps, upsampled (bicubic) to the input
size, and fed to ``LocalizationMetrics`` (per-threshold hit counts; no maps are kept). Keys:
``<split>/<metric>@<method>`` with metric in ``gt_known_loc``, ``top1_loc``, ``top5_loc`` (at the
fixed threshold, default 0.2), ``max_box_acc``, ``max_box_acc_threshold``, ``max_box_acc_v2``
(+ ``_iou30/50/70``); on test also ``<metric>_val_tau@<method>``: the fixed-threshold metrics at
the threshold that maximised MaxBoxAcc on validation (selection never uses the test split).
Method-free: ``<split>/top1_cls`` and ``<split>/top5_cls``. Accuracies are fractions in [0, 1]
like every accuracy of the project (tables show percent).

The batch's third element must be the ground-truth boxes, (B, G, 4) x0, y0, x1, y1 in input
pixels (negative or beyond the input where the protocol keeps them unclipped), padded with rows of
-1 (``infocam_exp.data.wsol.BoxPadCollate``). The model must expose ``forward_features`` and ``classifier``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from infocam_exp.cam.maps import class_maps, upsample_maps
from infocam_exp.data.wsol import valid_box_rows
from infocam_exp.metrics.boxes import largest_region_boxes
from infocam_exp.metrics.localization import LocalizationMetrics
from infocam_exp.results import write_text_atomic

log = logging.getLogger(__name__)

_FIXED_KEYS = ("gt_known_loc", "top1_loc", "top5_loc")


class LocalizationEvaluation(pl.Callback):
    """Localisation metrics, accuracy-vs-threshold curves and an overlay picture per test run.

    Args:
        methods: map methods to evaluate (``infocam_exp.cam.METHODS``).
        window: side of the authors' summing window (None: no window), or a list of sides to
            evaluate several in one run; a method with window k > 1 is reported as
            ``<method>_w<k>`` (e.g. ``infocam_w3``), without a window as ``<method>``.
        thresholds: number N of thresholds 0, 1/N, ..., (N-1)/N (default 1000, as wsolevaluation's
            ``cam_curve_interval=0.001`` default, in training and for its final numbers).
        fixed_threshold: tau of the fixed-threshold metrics (authors: 0.2).
        iou_thresholds: IoUs averaged by MaxBoxAccV2.
        val_every_epoch: evaluate localisation at every validation epoch (else only the last one,
            which is what selects the test threshold).
        num_pictures: test images drawn in ``pictures/test_overlays.png`` (0: none).
        topk: k of the Top-k Loc / Cls metric (5, or K when fewer classes).
    """

    def __init__(
        self,
        methods: Sequence[str] = ("cam", "infocam"),
        window: int | Sequence[int | None] | None = None,
        thresholds: int = 1000,
        fixed_threshold: float = 0.2,
        iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
        val_every_epoch: bool = False,
        num_pictures: int = 8,
        topk: int = 5,
    ) -> None:
        super().__init__()
        windows = list(window) if isinstance(window, Sequence) else [window]
        #: label -> (map method, window side or None)
        self.variants = {
            (m if not w or w == 1 else f"{m}_w{w}"): (m, w if w and w > 1 else None)
            for w in windows
            for m in methods
        }
        self.num_thresholds = int(thresholds)
        self.fixed_threshold = float(fixed_threshold)
        self.iou_thresholds = tuple(iou_thresholds)
        self.val_every_epoch = val_every_epoch
        self.num_pictures = int(num_pictures)
        self.topk = int(topk)
        self.metrics: dict[str, dict[str, LocalizationMetrics]] = {}
        self.cls_counts: dict[str, torch.Tensor] = {}
        self.val_tau: dict[str, float] = {}
        self.results: dict[str, Any] = {}
        self._picture: dict[str, Any] | None = None

    def protocol_facts(self) -> dict[str, Any]:
        """Score-map thresholds, map variants and the threshold selection (metrics.json's protocol)."""
        return {
            "cam": {
                "thresholds": self.num_thresholds,
                "threshold_grid": f"0, 1/{self.num_thresholds}, ..., {self.num_thresholds - 1}/{self.num_thresholds}",
                "fixed_threshold": self.fixed_threshold,
                "iou_thresholds_v2": list(self.iou_thresholds),
                "variants": {label: {"method": m, "window": w} for label, (m, w) in self.variants.items()},
                "test_threshold": "MaxBoxAcc threshold of the val split (*_val_tau keys)",
            }
        }

    # --- hooks -----------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        model = pl_module.model
        if not (hasattr(model, "forward_features") and isinstance(getattr(model, "classifier", None), torch.nn.Linear)):
            raise TypeError(
                f"{type(model).__name__} cannot give CAMs: LocalizationEvaluation needs a model with "
                "forward_features(x) -> (B, C, h, w) and a `classifier` nn.Linear (a GAP network)"
            )
        pl_module.return_features = True

    def _active(self, split: str, trainer: pl.Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        if split == "val" and not self.val_every_epoch:
            max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
            return trainer.current_epoch >= max_epochs - 1 or bool(trainer.fast_dev_run)
        return True

    def _start(self, split: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active(split, trainer):
            self.metrics.pop(split, None)
            return
        self.metrics[split] = {
            m: LocalizationMetrics(
                thresholds=self.num_thresholds,
                fixed_threshold=self.fixed_threshold,
                iou_thresholds=self.iou_thresholds,
            ).to(pl_module.device)
            for m in self.variants
        }
        self.cls_counts[split] = torch.zeros(3, dtype=torch.float64, device=pl_module.device)
        if split == "test":
            self._picture = None

    @torch.no_grad()
    def _update(self, split: str, pl_module: pl.LightningModule, outputs: dict[str, Any]) -> None:
        if split not in self.metrics:
            return
        if "features" not in outputs or not outputs["extra"]:
            raise ValueError("localisation needs evaluation batches (images, labels, boxes) and feature maps")
        feats, logits, target = outputs["features"].float(), outputs["logits"].float(), outputs["target"]
        boxes = outputs["extra"][0].to(feats.device).float()
        # padding rows are all -1; a real (unclipped) box may have negative coordinates
        valid = valid_box_rows(boxes)
        size = tuple(outputs["inputs"].shape[-2:])
        k = min(self.topk, logits.shape[1])
        top1 = outputs["preds"] == target
        topk = (logits.topk(k, dim=1).indices == target[:, None]).any(dim=1)
        self.cls_counts[split] += torch.stack([top1.sum(), topk.sum(), torch.tensor(len(target), device=top1.device)]).double()
        weight = pl_module.model.classifier.weight.float()
        maps = {}
        for label, (method, window) in self.variants.items():
            m = class_maps(feats, weight, target, method=method, logits=logits, window=window)
            m = upsample_maps(m, size)
            self.metrics[split][label].update(m, boxes, gt_valid=valid, top1_correct=top1, top5_correct=topk)
            maps[label] = m
        if split == "test" and self._picture is None and self.num_pictures > 0:
            n = min(self.num_pictures, len(target))
            self._picture = {
                "inputs": outputs["inputs"][:n].float().cpu(),
                "maps": {m: v[:n].cpu() for m, v in maps.items()},
                "boxes": boxes[:n].cpu(),
                "target": target[:n].cpu(),
                "preds": outputs["preds"][:n].cpu(),
            }

    def _finish(self, split: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = self.metrics.pop(split, None)
        if metrics is None:
            return
        counts = trainer.strategy.reduce(self.cls_counts.pop(split), reduce_op="sum")
        scalars: dict[str, float] = {
            f"{split}/top1_cls": float(counts[0] / counts[2].clamp_min(1)),
            f"{split}/top{self.topk}_cls": float(counts[1] / counts[2].clamp_min(1)),
        }
        curves: dict[str, dict[str, list[float]]] = {}
        for method, metric in metrics.items():
            res = metric.compute()
            for key, v in res.items():
                if v.ndim:
                    continue
                value = float(v)
                if key not in ("max_box_acc_threshold", "threshold", "num_images"):
                    value /= 100.0  # LocalizationMetrics reports percent; the project uses fractions
                scalars[f"{split}/{key}@{method}"] = value
            curves[method] = {k: [x / 100.0 for x in v.tolist()] if k != "thresholds" else v.tolist()
                              for k, v in res.items() if v.ndim}
            if split == "val":
                self.val_tau[method] = float(res["max_box_acc_threshold"])
            elif method in self.val_tau:
                at = metric.compute_at(self.val_tau[method])
                for key in _FIXED_KEYS:
                    scalars[f"{split}/{key}_val_tau@{method}"] = float(at[key]) / 100.0
                scalars[f"{split}/val_tau@{method}"] = self.val_tau[method]
        pl_module.log_dict({k: float(v) for k, v in scalars.items()}, sync_dist=False)
        self.results.update(scalars)
        if trainer.is_global_zero:
            self._write_curves(Path(trainer.default_root_dir), split, curves)
            if split == "test" and self._picture is not None:
                self._write_picture(Path(trainer.default_root_dir), trainer)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start("val", trainer, pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update("val", pl_module, outputs)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._finish("val", trainer, pl_module)

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start("test", trainer, pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update("test", pl_module, outputs)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._finish("test", trainer, pl_module)

    # --- files -----------------------------------------------------------------------------
    def _write_curves(self, run_dir: Path, split: str, curves: dict[str, dict[str, list[float]]]) -> None:
        write_text_atomic(run_dir / "curves" / f"{split}_localization.json", json.dumps(curves, indent=1))
        from infocam_exp.plots.curves import localization_curves_figure  # matplotlib only here
        from infocam_exp.tables.plots import save_figure

        fig = localization_curves_figure(curves, split, self.fixed_threshold)
        save_figure(fig, run_dir / "curves" / f"{split}_localization.png")

    def _write_picture(self, run_dir: Path, trainer: pl.Trainer) -> None:
        from infocam_exp.plots.overlays import save_overlay_grid

        pic = self._picture
        dm = trainer.datamodule
        denorm = getattr(dm, "denormalize", None)
        images = denorm(pic["inputs"]) if callable(denorm) else pic["inputs"]
        if not callable(denorm):  # display only: stretch each image to [0, 1]
            flat = images.flatten(1)
            lo, hi = flat.min(1).values, flat.max(1).values
            images = (images - lo[:, None, None, None]) / (hi - lo).clamp_min(1e-8)[:, None, None, None]
        tau = torch.tensor([self.fixed_threshold], dtype=torch.float64)
        pred_boxes = {m: largest_region_boxes(v, tau)[:, 0] for m, v in pic["maps"].items()}
        names = getattr(dm, "class_names", None)
        titles = [
            f"y={names[t] if names else t} pred={names[p] if names else p}"
            for t, p in zip(pic["target"].tolist(), pic["preds"].tolist(), strict=True)
        ]
        gt = [b[valid_box_rows(b)] for b in pic["boxes"]]
        save_overlay_grid(run_dir / "pictures" / "test_overlays.png", images.clamp(0, 1), pic["maps"], gt_boxes=gt, pred_boxes=pred_boxes, titles=titles, tau=self.fixed_threshold)
