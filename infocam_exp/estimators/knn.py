"""The k-nearest-neighbour MI estimator for continuous X and a discrete label (Ross, PLoS ONE 2014).

For each sample i of class c (N_c samples in that class): d_i is the distance to its k-th nearest
neighbour within class c, and m_i the number of samples of the whole set (i itself included)
closer than d_i. Then

    I(X;Y) ~ psi(N) - <psi(N_c)> + psi(k) - <psi(m)>

(nats; psi the digamma function; Euclidean distance; samples of classes with a single member are
dropped, and k is reduced to N_c - 1 for classes with at most k members). In one dimension this is
what scikit-learn's ``mutual_info_classif`` computes for each feature, apart from its clipping at
0, its rescaling of the feature (which leaves 1-D neighbourhoods unchanged) and its 1e-10 jitter.
Neighbour search is scikit-learn's (``NearestNeighbors``, ``KDTree`` / brute force as it picks).
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma
from sklearn.neighbors import KDTree, NearestNeighbors

#: above this dimension a KD-tree is slower than blocked brute force
_KDTREE_MAX_DIM = 10


def knn_mi(x: np.ndarray, y: np.ndarray, k: int = 3, n_jobs: int | None = 1, standardise: bool = False) -> float:
    """Ross's kNN estimate of I(X;Y) in nats.

    Args:
        x: (N,) or (N, d) continuous samples.
        y: (N,) integer labels.
        k: neighbours (scikit-learn's default is 3).
        n_jobs: threads of the neighbour search.
        standardise: scale each feature to zero mean and unit variance first (``standardise``).
    """
    terms, _ = knn_mi_terms(x, y, k, n_jobs, standardise)
    return float(terms.mean())


def standardise_features(x: np.ndarray) -> np.ndarray:
    """(N, d) features centred and scaled to unit standard deviation (constant features: centred
    only). Euclidean neighbourhoods otherwise depend on the units of each feature."""
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(len(x), -1)
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def knn_mi_terms(
    x: np.ndarray, y: np.ndarray, k: int = 3, n_jobs: int | None = 1, standardise: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample terms psi(N) - psi(N_c) + psi(k) - psi(m_i) of Ross's estimator (their mean is
    ``knn_mi``) and the (N,) mask of the samples that have them (members of classes with >= 2
    samples). Arguments as ``knn_mi``."""
    x = standardise_features(x) if standardise else np.asarray(x, dtype=np.float64)
    x = x.reshape(len(x), -1)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    labels, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    keep = counts[inverse] > 1
    if keep.sum() < 2:
        raise ValueError("the kNN estimator needs a class with at least two samples")
    x, inverse = x[keep], inverse[keep]
    n_c = counts[inverse].astype(np.float64)
    radius = np.empty(len(x))
    k_used = np.empty(len(x))
    for c in np.unique(inverse):
        members = inverse == c
        kc = min(k, int(members.sum()) - 1)
        nn = NearestNeighbors(n_neighbors=kc, n_jobs=n_jobs).fit(x[members])
        dist, _ = nn.kneighbors()  # neighbours of each member, itself excluded
        radius[members] = dist[:, -1]
        k_used[members] = kc
    m = _count_closer(x, radius)
    return digamma(len(x)) - digamma(n_c) + digamma(k_used) - digamma(m), keep


def _count_closer(x: np.ndarray, radius: np.ndarray, block: int = 1024) -> np.ndarray:
    """(N,) number of samples j (i included) with |x_j - x_i| < radius_i."""
    if x.shape[1] <= _KDTREE_MAX_DIM:
        tree = KDTree(x)
        return tree.query_radius(x, np.nextafter(radius, 0), count_only=True).astype(np.float64)
    # Blocked squared distances via the Gram matrix (float64: rounding ~1e-14 relative, far below
    # the 1e-9 margin that keeps the k-th neighbour itself, at exactly radius_i, outside).
    sq = (x * x).sum(1)
    out = np.empty(len(x))
    for a in range(0, len(x), block):
        d2 = sq[a : a + block, None] + sq[None, :] - 2.0 * x[a : a + block] @ x.T
        r2 = (radius[a : a + block] ** 2 * (1.0 - 1e-9))[:, None]
        out[a : a + block] = (d2 < r2).sum(1)
    return out
