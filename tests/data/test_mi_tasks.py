"""The benchmark's task family: transforms are exact bijections that keep the truth, nuisance
dimensions keep it, the sphere task's Monte Carlo truth is precise, bad options are named."""

import math

import numpy as np
import pytest
import torch

from infocam_exp.data.mi_tasks import (
    TRANSFORMS,
    GaussianTaskDataModule,
    apply_transform,
    invert_transform,
    mixture_mi,
    sphere_means,
)
from infocam_exp.metrics.mi_truth import gaussian_mixture_mi


def test_transforms_on_hand_computed_points():
    z = np.array([[4.0, -4.0], [0.0, 1.0]])
    np.testing.assert_allclose(apply_transform(z, "halfcube"), [[8.0, -8.0], [0.0, 1.0]])
    np.testing.assert_allclose(apply_transform(z, "asinh"), np.arcsinh(z))
    # spiral: (1, 0) has |z|^2 = 1, rotated by v = pi/2 -> (0, 1); the norm is kept
    np.testing.assert_allclose(apply_transform(np.array([[1.0, 0.0]]), "spiral", math.pi / 2), [[0.0, 1.0]], atol=1e-12)
    out = apply_transform(np.array([[1.0, 1.0, 3.0]]), "spiral", 0.1)
    assert np.linalg.norm(out) == pytest.approx(np.linalg.norm([1.0, 1.0, 3.0]))
    assert out[0, 2] == 3.0  # odd d: the last coordinate has no partner


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transforms_are_exact_bijections(name):
    z = np.random.default_rng(0).standard_normal((1000, 4)) * 3
    x = apply_transform(z, name)
    np.testing.assert_allclose(invert_transform(x, name), z, atol=1e-9)
    if name != "none":
        assert not np.allclose(x, z)


def test_transforms_keep_quadrature_truth_and_mc_truth_within_se():
    base = GaussianTaskDataModule(dim=3, samples_per_class=2000, seed=2)
    ref0 = base.reference_metrics()
    assert ref0["test/mi_true"] == pytest.approx(gaussian_mixture_mi(base.means, np.full(5, 0.2)).value, abs=1e-9)
    for name in TRANSFORMS[1:]:
        dm = GaussianTaskDataModule(dim=3, samples_per_class=2000, seed=2, transform=name)
        ref = dm.reference_metrics()
        assert ref["test/mi_true"] == ref0["test/mi_true"] and ref["test/mi_true_se"] == 0.0
        # same z, so the test-set Monte Carlo truth is the same up to float32 storage of x
        assert ref["test/mi_true_mc"] == pytest.approx(ref0["test/mi_true_mc"], abs=1e-5)
        assert abs(ref["test/mi_true_mc"] - ref["test/mi_true"]) < 4 * ref["test/mi_true_mc_se"]
        assert not torch.allclose(dm.splits["test"][0], base.splits["test"][0])


def test_sphere_truth_is_monte_carlo_with_small_se_and_transform_invariant():
    dm = GaussianTaskDataModule(dim=5, num_classes=10, layout="sphere", radius=3.0, samples_per_class=1000, seed=0)
    truth = dm.truth()
    assert truth.method == "monte_carlo" and dm.mc_samples >= 10**6
    assert truth.stderr < 0.002
    # an independent Monte Carlo (other seed, the reference implementation) agrees within the SEs
    other = gaussian_mixture_mi(dm.means, np.full(10, 0.1), mc_samples=200_000, seed=11)
    assert abs(other.value - truth.value) < 4 * math.hypot(other.stderr, truth.stderr)
    spiral = GaussianTaskDataModule(dim=5, num_classes=10, layout="sphere", radius=3.0, samples_per_class=1000, seed=0, transform="spiral")
    ref, ref_spiral = dm.reference_metrics(), spiral.reference_metrics()
    assert ref_spiral["test/mi_true"] == truth.value
    assert abs(ref_spiral["test/mi_true_mc"] - truth.value) < 4 * ref_spiral["test/mi_true_mc_se"]
    assert ref_spiral["test/mi_true_mc"] == pytest.approx(ref["test/mi_true_mc"], abs=1e-5)
    np.testing.assert_allclose(np.linalg.norm(sphere_means(10, 5, 3.0, 0), axis=1), 3.0)


def test_nuisance_dimensions_keep_the_exact_truth():
    low = GaussianTaskDataModule(dim=1)
    high = GaussianTaskDataModule(dim=100, informative_dims=1, samples_per_class=50, seed=1)
    assert high.truth().value == pytest.approx(low.truth().value, abs=1e-12)
    assert low.truth().value == pytest.approx(1.0314, abs=1e-4)  # the paper's d = 1 value
    high.setup()
    x, y = high.splits["train"]
    assert x.shape == (250, 100)
    assert abs(float(x[:, 1:].mean())) < 0.05  # noise coordinates have mean 0 in every class
    assert float(x[y == 3, 0].mean()) == pytest.approx(4.0, abs=0.5)


def test_steep_prior_and_automatic_batch():
    dm = GaussianTaskDataModule(num_classes=5, prior="steep", imbalance_ratio=16, samples_per_class=1600)
    assert dm.train_counts == [1600, 800, 400, 200, 100]
    assert dm.batch_size == 620  # a fifth of 3100 training samples
    assert GaussianTaskDataModule(samples_per_class=10_000).batch_size == 2000
    ent = -(np.array(dm.train_counts) / 3100 * np.log(np.array(dm.train_counts) / 3100)).sum()
    assert dm.reference_metrics()["test/entropy_y"] == pytest.approx(ent)


def test_truth_cache_returns_the_same_value():
    means = sphere_means(4, 3, 2.0, 1)
    a = mixture_mi(means, np.full(4, 0.25), mc_samples=100_000)
    assert mixture_mi(means, np.full(4, 0.25), mc_samples=100_000) is a


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"transform": "cube"}, "data.transform"),
        ({"transform": "spiral", "dim": 1}, "data.dim >= 2"),
        ({"layout": "ring"}, "data.layout"),
        ({"dim": 3, "informative_dims": 4}, "data.informative_dims"),
        ({"prior": "steep", "imbalance_ratio": 0.5}, "data.imbalance_ratio"),
    ],
)
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianTaskDataModule(**kwargs)
