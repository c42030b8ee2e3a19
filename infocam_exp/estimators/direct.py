"""Estimators that train no model (kNN, Gaussian plug-in): one call on the data, same record.

``infocam_exp.run`` takes this path when ``cfg.estimator.trained`` is false: it builds the
DataModule, calls the estimator on its training split, and writes ``metrics.json`` like any run.
Keys name the split the estimate reads: ``train/mi_estimate`` (``_se``), ``train/num_samples`` and
``train/mi_gap`` (= ``train/mi_estimate - test/mi_true``), beside the data's reference values
(``test/mi_true``: the population truth, whatever split is read). A trained estimator records
``test/mi_estimate``: its estimate is a mean over the test split. ``estimate_key`` finds the
estimate of either kind.
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

#: the split a direct estimator reads, hence the prefix of its keys
SPLIT = "train"
#: where a record keeps its MI estimate: trained estimators (a test-split mean), direct ones
ESTIMATE_KEYS = ("test/mi_estimate", f"{SPLIT}/mi_estimate")


def estimate_key(metrics: dict[str, Any], name: str = "mi_estimate") -> str:
    """The key of ``metrics`` holding ``<split>/<name>`` (``test/`` first, then ``train/``);
    ``test/<name>`` when neither is present."""
    for split in ("test", SPLIT):
        if f"{split}/{name}" in metrics:
            return f"{split}/{name}"
    return f"test/{name}"


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
        metrics = {f"{SPLIT}/{k}": v for k, v in values.items()}
        metrics[f"{SPLIT}/num_samples"] = float(len(y))
        metrics.update(dm.reference_metrics())
        metrics[f"{SPLIT}/mi_gap"] = metrics[f"{SPLIT}/mi_estimate"] - metrics["test/mi_true"]
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
