"""scripts/paired_seed_margin.py: pairs two settings by seed and gives the mean difference with a
95% interval (the README's Fashion-MNIST margin)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from infocam_exp.results import write_json_atomic

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "paired_seed_margin.py"


def _load():
    spec = importlib.util.spec_from_file_location("paired_seed_margin", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pairs_by_seed_and_prints_the_interval(tmp_path, capsys):
    mod = _load()
    acc = {("ce", 0): 0.70, ("ce", 1): 0.72, ("ce", 2): 0.71, ("pc_softmax", 0): 0.73, ("pc_softmax", 1): 0.74,
           ("pc_softmax", 2): 0.75, ("pc_softmax", 3): 0.9}  # seed 3 has no CE partner: left out
    for (loss, seed), v in acc.items():
        write_json_atomic(tmp_path / f"{loss}-{seed}" / "metrics.json", {
            "status": "complete", "seed": seed, "overrides": ["+table=mnist", "data=fashion_mnist", f"loss={loss}", f"seed={seed}"],
            "metrics": {"test/mean_class_acc": v}})
    write_json_atomic(tmp_path / "other" / "metrics.json", {  # another dataset: not selected
        "status": "complete", "seed": 0, "overrides": ["data=mnist", "loss=ce", "seed=0"], "metrics": {"test/mean_class_acc": 0.1}})
    diffs = mod.paired_margin(tmp_path, "test/mean_class_acc", ["data=fashion_mnist"], "loss=pc_softmax", "loss=ce")
    assert list(diffs) == [0, 1, 2]
    assert [round(v, 6) for v in diffs.values()] == [0.03, 0.02, 0.04]
    assert mod.main([str(tmp_path), "--metric", "test/mean_class_acc", "--select", "data=fashion_mnist",
                     "--a", "loss=pc_softmax", "--b", "loss=ce", "--scale", "100"]) == 0
    out = capsys.readouterr().out
    # mean +3, t interval +3 -+ 4.303 * 1 / sqrt(3) = [+0.516, +5.484]
    assert "3 seeds: mean +3.000, t 95% [+0.516, +5.484]" in out and "3/3 seeds positive" in out
