"""The benchmark's timing windows: a figure rests on windows of at least 10 s, is their median, keeps its
spread, and a short window is refused rather than reported."""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT))

from bench.windows import ShortWindow, figure, measure  # noqa: E402


class Clock:
    """A pass takes ``seconds[i]`` of the i-th call, on a clock that only the passes move."""

    def __init__(self, seconds: list[float]):
        self.now, self.seconds = 0.0, iter(seconds)

    def __call__(self) -> float:
        return self.now

    def tick(self) -> int:
        self.now += next(self.seconds)
        return 100


def test_each_window_runs_passes_until_it_is_long_enough_and_the_figure_is_the_median():
    clock = Clock([4.0] * 3 + [2.0] * 5 + [5.0] * 2)  # windows of 12 s, 10 s, 10 s
    result = measure(clock.tick, min_seconds=10, repeats=3, clock=clock)
    assert result["windows_s"] == [12.0, 10.0, 10.0] and result["rows_per_window"] == [300, 500, 200]
    assert result["rows_per_second"] == 25.0  # median of 25, 50 and 20
    assert result["spread"] == [20.0, 50.0] and result["repeats"] == 3


def test_a_short_window_is_refused():
    with pytest.raises(ShortWindow, match="at least 10 s"):
        figure([(2880, 0.16), (2880, 12.0)])
    with pytest.raises(ShortWindow):
        figure([])
