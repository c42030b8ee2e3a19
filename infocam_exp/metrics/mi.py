"""Classification metrics and the softmax / PC-softmax mutual-information estimators.

Estimators (nats), over held-out pairs (x, y) and the training prior p:

- ``log_k``:   mean log softmax_y(f(x)) + log K   (the paper's recipe for CE; valid for balanced data)
- ``entropy``: mean log softmax_y(f(x)) + H(Y)    (the valid correction for CE on imbalanced data)
- ``pc``:      mean log PC_y(f(x))                 (the paper's recipe for PC-softmax)

The two CE variants differ by the constant log K - H(Y) >= 0, the over-estimate of "+ log K" on
imbalanced data.

All three estimate I(X;Y) of the *training* label distribution. When the evaluated split's labels
follow another distribution q (MNIST's capped test slice, CIFAR-LT's balanced test set, CUB's capped
test set), given ``eval_prior`` q the metric also reports I(X;Y) under q, the mutual information of
the evaluated pairs themselves (label shift: p(x|y) is shared, only the label marginal changes):

- ``pc_split_prior``:      mean [ f_y - logsumexp_k(f_k + log q_k) ]  with f the logits as they are
  (PC-softmax logits estimate log p(x|y) up to a per-x constant);
- ``softmax_split_prior``: the same with f = logits - log p (CE logits first lose the training
  prior p they carry).

With q = p the first is ``pc`` exactly, and the second is ``entropy`` whenever the split's label
frequencies equal p. State accumulates on the metric's device as sums (float64), so batches and
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
        eval_prior: (K,) label distribution q of the evaluated split (e.g. its label counts; it
            is normalised), or None. Classes with q = 0 are allowed (they drop out of the sum).

    ``update(logits (B, K), target (B,), preds (B,))``; ``compute()`` returns a dict of tensors:
    ``acc``, ``mean_class_acc``, ``class_acc`` (K,) (NaN for a class absent from the split),
    ``mi_estimate@log_k``, ``mi_estimate@entropy``, ``mi_estimate@pc`` and, with ``eval_prior``,
    ``mi_estimate@pc_split_prior`` and ``mi_estimate@softmax_split_prior`` (module docstring), each
    with its standard error ``*_se`` (std of the per-sample terms / sqrt(N)), ``num_samples``.
    """

    full_state_update = False

    def __init__(self, class_prior: torch.Tensor, eval_prior: torch.Tensor | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        prior = torch.as_tensor(class_prior, dtype=torch.float64)
        prior = prior / prior.sum()
        k = prior.numel()
        self.num_classes = k
        self.log_k = math.log(k)
        self.entropy = float(-(prior * prior.log()).sum())
        self.register_buffer("log_prior", prior.log().to(torch.float32))
        self.has_eval_prior = eval_prior is not None
        names = ["log_softmax", "log_pc"]
        if eval_prior is not None:
            q = torch.as_tensor(eval_prior, dtype=torch.float64).flatten()
            if q.numel() != k or (q < 0).any() or not q.sum() > 0:
                raise ValueError(f"eval_prior must be {k} non-negative weights with a positive sum, got {q.tolist()[:5]}...")
            self.register_buffer("log_eval_prior", (q / q.sum()).log().to(torch.float32))
            names += ["pc_split_prior", "softmax_split_prior"]
        dd = torch.float64
        self.add_state("n", torch.zeros((), dtype=dd), dist_reduce_fx="sum")
        for name in names:
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
        if self.has_eval_prior:
            # PC-type logits as they are; CE logits without the training prior they carry
            for name, f in (("pc_split_prior", logits), ("softmax_split_prior", logits - self.log_prior)):
                t = log_pc_softmax(f, self.log_eval_prior).gather(1, idx).squeeze(1).double()
                setattr(self, f"sum_{name}", getattr(self, f"sum_{name}") + t.sum())
                setattr(self, f"sumsq_{name}", getattr(self, f"sumsq_{name}") + (t * t).sum())
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
        extra = {}
        if self.has_eval_prior:
            for name in ("pc_split_prior", "softmax_split_prior"):
                mean, se = self._mean_se(getattr(self, f"sum_{name}"), getattr(self, f"sumsq_{name}"))
                extra[f"mi_estimate@{name}"] = mean
                extra[f"mi_estimate@{name}_se"] = se
        return extra | {
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
        ``mi_estimate``, ``mi_estimate_se`` and ``mi_estimate_prior_corrected`` (CE with + H(Y));
        when ``values`` hold the split-prior estimates, also ``mi_estimate@split_prior`` (and
        ``_se``): I(X;Y) under the evaluated split's label distribution, for the loss's logits.
    """
    key = {"softmax": "mi_estimate@log_k", "pc": "mi_estimate@pc"}.get(estimator)
    if key is None:
        raise ValueError(f"unknown MI estimator {estimator!r}; expected 'softmax' or 'pc'")
    out = {
        "mi_estimate": values[key],
        "mi_estimate_se": values[key + "_se"],
        "mi_estimate_prior_corrected": values["mi_estimate@entropy"],
    }
    split_key = f"mi_estimate@{estimator}_split_prior"
    if split_key in values:
        out["mi_estimate@split_prior"] = values[split_key]
        out["mi_estimate@split_prior_se"] = values[split_key + "_se"]
    return out
