"""The paper's three claims, each as a short real run that would fail if the claim stopped holding
(``pytest -m claims``; part of ``make test``).

The margins measured over seeds 0, 1, 2 (``python scripts/claims_margins.py``, which runs exactly
these configurations) are written beside each assertion, so a reader sees how safe it is. The tests
run seed 0. Measured 2026-12-01 on the shared 2-core development machine (load 6-9, one torch
thread per run): CPU time per seed 29 s (MI), 54 s (Fashion-MNIST), 107 s (WSOL).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from infocam_exp.run import run
from tests.conftest import compose_cfg, needs_fashion_mnist

pytestmark = pytest.mark.claims

QUIET = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "logger=none"]

# --- claim 1: softmax-CE estimates MI ------------------------------------------------------------
#: the shipped recipe (configs/experiment/mi_synthetic.yaml: MLP, Adam 1e-2, batch 2000, 20
#: epochs, cosine), d = 2; three cells of the README's MI table.
MI_CELLS = {
    "ce_balanced": ["data.dim=2", "data.prior=balanced", "loss=ce"],
    "pc_imbalanced": ["data.dim=2", "data.prior=imbalanced", "loss=pc_softmax"],
    "ce_imbalanced": ["data.dim=2", "data.prior=imbalanced", "loss=ce"],
}


def mi_claim_runs(out: Path, seed: int = 0) -> dict[str, dict[str, Any]]:
    return {
        name: run(compose_cfg("+experiment=mi_synthetic", *cell, f"seed={seed}", *QUIET), out / name)
        for name, cell in MI_CELLS.items()
    }


def mi_claim_margins(m: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Slack of each assertion (positive: holds)."""
    ce, pc, ce_imb = m["ce_balanced"], m["pc_imbalanced"], m["ce_imbalanced"]
    over = math.log(5) - ce_imb["test/entropy_y"]  # log K - H(Y)
    return {
        "ce_balanced: 0.02 - |estimate - exact|": 0.02 - abs(ce["test/mi_estimate"] - ce["test/mi_true"]),
        "pc_imbalanced: 0.02 - |estimate - exact|": 0.02 - abs(pc["test/mi_estimate"] - pc["test/mi_true"]),
        "ce_imbalanced: 0.01 - |(estimate - exact) - (log K - H(Y))|": 0.01
        - abs(ce_imb["test/mi_estimate"] - ce_imb["test/mi_true"] - over),
        # PC-softmax must be what makes the imbalanced estimate right: in the same run, its estimate
        # beats CE's + H(Y) reading of the same logits by a margin, and it matches the test set's
        # own Monte Carlo truth closer than a CE-trained network can (CE training: -0.017)
        "pc_imbalanced: |CE + H(Y) - exact| - |estimate - exact| - 0.01": abs(pc["test/mi_estimate_prior_corrected"] - pc["test/mi_true"])
        - abs(pc["test/mi_estimate"] - pc["test/mi_true"]) - 0.01,
        "pc_imbalanced: 0.005 - |estimate - test-set MC truth|": 0.005 - abs(pc["test/mi_estimate"] - pc["test/mi_true_mc"]),
    }


@pytest.mark.slow
def test_claim_softmax_ce_estimates_mutual_information(tmp_path):
    margins = mi_claim_margins(mi_claim_runs(tmp_path))
    # Slack measured over seeds 0, 1, 2 (positive: holds), i.e. the bounds are 25-50x the errors:
    #   CE balanced     |estimate - exact| 0.0007, 0.0004, 0.0006 -> slack >= +0.0193
    #   PC imbalanced   |estimate - exact| 0.0008, 0.0007, 0.0009 -> slack >= +0.0191
    #   CE imbalanced   |over-estimate - (log K - H(Y))| 0.0008, 0.0006, 0.0007 -> slack >= +0.0092
    #   PC imbalanced, same run: |CE + H(Y) - exact| 0.0200, 0.0205, 0.0199 vs |PC - exact| 0.0008,
    #     0.0007, 0.0009 -> margin 0.0192, 0.0197, 0.0190 against 0.01 -> slack >= +0.0090
    #   PC imbalanced vs the test set's own MC truth: |PC - MC| 0.0001, 0.0001, 0.0000 against
    #     0.005 -> slack >= +0.0049
    # A PC-softmax loss silently equal to CE (forward() returning F.cross_entropy) passes the
    # first three (PC error -0.017 < 0.02) but not the fourth: measured, seed 0, slack -0.0264.
    for what, slack in margins.items():
        assert slack > 0, (what, slack)


# --- claim 2: PC-softmax helps on imbalanced data -------------------------------------------------
#: the authors' imbalanced Fashion-MNIST protocol (configs/experiment/mnist_pc_softmax.yaml), 2 of
#: its 8 epochs.
PC_RUN = ["+experiment=mnist_pc_softmax", "data=fashion_mnist", "trainer.max_epochs=2"]


#: smallest PC-softmax - CE margin of mean per-class accuracy the test accepts (fraction). Seed 0
#: measures +2.03 points, identical over repeated runs on one machine; 1.2 points leaves 0.8 for
#: other machines' arithmetic and fails if 40% of the advantage is lost.
PC_MIN_MARGIN = 0.012


def pc_claim_runs(out: Path, seed: int = 0, mutate: bool = False) -> dict[str, dict[str, Any]]:
    """CE and PC-softmax runs; ``mutate``: the "pc_softmax" run trains with CE instead (the manual
    check that the claim test fails when PC-softmax's advantage is gone:
    ``python scripts/claims_margins.py --claims pc --mutate``)."""
    losses = {"ce": "ce", "pc_softmax": "ce" if mutate else "pc_softmax"}
    return {
        name: run(compose_cfg(*PC_RUN, f"loss={loss}", f"seed={seed}", *QUIET), out / name)
        for name, loss in losses.items()
    }


def pc_claim_margins(m: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {
        f"mean class acc: pc_softmax - ce - {PC_MIN_MARGIN}": m["pc_softmax"]["test/mean_class_acc"]
        - m["ce"]["test/mean_class_acc"] - PC_MIN_MARGIN,
    }


@pytest.mark.slow
@needs_fashion_mnist
def test_claim_pc_softmax_beats_ce_on_imbalanced_fashion_mnist(tmp_path):
    m = pc_claim_runs(tmp_path)
    ce, pc = m["ce"], m["pc_softmax"]
    # Mean per-class accuracy, PC-softmax minus CE. Seed 0 (this test): CE 71.75%, PC-softmax
    # 73.79% -> margin +2.03 points, bit-identical in two runs (2026-12-03). Earlier over seeds
    # 0, 1, 2: +1.8, +4.3, +4.9 points. The test asks for more than PC_MIN_MARGIN = 1.2 points; with
    # PC-softmax replaced by CE the margin is 0 and it fails (scripts/claims_margins.py --mutate).
    (slack,) = pc_claim_margins(m).values()
    assert slack > 0, (pc["test/mean_class_acc"], ce["test/mean_class_acc"], PC_MIN_MARGIN)
    # Training made both networks informative MI estimators: each estimate of I(X;Y) (PC-softmax's
    # own; CE's with + H(Y)) lies between half of H(Y) and H(Y), where H(Y) = 1.914 nats for the
    # training counts [300, 3000] x 5; an untrained network gives about 0. Measured (seeds 0-2):
    # PC 1.749, 1.736, 1.745; CE + H(Y) 1.434, 1.419, 1.429 (bounds 0.957 and 1.914).
    counts = torch.tensor([300.0, 3000.0] * 5)
    p = counts / counts.sum()
    entropy = float(-(p * p.log()).sum())
    for estimate in (pc["test/mi_estimate"], ce["test/mi_estimate_prior_corrected"]):
        assert 0.5 * entropy < estimate < entropy, (estimate, entropy)


# --- claim 3: infoCAM localises better than CAM ---------------------------------------------------
#: the embedded WSOL benchmark (configs/experiment/synthetic_wsol_infocam.yaml: 64 px, GAP CNN,
#: Adam 3e-3, cosine) shortened from 10,000 images x 4 epochs to 5,000 x 3, with 256 validation and
#: 512 test images. 20 thresholds are enough: the claim reads tau = 0.2. (At 32 px, or with 2,000
#: or 3,000 images, the two methods came within 1 point of each other.)
WSOL_RUN = [
    "+experiment=synthetic_wsol_infocam", "data.num_train=5000", "data.num_val=256",
    "data.num_test=512", "data.eval_batch_size=256", "trainer.max_epochs=3",
    "callbacks.localization.thresholds=20", "callbacks.localization.num_pictures=0",
]


def wsol_claim_runs(out: Path, seed: int = 0) -> dict[str, dict[str, Any]]:
    return {"wsol": run(compose_cfg(*WSOL_RUN, f"seed={seed}", *QUIET), out / "wsol")}


#: smallest infoCAM - CAM Top-1 Loc margin the claim-3 test accepts (fraction): about half the
#: smallest margin measured over seeds 0-2 (+3.3 points), so losing half the advantage fails it
WSOL_MIN_MARGIN = 0.015


def wsol_claim_margins(m: dict[str, dict[str, Any]]) -> dict[str, float]:
    w = m["wsol"]
    return {f"top-1 loc: infocam - cam - {WSOL_MIN_MARGIN}": w["test/top1_loc@infocam"] - w["test/top1_loc@cam"] - WSOL_MIN_MARGIN}


@pytest.mark.slow
@needs_fashion_mnist
def test_claim_infocam_localises_better_than_cam(tmp_path):
    m = wsol_claim_runs(tmp_path)["wsol"]
    # Top-1 Loc (tau = 0.2) on the 512 test images, measured over seeds 0, 1, 2:
    #   CAM 13.1%, 11.3%, 13.1%; infoCAM 16.4%, 15.0%, 16.8% -> margin +3.3, +3.7, +3.7 points
    #   (17-19 images; Top-1 Cls 61%, 56%, 55%; GT-known 23.0-23.6% vs 27.7-29.1%)
    #   The test asks for more than WSOL_MIN_MARGIN = 1.5 points (infoCAM maps equal to CAM's: margin 0).
    assert m["test/top1_loc@infocam"] - m["test/top1_loc@cam"] > WSOL_MIN_MARGIN, (m["test/top1_loc@infocam"], m["test/top1_loc@cam"])
