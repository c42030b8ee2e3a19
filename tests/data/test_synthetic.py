import numpy as np
import pytest
import torch

from infocam_exp.data.base import TensorBatchLoader
from infocam_exp.data.synthetic import SyntheticGaussianDataModule, class_counts_for, paper_means


def test_paper_layout_and_counts():
    assert paper_means(5) == [0.0, 2.0, -2.0, 4.0, -4.0]
    assert class_counts_for("balanced", 5, 10_000) == [10_000] * 5
    assert class_counts_for("imbalanced", 5, 10_000) == [5000, 10000, 15000, 20000, 25000]
    assert class_counts_for([1, 2, 3], 3, 99) == [1, 2, 3]


@pytest.mark.parametrize("bad", ["skewed", [1, 2], [0, 1, 1]])
def test_bad_prior_names_the_option(bad):
    with pytest.raises(ValueError, match="data.prior"):
        class_counts_for(bad, 3, 10)


def test_splits_prior_and_determinism():
    dm = SyntheticGaussianDataModule(dim=3, prior="imbalanced", samples_per_class=100, seed=7)
    dm.setup()
    x, y = dm.splits["train"]
    assert x.shape == (750, 3) and y.shape == (750,)
    assert torch.bincount(y).tolist() == [50, 100, 150, 200, 250]
    assert torch.bincount(dm.splits["test"][1]).tolist() == [10, 20, 30, 40, 50]
    torch.testing.assert_close(dm.class_prior, torch.tensor([1, 2, 3, 4, 5]) / 15.0)
    # class means are mu_k * 1_d
    for k, mu in enumerate(paper_means(5)):
        assert x[y == k].mean().item() == pytest.approx(mu, abs=0.2)
    again = SyntheticGaussianDataModule(dim=3, prior="imbalanced", samples_per_class=100, seed=7)
    again.setup()
    assert torch.equal(again.splits["train"][0], x)
    other = SyntheticGaussianDataModule(dim=3, prior="imbalanced", samples_per_class=100, seed=8)
    other.setup()
    assert not torch.equal(other.splits["train"][0], x)


def test_reference_metrics():
    dm = SyntheticGaussianDataModule(dim=2, samples_per_class=2000, seed=0)
    ref = dm.reference_metrics()
    assert ref["test/mi_true"] == pytest.approx(1.30035, abs=1e-4)
    assert abs(ref["test/mi_true_mc"] - ref["test/mi_true"]) < 4 * ref["test/mi_true_mc_se"]
    assert ref["test/entropy_y"] == pytest.approx(np.log(5))


def test_tensor_batch_loader_covers_data_and_shards():
    x = torch.arange(10)
    full = TensorBatchLoader([x], batch_size=3, shuffle=True, seed=0)
    assert len(full) == 4
    epoch1 = torch.cat([b[0] for b in full])
    epoch2 = torch.cat([b[0] for b in full])
    assert sorted(epoch1.tolist()) == list(range(10))
    assert not torch.equal(epoch1, epoch2)  # reshuffled each epoch
    # two processes: disjoint shards of equal size (padded by wrapping) covering everything
    shards = [torch.cat([b[0] for b in TensorBatchLoader([x], 2, shuffle=True, seed=3, rank=r, world_size=2)]) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert set(shards[0].tolist()) | set(shards[1].tolist()) == set(range(10))
    assert len(TensorBatchLoader([x], 3, drop_last=True)) == 3
    with pytest.raises(ValueError, match="differ in length"):
        TensorBatchLoader([x, torch.arange(3)], 2)


@pytest.mark.parametrize("n, world", [(7, 2), (10, 3), (2, 3), (9, 3)])
def test_evaluation_shards_hold_every_sample_once(n, world):
    from torch.utils.data import DataLoader

    from infocam_exp.data.base import UnpaddedDistributedSampler

    x = torch.arange(n)
    # TensorBatchLoader without padding, and the sampler of the file-based loaders
    for make in (
        lambda r: [b[0] for b in TensorBatchLoader([x], 2, rank=r, world_size=world, pad=False)],
        lambda r: list(DataLoader(x, batch_size=2, sampler=UnpaddedDistributedSampler(x, world, r))),
    ):
        shards = [torch.cat([x[:0], *make(r)]) for r in range(world)]
        assert sorted(torch.cat(shards).tolist()) == list(range(n))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert len(UnpaddedDistributedSampler(x, world, world - 1)) == len(range(world - 1, n, world))
    assert TensorBatchLoader([x], 2, rank=0, world_size=world, pad=False).num_samples == len(range(0, n, world))
