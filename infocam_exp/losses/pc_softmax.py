"""Softmax cross-entropy and PC-softmax (Qin, Kim & Gedeon, arXiv:1911.10688, section 3).

PC_y(f) = exp f_y / sum_k p(k) exp f_k, with p the training-label prior. It is not normalised
(sum_y p(y) PC_y = 1); log PC_y(f(x)) estimates the point-wise mutual information
log p(y|x)/p(y). Everything is computed in log space:
log PC_y = f_y - logsumexp_k(f_k + log p(k)); raw logits are never exponentiated.

The PC loss -log PC_y equals the logit-adjusted loss of Menon et al. (ICLR 2021, tau = 1) minus
the constant log p(y), and Balanced Softmax (Ren et al., NeurIPS 2020): same gradients, same
minimiser; only the logged loss value differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def log_pc_softmax(logits: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """log PC_k(f) for every class.

    Args:
        logits: (B, K) logits f(x).
        log_prior: (K,) log p(k) of the training labels.

    Returns:
        (B, K) log PC_k(f(x)) in nats; row-wise logsumexp(out + log_prior) == 0.
    """
    return logits - torch.logsumexp(logits + log_prior.to(logits.dtype), dim=-1, keepdim=True)


class _PriorLoss(nn.Module):
    """Common state: the training-split class prior as a buffer (moves with the module)."""

    #: which MI estimator is the paper's recipe for this loss: "softmax" (+ log K) or "pc".
    mi_estimator: str = "softmax"

    def __init__(self, class_prior: torch.Tensor) -> None:
        super().__init__()
        prior = torch.as_tensor(class_prior, dtype=torch.float32)
        if prior.ndim != 1 or (prior <= 0).any():
            raise ValueError(f"class_prior must be a positive (K,) vector, got {prior}")
        self.register_buffer("log_prior", (prior / prior.sum()).log(), persistent=False)

    @property
    def num_classes(self) -> int:
        return int(self.log_prior.numel())

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) predicted class: argmax of the logits (the prior-free decision)."""
        return logits.argmax(dim=-1)


class CrossEntropy(_PriorLoss):
    """Plain softmax cross-entropy, mean over the batch (nats).

    Args:
        class_prior: (K,) training-label frequencies (used by ``predict`` when
            ``posthoc_correction`` is on, and by the MI metrics).
        posthoc_correction: predict argmax_k (f_k - log p(k)) instead of argmax f: post-hoc
            logit adjustment (Menon et al., ICLR 2021, tau = 1) of a CE-trained model.
    """

    mi_estimator = "softmax"

    def __init__(self, class_prior: torch.Tensor, posthoc_correction: bool = False) -> None:
        super().__init__(class_prior)
        self.posthoc_correction = posthoc_correction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        if self.posthoc_correction:
            return (logits - self.log_prior.to(logits.dtype)).argmax(dim=-1)
        return logits.argmax(dim=-1)


class PCSoftmax(_PriorLoss):
    """PC-softmax loss -log PC_y(f(x)), mean over the batch (nats)."""

    mi_estimator = "pc"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_pc = log_pc_softmax(logits, self.log_prior)
        return -log_pc.gather(1, target.unsqueeze(1)).mean()
