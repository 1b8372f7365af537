"""Micro-batching: concurrent requests to one model share a forward pass.

One worker thread per model takes the oldest waiting request plus whatever else is already
queued (it never waits for more, so a lone request pays no extra latency), concatenates their
review lists, calls ``predict_fn`` once and hands each caller its slice. If the merged call
fails, each request is retried alone so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

MAX_BATCH_ITEMS = 64


class MicroBatcher:
    def __init__(self, infer: Callable[[list], list], max_items: int = MAX_BATCH_ITEMS):
        self._infer = infer
        self._max_items = max_items
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, items: list) -> list:
        """The predictions for ``items`` (blocks until the worker has run them)."""
        future: Future = Future()
        self._queue.put((items, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, size = [first], len(first[0])
            while size < self._max_items:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
                size += len(nxt[0])
            self._run_batch(batch)

    def _run_batch(self, batch: list) -> None:
        if len(batch) > 1:
            merged = [item for items, _ in batch for item in items]
            try:
                result = self._infer(merged)
            except Exception:
                result = None
            if isinstance(result, list) and len(result) == len(merged):
                start = 0
                for items, future in batch:
                    future.set_result(result[start : start + len(items)])
                    start += len(items)
                return
        for items, future in batch:
            try:
                future.set_result(self._infer(items))
            except Exception as err:
                future.set_exception(err)
