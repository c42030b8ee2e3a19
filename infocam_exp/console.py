"""What a run prints: a live bar in a terminal, short lines in a log file.

When stdout is a terminal, Lightning's progress bar is kept. When it is not (a file, a pipe, a
cluster log), the bar is replaced by ``EpochLines``: one line per epoch (epoch, steps, wall time,
training and validation loss, the key metric) and, for a long loop, a progress line at most every
10% of it and never more often than every 30 s. ``progress`` does the same for any long loop
outside Lightning (``python -m infocam_exp.evaluate``). ``ConsoleFormatter`` is the console
format of ``configs/hydra/default.yaml``; ``SweepSummary`` prints one line per job at the end of a
Hydra multirun.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, TypeVar

import pytorch_lightning as pl

from infocam_exp.progress import (  # noqa: F401  (re-exported: light module, no torch)
    EVERY_FRACTION,
    EVERY_SECONDS,
    Throttle,
    progress,
    stdout_is_terminal,
)

log = logging.getLogger("infocam_exp")

T = TypeVar("T")

def _fmt(v: Any) -> str:
    try:
        return f"{float(v):.4f}"
    except (TypeError, ValueError):
        return str(v)


class EpochLines(pl.Callback):
    """Progress for logs: one line per training epoch, and a line at most every 10% / 30 s of a
    long training, validation or test loop.

    Args:
        key_metric: logged metric shown in the epoch line besides the losses (e.g. ``val/acc``);
            skipped when not logged.
    """

    def __init__(self, key_metric: str | None = None) -> None:
        self.key_metric = key_metric
        self._epoch_start = 0.0
        self._fit_start = 0.0
        self._throttle: Throttle | None = None

    # -- epoch lines --------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._throttle = Throttle(_total(trainer.num_training_batches))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        now = time.perf_counter()
        m = trainer.callback_metrics
        parts = [
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
            f"step {trainer.global_step}",
            f"{now - self._epoch_start:.1f} s (total {now - self._fit_start:.0f} s)",
        ]
        for key in ("train/loss", "val/loss", self.key_metric):
            if key and key in m:
                parts.append(f"{key} {_fmt(m[key])}")
        log.info("  ".join(parts))

    # -- heartbeats of long loops ---------------------------------------------------------------
    def _beat(self, trainer: pl.Trainer, what: str, done: int) -> None:
        if self._throttle is not None and trainer.is_global_zero and self._throttle.due(done):
            log.info(self._throttle.line(what, done))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._beat(trainer, f"epoch {trainer.current_epoch + 1} training", batch_idx + 1)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._eval_throttle(trainer, trainer.num_val_batches)

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._eval_throttle(trainer, trainer.num_test_batches)

    def _eval_throttle(self, trainer: pl.Trainer, batches: Sequence[int | float]) -> None:
        self._saved = self._throttle
        self._throttle = Throttle(_total(sum(batches) if batches else None))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._beat(trainer, "validation", batch_idx + 1)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._beat(trainer, "test", batch_idx + 1)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._throttle = getattr(self, "_saved", None)  # back to the training epoch's


def _total(n: Any) -> int | None:
    return int(n) if isinstance(n, int | float) and math.isfinite(n) and n > 0 else None


# --- the end-of-run summary -----------------------------------------------------------------------


def summary_items(spec: Sequence[Any] | None) -> list[dict[str, Any]]:
    """The ``summary`` list of a config as plain dicts {key, label, scale, digits}."""
    items = []
    for entry in spec or ():
        e = dict(entry)
        scale = float(e.get("scale", 1.0))
        items.append({
            "key": str(e["key"]),
            "label": str(e.get("label", e["key"])),
            "scale": scale,
            "digits": int(e.get("digits", 2 if scale != 1.0 else 4)),
        })
    return items


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def summary_values(metrics: dict[str, Any], spec: Sequence[Any] | None) -> tuple[list[tuple[str, str]], dict[str, dict[str, str]]]:
    """The summary's plain lines [(label, value)] and its per-variant table
    {variant: {label: value}}: entries whose key ends in ``@*`` give one row per map variant found,
    entries with a ``/*/`` segment (``test/*/mi_estimate``) one row per value of that segment (the
    MI benchmark's estimators)."""
    plain: list[tuple[str, str]] = []
    variants: dict[str, dict[str, str]] = {}
    for item in summary_items(spec):
        key, label = item["key"], item["label"]
        if key.endswith("@*"):
            for k in sorted(metrics):
                if fnmatch(k, key) and (v := _number(metrics[k])) is not None:
                    variants.setdefault(k.split("@", 1)[1], {})[label] = f"{v * item['scale']:.{item['digits']}f}"
        elif "/*/" in key:  # e.g. "test/*/mi_estimate": one row per estimator
            head, tail = key.split("/*/", 1)
            for k in sorted(metrics):
                if fnmatch(k, key) and k.count("/") == key.count("/") and (v := _number(metrics[k])) is not None:
                    name = k[len(head) + 1 : -len(tail) - 1]
                    variants.setdefault(name, {})[label] = f"{v * item['scale']:.{item['digits']}f}"
        elif "*" in key:  # e.g. "*/mi_estimate": the split the job recorded, named
            found = [k for k in sorted(metrics) if fnmatch(k, key) and _number(metrics[k]) is not None]
            if found:
                plain.append((f"{label} [{found[0]}]", f"{_number(metrics[found[0]]) * item['scale']:.{item['digits']}f}"))
        elif (v := _number(metrics.get(key))) is not None:
            plain.append((label, f"{v * item['scale']:.{item['digits']}f}"))
    return plain, variants


def format_summary(metrics: dict[str, Any], output_dir: Path | str, spec: Sequence[Any] | None) -> str:
    """The end-of-run summary: the experiment's headline metrics (its config's ``summary``) with
    their labels, then where the full record is."""
    plain, variants = summary_values(metrics, spec)
    lines = ["Summary:"]
    width = max([len(label) for label, _ in plain] + [10])
    lines += [f"  {label:<{width}}  {value}" for label, value in plain]
    if variants:
        labels = list(dict.fromkeys(label for row in variants.values() for label in row))
        vwidth = max(len("map"), *(len(v) for v in variants))  # "map": map variant or estimator
        widths = [max(len(label), 7) for label in labels]
        lines.append(f"  {'map':<{vwidth}}  " + "  ".join(f"{label:>{w}}" for label, w in zip(labels, widths, strict=True)))
        for variant, row in variants.items():
            cells = "  ".join(f"{row.get(label, '-'):>{w}}" for label, w in zip(labels, widths, strict=True))
            lines.append(f"  {variant:<{vwidth}}  {cells}")
    lines.append(f"Record: {Path(output_dir) / 'metrics.json'}")
    return "\n".join(lines)


def one_line_summary(metrics: dict[str, Any], spec: Sequence[Any] | None, limit: int = 3) -> str:
    """The first ``limit`` summary values on one line (for the end of a sweep)."""
    plain, variants = summary_values(metrics, spec)
    parts = [f"{label} {value}" for label, value in plain]
    for variant, row in variants.items():
        parts += [f"{label}@{variant} {value}" for label, value in row.items()]
    return ", ".join(parts[:limit])


# --- Hydra: one line per job at the end of a sweep ------------------------------------------------


class FailedJob:
    """What the task function returns for a failed job of a multirun (Hydra would otherwise stop
    the sweep's report at the first failure)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.user_error = _is_user_error(error)

    def __repr__(self) -> str:
        return f"FailedJob({type(self.error).__name__}: {self.error})"


def _is_user_error(err: BaseException) -> bool:
    from infocam_exp.errors import UserError

    return isinstance(err, UserError)


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency
    _HydraCallback = object  # type: ignore[assignment,misc]


class SweepSummary(_HydraCallback):
    """Hydra callback (``configs/hydra/default.yaml``): after a multirun, one line per job
    (status, overrides, headline metrics, wall time, folder); the command then exits non-zero when
    a job failed (2 when every failure is one of the project's own errors, else 1)."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self.jobs = []

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        from infocam_exp.results import METRICS_FILE, read_json

        try:
            if config.hydra.mode is None or str(config.hydra.mode) != "RunMode.MULTIRUN":
                return
            out = Path(config.hydra.runtime.output_dir)
            overrides = " ".join(job_return.overrides or [])
            summary = config.get("summary")
        except Exception:  # never let the report break a job
            return
        record = read_json(out / METRICS_FILE) or {}
        value = getattr(job_return, "_return_value", None)
        failed = isinstance(value, FailedJob) or isinstance(value, BaseException)
        self.jobs.append({
            "overrides": overrides,
            "dir": str(out),
            "status": "failed" if failed else record.get("status", "complete"),
            "error": str(getattr(value, "error", value)) if failed else "",
            "user_error": bool(getattr(value, "user_error", False)),
            "wall": record.get("wall_time_s"),
            "headline": one_line_summary(record.get("metrics") or {}, summary),
        })

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        jobs = self.jobs or _jobs_from_folder(Path(str(config.hydra.sweep.dir)), config.get("summary"))
        if not jobs:
            return
        _name_by_varying_overrides(jobs)
        failed = [j for j in jobs if j["status"] != "complete"]
        lines = [f"Sweep summary: {len(jobs)} job(s), {len(jobs) - len(failed)} complete, {len(failed)} failed ({config.hydra.sweep.dir})"]
        for j in jobs:
            wall = f"{j['wall']:.0f} s" if isinstance(j.get("wall"), int | float) else "-"
            detail = j["headline"] if j["status"] == "complete" else (j["error"].splitlines()[0] if j["error"] else j["status"])
            lines.append(f"  [{j['status']}] {j['name'] or '(no overrides)'}: {detail} ({wall})")
        print("\n".join(lines), flush=True)
        if failed:
            raise SystemExit(2 if all(j.get("user_error") for j in failed) else 1)


def _name_by_varying_overrides(jobs: list[dict[str, Any]]) -> None:
    """Set each job's ``name``: its overrides that differ between the jobs (all when one job)."""
    split = [j["overrides"].split() for j in jobs]
    common = set.intersection(*(set(o) for o in split)) if len(jobs) > 1 else set()
    for j, overrides in zip(jobs, split, strict=True):
        j["name"] = " ".join(o for o in overrides if o not in common)


def _jobs_from_folder(sweep_dir: Path, summary: Any) -> list[dict[str, Any]]:
    """The jobs of a sweep read back from its records (launchers that run jobs elsewhere)."""
    from infocam_exp.results import METRICS_FILE, read_json

    jobs = []
    for path in sorted(sweep_dir.rglob(METRICS_FILE)):
        rec = read_json(path) or {}
        jobs.append({
            "overrides": " ".join(rec.get("overrides") or []),
            "dir": str(path.parent),
            "status": rec.get("status", "unknown"),
            "error": rec.get("error") or "",
            "user_error": False,
            "wall": rec.get("wall_time_s"),
            "headline": one_line_summary(rec.get("metrics") or {}, summary),
        })
    return jobs


# --- logging --------------------------------------------------------------------------------------


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS message`` for INFO; ``HH:MM:SS LEVEL logger: message`` otherwise."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, self.datefmt)
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO:
            return f"{when} {text}"
        return f"{when} {record.levelname} {record.name}: {text}"


class _DropLitloggerTip(logging.Filter):
    # Lightning (2.6) logs an advertisement for its cloud logger every time a Trainer gets
    # loggers, with no setting to turn it off; it says nothing about the run.
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_lightning() -> None:
    """Drop Lightning's litlogger tip (idempotent)."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLitloggerTip) for f in logger.filters):
            logger.addFilter(_DropLitloggerTip())
