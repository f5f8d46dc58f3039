"""Dynamic batching for the serving program: concurrent requests share one forward pass.

Each request is tokenised in a thread of its own (the fast tokenizer releases the GIL), then queued.
One task takes queued requests for up to ``max_wait`` seconds or until their windows fill the token
budget, runs the model once in the model thread (the event loop stays free: /ping answers while a large
batch runs) and hands each request its own predictions.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from steps.serve_model import Encoded, Predictor


class Batcher:
    def __init__(self, predictor: Predictor, max_wait: float = 0.005, tokenize_threads: int = 4):
        self.predictor, self.max_wait = predictor, max_wait
        # 1 = one request per forward pass: the baseline `make bench` compares batching against.
        self.max_requests = int(os.environ.get("SMPIPE_SERVE_MAX_REQUESTS", "1024"))
        self.queue: asyncio.Queue | None = None
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.tokenize_threads = ThreadPoolExecutor(max_workers=tokenize_threads, thread_name_prefix="tokenize")
        self.batches = self.requests = 0
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        self.model_thread.shutdown(wait=False)
        self.tokenize_threads.shutdown(wait=False)

    async def predict(self, texts: list[str]) -> list[dict]:
        loop = asyncio.get_running_loop()
        encoded = await loop.run_in_executor(self.tokenize_threads, self.predictor.encode, texts)
        future = loop.create_future()
        await self.queue.put((encoded, future))
        return await future

    async def _take(self) -> list[tuple[Encoded, asyncio.Future]]:
        first = await self.queue.get()
        taken, tokens = [first], first[0].tokens
        deadline = time.monotonic() + self.max_wait
        while tokens < self.predictor.tokens and len(taken) < self.max_requests:
            remaining = deadline - time.monotonic()
            try:
                item = self.queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self.queue.get(), remaining)
            except (TimeoutError, asyncio.QueueEmpty):
                break
            taken.append(item)
            tokens += item[0].tokens
        return taken

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            taken = await self._take()
            windows = [w for encoded, _ in taken for w in encoded.windows]
            try:
                logits = await loop.run_in_executor(self.model_thread, self.predictor.forward, windows)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error, the server lives on
                for _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches, self.requests = self.batches + 1, self.requests + len(taken)
            start = 0
            for encoded, future in taken:
                part = logits[start:start + len(encoded.windows)]
                start += len(encoded.windows)
                if not future.done():
                    future.set_result(self.predictor.predictions(encoded, np.asarray(part)))
