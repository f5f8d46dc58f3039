"""Throughput windows a figure can rest on: each window repeats a pass until it has run at least
``MIN_WINDOW_S`` seconds, the figure is the median of ``REPEATS`` windows, and the spread is kept beside it.
A window shorter than the minimum is refused, never reported (a 0.16 s pass says more about the clock and
the first kernels than about the rate)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

MIN_WINDOW_S = 10.0
REPEATS = 3


class ShortWindow(ValueError):
    """A figure measured over less than MIN_WINDOW_S seconds."""


def measure(one_pass: Callable[[], int], min_seconds: float = MIN_WINDOW_S, repeats: int = REPEATS,
            clock: Callable[[], float] = time.perf_counter) -> dict:
    """``one_pass`` processes some rows (blocking until they are done) and returns how many."""
    windows = []
    for _ in range(repeats):
        started, rows, elapsed = clock(), 0, 0.0
        while elapsed < min_seconds:
            rows += one_pass()
            elapsed = clock() - started
        windows.append((rows, elapsed))
    return figure(windows, min_seconds)


def figure(windows: list[tuple[int, float]], min_seconds: float = MIN_WINDOW_S) -> dict:
    """(rows, seconds) per window → the median rate, the spread and what it rests on."""
    short = [seconds for _, seconds in windows if seconds < min_seconds]
    if not windows or short:
        raise ShortWindow(f"windows of {short or 'none'} s: a figure needs windows of at least {min_seconds:g} s")
    rates = [rows / seconds for rows, seconds in windows]
    return {"rows_per_second": statistics.median(rates), "spread": [min(rates), max(rates)],
            "windows_s": [round(s, 3) for _, s in windows], "rows_per_window": [r for r, _ in windows],
            "repeats": len(windows), "min_window_s": min_seconds}
