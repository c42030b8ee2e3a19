"""Held-out per-sample terms and training losses of the trained estimators against the score-matrix
definitions of ``estimators.bounds`` and hand-computed cases."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from infocam_exp.estimators import objectives as obj
from infocam_exp.estimators.bounds import critic_scores, dv, infonce, log_mean_exp_offdiag, nwj
from infocam_exp.losses.pc_softmax import log_pc_softmax


def _batch(b=24, k=4, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(b, k, generator=gen, dtype=torch.float64) * scale
    y = torch.randint(0, k, (b,), generator=gen)
    y[:2] = torch.tensor([0, 1])
    return g, y


def test_chunk_means_equal_the_score_matrix_bounds():
    g, y = _batch(30)
    parts = obj.chunks(30, 12, seed=1)  # three chunks of 10
    assert sorted(len(p) for p in parts) == [10, 10, 10]
    assert sorted(np.concatenate(parts).tolist()) == list(range(30))
    terms = obj.pointwise_scores(g, y, torch.full((4,), math.log(0.25)), parts)
    for p in parts:
        s = critic_scores(g[p], y[p])
        assert terms["infonce"][p].mean() == pytest.approx(float(infonce(s)), abs=1e-12)
        assert terms["nwj"][p].mean() == pytest.approx(float(nwj(s)), abs=1e-12)
        assert terms["dv"][p].mean() == pytest.approx(float(dv(s)), abs=1e-12)
        # SMILE: the log-partition of clipped scores, the joint term unclipped
        clipped = s.clamp(-0.5, 0.5)
        smile = obj.pointwise_scores(g, y, torch.zeros(4), parts, clip=0.5)["smile"][p].mean()
        assert smile == pytest.approx(float(s.diagonal().mean() - log_mean_exp_offdiag(clipped)), abs=1e-12)


def test_infonce_term_is_log_pc_with_the_chunk_label_frequencies():
    g, y = _batch(40, 5)
    freq = torch.bincount(y, minlength=5).double() / 40
    terms = obj.pointwise_scores(g, y, torch.zeros(5), [np.arange(40)])["infonce"]
    log_pc = log_pc_softmax(g, freq.log()).gather(1, y[:, None])[:, 0]
    np.testing.assert_allclose(terms, log_pc.numpy(), atol=1e-12)


def test_smile_equals_dv_when_no_score_reaches_the_clip():
    g, y = _batch(32, 4, scale=1.0)
    assert g.abs().max() < 5.0
    parts = obj.chunks(32, 16, seed=0)
    t = obj.pointwise_scores(g, y, torch.zeros(4), parts, clip=5.0)
    np.testing.assert_array_equal(t["smile"], t["dv"])
    big = obj.pointwise_scores(g * 10, y, torch.zeros(4), parts, clip=5.0)
    assert np.abs(big["smile"] - big["dv"]).max() > 0.1  # the clip acts on large scores


def test_plugin_form_by_hand_on_two_samples():
    # two samples, K = 2, prior (0.25, 0.75); q(.|x) = softmax(g + log p)
    g = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    log_p = torch.tensor([0.25, 0.75], dtype=torch.float64).log()
    t = obj.pointwise_scores(g, y, log_p, [np.arange(2)])
    h_y = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    # sample 1: q = (0.25, 0.75) -> H = H(Y); sample 2: q ∝ (3 * 0.25, 0.75) = (0.5, 0.5) -> log 2
    np.testing.assert_allclose(t["plugin"], [0.0, h_y - math.log(2.0)], atol=1e-12)
    assert t["plugin"].mean() == pytest.approx(h_y - 0.5 * (h_y + math.log(2.0)), abs=1e-12)
    # the mean-log form: log PC_y = g_y - log sum_k p_k e^{g_k}
    np.testing.assert_allclose(t["pc"], [0.0, -math.log(0.25 * 3 + 0.75)], atol=1e-12)


def test_training_losses_are_minus_the_batch_bounds():
    gs, ys = zip(*[_batch(16, 3, seed=s) for s in range(3)], strict=True)
    g, y = torch.stack(gs), torch.stack(ys)  # (M=3, B=16, K=3)
    log_p = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64).log()
    for name, fn in (("infonce", infonce), ("nwj", nwj), ("dv", dv)):
        losses = obj.train_loss(name, g, y, log_p, {})
        for m in range(3):
            assert float(losses[m]) == pytest.approx(-float(fn(critic_scores(g[m], y[m]))), abs=1e-12)
    pc = obj.train_loss("pc", g, y, log_p, {})
    for m in range(3):
        want = -log_pc_softmax(g[m], log_p).gather(1, y[m][:, None]).mean()
        assert float(pc[m]) == pytest.approx(float(want), abs=1e-12)
    # SMILE trains on the Jensen-Shannon bound: -softplus(-T) on joint pairs, softplus(T) off them
    js = obj.train_loss("smile", g, y, log_p, {})
    for m in range(3):
        s = critic_scores(g[m], y[m])
        off = ~torch.eye(16, dtype=torch.bool)
        want = -F.softplus(-s.diagonal()).mean() - F.softplus(s[off]).mean()
        assert float(js[m]) == pytest.approx(-float(want), abs=1e-12)


def test_mine_loss_keeps_a_moving_average_per_member():
    g, y = torch.stack([_batch(16, 3, seed=s)[0] for s in range(2)]), torch.stack([_batch(16, 3, seed=s)[1] for s in range(2)])
    state = obj.train_state("mine", 0.5)
    first = obj.train_loss("mine", g, y, torch.zeros(3), state)
    lme = obj.log_mean_exp_offdiag(g, y)
    torch.testing.assert_close(state["log_ema"], lme)
    # first step: value = -(joint - 1)
    joint = g.gather(-1, y[..., None])[..., 0].mean(-1)
    torch.testing.assert_close(first, -(joint - 1.0))
    obj.train_loss("mine", g + 1.0, y, torch.zeros(3), state)
    torch.testing.assert_close(state["log_ema"], torch.log(0.5 * lme.exp() + 0.5 * (lme + 1).exp()))
    with pytest.raises(ValueError, match="mine_ema_rate"):
        obj.train_state("mine", 0.0)


def test_chunk_se_and_bad_names():
    v = np.array([1.0, 1.0, 3.0, 3.0])
    parts = [np.array([0, 1]), np.array([2, 3])]
    # chunk means 1 and 3, weights 1/2: se = sqrt(2 * (1/4) * 1 * 2 / 1) / ... by the formula
    assert obj.chunk_se(v, parts) == pytest.approx(math.sqrt(0.25 * 1 + 0.25 * 1) * math.sqrt(2.0), abs=1e-12)
    assert obj.chunk_se(v, [np.arange(4)]) is None
    with pytest.raises(ValueError, match="unknown objective"):
        obj.train_loss("tuba", torch.zeros(1, 2, 2), torch.zeros(1, 2, dtype=torch.long), torch.zeros(2), {})
