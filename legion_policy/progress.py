"""Training progress: a recent-window rate of environment steps, the ETA, and plain log lines.

:class:`ProgressMeter` has one job: from the step counts it is told and a clock, say how fast training
goes now and when it will end. The trainer feeds it every step and shows its numbers in the rich bar
(on a terminal) or as periodic lines such as
``visit 2/10 push-v3: step 12,000/100,000 (12.0 %), 58.3 env-steps/s, ETA 0:25:10`` (in a log file).

* The rate is the steps of the last ``window_s`` seconds over that time, so it follows the current
  phase (SAC updates included) rather than an average since the start.
* :meth:`ProgressMeter.restart` forgets the window: the random-action warm-up runs much faster than the
  SAC phase after it and says nothing about how long the rest will take.
* Time spent inside :meth:`ProgressMeter.paused` (evaluations, checkpoints) is left out of the rate;
  the ETA scales remaining steps / rate by the share of wall time such pauses took so far.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (``-`` when unknown)."""
    return "-" if seconds is None else str(timedelta(seconds=round(seconds)))


class ProgressMeter:
    """Rate and ETA of a run of ``total`` steps, ``done`` of them already done (a resumed run).

    Args:
        total: steps of the whole run.
        done: steps done before this meter started.
        window_s: seconds of recent training the rate is measured over.
        min_span_s: no rate (None) until the window spans this long (after a start or a restart).
        line_every_s, line_every_pct: :meth:`line_due` is true this many seconds after the last line,
            or when the run crossed another multiple of this percentage of ``total``.
        clock: seconds, monotonic (injectable for tests).
    """

    def __init__(self, total: int, done: int = 0, window_s: float = 60.0, min_span_s: float = 1.0,
                 line_every_s: float = 60.0, line_every_pct: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.done = total, done
        self.window_s, self.min_span_s = window_s, min_span_s
        self.line_every_s, self.line_every_pct = line_every_s, line_every_pct
        self.clock = clock
        self._start = clock()
        self._paused_s = 0.0  # wall time left out of the rate so far
        self._samples: deque[tuple[float, int]] = deque([(self._start, done)])  # (training time, steps)
        self._last_line = (self._start, self._pct_bucket(done))

    def _training_time(self) -> float:
        return self.clock() - self._paused_s

    def update(self, done: int) -> None:
        """``done`` steps are done now."""
        now = self._training_time()
        self.done = done
        self._samples.append((now, done))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()

    def restart(self, done: int | None = None) -> None:
        """Forget the window: the rate is measured afresh from now (and ``done`` steps, if given)."""
        if done is not None:
            self.done = done
        self._samples = deque([(self._training_time(), self.done)])

    @contextmanager
    def paused(self):
        """Time spent in this block is not training time (the rate leaves it out; the ETA counts its share)."""
        t0 = self.clock()
        try:
            yield
        finally:
            self._paused_s += self.clock() - t0

    @property
    def rate(self) -> float | None:
        """Steps per second over the recent window (None until it spans ``min_span_s``)."""
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        if t1 - t0 < self.min_span_s or n1 <= n0:
            return None
        return (n1 - n0) / (t1 - t0)

    @property
    def eta(self) -> float | None:
        """Seconds left: remaining steps / rate, times wall time / training time so far (pauses)."""
        rate = self.rate
        if rate is None:
            return None
        wall = self.clock() - self._start
        overhead = wall / (wall - self._paused_s) if wall > self._paused_s > 0 else 1.0
        return max(self.total - self.done, 0) / rate * overhead

    def _pct_bucket(self, done: int) -> int:
        return int(100 * done / self.total // self.line_every_pct) if self.total else 0

    def line_due(self) -> bool:
        """True (once) when a plain line is due: ``line_every_s`` passed or another ``line_every_pct`` crossed."""
        now, bucket = self.clock(), self._pct_bucket(self.done)
        if now - self._last_line[0] >= self.line_every_s or bucket > self._last_line[1]:
            self._last_line = (now, bucket)
            return True
        return False

    def speed(self) -> str:
        """``58.3 env-steps/s, ETA 0:25:10`` (``measuring the rate`` while there is no rate)."""
        rate = self.rate
        return "measuring the rate" if rate is None else f"{rate:.1f} env-steps/s, ETA {format_duration(self.eta)}"

    def line(self, what: str) -> str:
        """E.g. ``visit 2/10 push-v3: step 12,000/100,000 (12.0 %), 58.3 env-steps/s, ETA 0:25:10``."""
        pct = 100 * self.done / self.total if self.total else 100.0
        return f"{what}: step {self.done:,}/{self.total:,} ({pct:.1f} %), {self.speed()}"
