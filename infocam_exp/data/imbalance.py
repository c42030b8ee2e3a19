"""Class-imbalance profiles and deterministic per-class subsampling (pure functions).

- The authors' MNIST rule (Qin, Kim & Gedeon, arXiv:1911.10688; their MNIST script): even digits
  capped at 300 images, odd digits at 3000. A cap keeps the *first* images of each class in index
  order (what a single pass over the data with per-class counters does), so the subset depends on
  nothing but the data order.
- The long-tailed exponential profile of Cao et al. (LDAM-DRW, NeurIPS 2019), used by the
  CIFAR-10/100-LT literature (logit adjustment, Balanced Softmax, ...): class k of K keeps
  ``n_k = floor(n_max * (1 / ratio) ** (k / (K - 1)))`` images, k = 0 being the largest class.
  LDAM-DRW's ``get_img_num_per_cls`` computes exactly this (``int()`` of the product, with
  ``imb_factor = 1 / ratio``), e.g. CIFAR-10, ratio 100: [5000, 2997, 1796, 1077, 645, 387, 232,
  139, 83, 50] (12,406 images); CIFAR-100, ratio 100: 10,847 images.
- Which images a class keeps: LDAM-DRW seeds NumPy's legacy generator once and shuffles each class's
  indices in class order, keeping the first n_k. ``split_per_class`` does the same with
  ``np.random.RandomState(seed)``, so seed 0 selects the same CIFAR-LT images as LDAM-DRW.
- Many/medium/few-shot groups (Liu et al., OLTR, CVPR 2019): > 100, 20..100 and < 20 training
  images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: Authors' MNIST caps, digits 0..9: even digits 300, odd digits 3000.
AUTHORS_MNIST_CAPS: list[int] = [300 if k % 2 == 0 else 3000 for k in range(10)]


def authors_mnist_caps(scale: float = 1.0) -> list[int]:
    """The authors' per-class caps (even 300, odd 3000), times ``scale`` (rounded, at least 1)."""
    return [max(1, round(c * scale)) for c in AUTHORS_MNIST_CAPS]


def _labels_np(labels: torch.Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    return arr.astype(np.int64, copy=False)


def first_n_per_class(
    labels: torch.Tensor | np.ndarray | Sequence[int], caps: Sequence[int]
) -> torch.Tensor:
    """Indices keeping, for each class k, the first ``caps[k]`` samples in index order.

    Args:
        labels: (N,) integer labels in [0, len(caps)).
        caps: per-class maximum counts; a class with fewer samples keeps all of them.

    Returns:
        (M,) int64 indices into ``labels``, ascending (the original order is preserved).
    """
    y = _labels_np(labels)
    caps_arr = np.asarray([int(c) for c in caps], dtype=np.int64)
    if (caps_arr < 0).any():
        raise ValueError(f"caps must be >= 0, got {list(caps)}")
    if y.size and (y.min() < 0 or y.max() >= len(caps_arr)):
        raise ValueError(f"labels outside [0, {len(caps_arr)}) for {len(caps_arr)} caps")
    # rank of each sample within its class, in index order: a stable sort groups classes while
    # keeping index order inside each group.
    order = np.argsort(y, kind="stable")
    sorted_y = y[order]
    starts = np.searchsorted(sorted_y, np.arange(len(caps_arr)))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(y)) - starts[sorted_y]
    keep = rank < caps_arr[y]
    return torch.from_numpy(np.flatnonzero(keep).astype(np.int64))


def long_tail_counts(n_max: int, num_classes: int, ratio: float) -> list[int]:
    """Exponential long-tail profile of Cao et al. (2019): per-class counts, largest first.

    ``n_k = floor(n_max * (1 / ratio) ** (k / (K - 1)))`` for k = 0..K-1, so n_0 = n_max and
    n_{K-1} = floor(n_max / ratio). ``ratio = 1`` gives the balanced ``[n_max] * K``.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if ratio < 1:
        raise ValueError(f"imbalance ratio must be >= 1 (n_max / n_min), got {ratio}")
    factor = 1.0 / float(ratio)
    return [int(n_max * factor ** (k / (num_classes - 1.0))) for k in range(num_classes)]


def split_per_class(
    labels: torch.Tensor | np.ndarray | Sequence[int],
    counts: Sequence[int],
    seed: int,
    holdout_per_class: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random per-class subsample, plus a disjoint per-class hold-out, deterministic in ``seed``.

    For each class k in increasing order, the class's indices (ascending) are shuffled by one
    ``np.random.RandomState(seed)`` shared across classes (LDAM-DRW's procedure); the first
    ``counts[k]`` form the subsample and the last ``holdout_per_class`` the hold-out.

    Args:
        labels: (N,) integer labels in [0, len(counts)).
        counts: per-class subsample sizes.
        seed: the data seed.
        holdout_per_class: hold-out size per class, taken from the images the subsample leaves.

    Returns:
        ``(chosen, held_out)``: int64 index tensors, grouped by class in class order.

    Raises:
        ValueError: a class with fewer than ``counts[k] + holdout_per_class`` samples.
    """
    y = _labels_np(labels)
    rng = np.random.RandomState(int(seed))
    chosen: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for k, n in enumerate(counts):
        idx = np.flatnonzero(y == k)
        n = int(n)
        if n < 0 or n + holdout_per_class > len(idx):
            raise ValueError(
                f"class {k} has {len(idx)} samples, cannot take {n} plus {holdout_per_class} held out"
            )
        rng.shuffle(idx)
        chosen.append(idx[:n])
        held.append(idx[len(idx) - holdout_per_class :])
    return _as_index(chosen), _as_index(held)


def _as_index(parts: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.concatenate(parts).astype(np.int64))


def shot_groups(train_counts: Sequence[int] | torch.Tensor, many: int = 100, few: int = 20) -> dict[str, list[int]]:
    """Classes by training-set size (Liu et al., OLTR 2019): many-shot ``> many``, medium-shot
    ``few..many`` inclusive, few-shot ``< few`` (defaults 100 and 20).

    Returns:
        ``{"many": [...], "medium": [...], "few": [...]}``: class indices, ascending.
    """
    counts = [int(c) for c in (train_counts.tolist() if isinstance(train_counts, torch.Tensor) else train_counts)]
    groups: dict[str, list[int]] = {"many": [], "medium": [], "few": []}
    for k, n in enumerate(counts):
        key = "many" if n > many else ("few" if n < few else "medium")
        groups[key].append(k)
    return groups
