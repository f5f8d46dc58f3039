"""How the serving program cuts a batch of documents into forward passes (steps.planner.plan with a
per-pass overhead), and how its workers share one port."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steps.inference import batching, planner


def width(length: int) -> int:
    return -(-length // 8) * 8


def cost(lengths, batches, overhead: int) -> int:
    """Padded tokens plus ``overhead`` per pass: what the plan minimises."""
    return sum(len(b) * width(max(lengths[i] for i in b)) for b in batches) + overhead * len(batches)


def test_one_long_document_does_not_pad_the_short_ones_to_its_length():
    lengths = [500] + [60] * 63
    assert [len(b) for b in planner.plan(lengths, 32768, 512)] == [64]  # no overhead: one pass, 32,768 tokens
    batches = planner.plan(lengths, 32768, 512, overhead=4096)
    assert sorted(map(len, batches)) == [1, 63] and cost(lengths, batches, 0) == 63 * 64 + 504


def test_a_large_overhead_keeps_one_pass_and_a_small_one_splits_by_width():
    lengths = [30, 30, 60, 60, 130, 130, 400, 400]
    assert len(planner.plan(lengths, 32768, 512, overhead=10**6)) == 1
    assert [sorted({lengths[i] for i in b}) for b in planner.plan(lengths, 32768, 512, overhead=1)] == \
        [[30], [60], [130], [400]]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 600), min_size=1, max_size=300), st.integers(64, 4096), st.integers(1, 64),
       st.integers(0, 20000))
def test_every_row_once_within_budget_and_never_costlier_than_one_padded_pass(lengths, tokens, rows, overhead):
    batches = planner.plan(lengths, tokens, rows, overhead)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= rows and (len(b) == 1 or len(b) * width(max(lengths[i] for i in b)) <= tokens)
    widest = width(max(lengths))
    unsplit = len(lengths) * widest + overhead * -(-len(lengths) // max(1, min(rows, tokens // widest)))
    assert cost(lengths, batches, overhead) <= unsplit


def test_width_classes_reach_the_limit_and_stay_few():
    assert planner.width_classes(512)[-1] == 512 and len(planner.width_classes(512)) <= 50
    assert planner.width_classes(30) == [8, 16, 24, 30]
    assert len(planner.width_classes(8192)) <= 120


@pytest.mark.parametrize("lengths", [[], [7]])
def test_empty_and_single_batches(lengths):
    assert planner.plan(lengths, 1024, 16, overhead=64) == ([[0]] if lengths else [])


def test_served_windows_pad_like_the_dataset_batches():
    rows = [[5, 6, 7], [1], list(range(2, 11))]
    batch = batching.TokenMatrix.from_rows(rows).batch([2, 0, 1], pad_id=0, multiple=8)
    ids, mask = batch["input_ids"].tolist(), batch["attention_mask"].tolist()
    assert len(ids[0]) == 16 and [sum(m) for m in mask] == [9, 3, 1]
    assert ids[0][:9] == rows[2] and ids[1] == [5, 6, 7] + [0] * 13 and ids[2] == [1] + [0] * 15
