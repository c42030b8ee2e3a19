"""``python -m infocam_exp [overrides]``: the project's only Hydra entry point."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

# Lightning 2.6 calls a torch.utils._pytree API that torch 2.14 deprecates (not our code).
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")

log = logging.getLogger("infocam_exp")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | object | None:
    """One job. The project's own errors (``errors.UserError``) print their message and exit 2
    (``HYDRA_FULL_ERROR=1``: the traceback); in a multirun a failed job is reported and the sweep
    goes on (``console.SweepSummary`` prints every job at the end and sets the exit status)."""
    import torch

    # deferred: `--help` stays fast
    from infocam_exp.console import FailedJob, format_summary, one_line_summary
    from infocam_exp.errors import (
        USER_ERROR_EXIT,
        UserError,
        full_error_requested,
        report_user_error,
    )
    from infocam_exp.run import is_rank_zero, run

    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    # torch_threads (optional): tiny models on a shared CPU run faster on one thread than on two
    # that spin-wait; restored afterwards, so the other jobs of a multirun keep their own setting.
    threads = torch.get_num_threads()
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    try:
        metrics = run(cfg, output_dir, choices=dict(hc.runtime.choices), overrides=list(hc.overrides.task))
    except UserError as err:
        if full_error_requested():
            raise
        report_user_error(err)
        if multirun:
            return FailedJob(err)
        raise SystemExit(USER_ERROR_EXIT) from None
    except Exception as err:
        if not multirun or full_error_requested():
            raise  # Hydra prints the traceback
        log.exception("job %s failed", " ".join(hc.overrides.task))
        return FailedJob(err)
    finally:
        torch.set_num_threads(threads)
    if is_rank_zero():
        if multirun:  # the sweep's summary lists every job at the end
            log.info("done: %s (%s)", one_line_summary(metrics, cfg.get("summary")), output_dir)
        else:
            print(format_summary(metrics, output_dir, cfg.get("summary")), flush=True)
    value = metrics.get(cfg.get("objective", "test/acc"))
    return float(value) if isinstance(value, int | float) else None


if __name__ == "__main__":
    main()
