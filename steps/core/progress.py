"""Progress lines for logs that are not a terminal (CloudWatch, the local step logs).

    progress = Progress("prepare minilm", total=len(rows), unit="documents")
    progress.update(1000)  # prints at most every SMPIPE_PROGRESS_S seconds (30): done, rate, time left
    progress.done()

A line is also printed at the start, so a step's log is never empty while it works. Every line begins with
``PREFIX``: the local executor repeats these lines on the terminal (pipelines/local/jobs.py).
"""

from __future__ import annotations

import os
import sys
import time

PREFIX = "progress: "


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _rate(rate: float) -> str:
    """Two significant digits below 10 a second (a training step may take seconds), whole numbers above."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"


class Progress:
    def __init__(self, what: str, total: int | None = None, unit: str = "rows", every: float | None = None,
                 stream=None):
        self.what, self.total, self.unit, self.count = what, total, unit, 0
        self.every = float(os.environ.get("SMPIPE_PROGRESS_S", "30")) if every is None else every
        self.stream = stream or sys.stdout
        self.started = self.last = time.monotonic()
        self._print(f"{what}: started" + (f", {total:,} {unit}" if total is not None else ""))

    def _print(self, line: str) -> None:
        print(PREFIX + line, file=self.stream, flush=True)

    def line(self, final: bool = False) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.count / elapsed
        text = f"{self.what}: {self.count:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"
        text += f" ({_rate(rate)}/s, {_duration(elapsed)} " + ("in all" if final else "elapsed")
        if self.total and rate > 0 and not final:
            text += f", {_duration((self.total - self.count) / rate)} left"
        return text + ")"

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._print(self.line())

    def done(self) -> None:
        self._print(self.line(final=True))
