"""Dynamic batching for the serving program: concurrent requests share one encode and one forward pass.

Requests are queued as they arrive. One task takes what is queued (waiting at most ``max_wait`` seconds
for more, up to a number of texts) and encodes the whole batch on the encode thread (one tokenizer call;
the fast tokenizer spreads it over the cores), then hands it to the model thread: length-sorted forward
passes, then each request's predictions. While batch N runs on the model thread, batch N+1 is taken and
encoded, so the device waits for the tokenizer only when the server is idle. A model that takes several
batches at once (the model process shared by several serving processes) gets each as soon as it is
encoded. The event loop stays free meanwhile: /ping answers while a large batch runs.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from steps.serving.model import Encoded, Predictor

Taken = list[tuple[list[str], asyncio.Future]]


class ClientGone(Exception):
    """The connection of a request in parts closed: its remaining parts were not scored."""


def release_memory() -> None:
    """glibc keeps freed heap pages in its arenas, so a server's resident memory stays at the peak of its
    largest request; malloc_trim returns them. A no-op where the C library is not glibc."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Batcher:
    def __init__(self, predictor: Predictor, max_wait: float = 0.0):
        self.predictor, self.max_wait = predictor, max_wait
        # 1 = one request per forward pass: the baseline `make bench` compares batching against.
        self.max_requests = int(os.environ.get("SMPIPE_SERVE_MAX_REQUESTS", "1024"))
        self.pipelined = os.environ.get("SMPIPE_SERVE_PIPELINE", "1") != "0"
        self.max_texts = predictor.rows * 4
        self.queue: asyncio.Queue | None = None
        self.inflight = predictor.model.concurrency
        self.encode_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self.model_thread = ThreadPoolExecutor(max_workers=self.inflight, thread_name_prefix="model")
        self.batches = self.requests = 0
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        for pool in (self.encode_thread, self.model_thread):
            pool.shutdown(wait=False)

    async def predict(self, texts: list[str], gone=None) -> list[dict]:
        """A request larger than one batch goes in parts, each queued when the one before is answered: a small
        request sent meanwhile waits for one part, not for the whole of it. ``gone``: an async callable that
        says the client has closed its connection; the parts not yet queued are then dropped."""
        if len(texts) <= self.max_texts:
            return await self._queued(texts)
        out: list[dict] = []
        try:
            for start in range(0, len(texts), self.max_texts):
                if start and gone is not None and await gone():
                    raise ClientGone(f"the client left after {start:,} of {len(texts):,} texts")
                out += await self._queued(texts[start:start + self.max_texts])
        finally:
            release_memory()  # the parts' tensors are gone: give their pages back to the system
        return out

    async def _queued(self, texts: list[str]) -> list[dict]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _take(self) -> Taken:
        """What is queued now (after an optional short wait): under load the queue fills while the model
        runs, so batches grow with the load and an idle server answers a lone request at once."""
        taken = [await self.queue.get()]
        if self.max_wait > 0:
            await asyncio.sleep(self.max_wait)
        count = len(taken[0][0])
        while count < self.max_texts and len(taken) < self.max_requests and not self.queue.empty():
            taken.append(self.queue.get_nowait())
            count += len(taken[-1][0])
        return taken

    async def _run(self) -> None:
        loop, slots, running = asyncio.get_running_loop(), asyncio.Semaphore(self.inflight), set()
        while True:
            taken = await self._take()
            try:
                encoded = await loop.run_in_executor(self.encode_thread, self.predictor.encode,
                                                     [t for texts, _ in taken for t in texts])
            except Exception as exc:  # noqa: BLE001 - the server lives on; the bad request alone fails
                await self._failed(taken, exc)
                continue
            await slots.acquire()  # a local model runs one batch at a time: the next one grows meanwhile
            task = loop.create_task(self._complete(taken, encoded))
            running.add(task)
            task.add_done_callback(lambda done: (running.discard(done), slots.release()))
            if not self.pipelined:
                await task

    async def _complete(self, taken: Taken, encoded: Encoded) -> None:
        loop = asyncio.get_running_loop()
        try:
            predictions = await loop.run_in_executor(self.model_thread, self.predictor.predict_encoded, encoded)
            results, start = [], 0
            for texts, _ in taken:
                results.append(predictions[start:start + len(texts)])
                start += len(texts)
        except Exception as exc:  # noqa: BLE001 - as above
            await self._failed(taken, exc)
            return
        self._settle(taken, results)

    async def _failed(self, taken: Taken, exc: Exception) -> None:
        """A batch failed: with one request, that request fails; with several, each runs again on its own,
        so only the one that cannot be scored fails and its neighbours are answered."""
        if len(taken) == 1:
            self._settle(taken, [exc])
            return
        loop = asyncio.get_running_loop()
        for texts, future in taken:
            try:
                encoded = await loop.run_in_executor(self.encode_thread, self.predictor.encode, texts)
                result = await loop.run_in_executor(self.model_thread, self.predictor.predict_encoded, encoded)
            except Exception as alone:  # noqa: BLE001 - this request's own failure
                result = alone
            self._settle([(texts, future)], [result])

    def _settle(self, taken: Taken, results: list) -> None:
        self.batches, self.requests = self.batches + 1, self.requests + len(taken)
        for (_, future), result in zip(taken, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
