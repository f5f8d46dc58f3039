"""GPU: the training program's steps never make the host wait for the device (a blocking batch copy, an
.item(), a data-dependent branch): any of those leaves the GPU idle while Python launches the next step.
Run on a GPU machine: pytest -m gpu tests/test_gpu_training_sync.py."""

from __future__ import annotations

import pytest
from test_packed_training import hf, prepared  # noqa: F401 (fixtures: a tiny BERT and its prepared data)

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]


def build(tmp_path, prepared, hf, monkeypatch, layout):  # noqa: F811
    """The training program's Loop on this GPU for ``layout`` (padded or unpadded batches)."""
    from accelerate.state import AcceleratorState

    from steps import train
    from steps.training import packed

    monkeypatch.setenv(packed.ENV, "1" if layout == "unpadded" else "0")
    AcceleratorState._reset_state(True)
    args = train.parse_args(["--data-dir", str(prepared), "--pretrained", str(hf), "--model-dir", str(tmp_path / "m"),
                             "--checkpoint-dir", str(tmp_path / "c"), "--epochs", "1", "--batch-size", "4"])
    t = train.build(args)
    assert isinstance(getattr(t.model, "_orig_mod", t.model), packed.PackedClassifier) == (layout == "unpadded")
    return t


def run_steps(tmp_path, prepared, hf, monkeypatch, layout) -> int:  # noqa: F811
    """Two warm-up steps (compilation), then the rest of the epoch with any host-device sync raising."""
    from steps import train

    t = build(tmp_path, prepared, hf, monkeypatch, layout)
    batches, steps = iter(t.train_loader), 2

    def step(batch) -> None:
        batch.pop("doc_id")
        train.tokens(batch)
        train.train_step(t, batch)

    for _ in range(2):  # compile and warm up outside the check
        step(next(batches))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in batches:
            step(batch)
            steps += 1
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return steps


@pytest.mark.parametrize("layout", ["padded", "unpadded"])
def test_training_steps_queue_work_without_waiting_for_the_gpu(tmp_path, prepared, hf, monkeypatch, layout):  # noqa: F811
    assert run_steps(tmp_path, prepared, hf, monkeypatch, layout) >= 4


def test_the_check_catches_a_blocking_batch_copy(tmp_path, prepared, hf, monkeypatch):  # noqa: F811
    import accelerate

    config = accelerate.DataLoaderConfiguration
    monkeypatch.setattr(accelerate, "DataLoaderConfiguration", lambda **kw: config(**{**kw, "non_blocking": False}))
    with pytest.raises(RuntimeError, match="synchroniz"):
        run_steps(tmp_path, prepared, hf, monkeypatch, "padded")


@pytest.mark.parametrize("layout", ["padded", "unpadded"])
def test_cuda_graph_steps_train_and_keep_their_logged_losses(tmp_path, prepared, hf, monkeypatch, layout):  # noqa: F811
    """SMPIPE_TRAIN_COMPILE_MODE=reduce-overhead: an epoch through train_epoch, which reads its logged losses
    after later steps have replayed the graphs (reading an overwritten output raises)."""
    from steps import train
    from steps.training import setup

    monkeypatch.setenv(setup.COMPILE_MODE, "reduce-overhead")
    t = build(tmp_path, prepared, hf, monkeypatch, layout)
    assert t.graphs
    metrics, _ = train.train_epoch(t, 1)
    assert t.step >= 4 and t.step_losses and all(v == v for v in metrics.values())  # no NaN
