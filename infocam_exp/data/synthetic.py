"""Synthetic Gaussian classes of the paper's MI experiment (arXiv:1911.10688, section 2).

x | y = k ~ N(mu_k 1_d, I_d), with mu = [0, +2, -2, +4, -4] for K = 5 (the pattern continues
+6, -6, ... for larger K). Balanced: ``samples_per_class`` per class; imbalanced: prior
1 : 2 : ... : K with class k holding (k + 1) * samples_per_class / 2 (for K = 5 and 10,000 this is the
paper's [5000, ..., 25000]); or an explicit list of per-class counts. Validation and test sets each
hold ``eval_fraction`` (1/5, the paper's ratio) of each training count, drawn independently.
The data are generated from ``seed`` (the data seed), so every training seed sees the same samples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from infocam_exp.data.base import InMemoryDataModule
from infocam_exp.errors import ConfigError
from infocam_exp.metrics.mi_truth import MIValue, entropy, gaussian_mixture_mi, pointwise_log_ratio

log = logging.getLogger(__name__)


def paper_means(num_classes: int, spacing: float = 2.0) -> list[float]:
    """[0, +s, -s, +2s, -2s, ...] of length K (the paper's layout for K = 5, s = 2)."""
    out = [0.0]
    step = 1
    while len(out) < num_classes:
        out.append(step * spacing)
        if len(out) < num_classes:
            out.append(-step * spacing)
        step += 1
    return out


def class_counts_for(prior: str | Sequence[int], num_classes: int, samples_per_class: int) -> list[int]:
    """Per-class training counts for ``prior`` = "balanced", "imbalanced" or an explicit list."""
    if isinstance(prior, str):
        if prior == "balanced":
            return [samples_per_class] * num_classes
        if prior == "imbalanced":
            return [(k + 1) * samples_per_class // 2 for k in range(num_classes)]
        raise ConfigError(
            f"data.prior={prior!r} is not known: use balanced, imbalanced or a list of "
            f"{num_classes} per-class counts, e.g. data.prior=[100,200,300,400,500]"
        )
    counts = [int(c) for c in prior]
    if len(counts) != num_classes or min(counts) < 1:
        raise ConfigError(
            f"data.prior={list(prior)} must list {num_classes} positive per-class counts "
            f"(data.num_classes={num_classes})"
        )
    return counts


class SyntheticGaussianDataModule(InMemoryDataModule):
    """In-memory Gaussian classes; batches are gathered from tensors on the model's device.

    Args:
        dim: d, the input dimension.
        num_classes: K.
        prior: "balanced", "imbalanced" (1:2:...:K) or an explicit list of K training counts.
        samples_per_class: training samples per class when balanced.
        eval_fraction: validation/test size as a fraction of each training count.
        means: K class mean scalars mu_k (mean vector mu_k 1_d); default: ``paper_means(K)``.
        batch_size, eval_batch_size: batch sizes for training and evaluation.
        seed: data seed; the same seed gives bit-identical data.
    """

    def __init__(
        self,
        dim: int = 1,
        num_classes: int = 5,
        prior: str | Sequence[int] = "balanced",
        samples_per_class: int = 10_000,
        eval_fraction: float = 0.2,
        means: Sequence[float] | None = None,
        batch_size: int = 500,
        eval_batch_size: int = 10_000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if dim < 1 or num_classes < 2:
            raise ConfigError(f"need dim >= 1 and num_classes >= 2, got dim={dim}, num_classes={num_classes}")
        self.dim = int(dim)
        self.num_classes = int(num_classes)
        self.mean_scalars = [float(m) for m in (means if means is not None else paper_means(num_classes))]
        if len(self.mean_scalars) != self.num_classes:
            raise ConfigError(f"data.means has {len(self.mean_scalars)} entries, expected {num_classes}")
        self.train_counts = class_counts_for(prior, self.num_classes, samples_per_class)
        self.eval_counts = [max(1, round(c * eval_fraction)) for c in self.train_counts]
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.seed = int(seed)
        self.input_shape = (self.dim,)
        self.class_counts = torch.tensor(self.train_counts, dtype=torch.int64)
        self.class_names = [f"mu={m:+g}" for m in self.mean_scalars]
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def means(self) -> np.ndarray:
        """(K, d) class mean vectors."""
        return np.asarray(self.mean_scalars)[:, None] * np.ones((1, self.dim))

    def _sample(self, counts: Sequence[int], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.repeat_interleave(torch.arange(self.num_classes), torch.tensor(counts))
        mu = torch.tensor(self.mean_scalars, dtype=torch.float32)[y]
        x = mu[:, None] + torch.randn(len(y), self.dim, generator=gen)
        return x, y

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        gen = torch.Generator().manual_seed(self.seed)
        self.splits = {
            "train": self._sample(self.train_counts, gen),
            "val": self._sample(self.eval_counts, gen),
            "test": self._sample(self.eval_counts, gen),
        }

    def split_tensors(self, split: str) -> list[torch.Tensor]:
        self.setup()
        return list(self.splits[split])

    def train_prior(self) -> np.ndarray:
        """(K,) float64 training-label prior (the per-class counts, normalised)."""
        prior = np.asarray(self.train_counts, dtype=np.float64)
        return prior / prior.sum()

    def truth(self) -> MIValue:
        """Exact I(X;Y) (nats) under the training prior, by quadrature."""
        return gaussian_mixture_mi(self.means, self.train_prior())

    def test_pointwise_mi(self) -> np.ndarray:
        """(N,) log p(x|y)/p(x) of the test samples under the training prior."""
        x, y = self.splits["test"]
        return pointwise_log_ratio(x.numpy(), y.numpy(), self.means, self.train_prior())

    def reference_metrics(self) -> dict[str, float]:
        """Truth with its SE (0 for quadrature), the test-set Monte Carlo value with its SE, H(Y),
        log K."""
        self.setup()
        exact = self.truth()
        # The test set has the training prior (same per-class proportions), so its sample mean of
        # log p(x|y)/p(x) is the authors' Monte Carlo estimate of the truth.
        pmi = self.test_pointwise_mi()
        return {
            "test/mi_true": exact.value,
            "test/mi_true_se": exact.stderr,
            "test/mi_true_mc": float(pmi.mean()),
            "test/mi_true_mc_se": float(pmi.std(ddof=1) / np.sqrt(len(pmi))),
            "test/entropy_y": entropy(self.train_prior()),
            "test/log_k": float(np.log(self.num_classes)),
        }
