"""The batch planner every forward pass shares (evaluation, export's parity pass and serving): rows sorted
by length, cut into batches within a token and a row budget, widths padded to a multiple of 8, and a
width-class per padded width so that shapes repeat (CUDA graphs, compiled kernels).
"""

from __future__ import annotations

MULTIPLE = 8


def plan(lengths, tokens: int, rows: int, overhead: int = 0) -> list[list[int]]:
    """Index batches over rows sorted by length, each within the token and row budgets.

    ``overhead`` is the fixed cost of one forward pass in padded tokens (kernel launches on a GPU). With it,
    sorted rows are first cut where padding the shorter ones to a longer width would cost more than another
    pass: a served batch of one 512-token and 63 short documents becomes two passes, not 64 rows of 512."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    segments = _segments(order, lengths, tokens, rows, overhead) if overhead > 0 and order else [order]
    return [batch for segment in segments for batch in _fill(segment, lengths, tokens, rows)]


def _width(length: int) -> int:
    return -(-int(length) // MULTIPLE) * MULTIPLE


def _fill(order: list[int], lengths, tokens: int, rows: int) -> list[list[int]]:
    batches, current = [], []
    for i in order:
        width = _width(lengths[i])  # the longest so far: rows are sorted
        if current and ((len(current) + 1) * width > tokens or len(current) >= rows):
            batches.append(current)
            current = []
        current.append(i)
    return batches + ([current] if current else [])


def _width_class(width: int) -> int:
    """Widths that differ by less than 1/16 share a class (at most ~50 classes up to 512, ~100 to 8192)."""
    shift = max(0, width.bit_length() - 5)
    return width >> shift << shift


def width_classes(limit: int) -> list[int]:
    """The widest width of every class up to ``limit``: one pass at each meets every kernel shape class."""
    widths = range(MULTIPLE, _width(limit) + 1, MULTIPLE)
    return sorted({_width_class(w): min(w, limit) for w in widths}.values())


def _segments(order: list[int], lengths, tokens: int, rows: int, overhead: int) -> list[list[int]]:
    """Sorted rows cut into runs of width classes at the least padded tokens plus ``overhead`` per pass
    (dynamic programming over the classes: quadratic in their number, which is small)."""
    widths = [_width(lengths[i]) for i in order]
    ends = [k + 1 for k in range(len(order))
            if k + 1 == len(order) or _width_class(widths[k + 1]) != _width_class(widths[k])]
    starts = [0, *ends[:-1]]
    best, cut = [0], [0]  # best[j]: cost of the first j classes; cut[j]: where its last run starts
    for end in ends:
        width = widths[end - 1]
        per_pass = max(1, min(rows, tokens // width))  # rows that _fill puts in one pass at most this wide
        cost, start = min((best[i] + (n := end - starts[i]) * width + overhead * -(-n // per_pass), i)
                          for i in range(len(best)))
        best.append(cost)
        cut.append(start)
    segments, j = [], len(ends)
    while j:
        segments.append(order[starts[cut[j]]:ends[j - 1]])
        j = cut[j]
    return segments[::-1]
