"""Live progress of the grids: forward passes done out of an estimated total, with the
time left, reported at most every few seconds through a writer the caller supplies
(pytest's terminal, outside output capture). Passes call tick(); nothing else knows."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable

_active: "Progress | None" = None


class Progress:
    def __init__(self, label: str, total: int, write: Callable[[str], None], every: float = 5.0):
        self.label, self.total, self.write, self.every = label, max(1, int(total)), write, every
        self.done, self.t0 = 0, time.perf_counter()
        self.last = self.t0

    def step(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            elapsed = now - self.t0
            left = max(self.total - self.done, 0) * elapsed / self.done
            self.write(f"{self.label}: {self.done}/{self.total} passes, {fmt(elapsed)} elapsed, about {fmt(left)} left")


def fmt(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 90 else f"{seconds / 60:.1f} min"


@contextmanager
def tracking(label: str, total: int, write: Callable[[str], None], every: float = 5.0):
    """Count the passes run inside the block against `total`."""
    global _active
    outer, _active = _active, Progress(label, total, write, every)
    try:
        yield _active
    finally:
        _active = outer


def tick() -> None:
    """One forward pass (one batch of windows) has finished."""
    if _active is not None:
        _active.step()
