"""Which CUDA graph serves a pass (steps/serving/graphs.py): the recording and replay run in tests/test_gpu_serving.py."""

from __future__ import annotations

from steps.inference import planner
from steps.serving.graphs import ROW_BUCKETS, Graphs


def graphs(limit: int = 512, tokens: int = 8192) -> Graphs:
    return Graphs(module=None, keys=["input_ids", "attention_mask"], pad_id=0, limit=limit, tokens=tokens)


def test_a_pass_takes_the_graph_of_the_next_row_bucket_and_its_width_class():
    g = graphs()
    assert g.shape(1, 8) == (1, 8)
    assert g.shape(5, 64) == (6, 64)
    assert g.shape(13, 256) == (16, 264)  # 256 and 264 share a class; its widest is 264
    assert g.shape(3, 504) == (3, 504)
    assert g.shape(2, 512) == (2, 512)


def test_passes_over_the_token_limit_or_the_largest_bucket_run_eagerly():
    g = graphs(tokens=4096)
    assert g.shape(12, 256) == (12, 264)
    assert g.shape(13, 256) is None  # its graph would be 16 x 264 = 4,224 padded tokens
    assert g.shape(600, 8) is None
    assert g.shape(1, 520) is None  # wider than the model's max_length


def test_every_pass_within_the_limit_has_the_smallest_recorded_graph_that_holds_it():
    g = graphs(limit=128, tokens=2048)
    shapes, widths = set(g.shapes()), planner.width_classes(128)
    assert shapes and all(r * w <= 2048 for r, w in shapes)
    eager = 0
    for rows in range(1, 257):
        for width in range(8, 129, 8):
            smallest = (min(r for r in ROW_BUCKETS if r >= rows), min(w for w in widths if w >= width))
            if smallest[0] * smallest[1] > 2048:
                assert g.shape(rows, width) is None
                eager += 1
            else:
                assert g.shape(rows, width) == smallest and smallest in shapes
    assert 0 < eager < 256 * 16
