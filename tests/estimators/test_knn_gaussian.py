"""kNN estimator (equals scikit-learn's mutual_info_classif in 1-D) and the Gaussian plug-in, on
cases with known answers: independent X and Y, a deterministic label, a Gaussian task."""

import math

import numpy as np
import pytest
from sklearn.feature_selection import mutual_info_classif

import infocam_exp.estimators.knn as knn_mod
from infocam_exp.data.mi_tasks import GaussianTaskDataModule
from infocam_exp.estimators.gaussian import gaussian_plugin_mi
from infocam_exp.estimators.knn import knn_mi


def _paper_sample(n, seed, k=5, spacing=2.0, dim=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    mu = np.array([0.0] + [s * spacing * m for m in range(1, k) for s in (1, -1)][: k - 1])
    x = mu[y][:, None] + rng.standard_normal((n, dim))
    return x, y


@pytest.mark.parametrize("seed,k,neighbours", [(0, 5, 3), (1, 3, 1), (2, 7, 5)])
def test_knn_equals_mutual_info_classif_in_1d(seed, k, neighbours):
    x, y = _paper_sample(1500, seed, k=k)
    ours = knn_mi(x[:, 0], y, k=neighbours)
    theirs = mutual_info_classif(x, y, discrete_features=False, n_neighbors=neighbours, random_state=0)[0]
    assert ours > 0 and ours == pytest.approx(theirs, abs=1e-9)


def test_knn_block_brute_force_equals_kd_tree(monkeypatch):
    x, y = _paper_sample(800, 4, dim=12)
    tree = knn_mi(x, y)
    monkeypatch.setattr(knn_mod, "_KDTREE_MAX_DIM", 0)
    assert knn_mi(x, y) == pytest.approx(tree, abs=1e-12)


def test_knn_known_answers():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4000, 2)), rng.integers(0, 4, 4000)
    assert abs(knn_mi(x, y)) < 0.02  # independent
    # separated classes: the k-th neighbour of a point is always of its own class, so m_i = k and
    # the estimate is psi(N) - mean psi(N_c), ~ H(Y) of the sample
    xs, ys = _paper_sample(3000, 6, spacing=40.0)
    counts = np.bincount(ys) / len(ys)
    assert knn_mi(xs, ys) == pytest.approx(-(counts * np.log(counts)).sum(), abs=0.01)
    with pytest.raises(ValueError, match="samples but y"):
        knn_mi(x, y[:-1])


def test_gaussian_plugin_known_answers():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((4000, 3)), rng.integers(0, 4, 4000)
    value, se = gaussian_plugin_mi(x, y, mc_samples=50_000)
    assert abs(value) < 0.01 and se < 0.002
    xs, ys = _paper_sample(3000, 8, spacing=40.0)
    counts = np.bincount(ys) / len(ys)
    value, _ = gaussian_plugin_mi(xs, ys, mc_samples=50_000)
    assert value == pytest.approx(-(counts * np.log(counts)).sum(), abs=1e-3)
    # Gaussian classes: the plug-in is close to the exact truth (1.3003 nats for d = 2)
    dm = GaussianTaskDataModule(dim=2, samples_per_class=5000, seed=1)
    dm.setup()
    xt, yt = (t.numpy() for t in dm.splits["train"])
    value, se = gaussian_plugin_mi(xt, yt, mc_samples=100_000)
    assert value == pytest.approx(dm.truth().value, abs=0.02)
    assert math.isfinite(se)
