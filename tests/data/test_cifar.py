"""CIFAR pickle reading and CIFARLongTailDataModule on generated files in the real format."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from infocam_exp.data.base import DataFormatError, DataNotFoundError
from infocam_exp.data.cifar import (
    CIFARLongTailDataModule,
    find_cifar_dir,
    load_cifar,
    random_crop_flip,
    read_cifar_batch,
)
from infocam_exp.data.imbalance import long_tail_counts

try:
    from tests.fixtures_formats import cyclic_labels, decode_index, write_cifar
except ImportError:  # tests/ on sys.path (pytest rootdir-relative import)
    from fixtures_formats import cyclic_labels, decode_index, write_cifar


def fake_trainer(rank: int = 0, world_size: int = 1, training: bool = True) -> SimpleNamespace:
    """What the DataModule reads from a Trainer: shard, device and stage."""
    return SimpleNamespace(
        global_rank=rank, world_size=world_size, training=training,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
    )


@pytest.fixture()
def c10(tmp_path: Path) -> Path:
    # 60 training images per class (cycling labels), 20 test images per class
    write_cifar(tmp_path, cyclic_labels(600), cyclic_labels(200))
    return tmp_path


def make_dm(root: Path, **kwargs: object) -> CIFARLongTailDataModule:
    args = {"root": str(root), "imbalance_ratio": 10, "val_per_class": 5}
    args.update(kwargs)
    dm = CIFARLongTailDataModule(**args)
    dm.prepare_facts()
    return dm


def test_reads_real_layout(c10: Path) -> None:
    data = load_cifar(c10, "cifar10")
    assert data["train_images"].shape == (600, 3, 32, 32) and data["train_images"].dtype == torch.uint8
    assert data["train_labels"].dtype == torch.int64
    assert data["train_labels"].tolist() == cyclic_labels(600).tolist()
    assert decode_index(data["train_images"].numpy()).tolist() == list(range(600))
    assert data["class_names"][:2] == ["class0", "class1"]
    # channel-first: the row's first 1024 values are the red plane
    raw = pickle.load(open(c10 / "cifar-10-batches-py" / "data_batch_1", "rb"), encoding="latin1")
    np.testing.assert_array_equal(data["train_images"][1, 1].numpy().ravel(), raw[b"data"][1, 1024:2048])


def test_long_tail_counts_and_val_by_hand(c10: Path) -> None:
    dm = make_dm(c10)
    # n_max 60, ratio 10: [60, 46, 35, 27, 21, 16, 12, 10, 7, 6]; class 0 gives 5 images to val
    assert dm.class_counts.tolist() == [55, 46, 35, 27, 21, 16, 12, 10, 7, 6]
    assert torch.bincount(dm.splits["val"][1]).tolist() == [5] * 10
    assert torch.bincount(dm.splits["test"][1]).tolist() == [20] * 10
    assert not set(dm.indices["train"].tolist()) & set(dm.indices["val"].tolist())
    for split in ("train", "val", "test"):
        assert decode_index(dm.splits[split][0].numpy()).tolist() == dm.indices[split].tolist()
    assert torch.isclose(dm.class_prior.sum(), torch.tensor(1.0))
    assert dm.num_classes == 10 and dm.input_shape == (3, 32, 32)
    assert dm.class_names[9] == "class9"


def test_balanced_and_seeded_selection(c10: Path) -> None:
    assert make_dm(c10, imbalance_ratio="none").class_counts.tolist() == [55] * 10
    assert make_dm(c10, imbalance_ratio=1).class_counts.tolist() == [55] * 10
    a, b, c = make_dm(c10, seed=3), make_dm(c10, seed=3), make_dm(c10, seed=4)
    assert torch.equal(a.indices["train"], b.indices["train"])
    assert not torch.equal(a.indices["train"], c.indices["train"])
    assert torch.equal(a.class_counts, c.class_counts)


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    write_cifar(tmp_path, cyclic_labels(600, 100), cyclic_labels(200, 100), name="cifar100")
    dm = make_dm(tmp_path, name="cifar100", imbalance_ratio=2, val_per_class=1)
    expected = [min(n, 5) for n in long_tail_counts(6, 100, 2)]
    assert expected[:2] == [5, 5] and expected[-1] == 3
    assert dm.class_counts.tolist() == expected
    assert len(dm.splits["val"][1]) == 100 and len(dm.splits["test"][1]) == 200
    assert dm.class_names[42] == "class42" and dm.mean[0] == pytest.approx(0.5071)


def test_batches_transform_eval_and_train(c10: Path) -> None:
    dm = make_dm(c10, batch_size=32, eval_batch_size=64)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert len(dm.train_dataloader()) == 8  # ceil(235 / 32)
    xe, _ = dm.on_after_batch_transfer([x, y], 0)  # no trainer: evaluation transform
    mean = torch.tensor(dm.mean).view(1, 3, 1, 1)
    std = torch.tensor(dm.std).view(1, 3, 1, 1)
    torch.testing.assert_close(xe, (x.float() / 255 - mean) / std)
    dm.trainer = fake_trainer(training=False)
    torch.testing.assert_close(dm.on_after_batch_transfer([x, y], 0)[0], xe)
    dm.trainer = fake_trainer(training=True)
    torch.manual_seed(0)
    xt, yt = dm.on_after_batch_transfer([x, y], 0)
    assert xt.shape == xe.shape and xt.dtype == torch.float32 and torch.equal(yt, y)
    assert not torch.allclose(xt, xe)
    dm.augment = False
    torch.testing.assert_close(dm.on_after_batch_transfer([x, y], 0)[0], xe)
    with pytest.raises(TypeError, match="uint8"):
        dm.on_after_batch_transfer([xe, y], 0)


def test_random_crop_flip_is_a_padded_crop() -> None:
    torch.manual_seed(0)
    x = torch.randint(1, 256, (6, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(random_crop_flip(x, padding=0, flip=False), x)
    out = random_crop_flip(x, padding=2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        candidates = [
            crop.flip(-1) if mirror else crop
            for oy in range(5) for ox in range(5)
            for crop in [padded[i, :, oy : oy + 8, ox : ox + 8]]
            for mirror in (False, True)
        ]
        assert any(torch.equal(out[i], c) for c in candidates)
    # offsets and flips vary across a batch
    many = random_crop_flip(x[:1].expand(64, -1, -1, -1))
    assert len({tuple(m.flatten().tolist()) for m in many}) > 10


def test_ddp_shards_cover_every_sample(c10: Path) -> None:
    seen = []
    for rank in (0, 1):
        dm = make_dm(c10, batch_size=50)
        dm.trainer = fake_trainer(rank, 2)
        seen.append({i for x, _ in dm.train_dataloader() for i in decode_index(x.numpy()).tolist()})
    assert seen[0] | seen[1] == set(make_dm(c10).indices["train"].tolist())
    assert len(seen[0] & seen[1]) <= 1  # the one wrapped-around pad sample (235 is odd)


def test_missing_file_message(c10: Path) -> None:
    (c10 / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError) as err:
        find_cifar_dir(c10, "cifar10")
    msg = str(err.value)
    assert "lacks data_batch_3" in msg and "data.download=true" in msg and "data.root=" in msg
    with pytest.raises(DataNotFoundError, match="cifar-100-python"):
        CIFARLongTailDataModule(root=str(c10), name="cifar100").prepare_facts()


def test_download_calls_the_fetcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infocam_exp import fetch

    calls = []

    def fake_fetch(name: str, root: str) -> None:
        calls.append((name, root))
        write_cifar(root, cyclic_labels(600), cyclic_labels(200))

    monkeypatch.setattr(fetch, "fetch", fake_fetch)
    with pytest.raises(DataNotFoundError):
        load_cifar(tmp_path, "cifar10")
    assert calls == []
    assert len(load_cifar(tmp_path, "cifar10", download=True)["train_labels"]) == 600
    assert calls == [("cifar10", tmp_path)]


def _rewrite(path: Path, **changes: object) -> None:
    d = pickle.load(open(path, "rb"), encoding="bytes")
    for key, value in changes.items():
        d[key.encode()] = value
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def test_label_out_of_range_names_file(c10: Path) -> None:
    path = c10 / "cifar-10-batches-py" / "test_batch"
    labels = cyclic_labels(200).tolist()
    labels[7] = 10
    _rewrite(path, labels=labels)
    with pytest.raises(DataFormatError, match=r"test_batch: labels\[7\] = 10 is outside \[0, 10\)"):
        load_cifar(c10, "cifar10")


def test_corrupt_pickles_name_file(c10: Path) -> None:
    path = c10 / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataFormatError, match="data_batch_2: not a readable CIFAR pickle"):
        read_cifar_batch(path, "labels", 10)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(DataFormatError, match="data_batch_2: not a readable CIFAR pickle"):
        load_cifar(c10, "cifar10")


def test_bad_contents_name_file(c10: Path) -> None:
    path = c10 / "cifar-10-batches-py" / "data_batch_4"
    _rewrite(path, data=np.zeros((120, 1024), np.uint8))
    with pytest.raises(DataFormatError, match=r"data_batch_4: 'data' is uint8 \(120, 1024\)"):
        read_cifar_batch(path, "labels", 10)
    _rewrite(path, data=np.zeros((120, 3072), np.uint8), labels=[0] * 3)
    with pytest.raises(DataFormatError, match="data_batch_4: has 3 labels for 120 images"):
        read_cifar_batch(path, "labels", 10)
    with pytest.raises(DataFormatError, match="data_batch_4: has no 'fine_labels' entry"):
        read_cifar_batch(path, "fine_labels", 100)


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("executed",))


def test_pickle_with_foreign_globals_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        pickle.dump({"data": _Evil()}, f, protocol=2)
    with pytest.raises(DataFormatError, match=r"refusing to load global (__builtin__|builtins)\.print"):
        read_cifar_batch(path, "labels", 10)


def test_lightning_augments_training_batches_only(c10: Path, tmp_path: Path) -> None:
    import functools

    import pytorch_lightning as pl

    from infocam_exp.losses.pc_softmax import PCSoftmax
    from infocam_exp.models.resnet_cifar import ResNet32
    from infocam_exp.systems import ClassifierSystem

    dm = make_dm(c10, batch_size=16, eval_batch_size=16)
    flags: list[bool] = []
    transform = dm.transform_batch

    def spy(x: torch.Tensor, train: bool) -> torch.Tensor:
        flags.append(train)
        out = transform(x, train)
        assert out.dtype == torch.float32 and out.shape == (16, 3, 32, 32)
        return out

    dm.transform_batch = spy  # type: ignore[method-assign]
    system = ClassifierSystem(
        ResNet32(dm.num_classes, dm.input_shape), PCSoftmax(dm.class_prior),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9),
    )
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, limit_train_batches=1, limit_val_batches=1,
        limit_test_batches=1, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
    )
    trainer.fit(system, datamodule=dm)
    assert flags == [True, False]
    trainer.test(system, datamodule=dm, verbose=False)
    assert flags == [True, False, False]
