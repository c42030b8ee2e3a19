"""Gaussian classification tasks with known I(X;Y), for benchmarking MI estimators.

x = f(z), z | y = k ~ N(m_k, I_d), with

- ``layout="collinear"``: the paper's means mu_k (1, ..., 1) (mu = 0, +s, -s, +2s, ... with spacing
  s); the truth is exact (1-D quadrature).
- ``layout="sphere"``: K means drawn once (``means_seed``) uniformly on the sphere of ``radius``
  in the informative dimensions; not collinear for K > 2 and >= 2 informative dimensions, so the
  truth is a Monte Carlo mean over ``mc_samples`` (>= 10^6) draws with its standard error.
- ``informative_dims = m < d``: the means are non-zero in the first m coordinates only; the other
  d - m coordinates are pure noise, independent of y and of the rest, so I(X;Y) is that of the
  m-dimensional task.
- ``transform`` f, an invertible map applied to every sample (I(f(Z);Y) = I(Z;Y), Czyz et al.,
  NeurIPS 2023): ``none``; ``asinh`` (component-wise); ``halfcube`` (z |z|^(1/2), component-wise);
  ``spiral`` (x = R(v |z|^2) z, R(a) rotating every coordinate pair (0,1), (2,3), ... by the angle
  a; the norm is preserved, so the inverse is R(-v |x|^2) x; needs d >= 2).

- ``covariance="heteroscedastic"``: class k has covariance s_k^2 I, the scales s_k spaced
  geometrically so that the largest is ``scale_ratio`` times the smallest (geometric mean 1).
- ``distribution="student_t"``: z | y = k is a multivariate Student t with ``dof`` degrees of
  freedom, location m_k and scale s_k I (heavy tails; Gaussian as dof -> infinity).
- ``transform="spiral_plane"``: the spiral of Czyz et al. (NeurIPS 2023) on standardised data and
  in one plane: u = (z - E z) / std(z) coordinate-wise with the population moments, then the pair
  (0, 1) of u is rotated by v |u|^2 (norm-preserving, inverse R(-v |x|^2) x); v = 0 is the
  standardised identity.
- ``num_samples``: the total N; the per-class counts keep the prior's proportions.

Truth: the collinear, identity-covariance Gaussian case by quadrature (exact); every other case by
Monte Carlo in the lower-variance form I = H(Y) - E_x H(p(y|x)) (the posterior entropy is bounded
by log K, while log p(x|y)/p(x) is not), with its standard error.

All MI values in nats. The truth does not depend on ``seed`` (the data seed), so a benchmark may
resample the data per seed and compare every draw with the same number.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from infocam_exp.data.synthetic import SyntheticGaussianDataModule, paper_means
from infocam_exp.errors import ConfigError
from infocam_exp.metrics.mi_truth import (
    MIValue,
    collinear_projection,
    mi_1d_quadrature,
)

log = logging.getLogger(__name__)

TRANSFORMS = ("none", "asinh", "halfcube", "spiral", "spiral_plane")
LAYOUTS = ("collinear", "sphere")
COVARIANCES = ("identity", "heteroscedastic")
DISTRIBUTIONS = ("gaussian", "student_t")


def _rotate_pairs(x: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate each coordinate pair (0,1), (2,3), ... of (N, d) ``x`` by the (N,) ``angle``."""
    out = x.copy()
    c, s = np.cos(angle), np.sin(angle)
    for i in range(0, x.shape[1] - 1, 2):
        a, b = x[:, i], x[:, i + 1]
        out[:, i] = c * a - s * b
        out[:, i + 1] = s * a + c * b
    return out


def rotate_plane(x: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate the coordinate pair (0, 1) of (N, d) ``x`` by the (N,) ``angle``; the rest is kept."""
    out = x.copy()
    c, s = np.cos(angle), np.sin(angle)
    out[:, 0] = c * x[:, 0] - s * x[:, 1]
    out[:, 1] = s * x[:, 0] + c * x[:, 1]
    return out


def apply_transform(z: np.ndarray, name: str, spiral_speed: float = 0.5) -> np.ndarray:
    """x = f(z) for (N, d) ``z``; see the module docstring for the maps."""
    z = np.asarray(z, dtype=np.float64)
    if name == "none":
        return z.copy()
    if name == "asinh":
        return np.arcsinh(z)
    if name == "halfcube":
        return z * np.sqrt(np.abs(z))
    if name == "spiral":
        _check_spiral(z.shape[1])
        return _rotate_pairs(z, spiral_speed * (z * z).sum(1))
    if name == "spiral_plane":
        _check_spiral(z.shape[1])
        return rotate_plane(z, spiral_speed * (z * z).sum(1))
    raise ConfigError(f"data.transform={name!r} is not known: use one of {', '.join(TRANSFORMS)}")


def invert_transform(x: np.ndarray, name: str, spiral_speed: float = 0.5) -> np.ndarray:
    """z = f^-1(x), the exact inverse of ``apply_transform``."""
    x = np.asarray(x, dtype=np.float64)
    if name == "none":
        return x.copy()
    if name == "asinh":
        return np.sinh(x)
    if name == "halfcube":
        return np.sign(x) * np.abs(x) ** (2.0 / 3.0)
    if name == "spiral":
        _check_spiral(x.shape[1])
        return _rotate_pairs(x, -spiral_speed * (x * x).sum(1))
    if name == "spiral_plane":
        _check_spiral(x.shape[1])
        return rotate_plane(x, -spiral_speed * (x * x).sum(1))
    raise ConfigError(f"data.transform={name!r} is not known: use one of {', '.join(TRANSFORMS)}")


def _check_spiral(dim: int) -> None:
    if dim < 2:
        raise ConfigError("data.transform=spiral rotates coordinate pairs and needs data.dim >= 2")


def sphere_means(num_classes: int, dim: int, radius: float, seed: int) -> np.ndarray:
    """(K, dim) points drawn uniformly on the sphere of ``radius`` (normalised Gaussians)."""
    g = np.random.default_rng(seed).standard_normal((num_classes, dim))
    return radius * g / np.linalg.norm(g, axis=1, keepdims=True)


def _log_ratio_chunks(z: np.ndarray, y: np.ndarray, means: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
    """(N,) log p(z|y) - log p(z) for identity-covariance Gaussians, without an (N, K, d) array."""
    # -|z - m|^2 / 2 = -|z|^2/2 + z.m - |m|^2/2; the -|z|^2/2 term cancels in the ratio.
    logits = z @ means.T - 0.5 * (means * means).sum(1)[None, :]
    joint = logits + log_prior[None, :]
    mx = joint.max(1, keepdims=True)
    log_pz = mx[:, 0] + np.log(np.exp(joint - mx).sum(1))
    return logits[np.arange(len(z)), y] - log_pz


def pointwise_mi(z: np.ndarray, y: np.ndarray, means: np.ndarray, prior: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """(N,) point-wise MI log p(z|y)/p(z) in nats of (N, d) ``z`` with means (K, d), prior (K,)."""
    log_prior = np.log(np.asarray(prior, dtype=np.float64) / np.sum(prior))
    out = np.empty(len(z))
    for a in range(0, len(z), chunk):
        out[a : a + chunk] = _log_ratio_chunks(z[a : a + chunk], y[a : a + chunk], means, log_prior)
    return out


_TRUTH_CACHE: dict[tuple, MIValue] = {}


def mixture_mi(means: np.ndarray, prior: np.ndarray, mc_samples: int = 1_000_000, seed: int = 0) -> MIValue:
    """I(X;Y) of x|y=k ~ N(m_k, I): quadrature when the means are collinear, else Monte Carlo.

    Like ``metrics.mi_truth.gaussian_mixture_mi`` but the Monte Carlo draws are processed in
    chunks (no (N, K, d) array), and results are cached per (means, prior, samples, seed) so that a
    sweep computes each task's truth once per process.
    """
    means = np.asarray(means, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64) / np.sum(prior)
    key = (means.tobytes(), means.shape, prior.tobytes(), int(mc_samples), int(seed))
    if key in _TRUTH_CACHE:
        return _TRUTH_CACHE[key]
    t = collinear_projection(means)
    if t is not None:
        value = MIValue(mi_1d_quadrature(t, prior), 0.0, "quadrature")
    else:
        rng = np.random.default_rng(seed)
        total, total_sq, n = 0.0, 0.0, 0
        for a in range(0, mc_samples, 200_000):
            m = min(200_000, mc_samples - a)
            y = rng.choice(len(prior), size=m, p=prior)
            z = means[y] + rng.standard_normal((m, means.shape[1]))
            v = pointwise_mi(z, y, means, prior)
            total, total_sq, n = total + v.sum(), total_sq + (v * v).sum(), n + m
        mean = total / n
        var = max(total_sq / n - mean * mean, 0.0) * n / (n - 1)
        value = MIValue(float(mean), float(np.sqrt(var / n)), "monte_carlo")
    _TRUTH_CACHE[key] = value
    return value


def class_scales(num_classes: int, scale_ratio: float) -> np.ndarray:
    """(K,) class standard deviations s_k, geometric from r^-1/2 to r^1/2 (r = ``scale_ratio``)."""
    if scale_ratio < 1:
        raise ConfigError(f"data.scale_ratio={scale_ratio} must be >= 1 (largest / smallest class scale)")
    if num_classes == 1:
        return np.ones(1)
    return float(scale_ratio) ** (np.arange(num_classes) / (num_classes - 1) - 0.5)


def class_log_density(z: np.ndarray, means: np.ndarray, scales: np.ndarray, dof: float | None) -> np.ndarray:
    """(N, K) log p(z | y = k) up to one additive constant shared by all classes and samples.

    Args:
        z: (N, d); means: (K, d); scales: (K,) isotropic scales s_k; dof: Student-t degrees of
            freedom, None for Gaussian classes.
    """
    d = z.shape[1]
    sq = (z * z).sum(1)[:, None] - 2.0 * z @ means.T + (means * means).sum(1)[None, :]
    sq = np.maximum(sq, 0.0) / (scales * scales)[None, :]
    if dof is None:
        return -0.5 * sq - d * np.log(scales)[None, :]
    return -0.5 * (dof + d) * np.log1p(sq / dof) - d * np.log(scales)[None, :]


def _chunk_rows(num_classes: int) -> int:
    # keeps the (rows, K) arrays near 20 M entries (160 MB) whatever K
    return int(max(1000, min(200_000, 20_000_000 // max(1, num_classes))))


def posterior_log(z: np.ndarray, means: np.ndarray, scales: np.ndarray, dof: float | None, log_prior: np.ndarray) -> np.ndarray:
    """(N, K) log p(y = k | z) of the class model (in chunks)."""
    out = np.empty((len(z), len(means)))
    step = _chunk_rows(len(means))
    for a in range(0, len(z), step):
        joint = class_log_density(z[a : a + step], means, scales, dof) + log_prior[None, :]
        mx = joint.max(1, keepdims=True)
        out[a : a + step] = joint - (mx + np.log(np.exp(joint - mx).sum(1, keepdims=True)))
    return out


def class_pointwise_mi(z: np.ndarray, y: np.ndarray, means: np.ndarray, scales: np.ndarray, dof: float | None, prior: np.ndarray) -> np.ndarray:
    """(N,) point-wise MI log p(y|z) - log p(y) = log p(z|y)/p(z) in nats."""
    prior = np.asarray(prior, dtype=np.float64) / np.sum(prior)
    log_prior = np.log(prior)
    out = np.empty(len(z))
    step = _chunk_rows(len(means))
    for a in range(0, len(z), step):
        lp = posterior_log(z[a : a + step], means, scales, dof, log_prior)
        yy = y[a : a + step]
        out[a : a + step] = lp[np.arange(len(yy)), yy] - log_prior[yy]
    return out


def sample_classes(y: np.ndarray, means: np.ndarray, scales: np.ndarray, dof: float | None, rng: np.random.Generator) -> np.ndarray:
    """(N, d) draws z | y from the class model (float64)."""
    g = rng.standard_normal((len(y), means.shape[1]))
    if dof is not None:
        g *= np.sqrt(dof / rng.chisquare(dof, size=len(y)))[:, None]
    return means[y] + scales[y][:, None] * g


def entropy_form_mi(
    means: np.ndarray, prior: np.ndarray, scales: np.ndarray | None = None, dof: float | None = None,
    mc_samples: int = 1_000_000, seed: int = 0,
) -> MIValue:
    """Monte Carlo I(X;Y) = H(Y) - E_x H(p(y|x)) of the class model, with its standard error.

    x is drawn from the mixture; the per-draw term H(p(.|x)) lies in [0, log K], so its variance
    (and the estimate's) is smaller than that of the mean of log p(x|y)/p(x). Cached per arguments.
    """
    means = np.asarray(means, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64) / np.sum(prior)
    scales = np.ones(len(prior)) if scales is None else np.asarray(scales, dtype=np.float64)
    key = ("entropy", means.tobytes(), means.shape, prior.tobytes(), scales.tobytes(), dof, int(mc_samples), int(seed))
    if key in _TRUTH_CACHE:
        return _TRUTH_CACHE[key]
    rng = np.random.default_rng(seed)
    log_prior = np.log(prior)
    h_y = float(-(prior * log_prior).sum())
    total, total_sq, n = 0.0, 0.0, 0
    step = _chunk_rows(len(prior))
    for a in range(0, mc_samples, step):
        m = min(step, mc_samples - a)
        y = rng.choice(len(prior), size=m, p=prior)
        z = sample_classes(y, means, scales, dof, rng)
        lp = posterior_log(z, means, scales, dof, log_prior)
        h = -(np.exp(lp) * lp).sum(1)
        total, total_sq, n = total + h.sum(), total_sq + (h * h).sum(), n + m
    mean = total / n
    var = max(total_sq / n - mean * mean, 0.0) * n / (n - 1)
    value = MIValue(h_y - float(mean), float(np.sqrt(var / n)), "monte_carlo")
    _TRUTH_CACHE[key] = value
    return value


class GaussianTaskDataModule(SyntheticGaussianDataModule):
    """A benchmark task: Gaussian classes, optional nuisance dimensions and invertible transform.

    Args:
        dim: d, the input dimension.
        num_classes: K.
        prior: "balanced", "imbalanced" (1:2:...:K), "steep" (geometric, largest class
            ``imbalance_ratio`` times the smallest) or an explicit list of K training counts.
        samples_per_class: training samples per class when balanced (the largest class otherwise
            for "steep"; see ``class_counts``).
        layout: "collinear" (the paper's means) or "sphere" (random means on a sphere).
        spacing: collinear layout: mean spacing s (the paper's 2).
        radius, means_seed: sphere layout: radius and the seed that draws the K means (fixed, so
            every data seed sees the same task).
        informative_dims: m, the number of coordinates carrying the means (None: all d).
        transform: "none", "asinh", "halfcube", "spiral" or "spiral_plane".
        spiral_speed: v of the spiral (radians per unit |z|^2; of the standardised |u|^2 for
            "spiral_plane").
        covariance: "identity" or "heteroscedastic" (class scales s_k, see ``class_scales``).
        scale_ratio: largest / smallest class scale for "heteroscedastic".
        distribution: "gaussian" or "student_t" (``dof`` degrees of freedom).
        num_samples: total training N (None: from ``samples_per_class``); the per-class counts
            keep the prior's proportions (at least 2 per class).
        imbalance_ratio: largest / smallest class count for ``prior="steep"``.
        mc_samples: Monte Carlo draws for a non-collinear truth (>= 10^6 keeps its SE < 0.002).
        batch_size: training batch; None: the paper's 2000, or a fifth of the training set if
            that is smaller (at least five steps per epoch).
        eval_fraction, eval_batch_size, seed: as ``SyntheticGaussianDataModule``.
    """

    def __init__(
        self,
        dim: int = 1,
        num_classes: int = 5,
        prior: str | Sequence[int] = "balanced",
        samples_per_class: int = 2_000,
        layout: str = "collinear",
        spacing: float = 2.0,
        radius: float = 3.0,
        means_seed: int = 0,
        informative_dims: int | None = None,
        transform: str = "none",
        spiral_speed: float = 0.5,
        covariance: str = "identity",
        scale_ratio: float = 1.0,
        distribution: str = "gaussian",
        dof: float = 3.0,
        num_samples: int | None = None,
        imbalance_ratio: float = 100.0,
        mc_samples: int = 1_000_000,
        eval_fraction: float = 0.2,
        batch_size: int | None = None,
        eval_batch_size: int = 10_000,
        seed: int = 0,
    ) -> None:
        if layout not in LAYOUTS:
            raise ConfigError(f"data.layout={layout!r} is not known: use one of {', '.join(LAYOUTS)}")
        if transform not in TRANSFORMS:
            raise ConfigError(f"data.transform={transform!r} is not known: use one of {', '.join(TRANSFORMS)}")
        if covariance not in COVARIANCES:
            raise ConfigError(f"data.covariance={covariance!r} is not known: use one of {', '.join(COVARIANCES)}")
        if distribution not in DISTRIBUTIONS:
            raise ConfigError(f"data.distribution={distribution!r} is not known: use one of {', '.join(DISTRIBUTIONS)}")
        if distribution == "student_t" and not dof > 0:
            raise ConfigError(f"data.dof={dof} must be > 0 (Student-t degrees of freedom)")
        if transform == "spiral_plane" and distribution == "student_t" and not dof > 2:
            raise ConfigError(f"data.transform=spiral_plane standardises with the variance, which needs data.dof > 2 (got {dof})")
        m = dim if informative_dims is None else int(informative_dims)
        if not 1 <= m <= dim:
            raise ConfigError(f"data.informative_dims={informative_dims} must lie in [1, data.dim={dim}]")
        if transform == "spiral":
            _check_spiral(dim)
        if num_classes >= 2 and prior == "steep":
            if imbalance_ratio < 1:
                raise ConfigError(f"data.imbalance_ratio={imbalance_ratio} must be >= 1")
            ratios = imbalance_ratio ** (-np.arange(num_classes) / (num_classes - 1))
            prior = [max(1, round(samples_per_class * r)) for r in ratios]
        super().__init__(
            dim=dim,
            num_classes=num_classes,
            prior=prior,
            samples_per_class=samples_per_class,
            eval_fraction=eval_fraction,
            means=paper_means(num_classes, spacing) if num_classes >= 2 else None,
            batch_size=1,
            eval_batch_size=eval_batch_size,
            seed=seed,
        )
        if num_samples is not None:
            if int(num_samples) < 2 * self.num_classes:
                raise ConfigError(f"data.num_samples={num_samples} must be >= 2 per class ({2 * self.num_classes} for {self.num_classes} classes)")
            c = np.asarray(self.train_counts, dtype=np.float64)
            self.train_counts = [max(2, round(int(num_samples) * v / c.sum())) for v in c]
            self.eval_counts = [max(1, round(v * eval_fraction)) for v in self.train_counts]
            self.class_counts = torch.tensor(self.train_counts, dtype=torch.int64)
        # the paper's batch (2000), or five steps per epoch for small training sets
        n_train = sum(self.train_counts)
        self.batch_size = int(batch_size) if batch_size else min(2000, max(32, n_train // 5))
        self.layout = layout
        self.informative_dims = m
        self.transform = transform
        self.spiral_speed = float(spiral_speed)
        self.mc_samples = int(mc_samples)
        if layout == "collinear":
            inner = np.asarray(self.mean_scalars)[:, None] * np.ones((1, m))
        else:
            inner = sphere_means(self.num_classes, m, radius, means_seed)
        self._means = np.zeros((self.num_classes, self.dim))
        self._means[:, :m] = inner
        self.class_names = [f"class {k}" for k in range(self.num_classes)]
        self.covariance = covariance
        self.distribution = distribution
        self.dof = float(dof) if distribution == "student_t" else None
        self.scales = class_scales(self.num_classes, scale_ratio) if covariance == "heteroscedastic" else np.ones(self.num_classes)
        # population moments of z per coordinate (spiral_plane standardises with them)
        p = self.train_prior()
        self.z_mean = p @ self._means
        spread = self.dof / (self.dof - 2) if self.dof is not None and self.dof > 2 else 1.0
        self.z_std = np.sqrt(p @ (spread * self.scales[:, None] ** 2 + (self._means - self.z_mean) ** 2))

    @property
    def plain_gaussian(self) -> bool:
        """Identity-covariance Gaussian classes (the original family, sampled with torch)."""
        return self.covariance == "identity" and self.distribution == "gaussian"

    def forward(self, z: np.ndarray) -> np.ndarray:
        """x = f(z) for (N, d) float64 ``z`` (``spiral_plane`` standardises first)."""
        if self.transform == "spiral_plane":
            z = (z - self.z_mean) / self.z_std
        return apply_transform(z, self.transform, self.spiral_speed)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """z = f^-1(x), the exact inverse of ``forward``."""
        z = invert_transform(x, self.transform, self.spiral_speed)
        return z * self.z_std + self.z_mean if self.transform == "spiral_plane" else z

    @property
    def means(self) -> np.ndarray:
        """(K, d) class means of z (before the transform)."""
        return self._means

    def _sample(self, counts: Sequence[int], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.repeat_interleave(torch.arange(self.num_classes), torch.tensor(counts))
        if self.plain_gaussian:
            z = (torch.from_numpy(self._means).float()[y] + torch.randn(len(y), self.dim, generator=gen)).numpy()
        else:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
            z = sample_classes(y.numpy(), self._means, self.scales, self.dof, rng)
        x = self.forward(z.astype(np.float64))
        return torch.from_numpy(x).float(), y

    def truth(self) -> MIValue:
        """I(X;Y) of the task (nats), from the informative coordinates' class model and the prior."""
        inner = self._means[:, : self.informative_dims]
        if self.plain_gaussian and collinear_projection(inner) is not None:
            return mixture_mi(inner, self.train_prior(), self.mc_samples)
        return entropy_form_mi(inner, self.train_prior(), self.scales, self.dof, self.mc_samples)

    def pointwise_mi(self, split: str) -> np.ndarray:
        """(N,) log p(x|y)/p(x) in nats of a split's samples under the training prior.

        The point-wise MI is invariant under f (the Jacobians cancel), so it is evaluated at
        f^-1(x); float32 storage limits the round trip to ~1e-6."""
        self.setup()
        x, y = self.splits[split]
        z = self.inverse(x.numpy().astype(np.float64))
        if self.plain_gaussian:
            return pointwise_mi(z, y.numpy(), self._means, self.train_prior())
        return class_pointwise_mi(z, y.numpy(), self._means, self.scales, self.dof, self.train_prior())

    def test_pointwise_mi(self) -> np.ndarray:
        return self.pointwise_mi("test")


__all__ = [
    "GaussianTaskDataModule",
    "class_log_density",
    "class_pointwise_mi",
    "class_scales",
    "entropy_form_mi",
    "rotate_plane",
    "sample_classes",
    "apply_transform",
    "invert_transform",
    "mixture_mi",
    "pointwise_mi",
    "sphere_means",
]
