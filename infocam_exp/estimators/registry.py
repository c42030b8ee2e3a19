"""One call for every MI estimator: ``estimate_mi(name, x, y, num_classes, seed=...)``.

Every estimator reads the same N samples (x (N, d) float, y (N,) int in [0, K)) and returns an
``EstimateResult`` in nats. ``ESTIMATORS`` lists them with whether they train a network and
whether their estimate is a bound on I(X;Y) in expectation. Trained estimators use K-fold
cross-fitting and one training rule (``infocam_exp.estimators.trained``); see
docs/mi_estimators.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infocam_exp.estimators import trained as tr
from infocam_exp.estimators.gaussian import gaussian_lda_mi, gaussian_plugin_mi
from infocam_exp.estimators.gcmi import gcmi_cd
from infocam_exp.estimators.knn import knn_mi_terms
from infocam_exp.estimators.objectives import HEADLINE, chunk_se


@dataclass
class EstimateResult:
    """An MI estimate (nats).

    estimate: the value. se: its standard error where meaningful, else None. pointwise: (N,)
    per-sample terms whose mean (NaN-skipping: a split protocol scores only its test part) is
    ``estimate``, aligned with the input order, or None. extra: other forms of the same fit.
    info: protocol facts (trained: "protocol", "folds", "lr", "steps", "batch", "early_stopped",
    "samples_scored", ...)."""

    estimate: float
    se: float | None
    pointwise: np.ndarray | None
    extra: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EstimatorSpec:
    """fn(x, y, num_classes, seed=, prior=, **options) -> EstimateResult; trained: fits a
    network; bound: "lower" / "upper" if the estimate is such a bound on I(X;Y) in expectation,
    else "none"; description: one line for tables."""

    fn: Callable[..., EstimateResult]
    trained: bool
    bound: str
    description: str


def _mean_se(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None


def _trained(objective: str, form: str | None = None) -> Callable[..., EstimateResult]:
    """An estimator reporting score ``form`` (default the objective's own) of a fit of ``objective``."""
    form = form or HEADLINE[objective]

    def fn(x, y, num_classes, *, seed, prior=None, **options) -> EstimateResult:
        y = np.asarray(y)
        f = tr.fit(objective, x, y, num_classes, seed=seed, prior=prior, **options)
        log_prior = tr.log_prior_of(y, num_classes, prior)
        all_forms = tr.forms(f, log_prior, y)
        terms = f.scores[form]
        if form in ("dv", "smile"):  # one log-partition per chunk: se from the chunk means
            se = chunk_se(terms, f.parts)
        else:
            se = _mean_se(terms)
        extra = {k: v for k, v in all_forms.items() if k != form}
        if objective != "pc":  # the softmax forms are the classifier's
            extra.pop("log_k")
            extra.pop("entropy")
        return EstimateResult(float(np.nanmean(terms)), se, terms.copy(), extra, dict(f.info, form=form))

    return fn


def _knn(k: int, standardise: bool) -> Callable[..., EstimateResult]:
    def fn(x, y, num_classes, *, seed, prior=None, **options) -> EstimateResult:
        kk = int(options.pop("k", k))
        std = bool(options.pop("standardise", standardise))
        _no_options("knn", options)
        terms, keep = knn_mi_terms(x, y, kk, standardise=std)
        pointwise = np.full(len(keep), np.nan)
        pointwise[keep] = terms
        # the terms share neighbourhoods: their spread is no standard error
        return EstimateResult(float(terms.mean()), None, pointwise, {},
                              {"k": kk, "standardise": std, "samples_scored": int(keep.sum())})

    return fn


def _no_options(name: str, options: dict) -> None:
    if options:
        raise TypeError(f"estimator {name!r} takes no options {sorted(options)}")


def _qda(x, y, num_classes, *, seed, prior=None, reg_param=1e-3, mc_samples=100_000) -> EstimateResult:
    value, se = gaussian_plugin_mi(x, y, reg_param, mc_samples, seed)
    return EstimateResult(value, se, None, {}, {"method": "monte_carlo", "reg_param": reg_param,
                                                "mc_samples": mc_samples, "samples_scored": len(y)})


def _lda(x, y, num_classes, *, seed, prior=None, reg_param=1e-3, mc_samples=100_000) -> EstimateResult:
    value, se, method = gaussian_lda_mi(x, y, reg_param, mc_samples, seed)
    return EstimateResult(value, se, None, {}, {"method": method, "reg_param": reg_param,
                                                "mc_samples": mc_samples, "samples_scored": len(y)})


def _gcmi(x, y, num_classes, *, seed, prior=None, bias_correct=True) -> EstimateResult:
    value = float(gcmi_cd(x, y, bias_correct))
    extra = {} if not bias_correct else {"uncorrected": float(gcmi_cd(x, y, False))}
    return EstimateResult(value, None, None, extra, {"bias_correct": bias_correct, "samples_scored": len(y)})


ESTIMATORS: dict[str, EstimatorSpec] = {
    "classifier": EstimatorSpec(
        _trained("pc"), True, "lower",
        "MLP trained with the PC-softmax loss; held-out mean of log PC_y(f(x)) (variational bound)"),
    "classifier_plugin": EstimatorSpec(
        _trained("pc", "plugin"), True, "none",
        "the classifier's fit, plug-in form H(Y) - mean_x H(q(.|x)), q = softmax(f + log p)"),
    "infonce": EstimatorSpec(
        _trained("infonce"), True, "lower",
        "InfoNCE critic, batch negatives (van den Oord et al. 2018); at most log(eval batch)"),
    "nwj": EstimatorSpec(
        _trained("nwj"), True, "lower", "NWJ f-divergence bound (Nguyen, Wainwright & Jordan 2010)"),
    "mine": EstimatorSpec(
        _trained("mine"), True, "none",
        "MINE: DV bound trained with a moving-average gradient (Belghazi et al. 2018); the batch "
        "log-mean-exp makes the estimate biased upward, not a bound in expectation"),
    "dv": EstimatorSpec(
        _trained("dv"), True, "none",
        "Donsker-Varadhan bound, plain gradient; the batch log-mean-exp makes the estimate biased "
        "upward, not a bound in expectation"),
    "smile": EstimatorSpec(
        _trained("smile"), True, "none",
        "SMILE (Song & Ermon 2020): JS-trained critic, DV with clipped exp (tau = 5); not a bound "
        "for a finite clip"),
    "knn": EstimatorSpec(_knn(3, True), False, "none", "Ross (2014) kNN, options k (3), standardise (True)"),
    "knn3": EstimatorSpec(_knn(3, True), False, "none", "Ross (2014) kNN, k = 3, standardised features"),
    "knn10": EstimatorSpec(_knn(10, True), False, "none", "Ross (2014) kNN, k = 10, standardised features"),
    "knn3_raw": EstimatorSpec(_knn(3, False), False, "none", "Ross (2014) kNN, k = 3, raw features"),
    "gaussian_qda": EstimatorSpec(
        _qda, False, "none", "QDA plug-in: MI of fitted class Gaussians (own covariances), Monte Carlo"),
    "gaussian_lda": EstimatorSpec(
        _lda, False, "none", "LDA plug-in: MI of fitted class Gaussians (pooled covariance)"),
    "gcmi": EstimatorSpec(
        _gcmi, False, "none", "Gaussian-copula MI, continuous X / discrete Y (Ince et al. 2017)"),
}


def estimate_mi(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    seed: int,
    prior: np.ndarray | None = None,
    **options: Any,
) -> EstimateResult:
    """Estimate I(X;Y) in nats with estimator ``name`` (a key of ``ESTIMATORS``).

    Args:
        x: (N, d) float samples; y: (N,) integer labels in [0, num_classes).
        seed: fixes every random choice (folds, initial weights, minibatches, Monte Carlo draws).
        prior: (K,) class prior of the classifier's log PC and H(Y); default y's frequencies.
        options: estimator options (trained: ``trained.fit``'s keywords; knn: k, standardise;
            gaussian_*: reg_param, mc_samples; gcmi: bias_correct).
    """
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}")
    x = np.asarray(x)
    x = x.reshape(len(x), -1)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be a (N,) integer array, got {y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    return ESTIMATORS[name].fn(x, y, num_classes, seed=int(seed), prior=prior, **options)
