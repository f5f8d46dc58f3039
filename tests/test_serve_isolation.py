"""A batch that fails to score is retried request by request: only the request that cannot be scored fails,
its neighbours in the batch get their answers (the batcher, with a predictor that refuses one text)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from steps.serving.batcher import Batcher, ClientGone


class Picky:
    """Encodes and scores anything but the text 'poison' (which fails like a tokenizer error would)."""

    rows = 64
    model = SimpleNamespace(concurrency=1)

    def __init__(self, fail_in: str):
        self.fail_in, self.calls = fail_in, []

    def encode(self, texts):
        self.calls.append(list(texts))
        if self.fail_in == "encode" and "poison" in texts:
            raise ValueError("cannot encode poison")
        return list(texts)

    def predict_encoded(self, encoded):
        if self.fail_in == "predict" and "poison" in encoded:
            raise RuntimeError("cannot score poison")
        return [{"label": text.upper()} for text in encoded]


async def burst(predictor) -> list:
    batcher = Batcher(predictor)
    batcher.start()
    try:
        jobs = [batcher.predict(texts) for texts in (["a"], ["b", "c"], ["poison"], ["d"])]
        return await asyncio.gather(*jobs, return_exceptions=True)
    finally:
        await batcher.stop()


def test_only_the_bad_request_fails_whether_encoding_or_scoring_fails():
    for stage in ("encode", "predict"):
        predictor = Picky(stage)
        a, bc, poison, d = asyncio.run(burst(predictor))
        assert a == [{"label": "A"}] and bc == [{"label": "B"}, {"label": "C"}] and d == [{"label": "D"}], stage
        assert isinstance(poison, ValueError | RuntimeError)
        assert predictor.calls[0] == ["a", "b", "c", "poison", "d"]  # one batch first, then each alone


class Slow(Picky):
    """Each batch takes a moment, so the order in which batches run shows."""

    rows = 2  # batches of at most 8 texts

    def __init__(self):
        super().__init__("nowhere")
        self.order = []

    def predict_encoded(self, encoded):
        import time

        time.sleep(0.02)
        self.order.append(tuple(encoded))
        return super().predict_encoded(encoded)


def test_a_large_request_goes_in_parts_and_a_small_one_is_answered_between_them():
    async def scenario():
        predictor = Slow()
        batcher = Batcher(predictor)
        batcher.start()
        try:
            big = asyncio.ensure_future(batcher.predict([f"t{i}" for i in range(40)]))
            await asyncio.sleep(0.01)
            small = await batcher.predict(["small"])
            assert not big.done()  # answered while the large request still has parts to go
            answers = await big
        finally:
            await batcher.stop()
        return predictor.order, small, answers

    order, small, answers = asyncio.run(scenario())
    assert small == [{"label": "SMALL"}] and [a["label"] for a in answers] == [f"T{i}" for i in range(40)]
    assert max(len(batch) for batch in order) <= 8 and ("small",) in order


def test_the_parts_of_a_request_whose_client_left_are_not_scored():
    async def scenario():
        predictor = Slow()
        batcher = Batcher(predictor)
        batcher.start()
        asked = []

        async def gone():  # the connection closes after the first part
            asked.append(1)
            return True

        try:
            return await batcher.predict([f"t{i}" for i in range(40)], gone), predictor.order, asked
        except ClientGone as exc:
            return exc, predictor.order, asked
        finally:
            await batcher.stop()

    result, order, asked = asyncio.run(scenario())
    assert isinstance(result, ClientGone) and "after 8 of 40 texts" in str(result)
    assert order == [tuple(f"t{i}" for i in range(8))] and asked == [1]  # one part scored, the rest dropped


def test_a_request_whose_client_stays_is_answered_in_full():
    async def scenario():
        predictor = Slow()
        batcher = Batcher(predictor)
        batcher.start()

        async def here():
            return False

        try:
            return await batcher.predict([f"t{i}" for i in range(20)], here)
        finally:
            await batcher.stop()

    assert [a["label"] for a in asyncio.run(scenario())] == [f"T{i}" for i in range(20)]
