"""Training losses and held-out scores of the trained estimators, batched over ensemble members.

Every trained estimator has a network g with K outputs: the classifier's logits, or a critic with
T(x, y) = g(x)_y. With a discrete label the score matrix of a batch factorises over the K label
values (``infocam_exp.estimators.bounds``), so every bound here costs O(B K), not O(B^2).

Shapes: training losses take (M, B, K) outputs of M members and (M, B) labels and return (M,)
losses to minimise. Held-out scoring takes one member's (n, K) outputs and (n,) labels, cut into
*chunks* of fixed size (the batch-based bounds need negatives from the same chunk), and returns
(n,) per-sample terms whose mean is the estimate:

- ``pc`` (classifier, PC-softmax loss): log PC_y(g(x)) = g_y - log sum_k p(k) exp g_k, with p the
  class prior; a variational lower bound (Qin, Kim & Gedeon 2019). No chunk dependence.
- ``plugin``: H(p) - H(q(.|x)) with q(k|x) = p(k) PC_k = softmax(g + log p)_k.
- ``infonce``: g_y - log sum_k n_k exp g_k + log b (n_k: label counts of the chunk of b samples),
  the InfoNCE term of the sample with the chunk as its negatives.
- ``nwj``: g_y - e^-1 mean_{j != i} exp g(x_i)_{y_j}; the mean over a chunk is that chunk's NWJ
  bound exactly (every sample has the same b - 1 negatives count).
- ``dv``: g_y - log mean_{i != j} exp g(x_i)_{y_j} (one log-partition per chunk); the mean over a
  chunk is that chunk's DV bound. MINE is scored with it.
- ``smile``: as dv with the scores in the log-partition clipped to [-tau, tau] (Song & Ermon,
  ICLR 2020).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

#: trained objectives (the estimate each reports is the score of the same name; MINE reports dv)
OBJECTIVES = ("pc", "infonce", "nwj", "dv", "mine", "smile")
#: held-out score forms computed from any fit's outputs
SCORES = ("pc", "plugin", "infonce", "nwj", "dv", "smile")
#: the score each objective reports as its estimate
HEADLINE = {"pc": "pc", "infonce": "infonce", "nwj": "nwj", "dv": "dv", "mine": "dv", "smile": "smile"}


def _joint(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(..., B) scores g(x_i)_{y_i}."""
    return g.gather(-1, y.unsqueeze(-1)).squeeze(-1)


def _log_counts(y: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    """(..., K) log label counts of each batch (-inf for absent labels)."""
    return F.one_hot(y, k).to(dtype).sum(-2).log()


def log_mean_exp_offdiag(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(...,) log mean_{i != j} exp g(x_i)_{y_j} of (..., B, K) outputs and (..., B) labels."""
    b, k = g.shape[-2], g.shape[-1]
    if b < 2:
        raise ValueError(f"the marginal term needs a batch of >= 2 samples, got {b}")
    all_pairs = torch.logsumexp((g + _log_counts(y, k, g.dtype).unsqueeze(-2)).flatten(-2), -1)
    diag = torch.logsumexp(_joint(g, y), -1)
    # sum over i != j = sum over all pairs - sum over the diagonal; all_pairs > diag for B >= 2
    return all_pairs + torch.log1p(-torch.exp(diag - all_pairs)) - math.log(b * (b - 1))


def train_loss(name: str, g: torch.Tensor, y: torch.Tensor, log_prior: torch.Tensor, state: dict) -> torch.Tensor:
    """(M,) losses of (M, B, K) outputs and (M, B) labels for objective ``name``.

    ``log_prior``: (K,) log class prior (``pc``). ``state``: per-member tensors the objective
    keeps across steps (MINE's moving average ``log_ema`` (M,), its rate ``ema_rate``); updated in
    place. SMILE trains on the Jensen-Shannon (f-GAN) bound and is scored with the clipped DV
    bound, as in Song & Ermon's method.
    """
    b, k = g.shape[-2], g.shape[-1]
    joint = _joint(g, y)
    if name == "pc":
        return -(joint - torch.logsumexp(g + log_prior.to(g.dtype), -1)).mean(-1)
    if name == "infonce":
        rows = torch.logsumexp(g + _log_counts(y, k, g.dtype).unsqueeze(-2), -1)
        return -(joint - rows).mean(-1) - math.log(b)
    if name == "smile":
        counts = F.one_hot(y, k).to(g.dtype).sum(-2)  # (M, K)
        marg = (F.softplus(g) * counts.unsqueeze(-2)).sum((-2, -1)) - F.softplus(joint).sum(-1)
        js = -F.softplus(-joint).mean(-1) - marg / (b * (b - 1))
        return -js
    lme = log_mean_exp_offdiag(g, y)
    if name == "nwj":
        return -(joint.mean(-1) - torch.exp(lme - 1.0))
    if name == "dv":
        return -(joint.mean(-1) - lme)
    if name == "mine":
        # MINE (Belghazi et al. 2018, 3.2): the gradient of log E_Q exp T is replaced by
        # grad(E_Q exp T) / (moving average of E_Q exp T); kept in log space.
        cur = lme.detach()
        a = state["ema_rate"]
        log_ema = state.get("log_ema")
        if log_ema is None or a == 1:
            log_ema = cur
        else:
            log_ema = torch.logaddexp(log_ema + math.log1p(-a), cur + math.log(a))
        state["log_ema"] = log_ema
        return -(joint.mean(-1) - torch.exp(lme - log_ema))
    raise ValueError(f"unknown objective {name!r}; expected one of {', '.join(OBJECTIVES)}")


def train_state(name: str, ema_rate: float) -> dict:
    """Fresh per-fit state of objective ``name`` (MINE's moving average)."""
    if name == "mine" and not 0 < ema_rate <= 1:
        raise ValueError(f"mine_ema_rate must lie in (0, 1], got {ema_rate}")
    return {"ema_rate": float(ema_rate)} if name == "mine" else {}


def chunks(n: int, size: int, seed: int) -> list[np.ndarray]:
    """A seeded random order of range(n) cut into ceil(n / size) chunks of near-equal size (they
    differ by at most one; a trailing chunk of 1 would have no negatives)."""
    if n < 2:
        raise ValueError(f"scoring needs >= 2 samples, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    return np.array_split(order, max(1, math.ceil(n / size)))


def pointwise_scores(
    g: torch.Tensor,
    y: torch.Tensor,
    log_prior: torch.Tensor,
    parts: list[np.ndarray],
    clip: float = 5.0,
    forms: tuple[str, ...] = SCORES,
) -> dict[str, np.ndarray]:
    """Per-sample terms of the ``forms`` (default every form of ``SCORES``), float64 numpy,
    aligned with the rows of g.

    Args:
        g: (n, K) outputs of one fitted network on held-out samples; y: (n,) labels.
        log_prior: (K,) log class prior (pc, plugin).
        parts: disjoint index arrays covering range(n) (``chunks``): the negatives of each sample.
        clip: SMILE's tau.
    """
    g = g.double()
    log_prior = log_prior.double()
    n, k = g.shape
    joint = _joint(g, y)
    out: dict[str, torch.Tensor] = {}
    if "pc" in forms:
        out["pc"] = joint - torch.logsumexp(g + log_prior, -1)
    if "plugin" in forms:
        q_log = torch.log_softmax(g + log_prior, -1)
        h_y = float(-(log_prior.exp() * log_prior).sum())
        out["plugin"] = h_y + (q_log.exp() * q_log).sum(-1)
    chunked = [f for f in ("infonce", "nwj", "dv", "smile") if f in forms]
    for f in chunked:
        out[f] = torch.empty(n, dtype=g.dtype)
    for part in parts if chunked else []:
        idx = torch.as_tensor(part)
        gc, yc = g[idx], y[idx]
        b = len(idx)
        jc = joint[idx]
        own = F.one_hot(yc, k).double()
        counts = own.sum(0)
        if "infonce" in forms:
            out["infonce"][idx] = jc - torch.logsumexp(gc + counts.log(), -1) + math.log(b)
        if "nwj" in forms:  # negatives of sample i: the other b - 1 samples of the chunk
            log_neg = torch.logsumexp(gc + (counts[None, :] - own).log(), -1) - math.log(b - 1)
            out["nwj"][idx] = jc - torch.exp(log_neg - 1.0)
        if "dv" in forms:
            out["dv"][idx] = jc - log_mean_exp_offdiag(gc, yc)
        if "smile" in forms:
            out["smile"][idx] = jc - log_mean_exp_offdiag(gc.clamp(-clip, clip), yc)
    return {key: v.numpy() for key, v in out.items()}


def chunk_se(values: np.ndarray, parts: list[np.ndarray]) -> float | None:
    """Standard error of the mean of ``values`` from its chunk means (the DV-type bounds share a
    log-partition per chunk, so their per-sample terms are not independent); None below 2 chunks."""
    if len(parts) < 2:
        return None
    means = np.array([values[p].mean() for p in parts])
    w = np.array([len(p) for p in parts], dtype=np.float64)
    w /= w.sum()
    est = (w * means).sum()
    c = len(parts)
    return float(np.sqrt((w**2 * (means - est) ** 2).sum() * c / (c - 1)))


def validation_value(
    name: str, g: torch.Tensor, y: torch.Tensor, log_prior: torch.Tensor, parts: list[np.ndarray], clip: float
) -> float:
    """The estimate objective ``name`` reports, on one member's (n, K) validation outputs: its own
    validation objective (higher is better), computed as held-out scores are."""
    score = HEADLINE[name]
    return float(pointwise_scores(g, y, log_prior, parts, clip, forms=(score,))[score].mean())
