"""Resume mid-training: a run killed between epochs and started again with the same command
continues from checkpoints/last.ckpt (no epoch is trained twice) and ends with exactly the
metrics of a run that was never interrupted."""

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl

from infocam_exp.run import run
from tests.conftest import compose_cfg


class EpochLog(pl.Callback):
    """Appends each training epoch it starts to ``log_file``; at the start of epoch
    ``kill_at_epoch`` it consumes ``kill_marker`` (if present) and raises: the run stops between
    two epochs, after the checkpoint of the previous one, as a killed job would."""

    def __init__(self, log_file: str, kill_at_epoch: int = -1, kill_marker: str = "") -> None:
        self.log_file, self.kill_at_epoch = Path(log_file), kill_at_epoch
        self.kill_marker = Path(kill_marker) if kill_marker else None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if epoch == self.kill_at_epoch and self.kill_marker is not None and self.kill_marker.exists():
            self.kill_marker.unlink()
            raise _Interrupt(f"interrupted at the start of epoch {epoch}")
        with open(self.log_file, "a") as f:
            f.write(f"{epoch}\n")


class _Interrupt(RuntimeError):
    pass


def _cfg(tmp_path: Path, tag: str):
    return compose_cfg(
        "data.samples_per_class=200", "data.batch_size=100", "trainer.max_epochs=4",
        "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "logger=none",
        "callbacks=checkpoint", "+callbacks.epoch_log._target_=tests.test_resume.EpochLog",
        f"+callbacks.epoch_log.log_file={tmp_path / tag / 'epochs.txt'}",
        "+callbacks.epoch_log.kill_at_epoch=2", f"+callbacks.epoch_log.kill_marker={tmp_path / tag / 'kill'}",
    )


def test_resume_mid_training_matches_an_uninterrupted_run(tmp_path):
    (tmp_path / "straight").mkdir()
    straight = run(_cfg(tmp_path, "straight"), tmp_path / "straight")  # no marker: never killed
    assert (tmp_path / "straight" / "epochs.txt").read_text().split() == ["0", "1", "2", "3"]

    run_dir = tmp_path / "resumed"
    run_dir.mkdir()
    (run_dir / "kill").touch()
    cfg = _cfg(tmp_path, "resumed")
    with pytest.raises(_Interrupt):
        run(cfg, run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert (run_dir / "epochs.txt").read_text().split() == ["0", "1"]

    resumed = run(cfg, run_dir)  # the same command again
    # epochs 0 and 1 came from the checkpoint; 2 and 3 were trained once
    assert (run_dir / "epochs.txt").read_text().split() == ["0", "1", "2", "3"]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "complete"
    for key in ("test/mi_estimate", "test/acc", "test/mean_class_acc", "test/loss"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-6, abs=1e-7), key
