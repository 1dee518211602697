"""Progress of long computations: the callback they take, how a caller stops them, and the time left.

Every computation over many images in :mod:`senet.analysis` takes ``progress(done, total)``, called after each
batch with ``done`` increasing up to ``total``. A callback that raises (:class:`Stopped`, or any exception: the
dashboard's Stop button ends its script with Streamlit's own) stops the work between two batches; the exception
passes through, hooks and modes set on the model are undone, and nothing of the unfinished work is cached
(an evaluation keeps the chunks it finished before, see :func:`senet.analysis.evaluate.stream_evaluation`).
"""
from __future__ import annotations

import time
from typing import Callable

__all__ = ["Progress", "Stopped", "within", "Pace"]

Progress = Callable[[int, int], None]


class Stopped(Exception):
    """Raised by a progress callback to stop the computation it was given to."""


def within(progress: Progress | None, offset: int, total: int) -> Progress | None:
    """A callback for one part of a larger task: the part's ``(done, n)`` reported as ``(offset + done, total)``;
    None for None."""
    if progress is None:
        return None
    return lambda done, _n: progress(offset + done, total)


class Pace:
    """The time left of work that reports ``(done, total)``, from its pace so far.

    Reports that come at once after the previous one (within :attr:`INSTANT` seconds, before any step took time)
    are work read from a cache; the pace is measured from the last of them. No estimate until the work has run
    for :attr:`SETTLE` seconds."""

    INSTANT = 0.05
    SETTLE = 0.5

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._base_time = self._last_time = clock()
        self._base_done = self._done = self._total = 0
        self._slow_seen = False

    def update(self, done: int, total: int) -> None:
        """Record a report."""
        now = self._clock()
        if not self._slow_seen and now - self._last_time < self.INSTANT:
            self._base_time, self._base_done = now, done  # read from a cache: not the pace of the work
        elif done > self._done:
            self._slow_seen = True
        self._last_time, self._done, self._total = now, done, total

    @property
    def done(self) -> int:
        return self._done

    @property
    def total(self) -> int:
        return self._total

    @property
    def seconds_left(self) -> float | None:
        """Seconds until ``total`` at the pace since the base; None before there is a pace to go by."""
        ran, advanced = self._last_time - self._base_time, self._done - self._base_done
        if advanced <= 0 or ran < self.SETTLE:
            return None
        return max(self._total - self._done, 0) * ran / advanced
