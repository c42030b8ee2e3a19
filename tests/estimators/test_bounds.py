"""The variational bounds on hand-computed score matrices, their O(B K) forms, MINE's gradient
and the whole-split statistics; the optimal critic of a known task recovers the exact MI."""

import math

import numpy as np
import pytest
import torch

from infocam_exp.data.mi_tasks import GaussianTaskDataModule
from infocam_exp.estimators.bounds import (
    MINELoss,
    SplitBounds,
    bound_from_logits,
    critic_scores,
    dv,
    infonce,
    log_mean_exp_offdiag,
    nwj,
)
from infocam_exp.losses.pc_softmax import log_pc_softmax


def test_hand_computed_two_by_two():
    s = torch.tensor([[2.0, 0.0], [1.0, 3.0]], dtype=torch.float64)
    # InfoNCE: mean_i [s_ii - log sum_j exp s_ij] + log 2
    expected = 0.5 * ((2 - math.log(math.e**2 + 1)) + (3 - math.log(math.e + math.e**3))) + math.log(2)
    assert float(infonce(s)) == pytest.approx(expected, abs=1e-12)
    # off-diagonal pairs: 0 and 1 -> log mean exp = log((1 + e) / 2)
    lme = math.log((1 + math.e) / 2)
    assert float(log_mean_exp_offdiag(s)) == pytest.approx(lme, abs=1e-12)
    assert float(dv(s)) == pytest.approx(2.5 - lme, abs=1e-12)
    assert float(nwj(s)) == pytest.approx(2.5 - math.exp(lme - 1), abs=1e-12)


def test_infonce_ceiling_is_log_batch():
    # a perfect critic: huge joint scores -> InfoNCE -> log B, never above
    b = 8
    s = torch.full((b, b), -50.0, dtype=torch.float64) + 100.0 * torch.eye(b, dtype=torch.float64)
    assert float(infonce(s)) == pytest.approx(math.log(b), abs=1e-9)
    assert float(infonce(torch.randn(b, b, dtype=torch.float64) * 10)) <= math.log(b) + 1e-12


@pytest.mark.parametrize("name,matrix_fn", [("infonce", infonce), ("nwj", nwj), ("dv", dv)])
def test_label_factorised_forms_equal_the_score_matrix(name, matrix_fn):
    g = torch.randn(64, 6, dtype=torch.float64)
    y = torch.randint(0, 6, (64,))
    y[:3] = 5  # some label repeated, maybe one absent
    assert critic_scores(g, y)[3, 7] == g[3, y[7]]
    assert float(bound_from_logits(name, g, y)) == pytest.approx(float(matrix_fn(critic_scores(g, y))), abs=1e-10)


def test_infonce_with_a_discrete_label_is_pc_softmax_with_the_batch_prior():
    """sum_j exp T(x_i, y_j) = B sum_k p_batch(k) exp g_ik, so the InfoNCE term of sample i is
    log PC_{y_i}(g(x_i)) with the batch's label frequencies as the prior."""
    g = torch.randn(40, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (40,))
    freq = torch.bincount(y, minlength=5).double() / 40
    log_pc = log_pc_softmax(g, freq.log()).gather(1, y[:, None]).mean()
    assert float(infonce(critic_scores(g, y))) == pytest.approx(float(log_pc), abs=1e-12)


def test_split_bounds_equal_one_batch_and_shuffle_infonce_chunks():
    g = torch.randn(300, 4, dtype=torch.float64)
    y = torch.arange(4).repeat_interleave(75)  # sorted by class, as splits are stored
    acc = SplitBounds(negatives=300)
    for a in range(0, 300, 70):
        acc.update(g[a : a + 70], y[a : a + 70])
    out = acc.compute()
    assert out["nwj"] == pytest.approx(float(nwj(critic_scores(g, y))), abs=1e-10)
    assert out["dv"] == pytest.approx(float(dv(critic_scores(g, y))), abs=1e-10)
    assert out["infonce"] == pytest.approx(float(infonce(critic_scores(g, y))), abs=1e-10)
    # chunks of 50 in a random order see every class among the negatives, unlike class-sorted chunks
    chunked = SplitBounds(negatives=50)
    chunked.update(g, y)
    order = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    manual = np.mean([float(infonce(critic_scores(g[order[a : a + 50]], y[order[a : a + 50]]))) for a in range(0, 300, 50)])
    assert chunked.compute()["infonce"] == pytest.approx(manual, abs=1e-10)


def test_mine_loss_value_and_moving_average_gradient():
    g = torch.randn(32, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 3, (32,))
    mine = MINELoss(ema_rate=0.5)
    loss, value = mine(g, y)
    assert float(value) == pytest.approx(float(dv(critic_scores(g.detach(), y))), abs=1e-12)
    # first batch: EMA = the batch's own mean, so the surrogate's gradient equals the DV gradient
    loss.backward()
    grad_first = g.grad.clone()
    g2 = g.detach().clone().requires_grad_(True)
    (-dv(critic_scores(g2, y))).backward()
    torch.testing.assert_close(grad_first, g2.grad)
    # second batch with scores shifted by +1: EMA = log(0.5 e^m + 0.5 e^(m+1)) in log space
    m0 = float(mine.log_ema)
    shifted = (g.detach() + 1.0).requires_grad_(True)
    mine(shifted, y)
    assert float(mine.log_ema) == pytest.approx(math.log(0.5 * math.exp(m0) + 0.5 * math.exp(m0 + 1.0)), abs=1e-10)


def test_optimal_critic_recovers_the_exact_mi():
    """g_k(x) = log p(x|k)/p(x) (and + 1 for NWJ, whose optimum is shifted) on a large sample of
    the paper's task: every bound is within sampling error of the exact I(X;Y)."""
    dm = GaussianTaskDataModule(dim=1, samples_per_class=20_000, seed=3)
    dm.setup()
    x, y = dm.splits["train"]
    means = torch.tensor(dm.means, dtype=torch.float64)
    sq = -0.5 * ((x.double()[:, None, :] - means[None]) ** 2).sum(-1)
    g = sq - torch.logsumexp(sq + math.log(0.2), dim=1, keepdim=True)
    truth = dm.truth().value
    acc = SplitBounds(negatives=len(y))
    acc.update(g, y)
    out = acc.compute()
    assert out["dv"] == pytest.approx(truth, abs=0.02)
    assert out["infonce"] == pytest.approx(truth, abs=0.02)
    acc_nwj = SplitBounds(negatives=len(y))
    acc_nwj.update(g + 1.0, y)
    assert acc_nwj.compute()["nwj"] == pytest.approx(truth, abs=0.02)
    # independent X and Y: the optimal critic is constant; all bounds are ~0 (NWJ's at f = 1)
    zeros = torch.zeros_like(g)
    indep = SplitBounds(negatives=500)
    indep.update(zeros, y)
    assert indep.compute()["dv"] == pytest.approx(0.0, abs=1e-9)
    assert indep.compute()["infonce"] == pytest.approx(0.0, abs=1e-3)
    indep1 = SplitBounds(negatives=500)
    indep1.update(zeros + 1.0, y)
    assert indep1.compute()["nwj"] == pytest.approx(0.0, abs=1e-9)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="unknown bound"):
        bound_from_logits("tuba", torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, B\)"):
        infonce(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="ema_rate"):
        MINELoss(0.0)
