"""Epoch time of the authors' MNIST protocol (16,500 training images, LeNet, batch 64) on this machine.

Runs the real `+experiment=mnist_pc_softmax` config on real Fashion-MNIST (same sizes and
protocol as MNIST; Debian's dataset-fashion-mnist) for ``--epochs`` epochs and prints the wall
time of each training epoch (training only, validation excluded) and the images/s.
Usage: python scripts/bench_mnist_epoch.py [--epochs 3] [overrides...]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from infocam_exp.__main__ import CONFIG_DIR  # noqa: E402
from infocam_exp.build import build_datamodule, build_system  # noqa: E402


class EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self._start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=mnist_pc_softmax", "data=fashion_mnist", f"paths.output_dir={tempfile.mkdtemp()}", *args.overrides])
    pl.seed_everything(0, verbose=False)
    dm = build_datamodule(cfg)
    system = build_system(cfg, dm)
    timer = EpochTimer()
    trainer = pl.Trainer(max_epochs=args.epochs, accelerator=cfg.trainer.accelerator, devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, callbacks=[timer])
    trainer.fit(system, datamodule=dm)
    n = int(dm.class_counts.sum())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for i, t in enumerate(timer.times):
        print(f"epoch {i}: {t:.2f} s ({n / t:.0f} training images/s, {n} images, batch {cfg.data.batch_size})")


if __name__ == "__main__":
    main()
