import math

import pytest
import torch
import torch.nn.functional as F

from infocam_exp.losses import CrossEntropy, PCSoftmax, log_pc_softmax


def test_log_pc_softmax_hand_computed():
    # logits (0, log 3), prior (1/4, 3/4): sum_k p_k e^{f_k} = 1/4 + 9/4 = 5/2
    logits = torch.tensor([[0.0, math.log(3.0)]])
    prior = torch.tensor([0.25, 0.75])
    out = log_pc_softmax(logits, prior.log())
    expected = torch.tensor([[math.log(2 / 5), math.log(3 * 2 / 5)]])
    torch.testing.assert_close(out, expected)
    # PC is normalised under the prior: sum_y p(y) PC_y = 1
    assert torch.isclose((prior * out.exp()).sum(), torch.tensor(1.0))


def test_log_pc_softmax_is_stable_for_huge_logits():
    logits = torch.tensor([[1000.0, -1000.0, 0.0]])
    out = log_pc_softmax(logits, torch.tensor([0.2, 0.3, 0.5]).log())
    assert torch.isfinite(out).all()
    assert out[0, 0].item() == pytest.approx(-math.log(0.2), abs=1e-4)


def test_pc_equals_ce_under_uniform_prior():
    torch.manual_seed(0)
    logits = torch.randn(8, 5, requires_grad=True)
    y = torch.randint(0, 5, (8,))
    uniform = torch.full((5,), 0.2)
    pc = PCSoftmax(uniform)(logits, y)
    (g_pc,) = torch.autograd.grad(pc, logits)
    ce = CrossEntropy(uniform)(logits, y)
    (g_ce,) = torch.autograd.grad(ce, logits)
    # -log PC_y = -log softmax_y - log K under the uniform prior: same gradient
    assert pc.item() == pytest.approx(ce.item() - math.log(5), abs=1e-6)
    torch.testing.assert_close(g_pc, g_ce)


def test_pc_gradient_equals_logit_adjusted_loss():
    torch.manual_seed(1)
    prior = torch.tensor([0.05, 0.15, 0.3, 0.5])
    logits = torch.randn(16, 4, requires_grad=True)
    y = torch.randint(0, 4, (16,))
    pc = PCSoftmax(prior)(logits, y)
    (g_pc,) = torch.autograd.grad(pc, logits)
    la = F.cross_entropy(logits + prior.log(), y)  # Menon et al., tau = 1
    (g_la,) = torch.autograd.grad(la, logits)
    torch.testing.assert_close(g_pc, g_la)
    # values differ by the constant mean log p(y)
    assert pc.item() == pytest.approx(la.item() + prior.log()[y].mean().item(), abs=1e-5)


def test_argmax_pc_equals_argmax_logits():
    torch.manual_seed(2)
    prior = torch.tensor([0.01, 0.09, 0.9])
    logits = torch.randn(100, 3) * 3
    loss = PCSoftmax(prior)
    assert torch.equal(log_pc_softmax(logits, loss.log_prior).argmax(-1), logits.argmax(-1))
    assert torch.equal(loss.predict(logits), logits.argmax(-1))


def test_posthoc_correction_predicts_prior_free_class():
    prior = torch.tensor([0.9, 0.1])
    logits = torch.tensor([[1.0, 0.0]])  # log-odds 1 < log(0.9/0.1) = 2.197
    assert CrossEntropy(prior).predict(logits).item() == 0
    assert CrossEntropy(prior, posthoc_correction=True).predict(logits).item() == 1


def test_prior_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        PCSoftmax(torch.tensor([0.5, 0.0, 0.5]))
