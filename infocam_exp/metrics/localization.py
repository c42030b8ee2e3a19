"""WSOL localisation metrics as a torchmetrics ``Metric`` (accumulates hit counts, never maps).

Protocol: Choe et al., "Evaluating Weakly Supervised Object Localization Methods Right",
CVPR 2020 (wsolevaluation). Per image and score-map threshold ``tau`` the largest region's box
(see :mod:`infocam_exp.metrics.boxes`) is a hit when its best IoU over the image's ground-truth
boxes is >= 0.5. From per-threshold hit counts over the whole dataset:

* ``gt_known_loc``, ``top1_loc``, ``top5_loc`` at a fixed ``tau`` (the authors' 0.2), with the
  hit further requiring the top-1 / top-5 class to be right for the last two;
* ``max_box_acc``: the GT-known accuracy at the best ``tau`` over the dataset (and that ``tau``);
* ``max_box_acc_v2``: boxes of all regions (best IoU over every region x every ground-truth box),
  the best-``tau`` accuracy at each IoU in ``iou_thresholds`` (30/50/70), averaged.

Accuracies are ``hits / N`` over images, in percent (not a mean of per-batch ratios).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from infocam_exp.metrics.boxes import BACKENDS, batched_threshold_ious, default_thresholds

log = logging.getLogger(__name__)


def _iou_key(iou: float) -> str:
    return f"iou{round(iou * 100):d}"


class LocalizationMetrics(Metric):
    """Box-based WSOL metrics (GT-known / Top-1 / Top-5 Loc, MaxBoxAcc, MaxBoxAccV2).

    Args:
        thresholds: score-map thresholds in [0, 1): an int ``N`` for ``[0, 1/N, ..., (N-1)/N]``
            (default 1000: wsolevaluation's ``cam_curve_interval=0.001`` default; only its
            standalone ``evaluation.py`` command line defaults to 0.01, i.e. 100) or an explicit
            sequence/tensor.
        fixed_threshold: the ``tau`` at which ``gt_known_loc`` / ``top1_loc`` / ``top5_loc`` are
            read (0.2 in the paper); must be one of ``thresholds``.
        iou_threshold: IoU for a hit in the fixed-``tau`` metrics and MaxBoxAcc.
        iou_thresholds: IoUs averaged by MaxBoxAccV2.
        normalize: min-max normalise each map (wsolevaluation's ``normalize_scoremap``).
        max_pixels_per_chunk: torch sweep only: images are swept in chunks of at most this many
            pixels to bound memory (about 40 bytes per pixel); None: 2**21 on a CPU, 2**24 on a
            GPU.
        workers: CPU threads (None: ``torch.get_num_threads()``); see
            :func:`~infocam_exp.metrics.boxes.batched_threshold_ious`.
        backend: ``"auto"`` (compiled sweep for CPU maps, torch sweep on a GPU), ``"compiled"``
            or ``"torch"``; the numbers do not depend on it.

    ``update`` / ``compute`` are documented on the methods. States are per-threshold hit counts
    summed across processes (``dist_reduce_fx="sum"``).

    Speed: on a CPU ``update`` runs the compiled (numba) level sweep, the maps split over
    ``workers`` threads; maps on a GPU use the batched torch sweep there (see ``metrics/boxes.py``).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        thresholds: int | Sequence[float] | Tensor = 1000,
        fixed_threshold: float = 0.2,
        iou_threshold: float = 0.5,
        iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
        normalize: bool = True,
        max_pixels_per_chunk: int | None = None,
        workers: int | None = None,
        backend: str = "auto",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(thresholds, int):
            taus = default_thresholds(thresholds)
        else:
            taus = torch.as_tensor(thresholds, dtype=torch.float64).flatten()
        if taus.numel() == 0 or (taus < 0).any() or (taus >= 1).any():
            raise ValueError("thresholds must be a non-empty set of values in [0, 1)")
        # A plain CPU float64 attribute, not a buffer: a module-wide dtype cast (e.g. Lightning's
        # "bf16-true" precision) must not round the thresholds.
        self.thresholds: Tensor = taus
        self.fixed_threshold = float(fixed_threshold)
        self._fixed_index = self.threshold_index(self.fixed_threshold)
        self.iou_threshold = float(iou_threshold)
        self.iou_thresholds = tuple(float(v) for v in iou_thresholds)
        self.normalize = normalize
        self.max_pixels_per_chunk = max_pixels_per_chunk
        self.workers = workers
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        num = taus.numel()
        zeros = torch.zeros(num, dtype=torch.int64)
        self.add_state("gt_known_hits", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("top1_hits", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("top5_hits", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state(
            "v2_hits",
            default=torch.zeros(len(self.iou_thresholds), num, dtype=torch.int64),
            dist_reduce_fx="sum",
        )
        self.add_state("total", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state(
            "total_with_class", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum"
        )

    def threshold_index(self, threshold: float) -> int:
        """Index of ``threshold`` in :attr:`thresholds` (tolerance 1e-9); ValueError if absent."""
        diff = (self.thresholds - float(threshold)).abs()
        idx = int(diff.argmin())
        if diff[idx] > 1e-9:
            raise ValueError(
                f"threshold {threshold} is not one of the metric's {self.thresholds.numel()} "
                f"thresholds (nearest {float(self.thresholds[idx]):.6g})"
            )
        return idx

    def update(
        self,
        maps: Tensor,
        gt_boxes: Tensor,
        gt_valid: Tensor | None = None,
        top1_correct: Tensor | None = None,
        top5_correct: Tensor | None = None,
    ) -> None:
        """Accumulate one batch.

        Args:
            maps: ``(B, H, W)`` score maps of the ground-truth class, in the image frame of
                ``gt_boxes`` (e.g. 224 x 224 after upsampling).
            gt_boxes: ``(B, G, 4)`` boxes ``[x0, y0, x1, y1]`` in map pixels, padded to G.
            gt_valid: ``(B, G)`` bool, False on padding rows; without it a row with any negative
                coordinate (e.g. -1 padding) is padding.
            top1_correct: ``(B,)`` bool, top-1 class prediction right (for ``top1_loc``).
            top5_correct: ``(B,)`` bool, label among the top-5 predictions (for ``top5_loc``).
                Pass both or neither; without them ``top1_loc`` / ``top5_loc`` are NaN.
        """
        if maps.ndim != 3:
            raise ValueError(f"maps must have shape (B, H, W), got {tuple(maps.shape)}")
        if (top1_correct is None) != (top5_correct is None):
            raise ValueError("pass both top1_correct and top5_correct, or neither")
        maps = maps.detach()
        batch, height, width = maps.shape
        if gt_valid is None:
            gt_valid = (gt_boxes >= 0).all(dim=-1)
        if batch == 0:
            return
        iou_main, iou_any = batched_threshold_ious(
            maps,
            gt_boxes,
            self.thresholds,
            gt_valid,
            normalize=self.normalize,
            max_pixels_per_chunk=self.max_pixels_per_chunk,
            workers=self.workers,
            backend=self.backend,
        )
        # States live where the metric was moved; the sweep runs where the maps are.
        dev = self.gt_known_hits.device
        hit = (iou_main >= self.iou_threshold).to(dev)  # (B, T)
        any_iou = iou_any.to(dev)
        self.gt_known_hits += hit.sum(dim=0)
        for i, iou in enumerate(self.iou_thresholds):
            self.v2_hits[i] += (any_iou >= iou).sum(dim=0)
        self.total += batch
        if top1_correct is not None:
            top1 = top1_correct.to(device=hit.device, dtype=torch.bool).reshape(batch, 1)
            top5 = top5_correct.to(device=hit.device, dtype=torch.bool).reshape(batch, 1)
            self.top1_hits += (hit & top1).sum(dim=0)
            self.top5_hits += (hit & top5).sum(dim=0)
            self.total_with_class += batch

    def _curves(self) -> dict[str, Tensor]:
        # Counts go to float64 before scaling: int64 * 100.0 would round through float32.
        total = self.total.clamp(min=1).to(torch.float64)
        with_class = self.total_with_class.clamp(min=1).to(torch.float64)
        has_cls = bool(self.total_with_class == self.total) and bool(self.total > 0)

        def pct(hits: Tensor, count: Tensor) -> Tensor:
            return hits.to(torch.float64) * 100.0 / count

        nan = torch.full_like(self.top1_hits, float("nan"), dtype=torch.float64)
        return {
            "gt_known_loc": pct(self.gt_known_hits, total),
            "top1_loc": pct(self.top1_hits, with_class) if has_cls else nan,
            "top5_loc": pct(self.top5_hits, with_class) if has_cls else nan,
            "v2": pct(self.v2_hits, total),
        }

    def compute(self) -> dict[str, Tensor]:
        """All metrics, in percent (0-d float64 tensors unless noted).

        Keys:
            ``gt_known_loc``, ``top1_loc``, ``top5_loc``: at ``fixed_threshold`` (``threshold``).
            ``max_box_acc``: best GT-known accuracy over thresholds; ``max_box_acc_threshold``:
            the first threshold reaching it.
            ``max_box_acc_v2``: mean over ``iou_thresholds`` of ``max_box_acc_v2_iou{30,50,70}``,
            each the best all-regions accuracy over thresholds at that IoU.
            ``num_images``: images accumulated.
            Curves (1-D, one value per threshold): ``thresholds``, ``gt_known_loc_curve``,
            ``top1_loc_curve``, ``top5_loc_curve`` and ``max_box_acc_v2_iou{..}_curve``.
        """
        if int(self.total) == 0:
            log.warning("LocalizationMetrics.compute() called before any update")
        curves = self._curves()
        gt_known = curves["gt_known_loc"]
        best = int(torch.argmax(gt_known))
        out: dict[str, Tensor] = {}
        out.update(self._read_at(curves, self._fixed_index))
        out["max_box_acc"] = gt_known[best]
        out["max_box_acc_threshold"] = self.thresholds[best].to(gt_known.device)
        v2_best = curves["v2"].amax(dim=1)
        out["max_box_acc_v2"] = v2_best.mean()
        for i, iou in enumerate(self.iou_thresholds):
            out[f"max_box_acc_v2_{_iou_key(iou)}"] = v2_best[i]
        out["num_images"] = self.total.clone()
        out["thresholds"] = self.thresholds.to(gt_known.device)
        for name in ("gt_known_loc", "top1_loc", "top5_loc"):
            out[f"{name}_curve"] = curves[name]
        for i, iou in enumerate(self.iou_thresholds):
            out[f"max_box_acc_v2_{_iou_key(iou)}_curve"] = curves["v2"][i]
        return out

    def _read_at(self, curves: dict[str, Tensor], index: int) -> dict[str, Tensor]:
        return {
            "gt_known_loc": curves["gt_known_loc"][index],
            "top1_loc": curves["top1_loc"][index],
            "top5_loc": curves["top5_loc"][index],
            "threshold": self.thresholds[index].to(curves["gt_known_loc"].device),
        }

    def compute_at(self, threshold: float) -> dict[str, Tensor]:
        """``gt_known_loc`` / ``top1_loc`` / ``top5_loc`` (percent) at an externally chosen
        ``threshold`` (e.g. MaxBoxAcc's threshold selected on validation, applied to test).

        Uses the (synchronised) result of :meth:`compute`; ``threshold`` must be one of
        :attr:`thresholds`.
        """
        result = self.compute()
        index = self.threshold_index(threshold)
        curves = {
            name: result[f"{name}_curve"] for name in ("gt_known_loc", "top1_loc", "top5_loc")
        }
        return self._read_at(curves, index)


def scalar_metrics(result: dict[str, Tensor]) -> dict[str, float]:
    """The 0-d entries of a :meth:`LocalizationMetrics.compute` result as Python floats."""
    return {k: float(v) for k, v in result.items() if v.ndim == 0}
