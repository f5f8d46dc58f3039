"""Dynamic batching for the serving program: concurrent requests share one encode and one forward pass.

Requests are queued as they arrive. One task takes what is queued (waiting at most ``max_wait`` seconds
for more, up to a number of texts), and hands the whole batch to the model thread: one tokenizer call
for all its texts (the fast tokenizer spreads it over the cores), one length-sorted forward pass, then
each request's predictions. The event loop stays free meanwhile: /ping answers while a large batch runs.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from steps.serve_model import Predictor


class Batcher:
    def __init__(self, predictor: Predictor, max_wait: float = 0.0):
        self.predictor, self.max_wait = predictor, max_wait
        # 1 = one request per forward pass: the baseline `make bench` compares batching against.
        self.max_requests = int(os.environ.get("SMPIPE_SERVE_MAX_REQUESTS", "1024"))
        self.max_texts = predictor.rows * 4
        self.queue: asyncio.Queue | None = None
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.batches = self.requests = 0
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        self.model_thread.shutdown(wait=False)

    async def predict(self, texts: list[str]) -> list[dict]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _take(self) -> list[tuple[list[str], asyncio.Future]]:
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

    def _work(self, requests: list[list[str]]) -> list[list[dict]]:
        texts = [t for request in requests for t in request]
        predictions = self.predictor.predict(texts)
        out, start = [], 0
        for request in requests:
            out.append(predictions[start:start + len(request)])
            start += len(request)
        return out

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            taken = await self._take()
            try:
                results = await loop.run_in_executor(self.model_thread, self._work, [texts for texts, _ in taken])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error, the server lives on
                results = [exc] * len(taken)
            self.batches, self.requests = self.batches + 1, self.requests + len(taken)
            for (_, future), result in zip(taken, results, strict=True):
                if not future.done():
                    (future.set_exception if isinstance(result, Exception) else future.set_result)(result)
