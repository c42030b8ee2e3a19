"""``run(cfg, output_dir)``: train and test one configuration; the record is ``metrics.json``.

Pure with respect to Hydra: tests call it with a composed config and a temporary folder.
A run whose ``metrics.json`` says ``complete`` for the same config is skipped (resumable sweeps);
an interrupted run resumes from ``checkpoints/last.ckpt`` when the checkpoint callback wrote one;
a failed run records ``status: failed`` with the error, then re-raises.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities import rank_zero_only

from infocam_exp.build import (
    build_datamodule,
    build_system,
    build_trainer,
    has_val_split,
)
from infocam_exp.errors import ConfigError
from infocam_exp.protocol import collect_protocol
from infocam_exp.results import (
    METRICS_FILE,
    config_hash,
    device_description,
    git_sha,
    package_versions,
    read_json,
    write_json_atomic,
)
from infocam_exp.systems import DivergenceError

log = logging.getLogger(__name__)


def _scalar(v: Any) -> float | list | None:
    if hasattr(v, "ndim") and v.ndim == 0:
        return float(v)
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, int | float | list):
        return v
    return None


def collect_metrics(trainer: pl.Trainer, reference: dict[str, float]) -> dict[str, Any]:
    """Logged ``test/`` scalars, every callback's ``results``, the data's reference values and
    derived gaps, as one flat dict."""
    metrics: dict[str, Any] = {}
    for k, v in trainer.callback_metrics.items():
        if k.startswith("test/") and (s := _scalar(v)) is not None:
            metrics[k] = s
    for cb in trainer.callbacks:
        metrics.update(getattr(cb, "results", {}) or {})
    metrics.update(reference)
    if "test/mi_true" in metrics:
        for key in ("mi_estimate", "mi_estimate_prior_corrected"):
            if f"test/{key}" in metrics:
                metrics[f"test/{key.replace('estimate', 'gap')}"] = metrics[f"test/{key}"] - metrics["test/mi_true"]
    return metrics


def is_rank_zero() -> bool:
    """True in the process that owns the record (the only one without DDP)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def _train_and_test(cfg: DictConfig, dm: Any, output_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit (resuming from ``checkpoints/last.ckpt`` when present), test, collect the metrics and
    the protocol facts (``infocam_exp.protocol``)."""
    system = build_system(cfg, dm)
    trainer = build_trainer(cfg, has_val=has_val_split(dm))
    last = output_dir / "checkpoints" / "last.ckpt"
    resume_from = str(last) if cfg.get("resume", True) and last.exists() else None
    if resume_from:
        log.info("Resuming training from %s", resume_from)
    trainer.fit(system, datamodule=dm, ckpt_path=resume_from)
    test_ckpt = cfg.get("test_ckpt", "last")
    # verbose=False: no Lightning results table; the run's summary (console.format_summary) is the one
    trainer.test(system, datamodule=dm, ckpt_path="best" if test_ckpt == "best" else None, verbose=False)
    protocol = collect_protocol(dm, system, getattr(system, "model", None), *trainer.callbacks)
    return collect_metrics(trainer, dm.reference_metrics()), protocol


def run(
    cfg: DictConfig,
    output_dir: str | Path,
    choices: dict[str, str] | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Train and test ``cfg``; write ``output_dir/metrics.json``; return the metrics dict.

    Args:
        cfg: a composed ``train.yaml`` config.
        output_dir: the run directory (created).
        choices: the chosen config-group options (recorded), e.g. ``{"loss": "pc_softmax"}``.
        overrides: the command-line overrides (recorded).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    record_path = output_dir / METRICS_FILE
    chash = config_hash(cfg)
    previous = read_json(record_path)
    if cfg.get("resume", True) and previous and previous.get("status") == "complete":
        if previous.get("config_hash") == chash:
            log.info("Skipping %s: metrics.json says complete for this config", output_dir)
            return previous["metrics"]
        log.warning("%s holds a complete run of a different config; running again", output_dir)

    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.paths.run_dir = str(output_dir)
    # Under DDP every process runs this function; only global rank 0 writes the record.
    write = write_json_atomic if is_rank_zero() else (lambda *_: None)
    if is_rank_zero():
        OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    seed = cfg.seed
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an int (0 is valid), got seed={seed!r}: e.g. seed=0")
    record: dict[str, Any] = {
        "status": "running",
        "seed": seed,
        "data_seed": cfg.get("data_seed"),
        "task_name": cfg.get("task_name"),
        "choices": dict(choices or {}),
        "overrides": list(overrides or []),
        "config_hash": chash,
        "git_sha": git_sha(),
        "versions": package_versions(),
        "device": device_description(),
        "metrics": {},
    }
    write(record_path, record)
    start = time.perf_counter()
    try:
        pl.seed_everything(seed, workers=True, verbose=False)
        dm = build_datamodule(cfg)
        if cfg.get("estimators") is not None:  # MI-estimator benchmark: every estimator, same data
            from infocam_exp.mi_benchmark import benchmark_metrics

            metrics, protocol = benchmark_metrics(cfg, dm), collect_protocol(dm)
        else:
            metrics, protocol = _train_and_test(cfg, dm, output_dir)
        # the splits as built (after lists, caps and hold-outs), whatever limit_*_batches ran
        metrics.update(dm.split_sizes())
    except BaseException as err:
        record.update(
            status="interrupted" if isinstance(err, KeyboardInterrupt) else "failed",
            error=f"{type(err).__name__}: {err}",
            traceback=traceback.format_exc(),
            wall_time_s=time.perf_counter() - start,
        )
        if isinstance(err, DivergenceError):
            record["divergence"] = err.details
        write(record_path, record)
        raise
    record.update(status="complete", metrics=metrics, protocol=protocol, wall_time_s=time.perf_counter() - start)
    write(record_path, record)
    return metrics
