"""The embedded WSOL benchmark: rendering semantics pinned by hand, determinism, the DataModule's
batches and facts on generated idx files, and a quick check on real Fashion-MNIST."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from infocam_exp.data import synthetic_wsol as sw
from infocam_exp.data.base import DataNotFoundError
from infocam_exp.data.synthetic_wsol import SyntheticWSOLDataModule
from tests.conftest import needs_fashion_mnist

try:
    from tests.fixtures_formats import cyclic_labels, write_mnist_like
except ImportError:  # tests/ on sys.path (pytest rootdir-relative import)
    from fixtures_formats import cyclic_labels, write_mnist_like



def fake_trainer(training: bool = True, rank: int = 0, world_size: int = 1) -> SimpleNamespace:
    """What the DataModule reads from a Trainer: shard, device and stage."""
    return SimpleNamespace(
        global_rank=rank, world_size=world_size, training=training,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
    )


@pytest.fixture(scope="module")
def textures() -> torch.Tensor:
    return sw.load_textures()


@pytest.fixture(autouse=True)
def _textures_once(textures: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every DataModule of this module shares one texture bank (reading it takes ~1 s)."""
    monkeypatch.setattr(sw, "load_textures", lambda: textures)


def blob_items(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 28, 28) uint8 random rectangles (values 60..255) on zero, and cyclic labels."""
    g = torch.Generator().manual_seed(seed)
    items = torch.zeros(n, 28, 28, dtype=torch.uint8)
    for i in range(n):
        x0, y0 = torch.randint(0, 12, (2,), generator=g).tolist()
        w, h = torch.randint(6, 16, (2,), generator=g).tolist()
        items[i, y0 : y0 + h, x0 : x0 + w] = torch.randint(60, 256, (h, w), generator=g, dtype=torch.uint8)
    return items, torch.arange(n) % 10


def square_item(lo: int = 10, hi: int = 18, value: int = 200) -> torch.Tensor:
    """(1, 28, 28) uint8 item whose nonzero pixels are exactly rows/cols [lo, hi)."""
    item = torch.zeros(1, 28, 28, dtype=torch.uint8)
    item[0, lo:hi, lo:hi] = value
    return item


# --------------------------------------------------------------------------------------------
# Rendering semantics


def test_square_at_native_size_is_copied_with_exact_box() -> None:
    canvas = torch.zeros(1, 3, 40, 40)
    white = torch.ones(1, 3)
    out, boxes = sw.paste_objects(canvas, square_item(), white, torch.tensor([28.0]), torch.tensor([[5.0, 7.0]]))
    # scale 1, integer offset: the 8x8 square lands at x 15..22, y 17..24; half-open box
    assert boxes.tolist() == [[15, 17, 23, 25]]
    expected = torch.zeros(40, 40)
    expected[17:25, 15:23] = 0.3 + 0.7 * 200 / 255  # min_shade + (1 - min_shade) * intensity
    torch.testing.assert_close(out[0, 0], expected, atol=1e-6, rtol=0)
    assert sw.inclusive_corners(boxes).tolist() == [[15, 17, 22, 24]]


def test_square_at_double_size_box_by_hand() -> None:
    # Frame 56 px (x2) at (3, 4). Canvas pixel o sees source coordinate (o + 0.5 - off) / 2; the
    # bilinear tent of source pixel 10 (centre 10.5) reaches coordinates > 9.5, i.e. o >= 19 + off
    # (weight 0.25 there), and that of pixel 17 (centre 17.5) coordinates < 18.5, i.e. o <= 36 + off.
    canvas = torch.zeros(1, 3, 64, 64)
    out, boxes = sw.paste_objects(
        canvas, square_item(), torch.ones(1, 3), torch.tensor([56.0]), torch.tensor([[3.0, 4.0]])
    )
    assert boxes.tolist() == [[22, 23, 40, 41]]
    changed = (out[0] > 0).any(0)
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) == (22, 23, 40, 41)
    # the edge pixel is the 0.25-weight one, the interior is opaque
    assert out[0, 0, 30, 22].item() == pytest.approx(round(0.25 * 255) / 255 * (0.3 + 0.7 * 200 / 255), abs=1e-6)


def test_boxes_tight_around_changed_pixels_for_random_placements() -> None:
    items, _ = blob_items(64)
    g = torch.Generator().manual_seed(1)
    sizes = 10 + 40 * torch.rand(64, generator=g)
    offsets = torch.rand(64, 2, generator=g) * (64 - sizes[:, None])
    out, boxes = sw.paste_objects(torch.zeros(64, 3, 64, 64), items, torch.ones(64, 3), sizes, offsets)
    changed = (out > 0).any(1).numpy()
    for i in range(64):
        ys, xs = np.nonzero(changed[i])
        assert boxes[i].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_separable_resampling_equals_grid_sample() -> None:
    items, _ = blob_items(16)
    g = torch.Generator().manual_seed(2)
    sizes = 8 + 60 * torch.rand(16, generator=g)
    offsets = torch.rand(16, 2, generator=g) * 64 - 16
    alpha, _ = sw._resample_items(items, 48, sizes, offsets)
    # reference: grid_sample of the silhouette with an affine grid (scale + shift)
    theta = torch.zeros(16, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 48 / sizes
    theta[:, 0, 2] = (48 - 2 * offsets[:, 0]) / sizes - 1
    theta[:, 1, 2] = (48 - 2 * offsets[:, 1]) / sizes - 1
    grid = F.affine_grid(theta, [16, 1, 48, 48], align_corners=False)
    mask = (items > sw.SOURCE_THRESHOLD).float()[:, None]
    ref = F.grid_sample(mask, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(alpha, ref, atol=1e-5, rtol=0)


def test_affine_grid_matches_torch() -> None:
    theta = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(3))
    ref = F.affine_grid(theta, [4, 1, 9, 9], align_corners=False)
    torch.testing.assert_close(sw._affine_grid(theta, 9), ref, atol=1e-5, rtol=0)


def test_inclusive_corners_keeps_padding() -> None:
    boxes = torch.tensor([[[2.0, 3.0, 10.0, 12.0], [-1.0, -1.0, -1.0, -1.0]]])
    assert sw.inclusive_corners(boxes).tolist() == [[[2.0, 3.0, 9.0, 11.0], [-1.0, -1.0, -1.0, -1.0]]]


def test_hsv_primaries() -> None:
    h = torch.tensor([0.0, 1 / 3, 2 / 3, 0.5])
    rgb = sw.hsv_to_rgb(h, torch.ones(4), torch.ones(4))
    torch.testing.assert_close(rgb, torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]]))


def test_generate_split_deterministic_and_seeded(textures: torch.Tensor) -> None:
    items, labels = blob_items(80)
    args = (items, labels, 40, 32, (0.4, 0.9), 0.7)
    a = sw.generate_split(*args, seed=0, split="train", textures=textures)
    b = sw.generate_split(*args, seed=0, split="train", textures=textures, chunk=7)  # chunking is free
    c = sw.generate_split(*args, seed=1, split="train", textures=textures)
    d = sw.generate_split(*args, seed=0, split="test", textures=textures)
    for key in ("images", "labels", "boxes", "item"):
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["images"], c["images"])
    assert not torch.equal(a["images"], d["images"])
    assert a["images"].dtype == torch.uint8 and a["images"].shape == (40, 3, 32, 32)
    assert a["boxes"].dtype == torch.float32 and a["boxes"].shape == (40, 1, 4)
    # objects are distinct pool items and the labels are theirs
    assert len(set(a["item"].tolist())) == 40
    assert torch.equal(a["labels"], labels[a["item"]])
    box = a["boxes"][:, 0]
    assert (box[:, 0] < box[:, 2]).all() and (box[:, 1] < box[:, 3]).all()
    assert box.min() >= 0 and box.max() <= 32


def test_clutter_zero_vs_one(textures: torch.Tensor) -> None:
    items, labels = blob_items(40)
    args = (items, labels, 20, 32, (0.4, 0.9))
    clean = sw.generate_split(*args, 0.0, seed=0, split="val", textures=textures)
    busy = sw.generate_split(*args, 1.0, seed=0, split="val", textures=textures)
    # same random stream, so everything but the clutter is the same: the boxes agree, pixels don't
    assert torch.equal(clean["boxes"], busy["boxes"])
    assert not torch.equal(clean["images"], busy["images"])


def test_invert_prob_one_inverts_the_image(textures: torch.Tensor) -> None:
    items, labels = blob_items(20)
    args = (items, labels, 10, 32, (0.4, 0.9), 0.8)
    plain = sw.generate_split(*args, seed=0, split="val", textures=textures)
    inverted = sw.generate_split(*args, seed=0, split="val", textures=textures, invert_prob=1.0)
    total = plain["images"].int() + inverted["images"].int()
    assert (total - 255).abs().max() <= 1  # float rounding of the composite
    assert torch.equal(plain["boxes"], inverted["boxes"])


def test_textures_are_bundled_and_varied(textures: torch.Tensor) -> None:
    # the module fixture read the files (before the autouse patch replaced the loader)
    assert textures.shape == (len(sw.TEXTURE_FILES), sw.TEXTURE_SIZE, sw.TEXTURE_SIZE)
    assert textures.min() >= 0 and textures.max() <= 1
    assert (textures.flatten(1).std(1) > 0.02).all()


# --------------------------------------------------------------------------------------------
# DataModule on generated idx files


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    write_mnist_like(tmp_path, cyclic_labels(300), cyclic_labels(50), name="fashion_mnist")
    return tmp_path


def make_dm(root: Path, **kwargs: object) -> SyntheticWSOLDataModule:
    args: dict[str, object] = {
        "root": str(root), "image_size": 32, "num_train": 100, "num_val": 30, "num_test": 40,
        "batch_size": 16, "eval_batch_size": 25,
    }
    args.update(kwargs)
    return SyntheticWSOLDataModule(**args)


def test_facts_and_class_counts(root: Path) -> None:
    dm = make_dm(root)
    dm.prepare_facts()
    assert dm.num_classes == 10 and dm.input_shape == (3, 32, 32)
    assert dm.class_names[0] == "T-shirt/top" and len(dm.class_names) == 10
    dm.setup("fit")
    assert torch.equal(dm.class_counts, torch.bincount(dm.splits["train"]["labels"], minlength=10))
    assert int(dm.class_counts.sum()) == 100
    assert torch.allclose(dm.class_prior.sum(), torch.tensor(1.0))
    assert "test" not in dm.splits  # fit renders only what it needs


def test_batches_shapes_and_normalisation(root: Path) -> None:
    dm = make_dm(root, augment=False)
    dm.trainer = fake_trainer(training=False)
    dm.setup()
    train = list(dm.train_dataloader())
    assert len(train) == 100 // 16  # drop_last in training
    x, y = train[0]
    assert x.dtype == torch.uint8 and x.shape == (16, 3, 32, 32) and y.dtype == torch.int64
    x_val, y_val, boxes = next(iter(dm.val_dataloader()))
    assert x_val.shape == (25, 3, 32, 32) and boxes.shape == (25, 1, 4) and boxes.dtype == torch.float32
    # boxes in batches are inclusive corners: one less than the half-open tight box
    assert torch.equal(boxes[:, 0, 2:] + 1, sw.generate_split(
        dm._pools["val"][0], dm._pools["val"][1], 30, 32, dm.object_scale, dm.clutter, dm.seed, "val"
    )["boxes"][:25, 0, 2:])
    xn, yn, bn = dm.on_after_batch_transfer([x_val, y_val, boxes], 0)
    expected = (x_val.float() / 255 - sw.NORM_MEAN[0]) / sw.NORM_STD[0]
    torch.testing.assert_close(xn, expected)
    assert xn.dtype == torch.float32 and torch.equal(yn, y_val) and torch.equal(bn, boxes)
    torch.testing.assert_close(dm.denormalize(xn) * 255, x_val.float(), atol=1e-3, rtol=0)
    assert len(list(dm.test_dataloader())) == 2  # 40 images, batches of 25 (last one partial)
    assert torch.equal(dm.test_images_uint8([3, 1]), dm.splits["test"]["images"][[3, 1]])


def test_flip_only_in_training(root: Path) -> None:
    dm = make_dm(root)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    dm.trainer = fake_trainer(training=False)
    plain = dm.on_after_batch_transfer([x, y], 0)[0]
    dm.trainer = fake_trainer(training=True)
    torch.manual_seed(0)
    aug = dm.on_after_batch_transfer([x, y], 0)[0]
    flipped = [bool(torch.equal(aug[i], plain[i].flip(-1))) for i in range(len(x))]
    same = [bool(torch.equal(aug[i], plain[i])) for i in range(len(x))]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert any(flipped) and any(same)


def test_train_order_seeded_and_splits_disjoint(root: Path) -> None:
    def first_labels(**kw: object) -> list[int]:
        dm = make_dm(root, **kw)
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))[1].tolist()

    assert first_labels(seed=0) == first_labels(seed=0)
    assert first_labels(shuffle_seed=1) != first_labels(shuffle_seed=2)
    dm = make_dm(root)
    dm.prepare_facts()
    # fake images encode their index in pixels 0 and 1: train and val items are disjoint
    ids = {s: set((dm._pools[s][0][:, 0, 0].long() + 256 * dm._pools[s][0][:, 0, 1].long()).tolist())
           for s in ("train", "val")}
    assert not ids["train"] & ids["val"]
    # val does not depend on num_train
    other = make_dm(root, num_train=50)
    other.setup("validate")
    dm.setup("validate")
    assert torch.equal(dm.splits["val"]["images"], other.splits["val"]["images"])


def test_cache_dir_round_trip(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = make_dm(root, cache_dir=str(cache))
    first.setup("test")
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 1 and files[0].startswith("synthetic_wsol_test_") and files[0].endswith(".pt")

    def no_render(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered although cached")

    monkeypatch.setattr(sw, "generate_split", no_render)
    second = make_dm(root, cache_dir=str(cache))
    second.setup("test")
    for key in ("images", "labels", "boxes", "item"):
        assert torch.equal(first.splits["test"][key], second.splits["test"][key])
    with pytest.raises(AssertionError, match="rendered"):  # another seed is another file
        make_dm(root, cache_dir=str(cache), seed=5).setup("test")


def test_ddp_shards(root: Path) -> None:
    dm = make_dm(root)
    dm.trainer = fake_trainer(rank=1, world_size=2)
    dm.setup("test")
    assert sum(len(b[0]) for b in dm.test_dataloader()) == 20


def test_argument_errors(root: Path) -> None:
    with pytest.raises(ValueError, match="object_scale"):
        make_dm(root, object_scale=[0.8, 0.4])
    with pytest.raises(ValueError, match="clutter"):
        make_dm(root, clutter=1.5)
    with pytest.raises(ValueError, match="60000"):
        make_dm(root, num_train=59_500, num_val=1000)
    with pytest.raises(ValueError, match="exceed"):
        make_dm(root, num_train=290, num_val=20).prepare_facts()


def test_missing_data_is_data_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infocam_exp.data.idx.DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    dm = make_dm(tmp_path / "empty")
    with pytest.raises(DataNotFoundError, match=r"data\.root=") as info:
        dm.prepare_facts()
    assert "data.download=true" in str(info.value)


# --------------------------------------------------------------------------------------------
# Real Fashion-MNIST


@needs_fashion_mnist
def test_real_fashion_mnist_small(tmp_path: Path) -> None:
    dm = SyntheticWSOLDataModule(root=str(tmp_path), num_train=200, num_val=50, num_test=100, seed=3)
    dm.prepare_facts()
    dm.setup()
    test = dm.splits["test"]
    assert test["images"].shape == (100, 3, 64, 64)
    assert torch.equal(test["labels"], dm._pools["test"][1][test["item"]])
    # inclusive corners inside the canvas, objects of a sensible size
    b = test["boxes"][:, 0]
    assert b.min() >= 0 and b.max() <= 63
    side = torch.minimum(b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1)
    assert side.min() >= 4 and side.float().mean() > 15


@pytest.mark.slow
@needs_fashion_mnist
def test_lightning_fit_on_real_data(tmp_path: Path) -> None:
    import pytorch_lightning as pl

    from infocam_exp.models.gap_cnn import GAPCNN

    class Probe(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = GAPCNN(10, (3, 64, 64), width=8)
            self.seen: list[tuple[str, torch.dtype, int]] = []

        def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
            x, y = batch
            self.seen.append(("train", x.dtype, len(batch)))
            return F.cross_entropy(self.model(x), y)

        def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
            self.seen.append(("val", batch[0].dtype, len(batch)))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), 1e-3)

    dm = SyntheticWSOLDataModule(root=str(tmp_path), num_train=256, num_val=64, num_test=64, batch_size=64)
    probe = Probe()
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        default_root_dir=str(tmp_path), accelerator="cpu",
    )
    trainer.fit(probe, datamodule=dm)
    assert ("train", torch.float32, 2) in probe.seen and ("val", torch.float32, 3) in probe.seen
