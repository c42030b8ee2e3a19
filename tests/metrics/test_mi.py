import math

import pytest
import torch

from infocam_exp.metrics.mi import ClassificationMI, headline_mi


def _hand_case():
    # Two classes, prior (1/4, 3/4). Sample 1: logits (0, log 3), y=1. Sample 2: logits (log 3, 0), y=0.
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    y = torch.tensor([1, 0])
    prior = torch.tensor([0.25, 0.75])
    return logits, y, prior


def test_estimators_on_hand_computed_logits():
    logits, y, prior = _hand_case()
    m = ClassificationMI(prior)
    m.update(logits, y, logits.argmax(-1))
    out = m.compute()
    # log softmax_y = log(3/4) for both samples
    mean_ls = math.log(0.75)
    assert out["mi_estimate@log_k"].item() == pytest.approx(mean_ls + math.log(2))
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert out["mi_estimate@entropy"].item() == pytest.approx(mean_ls + h)
    # log PC: sample 1: log 3 - log(1/4 + 9/4) = log(6/5); sample 2: log 3 - log(3/4 + 3/4) = log 2
    assert out["mi_estimate@pc"].item() == pytest.approx(0.5 * (math.log(6 / 5) + math.log(2)))
    # se of the two pc terms: std(ddof=1)/sqrt(2)
    terms = torch.tensor([math.log(6 / 5), math.log(2)], dtype=torch.float64)
    assert out["mi_estimate@pc_se"].item() == pytest.approx((terms.std() / math.sqrt(2)).item())
    assert out["acc"].item() == 1.0
    heads = headline_mi(out, "pc")
    assert heads["mi_estimate"].item() == pytest.approx(out["mi_estimate@pc"].item())
    assert headline_mi(out, "softmax")["mi_estimate"].item() == pytest.approx(mean_ls + math.log(2))


def test_mi_under_the_evaluated_splits_label_distribution_by_hand():
    logits, y, prior = _hand_case()
    # the split holds one image per class: q = (1/2, 1/2), while training had p = (1/4, 3/4)
    m = ClassificationMI(prior, eval_prior=torch.tensor([1, 1]))
    m.update(logits, y, logits.argmax(-1))
    out = m.compute()
    # PC-type logits f as they are: f_y - log(sum_k q_k exp f_k)
    #   sample 1: log 3 - log(1/2 + 3/2) = log 1.5; sample 2: log 3 - log(3/2 + 1/2) = log 1.5
    assert out["mi_estimate@pc_split_prior"].item() == pytest.approx(math.log(1.5))
    # CE logits lose the training prior first: f = g - log p
    #   sample 1: f = (log 4, log 4), y = 1: log 4 - log 4 = 0
    #   sample 2: f = (log 12, log 4/3), y = 0: log 12 - log(6 + 2/3) = log 1.8
    assert out["mi_estimate@softmax_split_prior"].item() == pytest.approx(0.5 * math.log(1.8))
    terms = torch.tensor([0.0, math.log(1.8)], dtype=torch.float64)
    assert out["mi_estimate@softmax_split_prior_se"].item() == pytest.approx((terms.std() / math.sqrt(2)).item())
    # the headline follows the loss: PC-softmax logits are PC-type, CE logits carry the prior
    assert headline_mi(out, "pc")["mi_estimate@split_prior"].item() == pytest.approx(math.log(1.5))
    assert headline_mi(out, "softmax")["mi_estimate@split_prior"].item() == pytest.approx(0.5 * math.log(1.8))
    # both stay below H(Y) under q = log 2; the training-prior estimates are different numbers
    assert out["mi_estimate@pc"].item() != pytest.approx(math.log(1.5))


def test_split_prior_estimates_reduce_to_the_training_prior_ones():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 3, generator=g)
    y = torch.tensor([0, 1, 1, 2, 2, 2, 2, 1])  # label frequencies (1, 3, 4) / 8
    prior = torch.tensor([1.0, 3.0, 4.0]) / 8
    m = ClassificationMI(prior, eval_prior=torch.tensor([1, 3, 4]))
    m.update(logits, y, logits.argmax(-1))
    out = m.compute()
    # q = p: the PC form is mean log PC_y; with the split's frequencies equal to p, the CE form is
    # mean log softmax_y - mean log p_y = mean log softmax_y + H(Y)
    assert out["mi_estimate@pc_split_prior"].item() == pytest.approx(out["mi_estimate@pc"].item(), abs=1e-6)
    assert out["mi_estimate@softmax_split_prior"].item() == pytest.approx(out["mi_estimate@entropy"].item(), abs=1e-6)
    # a split holding one class only: Y is constant, I(X;Y) = 0 whatever the logits
    one = ClassificationMI(prior, eval_prior=torch.tensor([0, 0, 5]))
    one.update(logits[y == 2], y[y == 2], y[y == 2])
    res = one.compute()
    assert res["mi_estimate@pc_split_prior"].item() == pytest.approx(0.0, abs=1e-6)
    assert res["mi_estimate@softmax_split_prior"].item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="eval_prior must be 3"):
        ClassificationMI(prior, eval_prior=torch.tensor([1.0, 1.0]))


def test_accuracy_and_mean_class_accuracy():
    prior = torch.tensor([0.5, 0.3, 0.2])
    y = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 0, 0, 1, 1, 0, 0])
    m = ClassificationMI(prior)
    m.update(torch.zeros(7, 3), y, preds)
    out = m.compute()
    assert out["acc"].item() == pytest.approx(4 / 7)
    torch.testing.assert_close(out["class_acc"], torch.tensor([0.75, 0.5, 0.0], dtype=torch.float64))
    assert out["mean_class_acc"].item() == pytest.approx((0.75 + 0.5 + 0.0) / 3)


def test_absent_class_is_nan_and_excluded_from_mean():
    m = ClassificationMI(torch.tensor([0.5, 0.5]))
    m.update(torch.zeros(2, 2), torch.tensor([0, 0]), torch.tensor([0, 1]))
    out = m.compute()
    assert math.isnan(out["class_acc"][1].item())
    assert out["mean_class_acc"].item() == pytest.approx(0.5)


def test_batches_accumulate_like_one_batch():
    torch.manual_seed(0)
    prior = torch.tensor([0.1, 0.2, 0.3, 0.4])
    logits = torch.randn(50, 4)
    y = torch.randint(0, 4, (50,))
    one = ClassificationMI(prior)
    one.update(logits, y, logits.argmax(-1))
    many = ClassificationMI(prior)
    for chunk in range(0, 50, 7):
        s = slice(chunk, chunk + 7)
        many.update(logits[s], y[s], logits[s].argmax(-1))
    a, b = one.compute(), many.compute()
    for key in a:
        torch.testing.assert_close(a[key], b[key], equal_nan=True)


def test_unknown_estimator_is_rejected():
    with pytest.raises(ValueError, match="unknown MI estimator"):
        headline_mi({}, "nope")
