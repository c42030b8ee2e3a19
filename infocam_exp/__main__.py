"""``python -m infocam_exp [overrides]``: the project's only Hydra entry point."""

from __future__ import annotations

import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

# Lightning 2.6 calls a torch.utils._pytree API that torch 2.14 deprecates (not our code).
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    import torch

    from infocam_exp.run import format_summary, is_rank_zero, run  # deferred: `--help` stays fast

    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    # torch_threads (optional): tiny models on a shared CPU run faster on one thread than on two
    # that spin-wait; restored afterwards, so the other jobs of a multirun keep their own setting.
    threads = torch.get_num_threads()
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    try:
        metrics = run(cfg, output_dir, choices=dict(hc.runtime.choices), overrides=list(hc.overrides.task))
    finally:
        torch.set_num_threads(threads)
    if is_rank_zero():
        print(format_summary(metrics, output_dir))
    value = metrics.get(cfg.get("objective", "test/acc"))
    return float(value) if isinstance(value, int | float) else None


if __name__ == "__main__":
    main()
