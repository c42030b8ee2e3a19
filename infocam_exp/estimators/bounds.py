"""Variational lower bounds on I(X;Y) with a learned critic T(x, y) (Poole et al., ICML 2019).

A batch of B pairs gives the score matrix ``scores[i, j] = T(x_i, y_j)``: the diagonal holds the
joint pairs, the off-diagonal entries pairs of the product of marginals. For a discrete label the
critic is a network g(x) with K outputs and T(x, y) = g(x)_y, so ``scores = g(x)[:, y]``.

- InfoNCE (van den Oord et al. 2018): mean_i [T_ii - log (1/B) sum_j exp T_ij]; at most log B.
- NWJ (Nguyen, Wainwright & Jordan 2010): mean_i T_ii - e^-1 mean_{i != j} exp T_ij.
- DV / MINE (Belghazi et al., ICML 2018): mean_i T_ii - log mean_{i != j} exp T_ij; MINE trains it
  with a moving average of the denominator in the gradient (``MINELoss``).

All values in nats. Pure tensor code, no Lightning.
"""

from __future__ import annotations

import math

import torch

BOUNDS = ("infonce", "nwj", "dv")


def _check(scores: torch.Tensor) -> int:
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ValueError(f"scores must be a (B, B) matrix with B >= 2, got {tuple(scores.shape)}")
    return scores.shape[0]


def critic_scores(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, B) scores T(x_i, y_j) = logits[i, y_j] from (B, K) critic outputs and (B,) labels."""
    return logits[:, target.long()]


def log_mean_exp_offdiag(scores: torch.Tensor) -> torch.Tensor:
    """log of the mean of exp(scores[i, j]) over the B (B - 1) pairs i != j."""
    b = _check(scores)
    eye = torch.eye(b, dtype=torch.bool, device=scores.device)
    off = scores.masked_fill(eye, -math.inf)
    return torch.logsumexp(off.flatten(), 0) - math.log(b * (b - 1))


def infonce(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE bound (nats) of a (B, B) score matrix; <= log B."""
    b = _check(scores)
    return (scores.diagonal() - torch.logsumexp(scores, dim=1)).mean() + math.log(b)


def nwj(scores: torch.Tensor) -> torch.Tensor:
    """NWJ bound (nats): mean joint score - exp(log-mean-exp of the off-diagonal scores - 1)."""
    return scores.diagonal().mean() - torch.exp(log_mean_exp_offdiag(scores) - 1.0)


def dv(scores: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan bound (nats), MINE's objective: mean joint score - log-mean-exp off-diagonal."""
    return scores.diagonal().mean() - log_mean_exp_offdiag(scores)


def _label_log_counts(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    counts = torch.bincount(target.long(), minlength=logits.shape[1]).to(logits.dtype)
    return counts.log()  # -inf for labels absent from the batch


def infonce_from_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``infonce(critic_scores(logits, target))`` in O(B K): for a discrete label,
    sum_j exp T(x_i, y_j) = sum_k n_k exp g_ik with n_k the batch's label counts."""
    b = len(target)
    if b < 2:
        raise ValueError(f"InfoNCE needs a batch of >= 2 samples, got {b}")
    joint = logits.gather(1, target.long()[:, None])[:, 0]
    rows = torch.logsumexp(logits + _label_log_counts(logits, target)[None, :], dim=1)
    return (joint - rows).mean() + math.log(b)


def log_mean_exp_offdiag_from_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``log_mean_exp_offdiag(critic_scores(logits, target))`` in O(B K)."""
    b = len(target)
    if b < 2:
        raise ValueError(f"the marginal term needs a batch of >= 2 samples, got {b}")
    joint = logits.gather(1, target.long()[:, None])[:, 0]
    all_pairs = torch.logsumexp((logits + _label_log_counts(logits, target)[None, :]).flatten(), 0)
    diag = torch.logsumexp(joint, 0)
    # log(exp(all) - exp(diag)); all > diag whenever B >= 2
    return all_pairs + torch.log1p(-torch.exp(diag - all_pairs)) - math.log(b * (b - 1))


def bound_from_logits(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The bound ``name`` ("infonce", "nwj" or "dv") of a batch of (B, K) critic outputs and (B,)
    labels; equal to the score-matrix definitions above, in O(B K) instead of O(B^2)."""
    if name == "infonce":
        return infonce_from_logits(logits, target)
    joint = logits.gather(1, target.long()[:, None])[:, 0].mean()
    lme = log_mean_exp_offdiag_from_logits(logits, target)
    if name == "nwj":
        return joint - torch.exp(lme - 1.0)
    if name == "dv":
        return joint - lme
    raise ValueError(f"unknown bound {name!r}; expected one of {', '.join(BOUNDS)}")


class MINELoss:
    """MINE's training loss: the DV bound with a bias-corrected gradient (Belghazi et al. 2018, 3.2).

    The gradient of log mean exp T over marginal pairs is replaced by grad(mean exp T) / EMA, where
    EMA is an exponential moving average (rate ``ema_rate``) of mean exp T over batches; it is kept
    in log space. ``__call__(logits, target)`` returns (loss to minimise, the batch's DV bound).
    """

    def __init__(self, ema_rate: float = 0.01) -> None:
        if not 0 < ema_rate <= 1:
            raise ValueError(f"ema_rate must lie in (0, 1], got {ema_rate}")
        self.ema_rate = float(ema_rate)
        self.log_ema: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        joint = logits.gather(1, target.long()[:, None])[:, 0].mean()
        lme = log_mean_exp_offdiag_from_logits(logits, target)
        current = lme.detach()
        a = self.ema_rate
        if self.log_ema is None or a == 1:
            self.log_ema = current
        else:
            self.log_ema = torch.logaddexp(self.log_ema + math.log1p(-a), current + math.log(a))
        # exp(lme - log_ema) has value ~1 and gradient grad(mean exp T) / EMA.
        surrogate = torch.exp(lme - self.log_ema)
        return -(joint - surrogate), joint.detach() - current


class SplitBounds:
    """All three bounds over a whole split, from batches of (B, K) critic outputs and (B,) labels.

    NWJ and DV use every pair i != j of the split (exactly: for a discrete label the marginal sum
    factorises over the K label values, O(N K) work). InfoNCE uses negatives from chunks of
    ``negatives`` samples (the training batch size, so the bound and its log B ceiling are those
    of training) taken in a fixed random order: splits are often stored sorted by class, and a
    chunk of one class has no informative negatives. Keeps the (N, K) outputs, in float64.
    """

    def __init__(self, negatives: int, seed: int = 0) -> None:
        if negatives < 2:
            raise ValueError(f"InfoNCE needs >= 2 negatives per chunk, got {negatives}")
        self.negatives = int(negatives)
        self.seed = int(seed)
        self.logits: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.logits.append(logits.detach().double().cpu())
        self.targets.append(target.detach().long().cpu())

    def compute(self) -> dict[str, float]:
        """{"infonce", "nwj", "dv"} in nats (NaN before two samples were seen)."""
        if sum(len(t) for t in self.targets) < 2:
            return {name: math.nan for name in BOUNDS}
        g, y = torch.cat(self.logits), torch.cat(self.targets)
        n, k = g.shape
        joint = g.gather(1, y[:, None])[:, 0]
        counts = torch.bincount(y, minlength=k).double()
        # sum_{i != j} exp T(x_i, y_j) = sum_k n_k sum_i exp g_ik - sum_i exp g_{i, y_i}
        all_pairs = float(torch.logsumexp(torch.logsumexp(g, dim=0) + counts.log(), dim=0))
        diff = float(torch.logsumexp(joint, dim=0)) - all_pairs
        log_off = all_pairs + math.log(-math.expm1(diff)) if diff < 0 else -math.inf
        log_marg = log_off - math.log(n * (n - 1))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        total, used = 0.0, 0
        for a in range(0, n, self.negatives):
            idx = order[a : a + self.negatives]
            if len(idx) >= 2:
                total += float(infonce_from_logits(g[idx], y[idx])) * len(idx)
                used += len(idx)
        mean_joint = float(joint.mean())
        return {
            "infonce": total / used,
            "nwj": mean_joint - math.exp(log_marg - 1.0),
            "dv": mean_joint - log_marg,
        }
