"""Progress lines for logs that are not a terminal (CloudWatch, the local step logs).

    progress = Progress("prepare minilm", total=len(rows), unit="documents")
    progress.update(1000)  # prints at most every SMPIPE_PROGRESS_S seconds (30): done, rate, time left
    progress.done()

A line is also printed at the start, so a step's log is never empty while it works.
"""

from __future__ import annotations

import os
import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    def __init__(self, what: str, total: int | None = None, unit: str = "rows", every: float | None = None,
                 stream=None):
        self.what, self.total, self.unit, self.count = what, total, unit, 0
        self.every = float(os.environ.get("SMPIPE_PROGRESS_S", "30")) if every is None else every
        self.stream = stream or sys.stdout
        self.started = self.last = time.monotonic()
        self._print(f"{what}: started" + (f", {total:,} {unit}" if total is not None else ""))

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.count / elapsed
        text = f"{self.what}: {self.count:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"
        text += f" ({rate:,.0f}/s, {_duration(elapsed)} elapsed"
        if self.total and rate > 0:
            text += f", {_duration((self.total - self.count) / rate)} left"
        return text + ")"

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._print(self.line())

    def done(self) -> None:
        self._print(self.line().replace(" elapsed", " in all"))
