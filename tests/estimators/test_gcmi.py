"""Gaussian-copula MI (Ince et al. 2017): the Gaussian model comparison against its closed form,
the bias correction, the copula's invariance, and the full estimator against a quadrature of its
population value on a 1-D Gaussian mixture."""

import numpy as np
import pytest
from scipy.stats import norm

from infocam_exp.estimators.gcmi import copula_normalise, gaussian_model_mi, gcmi_cd
from infocam_exp.estimators.registry import estimate_mi


def test_gaussian_model_mi_equals_the_log_det_closed_form():
    # heteroscedastic Gaussian classes: the model value is 1/2 log det C - sum_c p_c 1/2 log det C_c
    # with C the mixture's covariance (within + between), exactly what large samples converge to
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [1.5, -0.5], [-1.0, 2.0]])
    covs = [np.eye(2), np.array([[2.0, 0.6], [0.6, 0.5]]), np.array([[0.7, -0.2], [-0.2, 1.3]])]
    p = np.array([0.2, 0.3, 0.5])
    n = 300_000
    y = rng.choice(3, n, p=p)
    x = np.empty((n, 2))
    for c in range(3):
        x[y == c] = rng.multivariate_normal(means[c], covs[c], (y == c).sum())
    mbar = p @ means
    total = sum(p[c] * (covs[c] + np.outer(means[c] - mbar, means[c] - mbar)) for c in range(3))
    want = 0.5 * np.linalg.slogdet(total)[1] - sum(p[c] * 0.5 * np.linalg.slogdet(covs[c])[1] for c in range(3))
    assert gaussian_model_mi(x, y) == pytest.approx(want, abs=0.005)


def test_bias_correction_removes_the_small_sample_bias():
    # independent X and Y, 40 samples in 3 dimensions, 2 classes: the plain plug-in is biased up
    rng = np.random.default_rng(1)
    corrected, plain = [], []
    for _ in range(400):
        x, y = rng.standard_normal((40, 3)), np.repeat([0, 1], 20)
        corrected.append(gaussian_model_mi(x, y))
        plain.append(gaussian_model_mi(x, y, bias_correct=False))
    se = np.std(corrected) / np.sqrt(400)
    assert abs(np.mean(corrected)) < 3 * se
    assert np.mean(plain) > 0.05  # ~ d(d+3)/4 (1/N_c - 1/N) in expectation: clearly positive


def test_copula_is_invariant_to_monotone_transforms_of_each_feature():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 500)
    x = rng.standard_normal((500, 2)) + y[:, None]
    warped = np.column_stack([np.exp(x[:, 0]), x[:, 1] ** 3 + 2.0])
    assert gcmi_cd(warped, y) == pytest.approx(gcmi_cd(x, y), abs=1e-12)
    c = copula_normalise(x)
    assert c.mean(0) == pytest.approx([0, 0], abs=1e-12)  # symmetric normal scores
    ranks = np.argsort(np.argsort(x[:, 0]))
    np.testing.assert_allclose(c[:, 0], norm.ppf((ranks + 1) / 501))


def test_gcmi_on_a_gaussian_mixture_matches_its_population_value():
    """1-D mixture x | y=c ~ N(mu_c, 1): the copula maps x to z = Phi^-1(F(x)) (F the mixture CDF),
    z is standard normal, and GCMI converges to 1/2 log Var z - sum_c p_c 1/2 log Var(z | c),
    computed here by quadrature."""
    mu, p = np.array([0.0, 2.0, -2.0]), np.array([0.5, 0.3, 0.2])
    grid = np.linspace(-12, 12, 400_001)
    cdf = (p[:, None] * norm.cdf(grid[None] - mu[:, None])).sum(0)
    z = norm.ppf(np.clip(cdf, 1e-300, 1 - 1e-16))
    want = 0.0
    for c in range(3):
        w = norm.pdf(grid - mu[c])
        m1 = np.trapezoid(w * z, grid)
        var = np.trapezoid(w * z**2, grid) - m1**2
        want -= p[c] * 0.5 * np.log(var)
    rng = np.random.default_rng(3)
    y = rng.choice(3, 200_000, p=p)
    x = mu[y] + rng.standard_normal(len(y))
    assert 0.2 < want < np.log(3)
    assert gcmi_cd(x, y) == pytest.approx(want, abs=0.005)
    res = estimate_mi("gcmi", x[:, None], y, 3, seed=0)
    assert res.estimate == gcmi_cd(x, y)


def test_gcmi_needs_more_samples_than_features_per_class():
    x, y = np.random.default_rng(0).standard_normal((10, 5)), np.repeat([0, 1], 5)
    with pytest.raises(ValueError, match="more than d = 5"):
        gcmi_cd(x, y)


def test_gcmi_equals_the_reference_implementation_values():
    """Values of ``gcmi_model_cd`` of the authors' gcmi toolbox (github.com/robince/gcmi,
    python/src/gcmi/_core.py; it returns bits) on these seeded data sets, converted to nats."""
    rng = np.random.default_rng(0)
    reference_nats = {(100, 1, 2): 0.327423111805587, (1000, 5, 5): 2.059706541887909, (300, 3, 3): 0.9619061393175229}
    for (n, d, k), nats in reference_nats.items():
        y = rng.integers(0, k, n)
        x = 2.0 * y[:, None] + rng.standard_normal((n, d))
        assert gcmi_cd(x, y) == pytest.approx(nats, abs=1e-12)
