"""Estimators that train no model (kNN, Gaussian plug-in): one call on the data, same record.

``infocam_exp.run`` takes this path when ``cfg.estimator.trained`` is false: it builds the
DataModule, calls the estimator on its training split, and writes ``metrics.json`` like any run
(``test/mi_estimate``, the data's reference values, ``test/mi_gap``). The key says ``test/`` for
uniformity with the trained estimators, whose estimate is a test-split mean; these estimators
read the training split (the samples a trained estimator learns from).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from infocam_exp.data.base import InMemoryDataModule
from infocam_exp.estimators.gaussian import gaussian_plugin_mi
from infocam_exp.estimators.knn import knn_mi

log = logging.getLogger(__name__)


class DirectEstimator:
    """Base: ``estimate(dm)`` returns the run's flat metrics dict."""

    name = "direct"

    def values(self, x, y) -> dict[str, float]:
        raise NotImplementedError

    def estimate(self, dm: InMemoryDataModule) -> dict[str, Any]:
        dm.setup()
        x, y = dm.split_tensors("train")[:2]
        # BLAS / OpenMP threads as many as torch uses (run.py sets them from cfg.torch_threads)
        with threadpool_limits(limits=torch.get_num_threads()):
            values = self.values(x.numpy(), y.numpy())
        metrics = {f"test/{k}": v for k, v in values.items()}
        metrics["test/num_samples"] = float(len(y))
        metrics.update(dm.reference_metrics())
        metrics["test/mi_gap"] = metrics["test/mi_estimate"] - metrics["test/mi_true"]
        return metrics


class KNNEstimator(DirectEstimator):
    """Ross's kNN estimator (``infocam_exp.estimators.knn``) with ``k`` neighbours."""

    name = "knn"

    def __init__(self, k: int = 3) -> None:
        self.k = int(k)

    def values(self, x, y) -> dict[str, float]:
        return {"mi_estimate": knn_mi(x, y, self.k)}


class GaussianPluginEstimator(DirectEstimator):
    """MI of class-conditional Gaussians fitted by scikit-learn (``estimators.gaussian``)."""

    name = "gaussian"

    def __init__(self, reg_param: float = 1e-3, mc_samples: int = 100_000, seed: int = 0) -> None:
        self.reg_param = float(reg_param)
        self.mc_samples = int(mc_samples)
        self.seed = int(seed)

    def values(self, x, y) -> dict[str, float]:
        value, se = gaussian_plugin_mi(x, y, self.reg_param, self.mc_samples, self.seed)
        return {"mi_estimate": value, "mi_estimate_se": se}
