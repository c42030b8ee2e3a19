"""Gaussian-copula mutual information between continuous X and a discrete label Y.

Ince et al., "A statistical framework for neuroimaging data analysis based on mutual information
estimated via a Gaussian copula", Human Brain Mapping 38 (2017), the continuous-discrete
estimator ``gcmi_model_cd``:

1. Copula-normalise each feature: replace x by Phi^-1(rank / (N + 1)) (ranks over all N samples,
   ties averaged), so every marginal is standard normal and only the dependence structure is kept.
2. Fit Gaussians: one to all samples (covariance C) and one per class (covariance C_c, N_c
   samples), and compare the models as in an ANOVA: I = H(X) - sum_c (N_c / N) H(X | Y = c)
   with Gaussian entropies H = 1/2 log det(2 pi e C) (the 2 pi e terms cancel).
3. Bias correction of each Gaussian entropy: for a sample covariance S of n samples (denominator
   n - 1) in d dimensions, E[log det S] = log det C + d log(2 / (n - 1)) + sum_{i=1..d}
   psi((n - i) / 2) (the Wishart log-determinant), so 1/2 log det S - d/2 log(2 / (n - 1))
   - 1/2 sum_i psi((n - i) / 2) is unbiased for 1/2 log det C.

The result is the MI of the Gaussian copula model in nats; it is exact for data whose copula
normalised class conditionals are Gaussian and otherwise not a bound on I(X;Y) in either
direction. Every class needs more than d samples.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma
from scipy.stats import norm, rankdata


def copula_normalise(x: np.ndarray) -> np.ndarray:
    """(N, d) -> (N, d) normal scores Phi^-1(rank / (N + 1)) of each column (ties averaged)."""
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(len(x), -1)
    return norm.ppf(rankdata(x, axis=0) / (len(x) + 1))


def _half_logdet(centred: np.ndarray, bias_correct: bool) -> float:
    """1/2 log det of the sample covariance (denominator n - 1) of (n, d) centred samples,
    bias-corrected to be unbiased for the population value when ``bias_correct``."""
    n, d = centred.shape
    cov = centred.T @ centred / (n - 1)
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as err:
        raise ValueError(
            "a class covariance is singular: GCMI needs more samples than features in every class "
            "and no constant or duplicated feature"
        ) from err
    h = float(np.log(np.diag(chol)).sum())
    if bias_correct:
        i = np.arange(1, d + 1)
        h -= 0.5 * d * np.log(2.0 / (n - 1)) + 0.5 * digamma((n - i) / 2.0).sum()
    return h


def gaussian_model_mi(x: np.ndarray, y: np.ndarray, bias_correct: bool = True) -> float:
    """MI (nats) between (N, d) x, modelled as Gaussian overall and per class, and (N,) labels y:
    H(X) - sum_c p_c H(X | c), the model comparison of step 2 (bias-corrected as in step 3)."""
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(len(x), -1)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    labels, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    d = x.shape[1]
    if counts.min() <= d:
        raise ValueError(
            f"class {labels[counts.argmin()]} has {counts.min()} samples; GCMI needs more than d = {d} per class"
        )
    h_all = _half_logdet(x - x.mean(0), bias_correct)
    h_cond = 0.0
    for c in range(len(labels)):
        xc = x[inverse == c]
        h_cond += counts[c] / len(x) * _half_logdet(xc - xc.mean(0), bias_correct)
    return h_all - h_cond


def gcmi_cd(x: np.ndarray, y: np.ndarray, bias_correct: bool = True) -> float:
    """Gaussian-copula MI (nats) of continuous (N, d) x and discrete (N,) y (steps 1-3)."""
    return gaussian_model_mi(copula_normalise(x), y, bias_correct)
