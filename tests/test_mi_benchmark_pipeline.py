"""The MI-estimator benchmark end to end: every estimator composes and runs through
``infocam_exp.run``; known answers (independent X and Y -> 0, a deterministic label -> H(Y));
the record of a non-trained estimator; the table and experiment compose."""

import json
import math
import subprocess
import sys

import pytest
from hydra.utils import instantiate

from infocam_exp.build import build_datamodule, build_direct_estimator, build_system
from infocam_exp.estimators.direct import estimate_key
from infocam_exp.run import run
from infocam_exp.systems import ClassifierSystem
from infocam_exp.systems.critic import CriticSystem
from tests.conftest import compose_cfg

ESTIMATORS = ["classifier", "classifier_es", "infonce", "nwj", "mine", "knn", "gaussian"]
TINY = ["data.samples_per_class=300", "trainer.max_epochs=15", "logger=none",
        "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_estimator_builds_the_right_thing(estimator):
    cfg = compose_cfg("+experiment=mi_benchmark", f"estimator={estimator}", "data=mi_nuisance")
    dm = build_datamodule(cfg)
    direct = build_direct_estimator(cfg)
    if estimator in ("knn", "gaussian"):
        assert direct is not None and direct.name == estimator
        return
    assert direct is None
    system = build_system(cfg, dm)
    expected = ClassifierSystem if estimator.startswith("classifier") else CriticSystem
    assert isinstance(system, expected)
    if isinstance(system, CriticSystem):
        assert system.bound == estimator
        assert not [c for c in (cfg.callbacks or {}).values() if c]  # the critic logs its own metrics
    for cb in (cfg.callbacks or {}).values():
        instantiate(cb)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["classifier", "infonce", "nwj", "mine", "knn", "gaussian"])
def test_known_answers(estimator, tmp_path):
    """spacing 0: all class means equal, I(X;Y) = 0 exactly; spacing 10: classes 10 sigma apart,
    the label is a function of x up to 1e-6 nats, I(X;Y) = H(Y) = log 5."""
    base = ["+experiment=mi_benchmark", f"estimator={estimator}", *TINY]
    if estimator in ("nwj", "mine"):
        # with the classifier's 75 steps they stop near 1.0 nats on the deterministic task
        base.append("trainer.max_epochs=60")
    indep = run(compose_cfg(*base, "data.spacing=0.0"), tmp_path / "indep")
    assert indep["test/mi_true"] == pytest.approx(0.0, abs=1e-9)
    assert abs(indep[estimate_key(indep)]) < 0.05
    det = run(compose_cfg(*base, "data.spacing=10.0"), tmp_path / "det")
    assert det["test/mi_true"] == pytest.approx(math.log(5), abs=1e-5)
    assert det[estimate_key(det)] == pytest.approx(math.log(5), abs=0.05)


def test_non_trained_estimator_record(tmp_path):
    """The entry point records a kNN job like any run: status, estimator choice, wall time, truth."""
    proc = subprocess.run(
        [sys.executable, "-m", "infocam_exp", "+experiment=mi_benchmark", "estimator=knn",
         "data.samples_per_class=200", "data.dim=2", "data.transform=asinh", "seed=3",
         f"paths.output_dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = tmp_path.glob("runs/mi_benchmark/*/metrics.json")
    rec = json.loads(path.read_text())
    assert rec["status"] == "complete" and rec["choices"]["estimator"] == "knn"
    assert rec["seed"] == 3 and rec["data_seed"] == 3  # every seed draws its own data
    assert rec["wall_time_s"] > 0
    m = rec["metrics"]
    assert m["test/mi_true"] == pytest.approx(1.3003, abs=1e-4) and m["test/mi_true_se"] == 0.0
    # kNN reads the training split: its keys say so
    assert "test/mi_estimate" not in m and m["train/num_samples"] == m["data/num_train"]
    assert m["train/mi_gap"] == pytest.approx(m["train/mi_estimate"] - m["test/mi_true"])
    assert abs(m["train/mi_gap"]) < 0.1
    assert not (path.parent / "checkpoints").exists()  # nothing was trained


def test_critic_run_records_all_bounds(tmp_path):
    cfg = compose_cfg("+experiment=mi_benchmark", "estimator=mine", "data=mi_sphere", *TINY, "trainer.max_epochs=2")
    m = run(cfg, tmp_path)
    for key in ("test/mi_estimate", "test/mi_estimate@infonce", "test/mi_estimate@nwj", "test/mi_estimate@dv"):
        assert math.isfinite(m[key]), key
    assert m["test/mi_estimate"] == m["test/mi_estimate@dv"]
    assert 0 < m["test/mi_true_se"] < 0.002  # sphere means: Monte Carlo truth
