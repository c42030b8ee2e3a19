"""Gaussian plug-in MI estimate: fit class-conditional Gaussians, report the fitted model's MI.

scikit-learn's ``QuadraticDiscriminantAnalysis`` fits a mean and a covariance per class (and the
class frequencies as the prior); the MI of the fitted model, E[log q(x|y) / q(x)] under the model
itself, is computed by Monte Carlo from ``mc_samples`` draws of the model: log q(x|y)/q(x) =
log q(y|x) - log q(y), and QDA gives log q(y|x). Right (up to fitting error) when the classes really
are Gaussian; biased when they are not, e.g. after an invertible transform of X, which leaves the
true MI unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

#: Monte Carlo draws scored at a time (bounds the (draws, K) memory)
_MC_CHUNK = 10_000
#: above this many classes the 1-D quadrature's (K, grid) array is too large: Monte Carlo instead
_QUADRATURE_MAX_CLASSES = 50


def gaussian_plugin_mi(
    x: np.ndarray, y: np.ndarray, reg_param: float = 1e-3, mc_samples: int = 100_000, seed: int = 0
) -> tuple[float, float]:
    """(estimate, Monte Carlo standard error) in nats.

    Args:
        x: (N, d) samples; y: (N,) integer labels (every class with more than d samples:
            scikit-learn refuses a rank-deficient class covariance before shrinking it).
        reg_param: QDA's covariance shrinkage towards the identity.
        mc_samples: draws from the fitted model; seed: their seed.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y)
    labels, counts = np.unique(y, return_counts=True)
    if counts.min() <= x.shape[1]:
        raise ValueError(
            f"class {labels[counts.argmin()]} has {counts.min()} samples in d = {x.shape[1]} dimensions; "
            "the QDA plug-in needs more than d per class: use gaussian_lda (one pooled covariance)"
        )
    qda = QuadraticDiscriminantAnalysis(reg_param=reg_param, store_covariance=True).fit(x, y)
    rng = np.random.default_rng(seed)
    prior = qda.priors_ / qda.priors_.sum()
    idx = rng.choice(len(prior), size=mc_samples, p=prior)
    draws = np.empty((mc_samples, x.shape[1]))
    for c in range(len(prior)):
        sel = idx == c
        draws[sel] = rng.multivariate_normal(qda.means_[c], qda.covariance_[c], size=int(sel.sum()), method="eigh")
    pmi = np.empty(mc_samples)
    for a in range(0, mc_samples, _MC_CHUNK):  # (chunk, K) posteriors at a time: K may be large
        sl = slice(a, a + _MC_CHUNK)
        log_post = qda.predict_log_proba(draws[sl])
        pmi[sl] = log_post[np.arange(len(log_post)), idx[sl]] - np.log(prior[idx[sl]])
    return float(pmi.mean()), float(pmi.std(ddof=1) / np.sqrt(mc_samples))


def gaussian_lda_mi(
    x: np.ndarray, y: np.ndarray, reg_param: float = 1e-3, mc_samples: int = 100_000, seed: int = 0
) -> tuple[float, float, str]:
    """LDA plug-in: (estimate, standard error, method) in nats.

    Fits class means, the pooled within-class covariance S (denominator N - K, shrunk as QDA's:
    (1 - reg_param) S + reg_param I) and the class frequencies; returns the MI of that fitted
    model, a Gaussian mixture with one shared covariance. Whitening by S turns it into a mixture
    with identity covariance and the same MI; only the span of the whitened means carries
    information, so the mixture is projected onto it (at most K - 1 dimensions) and
    ``metrics.mi_truth.gaussian_mixture_mi`` computes its MI: by quadrature (error ~1e-9, se 0,
    method "quadrature") when the means are collinear (always for K = 2) and K <= 50, else by
    Monte Carlo with ``mc_samples`` draws (method "monte_carlo", its standard error).

    Args:
        x: (N, d) samples; y: (N,) integer labels (N > number of classes).
    """
    from infocam_exp.metrics.mi_truth import mi_1d_quadrature

    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if not 0 <= reg_param <= 1:
        raise ValueError(f"reg_param must lie in [0, 1], got {reg_param}")
    labels, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    k = len(labels)
    if k < 2:
        return 0.0, 0.0, "one_class"
    if len(x) <= k:
        raise ValueError(f"the LDA plug-in needs more samples ({len(x)}) than classes ({k})")
    means = np.stack([x[inverse == c].mean(0) for c in range(k)])
    resid = x - means[inverse]
    cov = resid.T @ resid / (len(x) - k)
    cov = (1.0 - reg_param) * cov + reg_param * np.eye(x.shape[1])
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as err:
        raise ValueError(
            "the pooled covariance is singular (constant or collinear features): raise reg_param"
        ) from err
    white = np.linalg.solve(chol, means.T).T  # (K, d): whitened class means
    prior = counts / counts.sum()
    centred = white - prior @ white
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int((s > 1e-12 * max(1.0, s.max())).sum())
    if rank == 0:
        return 0.0, 0.0, "equal_means"
    coords = centred @ vt[:rank].T  # (K, rank)
    if rank == 1 and k <= _QUADRATURE_MAX_CLASSES:
        return mi_1d_quadrature(coords[:, 0], prior), 0.0, "quadrature"
    value, se = _mixture_mi_monte_carlo(coords, prior, mc_samples, seed)
    return value, se, "monte_carlo"


def _mixture_mi_monte_carlo(means: np.ndarray, prior: np.ndarray, mc_samples: int, seed: int) -> tuple[float, float]:
    """I(X;Y) of x | y=k ~ N(means_k, I) by Monte Carlo, in chunks: (value, standard error).
    log p(x|k) - log p(x) needs only x . m_k - |m_k|^2 / 2 (the |x|^2 term cancels)."""
    rng = np.random.default_rng(seed)
    half_sq = 0.5 * (means**2).sum(1)
    log_prior = np.log(prior)
    pmi = np.empty(mc_samples)
    for a in range(0, mc_samples, _MC_CHUNK):
        m = min(_MC_CHUNK, mc_samples - a)
        idx = rng.choice(len(prior), size=m, p=prior)
        z = means[idx] + rng.standard_normal((m, means.shape[1]))
        logits = z @ means.T - half_sq
        pmi[a : a + m] = logits[np.arange(m), idx] - logsumexp(logits + log_prior, axis=1)
    return float(pmi.mean()), float(pmi.std(ddof=1) / np.sqrt(mc_samples))
