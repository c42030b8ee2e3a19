"""Shared pieces of every classification DataModule.

A DataModule of this project states the facts that the model, the loss and the metrics need,
so that `infocam_exp.build` can pass them on explicitly (no global state):

- ``num_classes``: K.
- ``input_shape``: shape of one input, ``(d,)`` for vectors or ``(C, H, W)`` for images.
- ``class_counts``: (K,) int64 tensor, label counts of the training split actually used (after any
  imbalance is applied). ``class_prior`` is derived from it; the PC-softmax loss and the MI
  estimators take that prior.
- ``class_names``: K strings (for tables and plots).
- ``split_class_counts(split)``: (K,) label counts of the train / val / test split as built (after
  lists, caps and hold-outs); every run records their sums as ``data/num_train``,
  ``data/num_val``, ``data/num_test`` and the MI estimate under the evaluated split's own label
  distribution uses them.

Subclasses set these in ``__init__`` or ``prepare_facts()``; ``build`` calls ``dm.prepare_facts()``
before it reads them, so a DataModule that has to read files to learn them can do it there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence, Sized
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DistributedSampler

from infocam_exp.errors import ConfigError, UserError
from infocam_exp.protocol import file_fact

log = logging.getLogger(__name__)


class ClassificationDataModule(pl.LightningDataModule):
    """Base class: holds the dataset facts; subclasses provide the dataloaders."""

    num_classes: int
    input_shape: tuple[int, ...]
    class_counts: torch.Tensor
    class_names: list[str]

    def prepare_facts(self) -> None:
        """Learn ``num_classes``, ``input_shape``, ``class_counts`` (may read files). Idempotent."""

    @property
    def class_prior(self) -> torch.Tensor:
        """(K,) float32 training-label frequencies p(y), summing to 1."""
        counts = self.class_counts.to(torch.float64)
        if counts.ndim != 1 or counts.numel() != self.num_classes:
            raise ValueError(
                f"{type(self).__name__}.class_counts has shape {tuple(counts.shape)}, "
                f"expected ({self.num_classes},)"
            )
        if (counts <= 0).any():
            empty = torch.nonzero(counts <= 0).flatten().tolist()
            raise ConfigError(
                f"{type(self).__name__}: classes {empty} have no training samples; the class prior "
                "and PC-softmax need every class present (shrink data.num_classes or the imbalance)"
            )
        return (counts / counts.sum()).to(torch.float32)

    def reference_metrics(self) -> dict[str, float]:
        """Known-truth values to store beside the run's metrics (e.g. the exact MI). Default: none."""
        return {}

    def split_class_counts(self, split: str) -> torch.Tensor:
        """(K,) int64 label counts of ``split`` ("train", "val", "test") as this DataModule built
        it (after lists, caps and hold-outs; zeros for an empty split). Independent of the
        trainer's ``limit_*_batches``."""
        raise NotImplementedError(f"{type(self).__name__} does not state its split sizes")

    def split_sizes(self) -> dict[str, int]:
        """``{"data/num_train": n, "data/num_val": n, "data/num_test": n}``: the split sizes."""
        return {f"data/num_{s}": int(self.split_class_counts(s).sum()) for s in ("train", "val", "test")}

    def split_files(self) -> list[Path]:
        """Files that define this DataModule's splits (list files, annotation files), recorded
        with their sha256 in metrics.json's protocol block. Default: none (generated data)."""
        return []

    def protocol_facts(self) -> dict[str, Any]:
        """``{"data": {...}}``: the DataModule class, the split sizes and the split-defining files
        with their sha256 (``infocam_exp.protocol``); subclasses add their transforms and rules."""
        sizes = {k.removeprefix("data/num_"): v for k, v in self.split_sizes().items()}
        return {"data": {"datamodule": type(self).__name__, "split_sizes": sizes,
                         "split_files": [file_fact(p) for p in self.split_files()]}}


class InMemoryDataModule(ClassificationDataModule):
    """A DataModule whose splits are in-memory tensors, served by ``TensorBatchLoader`` on the
    trainer's device (sharded under DDP). Subclasses set ``batch_size`` and ``eval_batch_size`` and
    implement ``split_tensors``; the training order follows the run's seed unless
    ``shuffle_seed`` is set."""

    batch_size: int
    eval_batch_size: int
    shuffle_seed: int | None = None
    #: drop the last incomplete training batch (BatchNorm cannot train on a batch of one)
    drop_last_train: bool = False

    def split_tensors(self, split: str) -> Sequence[torch.Tensor]:
        """The tensors of ``split`` ("train", "val", "test"), first dimension = samples; the
        second tensor holds the labels."""
        raise NotImplementedError

    def split_class_counts(self, split: str) -> torch.Tensor:
        return counts_from_labels(self.split_tensors(split)[1].cpu(), self.num_classes)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> TensorBatchLoader:
        rank, world = distributed_shard(self.trainer)
        loader = TensorBatchLoader(
            self.split_tensors(split),
            batch_size,
            shuffle=shuffle,
            drop_last=shuffle and self.drop_last_train,
            seed=self.shuffle_seed,
            rank=rank,
            world_size=world,
            # training shards must be equal (DDP steps in lockstep); evaluation shards must not
            # repeat samples, or the summed metric states would count them twice
            pad=shuffle,
        )
        if self.trainer is not None:
            loader.to(self.trainer.strategy.root_device)
        return loader

    def train_dataloader(self) -> TensorBatchLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> TensorBatchLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)


class TensorBatchLoader:
    """Iterates over in-memory tensors in (shuffled) batches, gathering each batch with one index op.

    Replaces a per-sample ``Dataset`` + ``DataLoader`` for data that fits in memory: no collate,
    no worker processes, and the tensors may live on the GPU. Under DDP each process takes a
    disjoint strided shard of the (identically shuffled) order, the way ``DistributedSampler`` does.

    Args:
        tensors: tensors with the same first dimension N.
        batch_size: samples per batch (per process).
        shuffle: reshuffle every epoch with ``torch.Generator`` seeded by ``seed + epoch``.
        drop_last: drop the last incomplete batch.
        seed: base seed of the shuffle; None: ``torch.initial_seed()`` when the loader is made,
            i.e. the run's training seed (so training seeds differ in batch order as well as in
            initialisation, while the data seed fixes only the data).
        rank, world_size: this process's shard under DDP (0, 1 without it).
        pad: under DDP, repeat samples from the start so every shard has the same length (what
            ``DistributedSampler`` does; needed for training, where processes step in lockstep).
            False: shards of unequal length that together hold every sample exactly once, for
            evaluation (metric states are summed over processes at the end of the epoch).
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        if not tensors:
            raise ValueError("TensorBatchLoader needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"tensors differ in length: {[t.shape[0] for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = list(tensors)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(torch.initial_seed() if seed is None else seed) % 2**63
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.pad = pad
        self.epoch = 0

    def to(self, device: torch.device | str) -> TensorBatchLoader:
        """Move the tensors to ``device`` (in place) and return self."""
        self.tensors = [t.to(device) for t in self.tensors]
        return self

    @property
    def num_samples(self) -> int:
        """Samples this process sees per epoch (its shard, padded when ``pad``)."""
        n = self.tensors[0].shape[0]
        if self.pad:
            return -(-n // self.world_size)
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def _order(self) -> torch.Tensor:
        n = self.tensors[0].shape[0]
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if self.world_size > 1:
            total = n
            if self.pad:
                # Wrap so every process gets the same number of samples (as DistributedSampler
                # does), then take a strided shard.
                total = self.num_samples * self.world_size
                if total > n:
                    order = torch.cat([order, order[: total - n]])
            order = order[self.rank : total : self.world_size]
        return order

    def set_epoch(self, epoch: int) -> None:
        """Shuffle the next iteration as epoch ``epoch`` (a resumed run repeats no epoch's order)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        order = self._order().to(self.tensors[0].device)
        self.epoch += 1
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield [t[idx] for t in self.tensors]


def counts_from_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K,) int64 label counts of a (N,) integer label tensor; raises on labels outside [0, K)."""
    labels = labels.to(torch.int64)
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][:5].tolist()
        raise ValueError(f"labels outside [0, {num_classes}): e.g. {bad}")
    return torch.bincount(labels, minlength=num_classes)


class UnpaddedDistributedSampler(DistributedSampler):
    """Evaluation sharding under DDP: every sample exactly once over all processes.

    Process ``rank`` takes samples ``rank, rank + W, rank + 2W, ...`` in dataset order, so shards
    differ in length by at most one. ``DistributedSampler`` (which Lightning puts on evaluation
    loaders otherwise) instead repeats samples to equalise the shards, and the repeats are then
    counted twice by the metrics, which sum their states over processes. Being a
    ``DistributedSampler``, Lightning keeps it as it is. Nothing in evaluation steps in lockstep
    across processes (metrics and logged values synchronise once, at the end of the epoch), so the
    unequal number of batches is safe.
    """

    def __init__(self, dataset: Sized, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)  # type: ignore[arg-type]
        self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))


def eval_sampler(trainer: pl.Trainer | None, dataset: Sized) -> UnpaddedDistributedSampler | None:
    """The sampler for an evaluation ``DataLoader``: unpadded shards under DDP, else None."""
    rank, world = distributed_shard(trainer)
    if world <= 1:
        return None
    return UnpaddedDistributedSampler(dataset, num_replicas=world, rank=rank)


def distributed_shard(trainer: pl.Trainer | None) -> tuple[int, int]:
    """(rank, world_size) for a loader, from the attached trainer (0, 1 without one)."""
    if trainer is None:
        return 0, 1
    return int(trainer.global_rank), int(trainer.world_size)


class DataNotFoundError(UserError, FileNotFoundError):
    """Data or weights that are not on disk. The message says what was looked for, where, the
    expected layout, where to get it, and which override points elsewhere."""

    def __init__(
        self,
        what: str,
        searched: Sequence[str],
        layout: str,
        get_it: str,
        override: str,
    ) -> None:
        lines = [
            f"{what} not found.",
            "Looked in: " + ", ".join(str(s) for s in searched),
            f"Expected layout: {layout}",
            f"How to get it: {get_it}",
            f"Point elsewhere with: {override}",
        ]
        super().__init__("\n  ".join(lines))


class DataFormatError(UserError, ValueError):
    """A data or annotation file that does not parse; the message names the file and line."""

    def __init__(self, path: object, problem: str, line: int | None = None, fix: str = "") -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        msg = f"{where}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)
