"""estimate_mi: every estimator on the same N samples; cross-fitting scores each sample once; the
plug-in and kNN estimators on cases with known answers."""

import math

import numpy as np
import pytest

from infocam_exp.estimators.knn import knn_mi
from infocam_exp.estimators.registry import ESTIMATORS, EstimateResult, estimate_mi
from infocam_exp.metrics.mi_truth import gaussian_mixture_mi

#: a tiny budget: the protocol, not the accuracy, is under test
FAST = dict(hidden=(16,), max_steps=40, eval_every=10, patience=2, batch_size=64)
TRAINED = [name for name, spec in ESTIMATORS.items() if spec.trained]


def _task(n=300, k=3, d=2, spacing=2.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = spacing * y[:, None] + rng.standard_normal((n, d))
    return x, y


def test_the_registry_names_the_expected_estimators_and_their_bounds():
    want = {"classifier", "classifier_plugin", "infonce", "nwj", "mine", "dv", "smile", "knn3", "knn10",
            "knn3_raw", "gaussian_qda", "gaussian_lda", "gcmi"}
    assert want <= set(ESTIMATORS)
    assert {n for n, s in ESTIMATORS.items() if s.bound == "lower"} == {"classifier", "infonce", "nwj"}
    assert all(s.bound in ("lower", "upper", "none") and s.description for s in ESTIMATORS.values())
    assert set(TRAINED) == {"classifier", "classifier_plugin", "infonce", "nwj", "mine", "dv", "smile"}


@pytest.mark.parametrize("name", TRAINED)
def test_crossfitting_scores_every_sample_once(name):
    x, y = _task()
    r = estimate_mi(name, x, y, 3, seed=0, **FAST)
    assert isinstance(r, EstimateResult)
    assert r.info["protocol"] == "crossfit" and r.info["folds"] == 5
    assert r.info["samples_scored"] == len(y) == r.pointwise.shape[0]
    assert np.isfinite(r.pointwise).all()
    assert r.estimate == pytest.approx(r.pointwise.mean(), abs=1e-12)
    assert r.se is not None and r.se > 0
    assert len(r.info["lr"]) == len(r.info["steps"]) == 5
    assert all(lr in r.info["lr_grid"] for lr in r.info["lr"])
    assert all(0 <= s <= FAST["max_steps"] for s in r.info["steps"])
    assert r.info["batch"] == 64


def test_split_protocol_scores_only_the_test_part():
    x, y = _task()
    r = estimate_mi("infonce", x, y, 3, seed=0, protocol="split", **FAST)
    assert r.info["protocol"] == "split" and r.info["samples_scored"] == 60
    assert np.isfinite(r.pointwise).sum() == 60
    assert r.estimate == pytest.approx(np.nanmean(r.pointwise))


def test_the_classifier_forms_share_one_fit():
    x, y = _task(seed=1)
    a = estimate_mi("classifier", x, y, 3, seed=5, **FAST)
    b = estimate_mi("classifier_plugin", x, y, 3, seed=5, **FAST)
    assert a.extra["plugin"] == b.estimate and b.extra["pc"] == a.estimate
    assert a.info["lr"] == b.info["lr"] and a.info["steps"] == b.info["steps"]
    # the label frequencies of the scored samples as the prior: the + H(Y) form is the mean-log form
    assert a.extra["entropy"] == pytest.approx(a.estimate, abs=1e-9)
    p = np.bincount(y) / len(y)
    assert a.extra["log_k"] - a.extra["entropy"] == pytest.approx(math.log(3) + (p * np.log(p)).sum(), abs=1e-9)


def test_trained_known_answers_independent_and_separated():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 100)
    x = rng.standard_normal((300, 2))
    cfg = dict(FAST, max_steps=300, patience=5)
    indep = estimate_mi("classifier", x, y, 3, seed=0, **cfg)
    assert abs(indep.estimate) < 0.1 and abs(indep.extra["plugin"]) < 0.1
    sep = estimate_mi("classifier", x + 10.0 * y[:, None], y, 3, seed=0, **cfg)
    assert sep.estimate == pytest.approx(math.log(3), abs=0.05)


def test_knn_standardisation_makes_it_invariant_to_feature_scales():
    x, y = _task(600, d=3)
    scaled = x * np.array([1000.0, 0.01, 1.0])
    a = estimate_mi("knn3", x, y, 3, seed=0)
    assert estimate_mi("knn3", scaled, y, 3, seed=0).estimate == pytest.approx(a.estimate, abs=1e-10)
    assert abs(estimate_mi("knn3_raw", scaled, y, 3, seed=0).estimate - a.estimate) > 0.05
    assert estimate_mi("knn3_raw", x, y, 3, seed=0).estimate == pytest.approx(knn_mi(x, y, 3), abs=1e-12)
    assert a.pointwise.mean() == pytest.approx(a.estimate, abs=1e-12)
    assert estimate_mi("knn10", x, y, 3, seed=0).info["k"] == 10


def test_lda_plugin_equals_the_exact_truth_on_equal_covariance_gaussians():
    # x = A z, z | y ~ N(m_y, I): the MI is that of the identity-covariance mixture (A invertible)
    rng = np.random.default_rng(4)
    means = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [-1.0, 1.0, 1.0], [2.0, -1.0, 0.5]])
    prior = np.array([0.1, 0.2, 0.3, 0.4])
    truth = gaussian_mixture_mi(means, prior, mc_samples=500_000, seed=1)
    n = 40_000
    y = rng.choice(4, n, p=prior)
    a = np.array([[2.0, 0.5, 0.0], [0.0, 1.0, -0.3], [0.1, 0.0, 0.4]])
    x = (means[y] + rng.standard_normal((n, 3))) @ a.T + 5.0
    r = estimate_mi("gaussian_lda", x, y, 4, seed=0, reg_param=0.0, mc_samples=200_000)
    assert r.info["method"] == "monte_carlo"
    assert truth.stderr < 0.003 and r.se < 0.004
    assert r.estimate == pytest.approx(truth.value, abs=0.02)
    # two classes: the whitened means are collinear, quadrature (se 0)
    two = estimate_mi("gaussian_lda", x[y < 2], y[y < 2], 2, seed=0, reg_param=0.0)
    exact2 = gaussian_mixture_mi(means[:2], prior[:2]).value
    assert two.info["method"] == "quadrature" and two.se == 0.0
    assert two.estimate == pytest.approx(exact2, abs=0.01)


def test_qda_and_lda_disagree_only_when_covariances_differ():
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 5000)
    x = rng.standard_normal((10_000, 1)) * np.where(y == 1, 3.0, 1.0)[:, None]  # same means
    assert estimate_mi("gaussian_lda", x, y, 2, seed=0).estimate == pytest.approx(0.0, abs=1e-3)
    assert estimate_mi("gaussian_qda", x, y, 2, seed=0).estimate > 0.1


def test_bad_input_names_the_problem():
    x, y = _task(50)
    with pytest.raises(ValueError, match="unknown estimator"):
        estimate_mi("tuba", x, y, 3, seed=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        estimate_mi("knn3", x, y, 2, seed=0)
    with pytest.raises(ValueError, match="protocol"):
        estimate_mi("classifier", x, y, 3, seed=0, protocol="holdout")
    with pytest.raises(ValueError, match="prior must be"):
        estimate_mi("classifier", x, y, 3, seed=0, prior=np.ones(2))
    with pytest.raises(TypeError, match="takes no options"):
        estimate_mi("knn3", x, y, 3, seed=0, max_steps=3)


def test_lda_monte_carlo_path_agrees_with_quadrature_for_many_classes():
    # 60 classes: beyond the quadrature's class limit, so gaussian_lda uses its chunked Monte Carlo;
    # on collinear means in 2-D it must agree with the 1-D quadrature of the same mixture
    from infocam_exp.estimators.gaussian import _mixture_mi_monte_carlo, gaussian_lda_mi
    from infocam_exp.metrics.mi_truth import mi_1d_quadrature

    t = np.linspace(-6, 6, 60)
    prior = np.linspace(1, 2, 60) / np.linspace(1, 2, 60).sum()
    direction = np.array([0.6, 0.8])
    value, se = _mixture_mi_monte_carlo(t[:, None] * direction, prior, 200_000, seed=0)
    exact = mi_1d_quadrature(t, prior)
    assert 0 < se < 0.005 and value == pytest.approx(exact, abs=4 * se)
    y = np.repeat(np.arange(60), 20)
    x = 0.5 * y[:, None] * direction + np.random.default_rng(6).standard_normal((1200, 2))
    assert gaussian_lda_mi(x, y, mc_samples=20_000)[2] == "monte_carlo"


def test_qda_names_too_small_classes():
    small = np.r_[np.zeros(4, int), np.ones(40, int)]
    with pytest.raises(ValueError, match="use gaussian_lda"):
        estimate_mi("gaussian_qda", np.random.default_rng(0).standard_normal((44, 5)), small, 2, seed=0)
