"""PxAP (wsolevaluation's mask metric) as a torchmetrics ``Metric``: histograms on the device.

The computation is in :mod:`infocam_exp.metrics.masks`; this module only keeps its summed
histograms as metric states so that a training callback can score mask datasets batch by batch
on a GPU, across processes. Kept apart from ``masks`` so that the file evaluator does not import
torchmetrics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from infocam_exp.metrics.masks import (
    bin_edges,
    prepare_scoremaps,
    pxap_curve,
    score_histograms,
)

log = logging.getLogger(__name__)


class PxAPMetric(Metric):
    """Pixel average precision over score thresholds, with ignore regions (wsolevaluation).

    Args:
        thresholds: an int ``N`` for ``[0, 1/N, ..., (N-1)/N]`` (default 1000: wsolevaluation's
            ``cam_curve_interval=0.001``) or explicit increasing thresholds in [0, 1).
        normalize: min-max normalise each map first (wsolevaluation's ``normalize_scoremap``:
            NaN and constant maps become zeros); False: maps must lie in [0, 1].

    States (summed across processes): ``foreground_hist`` and ``background_hist`` (``T + 2``
    int64 pixel counts per score bin), ``ignored`` (pixels in ignore regions) and ``num_images``.
    ``compute`` returns PxAP in percent and the precision-recall curve; it raises
    :class:`~infocam_exp.metrics.masks.PxAPError` when no foreground pixel was seen.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        thresholds: int | Sequence[float] | Tensor = 1000,
        normalize: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        # Plain float64 numpy, not a buffer: a module-wide dtype cast must not round the edges.
        self.edges: np.ndarray = bin_edges(thresholds)
        self.normalize = normalize
        num_bins = self.edges.size - 1
        zeros = torch.zeros(num_bins, dtype=torch.int64)
        self.add_state("foreground_hist", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("background_hist", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("ignored", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state(
            "num_images", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum"
        )

    @property
    def thresholds(self) -> np.ndarray:
        """The ``T`` score thresholds (float64)."""
        return self.edges[:-3]

    def update(self, maps: Tensor, foreground: Tensor, ignore: Tensor | None = None) -> None:
        """Accumulate one batch.

        Args:
            maps: ``(B, H, W)`` score maps in the masks' frame (e.g. 224 x 224).
            foreground: ``(B, H, W)`` bool, union of the instance masks.
            ignore: ``(B, H, W)`` bool ignore boxes, or None (nothing ignored); their foreground
                pixels still count as foreground.
        """
        if maps.ndim != 3:
            raise ValueError(f"maps must have shape (B, H, W), got {tuple(maps.shape)}")
        maps = maps.detach()
        if maps.shape[0] == 0:
            return
        maps = prepare_scoremaps(maps, self.normalize)
        fg_hist, bg_hist, ignored = score_histograms(maps, foreground, ignore, self.edges)
        dev = self.foreground_hist.device
        self.foreground_hist += fg_hist.to(dev)
        self.background_hist += bg_hist.to(dev)
        self.ignored += ignored.to(dev)
        self.num_images += maps.shape[0]

    def compute(self) -> dict[str, Tensor]:
        """PxAP and its curve (float64 tensors on the states' device).

        Keys: ``pxap`` (0-d, percent); ``thresholds``, ``precision`` (NaN where nothing scores
        that high), ``recall`` (``(T + 2,)``, highest threshold first, see
        :class:`~infocam_exp.metrics.masks.PxAPCurve`); ``num_images``, ``num_foreground``,
        ``num_background``, ``num_ignored`` (0-d int64).
        """
        if int(self.num_images) == 0:
            log.warning("PxAPMetric.compute() called before any update")
        curve = pxap_curve(self.foreground_hist, self.background_hist, self.edges)
        dev = self.foreground_hist.device

        def t(x, dtype=torch.float64) -> Tensor:
            return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=dev)

        return {
            "pxap": t(curve.pxap),
            "thresholds": t(curve.thresholds),
            "precision": t(curve.precision),
            "recall": t(curve.recall),
            "num_images": self.num_images.clone(),
            "num_foreground": t(curve.num_foreground, torch.int64),
            "num_background": t(curve.num_background, torch.int64),
            "num_ignored": self.ignored.clone(),
        }
