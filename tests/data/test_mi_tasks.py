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


# --- the benchmark's task sweeps: heteroscedastic, Student t, one-plane spiral, K, total N ------

def _scipy_pointwise(z, y, means, scales, dof, prior):
    """log p(z|y)/p(z) with scipy's full densities: an independent implementation."""
    from scipy import stats
    from scipy.special import logsumexp

    d = z.shape[1]
    dens = []
    for m, s in zip(means, scales, strict=True):
        if dof is None:
            dens.append(stats.multivariate_normal(m, s * s * np.eye(d)).logpdf(z))
        else:
            dens.append(stats.multivariate_t(m, s * s * np.eye(d), df=dof).logpdf(z))
    ll = np.stack(dens, 1)
    return ll[np.arange(len(z)), y] - logsumexp(ll + np.log(prior)[None, :], axis=1)


@pytest.mark.parametrize("kw", [
    {"covariance": "heteroscedastic", "scale_ratio": 4.0, "radius": 2.0},
    {"distribution": "student_t", "dof": 2.0, "radius": 3.0},
    {"distribution": "student_t", "dof": 5.0, "covariance": "heteroscedastic", "scale_ratio": 3.0, "radius": 2.0},
])
def test_class_model_pointwise_mi_and_truth_agree_with_scipy(kw):
    from infocam_exp.data.mi_tasks import class_pointwise_mi, entropy_form_mi, sample_classes

    dm = GaussianTaskDataModule(dim=3, num_classes=4, layout="sphere", samples_per_class=200, seed=3, **kw)
    prior = dm.train_prior()
    # point-wise MI: the chunked, constant-dropping code equals scipy's full densities
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 500)
    z = sample_classes(y, dm.means, dm.scales, dm.dof, rng)
    np.testing.assert_allclose(class_pointwise_mi(z, y, dm.means, dm.scales, dm.dof, prior),
                               _scipy_pointwise(z, y, dm.means, dm.scales, dm.dof, prior), atol=1e-9)
    # the entropy-form truth agrees with an independent log-ratio Monte Carlo (scipy, other draws)
    truth = entropy_form_mi(dm.means, prior, dm.scales, dm.dof, mc_samples=200_000)
    yy = rng.choice(4, size=100_000, p=prior)
    ref = _scipy_pointwise(sample_classes(yy, dm.means, dm.scales, dm.dof, rng), yy, dm.means, dm.scales, dm.dof, prior)
    ref_se = ref.std(ddof=1) / math.sqrt(len(ref))
    assert abs(truth.value - ref.mean()) < 4 * math.hypot(truth.stderr, ref_se)
    assert truth.stderr < ref_se  # the entropy form is the lower-variance one
    # the data module uses the same model: its samples' own Monte Carlo truth is near the truth
    assert dm.pointwise_mi("train").shape == (800,)


def test_student_t_samples_have_heavy_tails_and_heteroscedastic_scales():
    t = GaussianTaskDataModule(dim=1, num_classes=2, spacing=0.0, samples_per_class=20_000, distribution="student_t", dof=2.0)
    t.setup()
    x = t.splits["train"][0].numpy()[:, 0]
    # P(|T_2| > 10) = 1 - 10 / sqrt(102) ~ 0.0099; a Gaussian gives 1.5e-23
    assert 0.007 < (np.abs(x) > 10).mean() < 0.013
    h = GaussianTaskDataModule(dim=2, num_classes=3, spacing=0.0, samples_per_class=20_000, covariance="heteroscedastic", scale_ratio=4.0)
    np.testing.assert_allclose(h.scales, [0.5, 1.0, 2.0])
    h.setup()
    x, y = (v.numpy() for v in h.splits["train"])
    np.testing.assert_allclose([x[y == k].std() for k in range(3)], [0.5, 1.0, 2.0], rtol=0.03)


def test_spiral_plane_standardises_turns_one_plane_and_keeps_the_truth():
    base = GaussianTaskDataModule(dim=5, num_classes=10, layout="sphere", radius=3.0, samples_per_class=2000, seed=1)
    still = GaussianTaskDataModule(dim=5, num_classes=10, layout="sphere", radius=3.0, samples_per_class=2000, seed=1, transform="spiral_plane", spiral_speed=0.0)
    fast = GaussianTaskDataModule(dim=5, num_classes=10, layout="sphere", radius=3.0, samples_per_class=2000, seed=1, transform="spiral_plane", spiral_speed=3.0)
    for dm in (base, still, fast):
        dm.setup()
    z = base.splits["train"][0].numpy().astype(np.float64)
    u = still.splits["train"][0].numpy()
    np.testing.assert_allclose(u.mean(0), 0.0, atol=0.05)  # standardised with the population moments
    np.testing.assert_allclose(u.std(0), 1.0, atol=0.03)
    np.testing.assert_allclose(u, (z - still.z_mean) / still.z_std, atol=1e-5)  # same draws, v = 0
    x = fast.splits["train"][0].numpy().astype(np.float64)
    np.testing.assert_allclose(x[:, 2:], u[:, 2:], atol=1e-5)  # only the pair (0, 1) turns
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.linalg.norm(u, axis=1), rtol=1e-5)
    np.testing.assert_allclose(fast.inverse(x), z, atol=1e-4)
    assert fast.truth() == still.truth() == base.truth()
    np.testing.assert_allclose(fast.pointwise_mi("test"), base.pointwise_mi("test"), atol=1e-4)
    # rotation angle v |u|^2 by hand for one point
    one = np.array([[1.0, 0.0, 1.0]])
    np.testing.assert_allclose(apply_transform(one, "spiral_plane", math.pi / 2), [[math.cos(math.pi), math.sin(math.pi), 1.0]], atol=1e-12)


def test_total_num_samples_keeps_the_prior_proportions():
    dm = GaussianTaskDataModule(num_classes=5, prior="imbalanced", samples_per_class=10, num_samples=3000)
    assert dm.train_counts == [200, 400, 600, 800, 1000] and sum(dm.train_counts) == 3000
    assert GaussianTaskDataModule(num_classes=100, layout="sphere", dim=10, num_samples=1000).train_counts == [10] * 100
    with pytest.raises(ValueError, match="data.num_samples"):
        GaussianTaskDataModule(num_classes=100, layout="sphere", dim=10, num_samples=150)


@pytest.mark.parametrize("name,fraction", [("mi_sep_000", 0.0), ("mi_sep_025", 0.25), ("mi_sep_050", 0.5), ("mi_sep_075", 0.75), ("mi_sep_095", 0.95)])
def test_separation_sweep_hits_its_fraction_of_log_k(name, fraction):
    from hydra.utils import instantiate

    from tests.conftest import compose_cfg

    dm = instantiate(compose_cfg("+experiment=mi_benchmark", f"data={name}").data)
    truth = dm.truth()
    assert truth.method == "quadrature" and truth.stderr == 0.0
    assert truth.value / math.log(5) == pytest.approx(fraction, abs=2e-4)


@pytest.mark.parametrize("name", ["mi_classes_10", "mi_hetero", "mi_student", "mi_spiral_0", "mi_spiral_3", "mi_nuisance_2", "mi_nuisance_100"])
def test_named_sweep_tasks_build_and_their_samples_match_the_truth(name):
    from hydra.utils import instantiate

    from tests.conftest import compose_cfg

    dm = instantiate(compose_cfg("+experiment=mi_benchmark", f"data={name}", "data.num_samples=4000", "data.mc_samples=100000").data)
    truth = dm.truth()
    pmi = dm.pointwise_mi("train")
    assert len(pmi) == 4000
    assert abs(pmi.mean() - truth.value) < 5 * math.hypot(pmi.std(ddof=1) / math.sqrt(len(pmi)), truth.stderr)
