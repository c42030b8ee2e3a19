"""Progress for long loops without torch: a tqdm bar on a terminal, a log line at most every 10%
of the loop and 30 s otherwise. Light enough for the evaluate CLI (``infocam_exp.console``, which
needs Lightning, re-exports it)."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

log = logging.getLogger("infocam_exp")

T = TypeVar("T")

#: progress lines of a long loop: at most one per this fraction of the loop ...
EVERY_FRACTION = 0.1
#: ... and at most one per this many seconds
EVERY_SECONDS = 30.0


def stdout_is_terminal() -> bool:
    """True when stdout is an interactive terminal (live bars); False for files and pipes."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


class Throttle:
    """Says when a loop of ``total`` steps may print: once at least ``EVERY_FRACTION`` of it and
    ``EVERY_SECONDS`` have passed since the last line (or since the start)."""

    def __init__(self, total: int | None, every_fraction: float = EVERY_FRACTION, every_s: float = EVERY_SECONDS) -> None:
        self.total = total
        self.every_fraction = every_fraction
        self.every_s = every_s
        self.start = self.last_time = time.perf_counter()
        self.last_done = 0

    def due(self, done: int) -> bool:
        now = time.perf_counter()
        if now - self.last_time < self.every_s:
            return False
        if self.total and (done - self.last_done) < self.every_fraction * self.total:
            return False
        self.last_time, self.last_done = now, done
        return True

    def line(self, what: str, done: int) -> str:
        elapsed = time.perf_counter() - self.start
        if self.total:
            rate = done / elapsed if elapsed > 0 else math.nan
            eta = (self.total - done) / rate if rate and rate > 0 else math.nan
            return f"{what}: {done}/{self.total} ({100 * done / self.total:.0f}%), {elapsed:.0f} s, about {eta:.0f} s left"
        return f"{what}: {done} done, {elapsed:.0f} s"


def progress(items: Iterable[T], total: int | None = None, desc: str = "progress", unit: str = "it") -> Iterator[T]:
    """Iterate ``items`` with a tqdm bar on a terminal, or with a log line at most every 10% and
    30 s otherwise."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if stdout_is_terminal():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit)
        return
    throttle = Throttle(total)
    for i, item in enumerate(items, 1):
        yield item
        if throttle.due(i):
            log.info(throttle.line(desc, i))




class ProgressCount:
    """A counter with tqdm's ``update(n)`` / ``close()``: a tqdm bar when ``enabled`` is True (or
    None on a terminal), log lines (``Throttle``) when None off a terminal, nothing when False."""

    def __init__(self, total: int, desc: str = "progress", unit: str = "it", enabled: bool | None = None) -> None:
        self.done = 0
        self._bar = None
        self._throttle = None
        self.desc = desc
        if enabled or (enabled is None and stdout_is_terminal()):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit)
        elif enabled is None:
            self._throttle = Throttle(total)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._throttle is not None and self._throttle.due(self.done):
            log.info(self._throttle.line(self.desc, self.done))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
