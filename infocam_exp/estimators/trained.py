"""Trained estimators on equal data: K-fold cross-fitting (default) or one train/test split.

Cross-fitting (default, ``protocol="crossfit"``, ``folds=5``): the N samples are cut into 5
stratified folds (seeded; per class, fold sizes differ by at most one). For each fold, a network
is trained on the other four and scores the held-out fold, so every sample is scored exactly once,
by a network that never saw it, and the estimate is the mean of the N per-sample terms.
``protocol="split"``: one stratified split, train on (folds - 1)/folds of the samples, score the
remaining 1/folds (the per-sample array is NaN on the training part).

Training rule, the same for every trained estimator (``infocam_exp.estimators.ensemble``):
the training part of a fold is split again (stratified, ``val_fraction``) into an inner training
and an inner validation set; one network per learning rate of ``lrs`` (Adam, default
{1e-3, 3e-3, 1e-2}) is trained on the inner training set for at most ``max_steps`` minibatch
steps of ``batch_size`` samples, evaluated on the inner validation set every ``eval_every`` steps
with the estimator's own objective (the estimate it reports, computed as on held-out data), stopped
after ``patience`` evaluations without improvement, and rolled back to its best evaluation. Per
fold, the learning rate with the best validation objective is kept. All (fold x lr) networks train
at once as one batched model. The held-out fold itself takes no part in any choice.

Held-out scoring of the batch-based bounds (InfoNCE, NWJ, DV, MINE, SMILE): each held-out fold is
put in a seeded random order and cut into ceil(n / eval_batch) chunks of near-equal size
(``eval_batch`` defaults to the training batch size, so InfoNCE's log-batch ceiling is that of
training); a sample's negatives are the other samples of its chunk. The inner validation set is
scored the same way.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from infocam_exp.estimators import objectives as obj
from infocam_exp.estimators.ensemble import Member, TrainConfig, forward_one, train_members

PROTOCOLS = ("crossfit", "split")
DEFAULT_LRS = (1e-3, 3e-3, 1e-2)
#: MINE's moving-average rate: a time constant of 1 / 0.05 = 20 steps, short against the step
#: budget (2,000) and the evaluation interval (25), so the average tracks the current critic
MINE_EMA_RATE = 0.05


def sub_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed derived from ``seed`` and integer ``keys`` by numpy's SeedSequence hash."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(N,) fold index in [0, folds) per sample: per class a seeded shuffle dealt round-robin,
    continuing where the previous class stopped, so fold sizes differ by at most one overall and
    each class's counts per fold by at most one."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        out[idx] = (offset + np.arange(len(idx))) % folds
        offset += len(idx)
    return out


@dataclass
class Fit:
    """Per-sample held-out terms of one fit, every form in ``objectives.SCORES`` ((N,) float64,
    NaN where not scored), the evaluation chunks (global indices) and the protocol facts."""

    scores: dict[str, np.ndarray]
    parts: list[np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _torch_threads(n: int | None):
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def log_prior_of(y: np.ndarray, num_classes: int, prior: np.ndarray | None) -> np.ndarray:
    """(K,) log class prior: ``prior`` normalised, or the label frequencies of y."""
    if prior is None:
        counts = np.bincount(y, minlength=num_classes).astype(np.float64)
        if (counts == 0).any():
            raise ValueError(
                f"classes {np.flatnonzero(counts == 0).tolist()} have no samples; pass prior= "
                "(the known class prior) or drop them and lower num_classes"
            )
        return np.log(counts / counts.sum())
    p = np.asarray(prior, dtype=np.float64)
    if p.shape != (num_classes,) or (p <= 0).any():
        raise ValueError(f"prior must be a positive ({num_classes},) vector, got {p}")
    return np.log(p / p.sum())


_CACHE: OrderedDict[tuple, Fit] = OrderedDict()
_CACHE_SIZE = 4


def _key(objective: str, x: np.ndarray, y: np.ndarray, seed: int, log_prior: np.ndarray, opts: dict) -> tuple:
    h = hashlib.blake2b(digest_size=16)
    for a in (x, y, log_prior):
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.shape).encode())
    return (objective, h.hexdigest(), int(seed), tuple(sorted((k, repr(v)) for k, v in opts.items())))


def fit(
    objective: str,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    seed: int,
    prior: np.ndarray | None = None,
    protocol: str = "crossfit",
    folds: int = 5,
    lrs: tuple[float, ...] = DEFAULT_LRS,
    max_steps: int = 2000,
    batch_size: int = 256,
    eval_every: int = 25,
    patience: int = 6,
    val_fraction: float = 0.2,
    eval_batch: int | None = None,
    hidden: tuple[int, ...] = (100, 100, 100),
    clip: float = 5.0,
    mine_ema_rate: float = MINE_EMA_RATE,
    threads: int | None = 1,
    cache: bool = True,
) -> Fit:
    """Train ``objective`` (one of ``objectives.OBJECTIVES``) under ``protocol`` and score.

    Args:
        x: (N, d) float inputs; y: (N,) int labels in [0, num_classes).
        seed: fixes folds, inner splits, initial weights, minibatches and evaluation chunks; the
            folds depend on (seed, y) only, so every estimator of a call sees the same folds.
        prior: (K,) class prior of log PC and H(Y); default the label frequencies of y.
        protocol: "crossfit" or "split"; folds: number of folds (split: test part = 1/folds).
        lrs: the Adam learning-rate grid; max_steps, batch_size, eval_every, patience: the
            budget and early stopping (``ensemble.TrainConfig``); val_fraction: inner validation
            share of each training part; eval_batch: chunk size of held-out scoring (default the
            training batch size actually used); hidden: MLP widths; clip: SMILE's tau;
            mine_ema_rate: MINE's moving-average rate.
        threads: torch threads during the call (restored after); None leaves them as they are.
        cache: reuse the result of an identical call (same objective, data, seed and options);
            ``classifier`` and ``classifier_plugin`` share one fit this way.
    """
    if objective not in obj.OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {', '.join(obj.OBJECTIVES)}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is not known: use 'crossfit' or 'split'")
    if int(folds) < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if not lrs or any(lr <= 0 for lr in lrs):
        raise ValueError(f"lrs must be a non-empty list of positive learning rates, got {lrs}")
    x = np.asarray(x, dtype=np.float32)
    x = x.reshape(len(x), -1)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"y must be a (N,) integer array with values in [0, {num_classes}), got {y.dtype} {y.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    log_prior = log_prior_of(y, num_classes, prior)
    opts = dict(
        protocol=protocol, folds=int(folds), lrs=tuple(float(v) for v in lrs), max_steps=int(max_steps),
        batch_size=int(batch_size), eval_every=int(eval_every), patience=int(patience),
        val_fraction=float(val_fraction), eval_batch=eval_batch, hidden=tuple(hidden), clip=float(clip),
        mine_ema_rate=float(mine_ema_rate),
    )
    key = _key(objective, x, y, seed, log_prior, opts)
    if cache and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    with _torch_threads(threads):
        result = _fit(objective, x, y.astype(np.int64), num_classes, int(seed), log_prior, **opts)
    if cache:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result


def _fit(objective, x, y, num_classes, seed, log_prior, *, protocol, folds, lrs, max_steps, batch_size,
         eval_every, patience, val_fraction, eval_batch, hidden, clip, mine_ema_rate) -> Fit:
    start = time.perf_counter()
    n = len(y)
    fold_of = stratified_folds(y, folds, sub_seed(seed, 1))
    scored_folds = range(folds) if protocol == "crossfit" else range(1)
    inner_k = max(2, round(1.0 / val_fraction))
    members: list[Member] = []
    fold_ids: list[int] = []
    for f in scored_folds:
        train = np.flatnonzero(fold_of != f)
        inner = stratified_folds(y[train], inner_k, sub_seed(seed, 2, f))
        for lr in lrs:
            members.append(Member(train[inner != 0], train[inner == 0], lr, sub_seed(seed, 3, f)))
            fold_ids.append(f)
    # one batch size for all members (the smallest inner training set caps it), so all train in
    # one batched step
    batch_used = min(batch_size, min(len(m.train_idx) for m in members))
    config = TrainConfig(max_steps=max_steps, batch_size=batch_used, eval_every=eval_every,
                         patience=patience, hidden=hidden)
    chunk = int(eval_batch) if eval_batch is not None else batch_used
    if chunk < 2:
        raise ValueError(f"eval_batch must be >= 2, got {chunk}")
    xt = torch.as_tensor(x)
    yt = torch.as_tensor(y)
    lp = torch.as_tensor(log_prior, dtype=torch.float32)
    val_parts = {i: obj.chunks(len(m.val_idx), chunk, sub_seed(seed, 4, i)) for i, m in enumerate(members)}

    def val_fn(params, i):
        idx = members[i].val_idx
        with torch.no_grad():
            g = forward_one(params, xt[idx])
        return obj.validation_value(objective, g, yt[idx], lp, val_parts[i], clip)

    results = train_members(
        xt, yt, members, num_classes,
        lambda g, yy, st: obj.train_loss(objective, g, yy, lp, st),
        val_fn, config, obj.train_state(objective, mine_ema_rate),
    )

    scores = {k: np.full(n, np.nan) for k in obj.SCORES}
    parts: list[np.ndarray] = []
    chosen_lr, steps, steps_trained, stopped, val_best = [], [], [], [], []
    for f in scored_folds:
        cands = [i for i, fi in enumerate(fold_ids) if fi == f]
        best = max(cands, key=lambda i: results[i].best_value)
        r = results[best]
        test = np.flatnonzero(fold_of == f)
        fold_parts = obj.chunks(len(test), chunk, sub_seed(seed, 5, f))
        with torch.no_grad():
            g = forward_one(r.params, xt[test])
        terms = obj.pointwise_scores(g, yt[test], lp, fold_parts, clip)
        for k, v in terms.items():
            scores[k][test] = v
        parts += [test[p] for p in fold_parts]
        chosen_lr.append(members[best].lr)
        steps.append(r.best_step)
        steps_trained.append(r.steps_trained)
        stopped.append(r.early_stopped)
        val_best.append(r.best_value)
    scored = int(np.isfinite(scores["pc"]).sum())
    info = {
        "protocol": protocol,
        "folds": folds,
        "objective": objective,
        "lr": chosen_lr,
        "lr_grid": list(lrs),
        "steps": steps,
        "steps_trained": steps_trained,
        "early_stopped": stopped,
        "val_objective": val_best,
        "max_steps": max_steps,
        "eval_every": eval_every,
        "patience": patience,
        "batch": batch_used,
        "eval_batch": chunk,
        "val_fraction": val_fraction,
        "hidden": list(hidden),
        "samples_scored": scored,
        "num_samples": n,
        "members": len(members),
        "seconds": time.perf_counter() - start,
    }
    if objective == "mine":
        info["mine_ema_rate"] = mine_ema_rate
    if objective == "smile":
        info["clip"] = clip
    return Fit(scores=scores, parts=parts, info=info)


def forms(fit_: Fit, log_prior: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every form of one fit as a held-out mean (nats): the ``objectives.SCORES`` forms, and the
    softmax forms of the classifier's outputs, q(y|x) = softmax(g + log p)_y:
    ``log_k`` = mean log q(y|x) + log K (the paper's balanced-data recipe) and ``entropy`` =
    mean log q(y|x) + H(p); ``entropy`` equals ``pc`` when p is the label frequency of the scored
    samples."""
    ok = np.isfinite(fit_.scores["pc"])
    out = {k: float(v[ok].mean()) for k, v in fit_.scores.items()}
    log_q = fit_.scores["pc"][ok] + log_prior[y[ok]]
    h = float(-(np.exp(log_prior) * log_prior).sum())
    out["log_k"] = float(log_q.mean() + math.log(len(log_prior)))
    out["entropy"] = float(log_q.mean() + h)
    return out
