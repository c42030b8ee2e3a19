"""One job of the MI-estimator benchmark: every listed estimator on the same N samples.

``infocam_exp.run`` hands a config with an ``estimators`` list (``+experiment=mi_benchmark``) to
``benchmark_metrics``. The job draws the task's training split once (N samples; the data seed is
``data_seed``, hashed from ``seed`` by the experiment config), runs each estimator of the list on
exactly those samples through ``infocam_exp.estimators.registry.estimate_mi``, and returns one flat
metrics dict for the run's single ``metrics.json``:

- shared: ``test/mi_true`` and ``test/mi_true_se`` (the task's truth, exact or Monte Carlo),
  ``test/mi_true_samples`` and its se (the mean of the true point-wise MI log p(y|x)/p(y) over the
  same N samples: the evaluated samples' own Monte Carlo truth), ``test/entropy_y``, ``test/log_k``,
  ``test/num_samples`` (N);
- per estimator E: ``test/E/mi_estimate``, ``test/E/mi_gap`` (estimate - truth),
  ``test/E/mi_estimate_se``, ``test/E/paired_gap`` (for estimators with point-wise terms: mean of
  the terms minus mean true point-wise MI over the samples that were scored, paired sample by
  sample), ``test/E/num_samples`` (samples scored), ``test/E/steps`` (the chosen weights' step,
  mean over folds), ``test/E/steps_trained``, ``test/E/lr`` (mean over folds) and
  ``test/E/lr_chosen`` (per fold), ``test/E/early_stopped`` (share of folds), ``test/E/folds``, ``test/E/protocol`` (crossfit or split), ``test/E/cpu_s`` and ``test/E/wall_s``,
  every ``extra`` value as ``test/E/<name>``, and ``test/E/error`` when the estimator raised (its
  estimate is then NaN and the table counts that seed as failed for E only).

With a single estimator, ``test/mi_estimate`` and ``test/mi_gap`` are written too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from infocam_exp.metrics.mi_truth import entropy

log = logging.getLogger(__name__)

#: info keys of an EstimateResult copied to the record as numbers
_INFO_NUMBERS = ("steps", "steps_trained", "lr", "folds", "samples_scored")


def estimator_list(cfg: DictConfig) -> list[str]:
    """The estimators of a job: ``estimator`` (one name) when set, else the ``estimators`` list."""
    one = cfg.get("estimator")
    if one:
        if not isinstance(one, str):
            raise ValueError(f"estimator={one!r} must be one estimator name; use estimators=[a,b] for a list")
        return [one]
    names = cfg.get("estimators")
    if not names:
        raise ValueError("the MI benchmark needs estimators=[...] (or estimator=NAME) in the config")
    return [str(n) for n in names]


def _registry() -> Any:
    from infocam_exp.estimators import registry

    return registry


def _known_estimators() -> dict[str, Any]:
    return _registry().ESTIMATORS


def check_estimators(names: Sequence[str]) -> None:
    known = _known_estimators()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown estimator(s) {', '.join(unknown)}: use one of {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"estimators={list(names)} names an estimator twice")


def _finite_or_nan(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def estimator_metrics(name: str, result: Any, truth: float, pmi: np.ndarray) -> dict[str, Any]:
    """The record's ``test/<name>/...`` entries of one EstimateResult (see the module docstring).

    Args:
        pmi: (N,) true point-wise MI of the N input samples, aligned with the estimator's input.
    """
    p = f"test/{name}/"
    est = _finite_or_nan(result.estimate)
    out: dict[str, Any] = {p + "mi_estimate": est, p + "mi_gap": est - truth}
    if result.se is not None:
        out[p + "mi_estimate_se"] = _finite_or_nan(result.se)
    info = dict(result.info or {})
    for key in _INFO_NUMBERS:
        v = info.get(key)
        if isinstance(v, list | tuple) and v and all(isinstance(u, int | float) for u in v):
            v = float(np.mean(v))  # one value per fold (steps, lr): their mean
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[p + ("num_samples" if key == "samples_scored" else key)] = float(v)
    if isinstance(info.get("lr"), list | tuple):
        out[p + "lr_chosen"] = "/".join(f"{v:g}" for v in info["lr"])
    if isinstance(info.get("early_stopped"), list | tuple) and info["early_stopped"]:
        out[p + "early_stopped"] = float(np.mean(info["early_stopped"]))
    if "protocol" in info:
        out[p + "protocol"] = str(info["protocol"])
    for key, v in (result.extra or {}).items():
        out[p + key] = _finite_or_nan(v)
    if result.pointwise is not None:
        terms = np.asarray(result.pointwise, dtype=np.float64)
        if terms.shape != pmi.shape:
            raise ValueError(f"estimator {name}: pointwise has shape {terms.shape}, expected {pmi.shape} (one term per input sample)")
        scored = np.isfinite(terms)  # a split protocol leaves the unscored samples NaN
        if scored.any():
            out[p + "paired_gap"] = float(terms[scored].mean() - pmi[scored].mean())
            out[p + "mi_true_scored"] = float(pmi[scored].mean())
        out.setdefault(p + "num_samples", float(scored.sum()))
    return out


def benchmark_metrics(cfg: DictConfig, dm: Any) -> dict[str, Any]:
    """Run every estimator of the job on the task's N training samples; the flat metrics dict."""
    estimate_mi = _registry().estimate_mi
    known = _known_estimators()
    names = estimator_list(cfg)
    check_estimators(names)
    raw = cfg.get("estimator_options")
    options = OmegaConf.to_container(raw, resolve=True) if isinstance(raw, DictConfig) else dict(raw or {})
    unknown = sorted(set(options) - {"all", *names})
    if unknown:
        log.warning("estimator_options for estimators not in this job: %s (ignored)", ", ".join(unknown))
    dm.setup()
    x_t, y_t = dm.split_tensors("train")[:2]
    x = x_t.numpy().astype(np.float64)
    y = y_t.numpy().astype(np.int64)
    prior = np.asarray(dm.train_prior(), dtype=np.float64)
    truth = dm.truth()
    pmi = dm.pointwise_mi("train")
    metrics: dict[str, Any] = {
        "test/mi_true": truth.value,
        "test/mi_true_se": truth.stderr,
        "test/mi_true_samples": float(pmi.mean()),
        "test/mi_true_samples_se": float(pmi.std(ddof=1) / math.sqrt(len(pmi))),
        "test/entropy_y": entropy(prior),
        "test/log_k": float(math.log(dm.num_classes)),
        "test/num_samples": float(len(y)),
    }
    for name in names:
        kwargs = {**(options.get("all", {}) if known[name].trained else {}), **options.get(name, {})}
        if cfg.get("protocol") and known[name].trained:
            kwargs.setdefault("protocol", cfg.protocol)
        start, cpu = time.perf_counter(), time.process_time()
        try:
            # BLAS / OpenMP threads as many as torch uses (cfg.torch_threads)
            with threadpool_limits(limits=torch.get_num_threads()):
                result = estimate_mi(name, x, y, dm.num_classes, seed=int(cfg.seed), prior=prior, **kwargs)
            metrics.update(estimator_metrics(name, result, truth.value, pmi))
        except Exception as err:  # one estimator's failure must not erase the others' results
            log.exception("estimator %s failed", name)
            metrics.update({f"test/{name}/mi_estimate": math.nan, f"test/{name}/error": f"{type(err).__name__}: {err}"})
        metrics[f"test/{name}/wall_s"] = time.perf_counter() - start
        metrics[f"test/{name}/cpu_s"] = time.process_time() - cpu
        log.info("%s: %.4f (truth %.4f) in %.1f s", name, metrics[f"test/{name}/mi_estimate"], truth.value, metrics[f"test/{name}/wall_s"])
    if len(names) == 1:
        metrics["test/mi_estimate"] = metrics[f"test/{names[0]}/mi_estimate"]
        metrics["test/mi_gap"] = metrics["test/mi_estimate"] - truth.value
    return metrics
