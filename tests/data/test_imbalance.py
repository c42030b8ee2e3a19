"""Imbalance profiles and per-class subsampling, pinned by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infocam_exp.data.imbalance import (
    AUTHORS_MNIST_CAPS,
    authors_mnist_caps,
    first_n_per_class,
    long_tail_counts,
    shot_groups,
    split_per_class,
)


def test_authors_caps() -> None:
    assert AUTHORS_MNIST_CAPS == [300, 3000, 300, 3000, 300, 3000, 300, 3000, 300, 3000]
    assert sum(AUTHORS_MNIST_CAPS) == 16_500
    assert authors_mnist_caps(0.1) == [30, 300] * 5


def test_first_n_per_class_by_hand() -> None:
    #          0  1  2  3  4  5  6  7  8
    labels = [1, 0, 1, 1, 0, 2, 0, 1, 2]
    # class 0 keeps its first 2 (indices 1, 4), class 1 its first 1 (index 0), class 2 all (5, 8)
    assert first_n_per_class(labels, [2, 1, 5]).tolist() == [0, 1, 4, 5, 8]
    assert first_n_per_class(torch.tensor(labels), [0, 0, 1]).tolist() == [5]
    assert first_n_per_class([], [1, 1]).tolist() == []
    with pytest.raises(ValueError, match="labels outside"):
        first_n_per_class([0, 3], [1, 1])


def test_first_n_per_class_large_matches_loop() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 5000)
    caps = authors_mnist_caps(0.1)
    seen = [0] * 10
    expected = []
    for i, y in enumerate(labels):  # one pass with per-class counters: the authors' procedure
        if seen[y] < caps[y]:
            seen[y] += 1
            expected.append(i)
    assert first_n_per_class(labels, caps).tolist() == expected


def test_long_tail_counts_cifar_standard() -> None:
    # The CIFAR-10-LT / CIFAR-100-LT sizes every LDAM-DRW-based paper reports.
    assert long_tail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(long_tail_counts(5000, 10, 100)) == 12_406
    assert sum(long_tail_counts(500, 100, 100)) == 10_847
    assert sum(long_tail_counts(5000, 10, 200)) == 11_203
    assert sum(long_tail_counts(500, 100, 200)) == 9_502
    assert long_tail_counts(500, 100, 100)[-1] == 5
    assert long_tail_counts(7, 3, 1) == [7, 7, 7]


def test_long_tail_counts_by_hand() -> None:
    # n_max 60, ratio 10, K = 10: 60 * 0.1 ** (k / 9), floored
    assert long_tail_counts(60, 10, 10) == [60, 46, 35, 27, 21, 16, 12, 10, 7, 6]
    # K = 3, ratio 4: 100, 100 / 2, 100 / 4
    assert long_tail_counts(100, 3, 4) == [100, 50, 25]
    with pytest.raises(ValueError, match=">= 1"):
        long_tail_counts(100, 3, 0.5)


def test_split_per_class_matches_ldam_procedure() -> None:
    # LDAM-DRW: np.random.seed(seed) once, then per class (ascending) shuffle its indices and keep
    # the first n. Reproduce with the global legacy generator, restoring its state afterwards.
    labels = np.repeat(np.arange(4), 25)[np.random.RandomState(5).permutation(100)]
    counts = [25, 12, 6, 3]
    state = np.random.get_state()
    try:
        np.random.seed(0)
        expected = []
        for k, n in enumerate(counts):
            idx = np.where(labels == k)[0]
            np.random.shuffle(idx)
            expected.extend(idx[:n].tolist())
    finally:
        np.random.set_state(state)
    chosen, held = split_per_class(labels, counts, seed=0)
    assert chosen.tolist() == expected
    assert held.numel() == 0


def test_split_per_class_holdout_disjoint_and_deterministic() -> None:
    labels = np.repeat(np.arange(3), 10)
    chosen, held = split_per_class(labels, [5, 3, 1], seed=7, holdout_per_class=4)
    assert torch.bincount(torch.from_numpy(labels)[chosen]).tolist() == [5, 3, 1]
    assert torch.bincount(torch.from_numpy(labels)[held]).tolist() == [4, 4, 4]
    assert not set(chosen.tolist()) & set(held.tolist())
    again, held_again = split_per_class(labels, [5, 3, 1], seed=7, holdout_per_class=4)
    assert torch.equal(chosen, again) and torch.equal(held, held_again)
    other, _ = split_per_class(labels, [5, 3, 1], seed=8, holdout_per_class=4)
    assert not torch.equal(chosen, other)
    # the subsample of one class does not depend on the counts (same shuffle, prefix taken)
    smaller, _ = split_per_class(labels, [2, 3, 1], seed=7, holdout_per_class=4)
    assert smaller[:2].tolist() == chosen[:2].tolist()
    with pytest.raises(ValueError, match="class 0 has 10 samples, cannot take 7 plus 4"):
        split_per_class(labels, [7, 1, 1], seed=0, holdout_per_class=4)


def test_shot_groups_boundaries() -> None:
    groups = shot_groups([101, 100, 20, 19, 500, 0])
    assert groups == {"many": [0, 4], "medium": [1, 2], "few": [3, 5]}
    assert shot_groups(torch.tensor([5000, 50])) == {"many": [0], "medium": [1], "few": []}
