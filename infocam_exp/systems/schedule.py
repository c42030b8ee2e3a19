"""What a learning-rate schedule does over a run, in numbers (for ``protocol_facts``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

SchedulerFactory = Callable[..., Any]


def schedule_summary(
    scheduler_factory: SchedulerFactory, optimizer: torch.optim.Optimizer, interval: str, total: int | None
) -> dict[str, Any]:
    """Replay ``scheduler_factory`` on a copy of ``optimizer``'s groups (parameters untouched) for
    ``total`` intervals: ``{"scheduler", "interval", "total", "stretches": [[start, end, lr of the
    first group], ...]}``, ``end`` exclusive; at most 50 stretches are listed (then ``"truncated"``)."""
    shadow = torch.optim.SGD(
        [{"params": [torch.zeros(1, requires_grad=True)], "lr": g["lr"]} for g in optimizer.param_groups], lr=1.0
    )
    scheduler = scheduler_factory(shadow)
    summary: dict[str, Any] = {"scheduler": type(scheduler).__name__, "interval": interval, "total": total}
    settings = getattr(scheduler_factory, "keywords", {}) or {}
    summary["settings"] = {k: v for k, v in settings.items() if isinstance(v, int | float | bool | str)}
    if total is None:
        return summary
    stretches: list[list[float]] = []
    for t in range(int(total)):
        lr = float(shadow.param_groups[0]["lr"])
        if stretches and stretches[-1][2] == lr:
            stretches[-1][1] = t + 1
        elif len(stretches) >= 50:
            summary["truncated"] = True
            break
        else:
            stretches.append([t, t + 1, lr])
        shadow.step()
        scheduler.step()
    summary["stretches"] = stretches
    summary["boundaries"] = [s[0] for s in stretches[1:]]
    return summary
