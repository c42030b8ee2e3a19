"""Classification metrics and the softmax / PC-softmax mutual-information estimators.

Estimators (nats), over held-out pairs (x, y) and the training prior p:

- ``log_k``:   mean log softmax_y(f(x)) + log K   (the paper's recipe for CE; valid for balanced data)
- ``entropy``: mean log softmax_y(f(x)) + H(Y)    (the valid correction for CE on imbalanced data)
- ``pc``:      mean log PC_y(f(x))                 (the paper's recipe for PC-softmax)

The two CE variants differ by the constant log K - H(Y) >= 0, the over-estimate of "+ log K" on
imbalanced data. State accumulates on the metric's device as sums (float64), so batches and
processes reduce exactly (``dist_reduce_fx="sum"``); nothing loops over samples in Python.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric

from infocam_exp.losses.pc_softmax import log_pc_softmax


class ClassificationMI(Metric):
    """Accuracy, per-class accuracy and the three MI estimators.

    Args:
        class_prior: (K,) training-label prior p(y).

    ``update(logits (B, K), target (B,), preds (B,))``; ``compute()`` returns a dict of tensors:
    ``acc``, ``mean_class_acc``, ``class_acc`` (K,) (NaN for a class absent from the split),
    ``mi_estimate@log_k``, ``mi_estimate@entropy``, ``mi_estimate@pc`` and their standard errors
    ``*_se`` (std of the per-sample terms / sqrt(N)), ``num_samples``.
    """

    full_state_update = False

    def __init__(self, class_prior: torch.Tensor, **kwargs) -> None:
        super().__init__(**kwargs)
        prior = torch.as_tensor(class_prior, dtype=torch.float64)
        prior = prior / prior.sum()
        k = prior.numel()
        self.num_classes = k
        self.log_k = math.log(k)
        self.entropy = float(-(prior * prior.log()).sum())
        self.register_buffer("log_prior", prior.log().to(torch.float32))
        dd = torch.float64
        self.add_state("n", torch.zeros((), dtype=dd), dist_reduce_fx="sum")
        for name in ("log_softmax", "log_pc"):
            self.add_state(f"sum_{name}", torch.zeros((), dtype=dd), dist_reduce_fx="sum")
            self.add_state(f"sumsq_{name}", torch.zeros((), dtype=dd), dist_reduce_fx="sum")
        self.add_state("class_correct", torch.zeros(k, dtype=dd), dist_reduce_fx="sum")
        self.add_state("class_total", torch.zeros(k, dtype=dd), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor, preds: torch.Tensor) -> None:
        logits = logits.detach().float()
        idx = target.long().unsqueeze(1)
        ls = torch.log_softmax(logits, dim=-1).gather(1, idx).squeeze(1).double()
        lp = log_pc_softmax(logits, self.log_prior).gather(1, idx).squeeze(1).double()
        self.n += target.numel()
        self.sum_log_softmax += ls.sum()
        self.sumsq_log_softmax += (ls * ls).sum()
        self.sum_log_pc += lp.sum()
        self.sumsq_log_pc += (lp * lp).sum()
        correct = (preds == target).double()
        self.class_correct += torch.bincount(target.long(), weights=correct, minlength=self.num_classes)
        self.class_total += torch.bincount(target.long(), minlength=self.num_classes).double()

    def _mean_se(self, total: torch.Tensor, total_sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n
        mean = total / n
        var = (total_sq / n - mean * mean).clamp_min(0) * n / (n - 1).clamp_min(1)
        return mean, (var / n).sqrt()

    def compute(self) -> dict[str, torch.Tensor]:
        ls, ls_se = self._mean_se(self.sum_log_softmax, self.sumsq_log_softmax)
        lp, lp_se = self._mean_se(self.sum_log_pc, self.sumsq_log_pc)
        class_acc = self.class_correct / self.class_total  # NaN where a class is absent
        present = self.class_total > 0
        return {
            "acc": self.class_correct.sum() / self.n,
            "mean_class_acc": class_acc[present].mean(),
            "class_acc": class_acc,
            "mi_estimate@log_k": ls + self.log_k,
            "mi_estimate@log_k_se": ls_se,
            "mi_estimate@entropy": ls + self.entropy,
            "mi_estimate@entropy_se": ls_se,
            "mi_estimate@pc": lp,
            "mi_estimate@pc_se": lp_se,
            "num_samples": self.n,
        }


def headline_mi(values: dict[str, torch.Tensor], estimator: str) -> dict[str, torch.Tensor]:
    """The paper's estimate for the loss in use and the prior-corrected CE estimate.

    Args:
        values: output of ``ClassificationMI.compute``.
        estimator: "softmax" (CE: + log K) or "pc" (PC-softmax: mean log PC_y).

    Returns:
        ``mi_estimate``, ``mi_estimate_se`` and ``mi_estimate_prior_corrected`` (CE with + H(Y)).
    """
    key = {"softmax": "mi_estimate@log_k", "pc": "mi_estimate@pc"}.get(estimator)
    if key is None:
        raise ValueError(f"unknown MI estimator {estimator!r}; expected 'softmax' or 'pc'")
    return {
        "mi_estimate": values[key],
        "mi_estimate_se": values[key + "_se"],
        "mi_estimate_prior_corrected": values["mi_estimate@entropy"],
    }
