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
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis


def gaussian_plugin_mi(
    x: np.ndarray, y: np.ndarray, reg_param: float = 1e-3, mc_samples: int = 100_000, seed: int = 0
) -> tuple[float, float]:
    """(estimate, Monte Carlo standard error) in nats.

    Args:
        x: (N, d) samples; y: (N,) integer labels (every class with >= 2 samples).
        reg_param: QDA's covariance shrinkage towards the identity (keeps d > N_c fits invertible).
        mc_samples: draws from the fitted model; seed: their seed.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y)
    qda = QuadraticDiscriminantAnalysis(reg_param=reg_param, store_covariance=True).fit(x, y)
    rng = np.random.default_rng(seed)
    prior = qda.priors_ / qda.priors_.sum()
    idx = rng.choice(len(prior), size=mc_samples, p=prior)
    draws = np.empty((mc_samples, x.shape[1]))
    for c in range(len(prior)):
        sel = idx == c
        draws[sel] = rng.multivariate_normal(qda.means_[c], qda.covariance_[c], size=int(sel.sum()), method="eigh")
    log_post = qda.predict_log_proba(draws)[np.arange(mc_samples), idx]
    pmi = log_post - np.log(prior[idx])
    return float(pmi.mean()), float(pmi.std(ddof=1) / np.sqrt(mc_samples))
